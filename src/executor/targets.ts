/**
 * What a task runs, named so that any worker can find it: an export of a module (specifier and
 * property path, loaded by the worker on first use) or an inline function sent as source text.
 * Each gets a process-wide id; a worker is told an id's definition once, before its first task.
 */
import { inlineSource, TargetKind } from '../call/target.js';
import type { Future } from '../future.js';

/** A target as a pool worker learns it: the module is named by its specifier (each worker loads it). */
export type Definition =
  | { readonly kind: TargetKind.Export; readonly specifier: string; readonly path: readonly string[] }
  | { readonly kind: TargetKind.Inline; readonly source: string };

const ids = new Map<string, number>();
const definitions: Definition[] = [];
/**
 * Functions whose id is known: the stubs made by `import()`, and inline functions seen before (a
 * function submitted again is not turned into text, checked and looked up by its text again).
 */
const known = new WeakMap<object, number>();

function idOf(key: string, definition: Definition): number {
  let id = ids.get(key);
  if (id === undefined) {
    id = definitions.push(definition) - 1;
    ids.set(key, id);
  }
  return id;
}

export function definitionOf(id: number): Definition {
  return definitions[id] as Definition;
}

/**
 * The id of what `fn` stands for. Inline functions follow LoopThread's rules: their source must
 * evaluate on its own (no method shorthand, no captured variables); native and bound functions
 * have no source and are refused here.
 */
export function targetOf(fn: unknown): number {
  const seen = typeof fn === 'function' ? known.get(fn) : undefined;
  if (seen !== undefined) return seen;
  const source = inlineSource(fn, 'executor.import()');
  const id = idOf(`s\0${source}`, { kind: TargetKind.Inline, source });
  known.set(fn as object, id);
  return id;
}

/** A module's functions as seen through `executor.import()`: each runs on the pool and returns a Future. */
export type Offloaded<T> = {
  readonly [
    K in keyof T as T[K] extends (...args: never[]) => unknown ? K : T[K] extends object ? K : never
  ]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Future<Awaited<R>> : Offloaded<T[K]>;
};

/**
 * A proxy for a module loaded in the workers. It is made without loading anything here, so it
 * cannot know the exports: every property is a stub (and a namespace of deeper stubs). `then` is
 * left undefined so that the proxy is not mistaken for a promise.
 */
export function moduleProxy(specifier: string, submit: (id: number, args: unknown[]) => unknown): object {
  const make = (path: readonly string[]): object => {
    const id = idOf(`m\0${specifier}\0${path.join('\0')}`, { kind: TargetKind.Export, specifier, path });
    const name = path[path.length - 1] ?? 'module';
    const stub = {
      [name]: (...args: unknown[]): unknown => submit(id, args),
    }[name] as (...args: unknown[]) => unknown;
    const children = new Map<string, object>();
    const proxy = new Proxy(stub, {
      get(target, key, receiver) {
        // Function methods (call, apply, bind...) stay themselves below the module's top level.
        const own = typeof key !== 'string' || key === 'then' || (path.length > 0 && key in Function.prototype);
        if (own && key !== 'name' && key !== 'length') return Reflect.get(target, key, receiver) as unknown;
        const k = key;
        let child = children.get(k);
        if (child === undefined) {
          child = make([...path, k]);
          children.set(k, child);
        }
        return child;
      },
    });
    known.set(proxy, id);
    return proxy;
  };
  return make([]);
}
