/** Inline functions travel as source text; this turns the text back into a function. */
import type { Fn } from './target.js';

/**
 * Evaluates a function's source in this thread's global scope (indirect eval), so it sees globals
 * and nothing of the module that compiles it. Returns the error to answer calls with if the text
 * is not a function expression; `where` names the thread in that error.
 */
export function compileInline(source: string, where: string): Fn | Error {
  let value: unknown;
  try {
    value = (0, eval)(`(${source}\n)`);
  } catch (error) {
    return new SyntaxError(
      `the inline function could not be evaluated ${where}: ${(error as Error).message}. ` +
        'Inline functions travel as source text: write a function expression or an arrow function ' +
        '(not a method shorthand) that uses only its arguments and globals.',
      { cause: error },
    );
  }
  if (typeof value !== 'function') return new TypeError('the inline source did not evaluate to a function');
  return value as Fn;
}
