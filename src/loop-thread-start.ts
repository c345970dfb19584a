/** Starting a LoopThread's worker: the options it takes, the preloads it starts behind. */
import type { ResourceLimits, SHARE_ENV } from 'node:worker_threads';
import type { TsRunner } from './modules.js';

/** Options of `new LoopThread()`. */
export interface LoopThreadOptions {
  /** Shown in errors and as the worker's name. Default "LoopThread #n". */
  name?: string;
  /** Default timeout of every call, in milliseconds (none by default). */
  timeout?: number;
  /** Limits of the worker's heap and stack; exceeding them is a WorkerCrashedError, never a hang. */
  resourceLimits?: ResourceLimits;
  /** Node options of the worker (for example `--import` of a loader). */
  execArgv?: string[];
  /** The worker's environment (process.env by default; worker_threads.SHARE_ENV to share it). */
  env?: NodeJS.ProcessEnv | typeof SHARE_ENV;
  /**
   * What loads TypeScript modules where Node does not strip types (before 22.18): `'tsx'`,
   * `'ts-node'`, `'swc'`... (synckit's names), preloaded in the worker. Default: the environment
   * variable LOOPTHREAD_TS_RUNNER, else none.
   */
  tsRunner?: TsRunner | undefined;
  /** Bytes of the shared buffer in each direction; larger messages go by the port (see protocol/bulk.ts). Default 256 KiB. */
  bufferSize?: number;
  /** How long the thread may take to start before calls fail with WorkerCrashedError. Default 30 s. */
  startupTimeout?: number;
  /**
   * A copy of loopthread's dist/src folder, for an app that bundles loopthread (see "Bundling" in
   * the README). Default: the environment variable LOOPTHREAD_WORKER_DIR, else loopthread's own.
   */
  workerDir?: string | URL | undefined;
}

let warned = false;

/** Said once: without the native handle a blocked caller cannot see a silent death. */
export function warnBlind(): void {
  if (warned) return;
  warned = true;
  process.emitWarning(
    'loopthread cannot see, on this Node version, whether a worker thread still runs while a caller is ' +
      'blocked: a thread killed without a word (out of memory, terminate) then leaves a blocking call ' +
      'without a timeout waiting. Crashes, exits and never-settling calls are still reported.',
    { code: 'LOOPTHREAD_NO_WORKER_PROBE' },
  );
}
