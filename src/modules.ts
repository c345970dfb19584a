/**
 * Loading user modules in a worker (LoopThread, pool worker), TypeScript ones included, and the
 * Node options that make a TypeScript runner available there.
 *
 * Node ≥ 22.18 strips types itself. On Node 20 a worker's `import()` cannot load `.ts`: ES module
 * hooks registered in a worker (`--import tsx`) do not apply to it there, but the CommonJS hook
 * that the same runners install does. So a TypeScript file that `import()` refuses is required
 * instead when a runner has hooked `.ts` into `require`.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { importModule } from './starter-host.js';

/** The TypeScript runners known by name (synckit's names). */
export type TsRunner = 'node' | 'bun' | 'tsx' | 'ts-node' | 'esbuild-register' | 'esbuild-runner' | 'swc' | 'oxc';

/** What each runner preloads in the worker: the flag, and the module it loads. */
const PRELOADS: Readonly<Record<TsRunner, readonly [flag: '--require' | '--import', pkg: string] | undefined>> = {
  node: undefined,
  bun: undefined,
  tsx: ['--import', 'tsx'],
  'ts-node': ['--require', 'ts-node/register'],
  'esbuild-register': ['--require', 'esbuild-register'],
  'esbuild-runner': ['--require', 'esbuild-runner/register'],
  swc: ['--require', '@swc-node/register'],
  oxc: ['--import', '@oxc-node/core/register'],
};

/** Node versions from which types are stripped with a flag, and by default. */
const STRIP_FLAG_FROM = [22, 6];
const STRIP_DEFAULT_FROM = [22, 18];

function nodeAtLeast([major, minor]: number[]): boolean {
  const [m = 0, n = 0] = process.versions.node.split('.').map(Number);
  return m > (major as number) || (m === major && n >= (minor as number));
}

function isTsRunner(name: string): name is TsRunner {
  return Object.hasOwn(PRELOADS, name);
}

/** A worker's execArgv, and what to start it with should Node refuse the inherited options. */
export interface ThreadArgv {
  execArgv: string[] | undefined;
  /**
   * Set when execArgv copies the inherited options (process.execArgv) to add the runner's: a
   * worker refuses some that it would inherit silently (V8 and process-wide options, as the test
   * runner passes); then it starts with the runner's options alone.
   */
  fallback?: string[];
}

/**
 * The worker's execArgv with the runner's preload in front, or execArgv unchanged without a
 * runner. The runner's package is resolved from the working directory (the user's project), then
 * from loopthread's own place.
 */
export function withTsRunner(runner: string | undefined, execArgv: string[] | undefined): ThreadArgv {
  const own = runnerArgs(runner);
  if (own.length === 0) return { execArgv };
  if (execArgv !== undefined) return { execArgv: [...own, ...execArgv] };
  return { execArgv: [...own, ...process.execArgv], fallback: own };
}

/** Starts a worker with argv, falling back to argv.fallback when Node refuses the inherited options. */
export function startThread(argv: ThreadArgv, start: (execArgv: string[] | undefined) => Worker): Worker {
  try {
    return start(argv.execArgv);
  } catch (error) {
    if (argv.fallback === undefined || (error as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') {
      throw error;
    }
    return start(argv.fallback);
  }
}

function runnerArgs(runner: string | undefined): string[] {
  if (runner === undefined || runner === '') return [];
  if (!isTsRunner(runner)) {
    throw new TypeError(`unknown tsRunner "${runner}": use one of ${Object.keys(PRELOADS).join(', ')}`);
  }
  if (runner === 'node') {
    if (nodeAtLeast(STRIP_DEFAULT_FROM)) return [];
    if (!nodeAtLeast(STRIP_FLAG_FROM)) {
      throw new TypeError(
        `tsRunner "node" needs Node 22.6 or later (type stripping); this is Node ${process.versions.node}: ` +
          'use another tsRunner, such as "tsx"',
      );
    }
    return ['--experimental-strip-types'];
  }
  const preload = PRELOADS[runner];
  if (preload === undefined) return [];
  const [flag, pkg] = preload;
  const path = resolvePackage(pkg, runner);
  return [flag, flag === '--import' ? pathToFileURL(path).href : path];
}

function resolvePackage(pkg: string, runner: string): string {
  for (const from of [join(process.cwd(), 'noop.js'), __filename]) {
    try {
      return createRequire(from).resolve(pkg);
    } catch {
      // next place
    }
  }
  throw new TypeError(
    `tsRunner "${runner}" needs the package ${pkg.startsWith('@') ? pkg.split('/').slice(0, 2).join('/') : (pkg.split('/')[0] ?? pkg)}, ` +
      `which cannot be found from ${process.cwd()}: install it (npm install -D ${runner === 'swc' ? '@swc-node/register' : runner === 'oxc' ? '@oxc-node/core' : runner})`,
  );
}

/** The runner named by the environment (LOOPTHREAD_TS_RUNNER), if any. */
export function defaultTsRunner(): string | undefined {
  return process.env.LOOPTHREAD_TS_RUNNER;
}

const TS_FILE = /\.[cm]?ts$/;

/**
 * Loads a module for calls in this worker. A TypeScript file that `import()` cannot load goes
 * through `require` when a runner hooked it there; a failure is explained in terms of what the
 * caller wrote (see explainLoadError).
 */
export async function loadModule(specifier: string): Promise<object> {
  try {
    return (await importModule(specifier)) as object;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && specifier.startsWith('file:') && TS_FILE.test(specifier)) {
      // eslint-disable-next-line @typescript-eslint/no-deprecated -- how runners install a require hook, so how to see one
      if (require.extensions['.ts'] !== undefined) return createRequire(__filename)(fileURLToPath(specifier)) as object;
      throw explained(
        error as Error,
        `Cannot load the TypeScript module ${fileURLToPath(specifier)}: Node ${process.versions.node} does not ` +
          'strip types (Node 22.18 and later do). Give the thread a TypeScript runner: the option ' +
          "tsRunner: 'tsx' (with tsx installed), or LOOPTHREAD_TS_RUNNER=tsx in the environment.",
      );
    }
    throw explainLoadError(error, specifier);
  }
}

/**
 * A module that cannot be found: Node blames the file that called import(), which is loopthread's
 * own worker code, and does not say how the caller's specifier was read.
 */
export function explainLoadError(error: unknown, specifier: string): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ERR_MODULE_NOT_FOUND' || !specifier.startsWith('file:')) return error;
  const path = fileURLToPath(specifier);
  // Only when the missing file is the module asked for (not one that it imports).
  if (!(error as Error).message.includes(`'${path}'`)) return error;
  return explained(
    error as Error,
    `Cannot find module ${path}. A specifier starting with ./ or ../ is resolved against the working ` +
      `directory (${process.cwd()}), not against the calling file; to name a file next to the calling ` +
      "module, pass new URL('./file.js', import.meta.url).",
  );
}

function explained(error: Error, message: string): Error {
  const better = new Error(message, { cause: error });
  (better as NodeJS.ErrnoException).code = (error as NodeJS.ErrnoException).code;
  return better;
}
