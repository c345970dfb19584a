/**
 * What loopthread's own code cannot do itself when node:vm compiled it. A worker thread starts from
 * its bundle's starter, which runs the bundle's code compiled from V8's code cache by node:vm
 * (scripts/bundle-boot.mjs): code compiled so has no module loader of its own, so an import() in it,
 * or in code it evaluates (an inline function), would fail. The starter, which Node's own loader
 * compiled, lends its import() and eval for those two. Elsewhere (a main thread, a Portal's thread,
 * Bun, Deno), this file's own are used.
 */
interface Lent {
  evaluate: (text: string) => unknown;
  importModule: (specifier: string) => Promise<unknown>;
}

const lent = (globalThis as Record<symbol, Lent | undefined>)[Symbol.for('loopthread.starter')];

/**
 * Evaluates `text` in this thread's global scope (indirect eval). Named compileInline, as the
 * starter's is: an inline function's frames say "eval at compileInline" (see call/compile.ts).
 */
export const evaluateGlobal: (text: string) => unknown =
  lent?.evaluate ??
  function compileInline(text: string): unknown {
    return (0, eval)(text);
  };

/** import(), from a file Node's module loader compiled. */
export const importModule: (specifier: string) => Promise<unknown> =
  lent?.importModule ?? ((specifier) => import(specifier));
