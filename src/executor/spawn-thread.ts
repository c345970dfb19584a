/**
 * A long-lived job on a thread of its own, outside any pool, so that it never takes a worker of
 * the default executor from short tasks. The thread ends with the job.
 */
import { TimeoutError } from '../errors.js';
import type { Future } from '../future.js';
import type { CloseOptions } from '../lifecycle.js';
import { ThreadPoolExecutor } from './pool.js';
import type { ExecutorOptions } from './options.js';
import type { TaskOptions } from './task-queue.js';

/** What {@link spawnThread} returns: the job's future and its thread's lifecycle. */
export interface SpawnedThread<T> extends AsyncDisposable {
  /** Settles with the job's result or error (WorkerCrashedError if its thread dies). */
  readonly future: Future<T>;
  /** Aborts when the job is cancelled (cancel(), a timeout, or the signal given): what it sees as currentSignal(). */
  readonly signal: AbortSignal;
  /** Its thread's id. */
  readonly threadId: number;
  /** Asks the job to stop: its signal aborts and throwIfCancelled() throws in it. */
  cancel(reason?: unknown): void;
  /**
   * Lets the job finish for `grace` ms (default Infinity) or until `signal` aborts, then cancels
   * it and terminates its thread. Resolves once the thread is gone.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Stops the thread at once; the future, if not settled yet, is cancelled. Resolves once the thread is gone. */
  terminate(): Promise<void>;
  /** Resolves once the thread is gone (the job done, or the thread closed or terminated). Never rejects. */
  readonly closed: Promise<void>;
  /** True once the job is done or close()/terminate() was called. */
  readonly isClosed: boolean;
}

/** Task options, and options of the thread (as for a ThreadPoolExecutor's workers). */
export interface SpawnOptions
  extends
    TaskOptions,
    Pick<ExecutorOptions, 'execArgv' | 'env' | 'tsRunner' | 'resourceLimits' | 'workerDir' | 'workerData'> {}

let count = 0;

/** spawnThread bound to task options (what `spawnThread.with` returns). */
type Spawn = <A extends unknown[], R>(fn: (...args: A) => R, ...args: A) => SpawnedThread<Awaited<R>>;

/**
 * Runs `fn(...args)` on a new thread of its own; the thread exits when the job is done.
 * `spawnThread.with(options)(fn, ...args)` gives the job task options (signal, timeout, terminateAfter).
 *
 * @param fn - The job: a function from `executor.import()`, or an inline function (sent as source).
 * @param args - Its arguments, copied to the thread.
 * @example
 * ```ts
 * const job = spawnThread(watchFolder, '/var/spool');
 * // later
 * job.cancel(); // its currentSignal() aborts
 * await job.closed;
 * ```
 */
export function spawnThread<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): SpawnedThread<Awaited<R>> {
  return spawn({}, fn, ...args);
}

/**
 * spawnThread with task options (signal, timeout, terminateAfter) and thread options (execArgv,
 * env, tsRunner, resourceLimits, workerDir, workerData).
 *
 * @param options - Task options and thread options.
 * @example
 * ```ts
 * const job = spawnThread.with({ timeout: 60_000, workerData: { dir } })(indexAll);
 * ```
 */
spawnThread.with = (options: SpawnOptions): Spawn => {
  return (fn, ...args) => spawn(options, fn, ...args);
};

/** @deprecated Use `spawnThread.with(options)(fn, ...args)`. */
export function spawnThreadWith<A extends unknown[], R>(
  options: SpawnOptions,
  fn: (...args: A) => R,
  ...args: A
): SpawnedThread<Awaited<R>> {
  return spawn(options, fn, ...args);
}

function spawn<A extends unknown[], R>(
  options: SpawnOptions,
  fn: (...args: A) => R,
  ...args: A
): SpawnedThread<Awaited<R>> {
  const { execArgv, env, tsRunner, resourceLimits, workerDir, workerData, ...task } = options;
  const pool = new ThreadPoolExecutor({
    name: `spawned thread #${String(++count)}`,
    maxWorkers: 1,
    minWorkers: 1,
    execArgv,
    env,
    tsRunner,
    resourceLimits,
    workerDir,
    workerData,
  });
  const controller = new AbortController();
  const future = pool.with(task).submit(fn, ...args);
  future.addDoneCallback(() => {
    // The job's own signal aborts when it is cancelled or times out, not when it fails by itself.
    const error = errorOf(future);
    if (future.cancelled() || error instanceof TimeoutError) controller.abort(error);
  });
  void pool.close();
  const thread = pool.threads[0];
  let closing = false;
  return {
    future,
    signal: controller.signal,
    threadId: thread?.threadId ?? -1,
    closed: pool.closed,
    get isClosed() {
      return closing || future.done();
    },
    cancel(reason?: unknown) {
      future.cancel(reason);
    },
    async close(closeOptions?: CloseOptions) {
      closing = true;
      await pool.close(closeOptions);
    },
    async terminate() {
      closing = true;
      await pool.terminate();
    },
    async [Symbol.asyncDispose]() {
      closing = true;
      await pool.close();
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
