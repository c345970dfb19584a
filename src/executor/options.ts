/** The options of a ThreadPoolExecutor and of its shutdown. */
import type { ResourceLimits, SHARE_ENV } from 'node:worker_threads';
import type { TsRunner } from '../modules.js';

/** Options of `new ThreadPoolExecutor()`. */
export interface ExecutorOptions {
  /** The most worker threads. Default `os.availableParallelism()`. */
  maxWorkers?: number;
  /** Workers kept even when idle. Default 0. */
  minWorkers?: number;
  /** Milliseconds an idle worker above minWorkers lives on. Default 30 000; Infinity: for ever. */
  idleTimeout?: number;
  /**
   * The most tasks waiting for a worker. When the queue is full, `submit` and `map` wait their
   * turn (strict FIFO) and `trySubmit` returns undefined. Default Infinity.
   */
  maxQueue?: number;
  /** Shown in errors and as the workers' thread names. */
  name?: string;
  /** Limits of each worker's heap and stack; exceeding them is a WorkerCrashedError for its task. */
  resourceLimits?: ResourceLimits;
  /** Node options of each worker (for example `--import` of a loader). Default: inherited. */
  execArgv?: string[];
  /** Each worker's environment (a copy of process.env by default; worker_threads.SHARE_ENV to share it). */
  env?: NodeJS.ProcessEnv | typeof SHARE_ENV;
  /** What loads TypeScript modules where Node does not strip types, as for LoopThread. */
  tsRunner?: TsRunner | undefined;
  /** A copy of loopthread's dist/src folder, for an app that bundles loopthread, as for LoopThread. */
  workerDir?: string | URL | undefined;
  /**
   * A value each worker finds as `require('node:worker_threads').workerData`, in its tasks and
   * its `execArgv` preloads: a copy per worker (structured clone; a SharedArrayBuffer is shared).
   */
  workerData?: unknown;
}

/** Python's options of `shutdown`, an alias of `close`. */
export interface ShutdownOptions {
  /** Resolve only once every task has finished and every worker has exited. Default true. */
  wait?: boolean;
  /** Cancel the tasks that have not started (they never will); running ones finish. Default false. */
  cancelFutures?: boolean;
}
