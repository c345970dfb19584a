/**
 * Where loopthread's worker threads start from. A thread starts from a file, and a bundler that
 * puts loopthread into an app's one file leaves those files behind (`__dirname` is then the
 * bundle's folder): the option `workerDir` or the environment variable LOOPTHREAD_WORKER_DIR names
 * a copy of loopthread's dist/src folder instead. A missing file is said before any thread starts,
 * by name and with the fix; started from a missing file, a thread would only be seen to die. A
 * thread is started behind its boot file (startWorker).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { WorkerEntryNotFoundError } from './errors.js';

/**
 * The files threads start from, relative to dist/src. A `.bundle.js` holds an entry and the files it
 * loads at start-up, written by `npm run build` (scripts/bundle-boot.mjs).
 */
export type WorkerEntry =
  'loop-thread-main.bundle.js' | 'loop-thread-boot.js' | 'executor/worker-main.bundle.js' | 'executor/worker-boot.js';

/** Files seen to exist: asked once. */
const found = new Set<string>();

/**
 * The path of `entry` in `workerDir`, else in LOOPTHREAD_WORKER_DIR, else next to this file.
 * Throws WorkerEntryNotFoundError if it does not exist.
 */
export function workerEntry(entry: WorkerEntry, workerDir?: string | URL): string {
  const fromEnv = process.env.LOOPTHREAD_WORKER_DIR;
  const configured = workerDir ?? (fromEnv === '' ? undefined : fromEnv);
  // An ES module bundle has no __dirname: then only a configured folder tells.
  const dir =
    configured === undefined
      ? typeof __dirname === 'string'
        ? __dirname
        : undefined
      : resolve(configured instanceof URL || configured.startsWith('file:') ? fileURLToPath(configured) : configured);
  const path = dir === undefined ? entry : resolve(dir, entry);
  if (found.has(path)) return path;
  // A bundle's starter runs the bundle's code beside it (scripts/bundle-boot.mjs): a folder holding
  // one without the other would start threads that die before they could say so.
  const code = path.replace(/\.bundle\.js$/, '.bundle-code.js');
  const missing = dir === undefined ? path : [path, code].find((file) => !existsSync(file));
  if (missing === undefined) {
    found.add(path);
    return path;
  }
  const where =
    dir === undefined
      ? `cannot tell where its worker file ${entry} is (__dirname is not defined: loopthread was bundled into an ES module)`
      : `cannot start a worker thread: its file ${missing} does not exist` +
        (configured === undefined
          ? ''
          : ` (in ${workerDir === undefined ? 'LOOPTHREAD_WORKER_DIR' : 'the option workerDir'}, which must name a copy of loopthread's dist/src folder)`);
  throw new WorkerEntryNotFoundError(
    `loopthread ${where}. Bundled into an app, loopthread leaves its worker files behind: mark loopthread ` +
      'as external in the bundler (recommended), or copy node_modules/loopthread/dist/src to a folder shipped ' +
      'with the bundle and name that folder in the option workerDir or in LOOPTHREAD_WORKER_DIR ' +
      `("Bundling" in loopthread's README).`,
    missing,
  );
}

/** Options in execArgv that load code before the thread's main module: code that may fail there. */
const PRELOAD_FLAGS = /^(?:-r|--require|--import|--loader|--experimental-loader)(?:=|$)/;

/**
 * Starts a worker with its boot file (loop-thread-boot.js, executor/worker-boot.js) preloaded ahead
 * of any preload of the user's. The boot file writes the fact its owner's liveness probe rests on,
 * so a preload that throws or exits is seen as a thread that stopped, not one still starting (a
 * LoopThread's also leaves the error as its last words). Inherited execArgv cannot always be passed
 * on explicitly (a worker refuses V8 and process-wide options it would inherit silently): then the
 * worker inherits them as it would have, and a failing inherited preload is seen only through a
 * LoopThread's startupTimeout (a pool's blocked resultSync then waits for its own timeout).
 */
export function startWorker(
  files: { main: string; boot: string },
  execArgv: string[] | undefined,
  options: WorkerOptions,
): Worker {
  const { main } = files;
  const boot = ['--require', files.boot];
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
