// The tasks of bench/pool.mjs, as loopthread, piscina and tinypool load them (named exports).
import { threadId } from 'node:worker_threads';

export function identity(x) {
  return x;
}

function fibOf(n) {
  return n < 2 ? n : fibOf(n - 1) + fibOf(n - 2);
}

/** The n-th Fibonacci number the slow way, and which thread computed it (to show the split). */
export function fib(n) {
  return [fibOf(n), threadId];
}
