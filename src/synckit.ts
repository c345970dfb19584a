/**
 * `loopthread/synckit`: synckit's `createSyncFn` and `runAsWorker` over a LoopThread, so that a
 * plugin moves by changing one import. Same options and environment variables (SYNCKIT_TIMEOUT,
 * SYNCKIT_EXEC_ARGV, SYNCKIT_TS_RUNNER); what differs is what loopthread adds: a worker that
 * fails to load or crashes fails the call instead of hanging it, a timeout is a TimeoutError that
 * aborts the call's signal, and values that are not plain data cross by reference.
 */
import { existsSync } from 'node:fs';
import { extname, isAbsolute } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { LoopThread } from './loop-thread.js';
import type { TsRunner as TsRunnerName } from './modules.js';

/** synckit's runner names, the values of `tsRunner`. */
export const TsRunner = {
  /** Node's own type stripping. */
  Node: 'node',
  /** Bun runs TypeScript itself. */
  Bun: 'bun',
  /** `ts-node/register`. */
  TsNode: 'ts-node',
  /** `esbuild-register`. */
  EsbuildRegister: 'esbuild-register',
  /** `esbuild-runner/register`. */
  EsbuildRunner: 'esbuild-runner',
  /** `@oxc-node/core/register`. */
  OXC: 'oxc',
  /** `@swc-node/register`. */
  SWC: 'swc',
  /** `tsx`. */
  TSX: 'tsx',
} as const satisfies Record<string, TsRunnerName>;
/** What loads a TypeScript worker where Node does not strip types: one of {@link TsRunner}'s values. */
export type TsRunner = TsRunnerName;

/** A function, whatever its arguments. */
export type AnyFn<R = unknown> = (...args: never[]) => R;
/** What createSyncFn returns for a worker function of type T. */
export type Syncify<T extends AnyFn> = (...args: Parameters<T>) => Awaited<ReturnType<T>>;

/** synckit's options of `createSyncFn`. */
export interface SynckitOptions {
  /** Node options of the worker (default: SYNCKIT_EXEC_ARGV, comma-separated, else inherited). */
  execArgv?: string[];
  /** Milliseconds a call may take: then it throws TimeoutError (default: SYNCKIT_TIMEOUT, else none). */
  timeout?: number;
  /** What loads a TypeScript worker on Node 20 (default: SYNCKIT_TS_RUNNER). */
  tsRunner?: TsRunner;
  /** Accepted for compatibility and ignored: globals are the worker's own (Node 20 has fetch). */
  globalShims?: unknown;
  /** Accepted for compatibility and ignored: values cross by copy or by reference (see the README). */
  transferList?: readonly unknown[];
}

/** Where runAsWorker leaves the worker's function in its thread. */
const WORKER_FN = Symbol.for('loopthread.synckit.worker');

const cache = new Map<string, (...args: unknown[]) => unknown>();

/**
 * A function that calls the function the worker at `workerPath` (absolute, or a file URL) passes
 * to runAsWorker, and blocks until it settles. One worker per path, made once (later options for
 * the same path are ignored, as in synckit).
 *
 * @param workerPath - The worker module: an absolute path or a file URL.
 * @param timeoutOrOptions - Milliseconds a call may take, or {@link SynckitOptions}.
 * @throws Error if `workerPath` is not absolute. The function it returns throws what the worker's
 *   function throws, a TimeoutError, or a WorkerCrashedError if the worker fails to load or dies.
 * @example
 * ```ts
 * // main.ts
 * const format = createSyncFn<typeof import('./worker.js').format>(require.resolve('./worker.js'));
 * const output = format(source); // blocks
 * // worker.ts
 * runAsWorker(async (source: string) => prettier.format(source, { parser: 'babel' }));
 * ```
 */
export function createSyncFn<T extends AnyFn>(
  workerPath: string | URL,
  timeoutOrOptions?: number | SynckitOptions,
): Syncify<T> {
  const path =
    typeof workerPath === 'string' && !workerPath.startsWith('file:') ? workerPath : fileURLToPath(workerPath);
  const known = cache.get(path);
  if (known !== undefined) return known as Syncify<T>;
  if (!isAbsolute(path)) throw new Error('`workerPath` must be absolute');
  const options = typeof timeoutOrOptions === 'number' ? { timeout: timeoutOrOptions } : (timeoutOrOptions ?? {});
  const env = process.env;
  const timeout = options.timeout ?? (env.SYNCKIT_TIMEOUT ? Number(env.SYNCKIT_TIMEOUT) : undefined);
  const execArgv = options.execArgv ?? (env.SYNCKIT_EXEC_ARGV ? env.SYNCKIT_EXEC_ARGV.split(',') : undefined);
  const tsRunner = options.tsRunner ?? (env.SYNCKIT_TS_RUNNER as TsRunner | undefined);
  const loop = new LoopThread({ name: `synckit worker ${path}`, timeout, execArgv, tsRunner });
  const file = withTypeScriptExtension(path);
  let loaded = false;
  const syncFn = (...args: unknown[]): unknown => {
    if (!loaded) {
      loop.importSync(pathToFileURL(file));
      loaded = true;
    }
    return loop.runSync(callWorker, ...args);
  };
  cache.set(path, syncFn);
  return syncFn as Syncify<T>;
}

/** Runs on the worker's thread, as source text: it may use only its arguments and globals. */
const callWorker = (...args: unknown[]): unknown => {
  const fn = (globalThis as Record<symbol, unknown>)[Symbol.for('loopthread.synckit.worker')];
  if (typeof fn !== 'function') throw new TypeError('the worker module did not call runAsWorker(fn)');
  return (fn as (...a: unknown[]) => unknown)(...args);
};

/**
 * Called by the worker module: `fn` answers the calls of createSyncFn's function. Does nothing on
 * the main thread, so one file can be caller and worker.
 *
 * @param fn - The worker's function, sync or async.
 */
export function runAsWorker(fn: AnyFn): void {
  if (isMainThread) return;
  (globalThis as Record<symbol, unknown>)[WORKER_FN] = fn;
}

/** As synckit, a worker named `x.js` or `x` that exists as `x.ts` (`.mjs`: `.mts`, `.cjs`: `.cts`) is that file. */
function withTypeScriptExtension(path: string): string {
  if (existsSync(path) || path.includes('/node_modules/')) return path;
  const ext = extname(path);
  const stem = ext === '' ? path : path.slice(0, -ext.length);
  const candidates = ext === '.mjs' ? ['.mts'] : ext === '.cjs' ? ['.cts'] : ext === '' ? ['.ts', '.js'] : ['.ts'];
  return candidates.map((c) => stem + c).find((p) => existsSync(p)) ?? path;
}
