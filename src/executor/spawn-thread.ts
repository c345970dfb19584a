/**
 * A long-lived job on a thread of its own, outside any pool, so that it never takes a worker of
 * the default executor from short tasks. The thread ends with the job.
 */
import { TimeoutError } from '../errors.js';
import type { Future } from '../future.js';
import { ThreadPoolExecutor, type ExecutorOptions } from './pool.js';
import type { TaskOptions } from './task-queue.js';

export interface SpawnedThread<T> {
  /** Settles with the job's result or error (WorkerCrashedError if its thread dies). */
  readonly future: Future<T>;
  /** Aborts when the job is cancelled (cancel(), a timeout, or the signal given): what it sees as currentSignal(). */
  readonly signal: AbortSignal;
  /** Its thread's id. */
  readonly threadId: number;
  /** Asks the job to stop: its signal aborts and throwIfCancelled() throws in it. */
  cancel(reason?: unknown): void;
  /** Stops the thread at once; the future, if not settled yet, is cancelled. Resolves once the thread is gone. */
  terminate(): Promise<void>;
}

/** Task options, and options of the thread (as for a ThreadPoolExecutor's workers). */
export interface SpawnOptions
  extends TaskOptions, Pick<ExecutorOptions, 'execArgv' | 'env' | 'tsRunner' | 'resourceLimits'> {}

let count = 0;

/** Runs `fn(...args)` on a new thread of its own; the thread exits when the job is done. */
export function spawnThread<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): SpawnedThread<Awaited<R>> {
  return spawnThreadWith({}, fn, ...args);
}

/** spawnThread with task options (signal, timeout, terminateAfter) and thread options (execArgv, env, tsRunner, resourceLimits). */
export function spawnThreadWith<A extends unknown[], R>(
  options: SpawnOptions,
  fn: (...args: A) => R,
  ...args: A
): SpawnedThread<Awaited<R>> {
  const { execArgv, env, tsRunner, resourceLimits, ...task } = options;
  const pool = new ThreadPoolExecutor({
    name: `spawned thread #${String(++count)}`,
    maxWorkers: 1,
    minWorkers: 1,
    execArgv,
    env,
    tsRunner,
    resourceLimits,
  });
  const controller = new AbortController();
  const future = pool.with(task).submit(fn, ...args);
  future.addDoneCallback(() => {
    // The job's own signal aborts when it is cancelled or times out, not when it fails by itself.
    const error = errorOf(future);
    if (future.cancelled() || error instanceof TimeoutError) controller.abort(error);
  });
  void pool.shutdown({ wait: false });
  const thread = pool.threads[0];
  return {
    future,
    signal: controller.signal,
    threadId: thread?.threadId ?? -1,
    cancel(reason?: unknown) {
      future.cancel(reason);
    },
    async terminate() {
      future.cancel('terminated');
      await thread?.terminate();
      await pool.shutdown();
    },
  };
}

function errorOf<T>(future: Future<T>): unknown {
  try {
    return future.exceptionSync();
  } catch (error) {
    return error;
  }
}
