/** Inline functions travel as source text; this turns the text back into a function. */
import type { Fn } from './target.js';
import { wantCallContexts } from './context.js';
import { evaluateGlobal } from '../starter-host.js';

/** An inline function that may ask for its call's signal (see context.ts). */
const ASKS = /currentSignal|throwIfCancelled|loopthread/;

/**
 * Evaluates a function's source in this thread's global scope (indirect eval), so it sees globals
 * and nothing of the module that compiles it. Returns the error to answer calls with if the text
 * is not a function expression; `where` names the thread in that error.
 */
export function compileInline(source: string, where: string): Fn | Error {
  let value: unknown;
  try {
    value = evaluateGlobal(`(${source}\n)`);
  } catch (error) {
    return new SyntaxError(
      `the inline function could not be evaluated ${where}: ${(error as Error).message}. ` +
        'Inline functions travel as source text: write a function expression or an arrow function ' +
        '(not a method shorthand) that uses only its arguments and globals.',
      { cause: error },
    );
  }
  if (typeof value !== 'function') return new TypeError('the inline source did not evaluate to a function');
  if (ASKS.test(source)) wantCallContexts();
  return value as Fn;
}

const NOT_DEFINED = /^(\S+) is not defined$/;
/** A stack frame of code compiled by compileInline itself (not of code that it evals in turn). */
const OWN_FRAME = /^\s*at (?:async )?[^(]*\(eval at compileInline \(/;

/**
 * A ReferenceError thrown by an inline function's own code (its top frame is the compiled source)
 * is nearly always a variable it meant to capture from where it was written: say so, naming it.
 * Called on errors only, so calls pay nothing.
 */
export function explainCapture(error: unknown): unknown {
  if (!(error instanceof ReferenceError)) return error;
  const name = NOT_DEFINED.exec(error.message)?.[1];
  const stack = error.stack ?? '';
  const top = stack.split('\n').find((line) => line.trimStart().startsWith('at '));
  if (name === undefined || top === undefined || !OWN_FRAME.test(top)) return error;
  const before = `${error.name}: ${error.message}`;
  error.message =
    `${name} is not defined: an inline function is sent as source text and runs in the other thread's ` +
    `global scope, so it cannot capture "${name}" from the code around it. Pass ${name} as an argument ` +
    '(or put the function in a module and import it).';
  error.stack = stack.replace(before, `${error.name}: ${error.message}`);
  return error;
}
