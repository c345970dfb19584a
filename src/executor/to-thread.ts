/**
 * asyncio.to_thread: run a function on the default executor. The default executor is made on
 * first use, with a worker per core; its idle workers never hold the process open.
 */
import { availableParallelism } from 'node:os';
import { ThreadPoolExecutor } from './pool.js';

let fallback: ThreadPoolExecutor | undefined;

/** The executor that toThread uses (made on first use, a worker per core, unless one was set). */
export function defaultExecutor(): ThreadPoolExecutor {
  if (fallback === undefined || fallback.isClosed) {
    fallback = new ThreadPoolExecutor({ name: 'default executor', maxWorkers: availableParallelism() });
  }
  return fallback;
}

/**
 * Replaces the default executor (as asyncio's `loop.set_default_executor`); the previous one is
 * not shut down.
 *
 * @param executor - The pool `toThread` uses from now on.
 */
export function setDefaultExecutor(executor: ThreadPoolExecutor): void {
  fallback = executor;
}

/**
 * Runs `fn(...args)` on the default executor and resolves with its result. `fn` is a function
 * from `executor.import()` or an inline function (sent as source: it may use only its arguments
 * and globals).
 *
 * @param fn - The function to run on a worker.
 * @param args - Its arguments, copied to the worker.
 * @returns A promise of its result; it rejects with what `fn` throws, or a
 *   {@link WorkerCrashedError} if its worker dies.
 * @example
 * ```ts
 * const digest = await toThread((text: string) => {
 *   let h = 0;
 *   for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
 *   return h;
 * }, bigText);
 * ```
 */
export function toThread<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): Promise<Awaited<R>> {
  return defaultExecutor()
    .submit(fn, ...args)
    .then();
}
