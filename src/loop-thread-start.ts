/** Starting a LoopThread's worker. */
import { join } from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** Options in execArgv that load code before the thread's main module: code that may fail there. */
const PRELOAD_FLAGS = /^(?:-r|--require|--import|--loader|--experimental-loader)(?:=|$)/;

/**
 * Starts the worker with loop-thread-boot.js preloaded ahead of any preload of the user's, so that
 * a preload that throws or exits is reported with its error rather than as a thread that never
 * started. Inherited execArgv cannot always be passed on explicitly (a worker refuses V8 and
 * process-wide options it would inherit silently): then the worker inherits them as it would
 * have, and a failing inherited preload is seen through startupTimeout.
 */
export function startWorker(execArgv: string[] | undefined, options: WorkerOptions): Worker {
  const main = join(__dirname, 'loop-thread-main.js');
  const boot = ['--require', join(__dirname, 'loop-thread-boot.js')];
  const own = execArgv ?? process.execArgv;
  if (!own.some((arg) => PRELOAD_FLAGS.test(arg))) return new Worker(main, { ...options, execArgv });
  if (execArgv !== undefined) return new Worker(main, { ...options, execArgv: [...boot, ...execArgv] });
  try {
    return new Worker(main, { ...options, execArgv: [...boot, ...own] });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
    return new Worker(main, options);
  }
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
