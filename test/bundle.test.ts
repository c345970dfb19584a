/**
 * Bundling (issue 14): an app bundled by esbuild into one CommonJS file, run in a process of its
 * own. With loopthread external it works as installed; bundled whole, it fails at once with an
 * error naming the missing worker file, and works once given a copy of dist/src as its worker
 * folder (LOOPTHREAD_WORKER_DIR or the option workerDir), as the README's "Bundling" says; an ES
 * module bundle too.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const repoRoot = join(__dirname, '..', '..');
const fixtures = join(repoRoot, 'test', 'fixtures');

interface Run {
  result: Record<string, unknown>;
  stderr: string;
}

/** Runs `node <file> <mode>` and parses the JSON line it prints. */
function run(file: string, mode: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const inherited = { ...process.env };
  delete inherited.LOOPTHREAD_WORKER_DIR;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [file, mode],
      // A watchdog against a hang, far above what the app takes.
      { cwd: tmpdir(), env: { ...inherited, ...env }, encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error !== null) {
          reject(new Error(`${file} ${mode} failed: ${error.message}\n${stdout}\n${stderr}`));
          return;
        }
        try {
          resolve({ result: JSON.parse(stdout) as Record<string, unknown>, stderr });
        } catch {
          reject(new Error(`${file} ${mode} printed no JSON line:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

const working = { sum: 5, doubled: 42, spawned: 2, offloaded: 'OK', synced: 42, got: [1, 2, 3] };

describe('an app bundled with esbuild', () => {
  let root = '';
  /** The app's project: its sources and node_modules/loopthread. */
  let project = '';
  /** Where the fully bundled app is shipped: no node_modules on its way up. */
  let ship = '';

  before(async () => {
    // Without worker threads, esbuild's buildSync runs its process to the end (execFileSync); with
    // them, and with build(), it leaves a service process running after the test.
    process.env.ESBUILD_WORKER_THREADS = '0';
    const { buildSync } = await import('esbuild');
    root = mkdtempSync(join(tmpdir(), 'loopthread-bundle-'));
    project = join(root, 'project');
    ship = join(root, 'ship');
    mkdirSync(join(project, 'node_modules'), { recursive: true });
    symlinkSync(repoRoot, join(project, 'node_modules', 'loopthread'), 'junction');
    copyFileSync(join(fixtures, 'bundle-app.cjs'), join(project, 'app.js'));
    copyFileSync(join(fixtures, 'bundle-sync-worker.cjs'), join(project, 'sync-worker.js'));
    copyFileSync(join(fixtures, 'bundle-app.mjs'), join(project, 'esm-app.mjs'));
    const entryPoints = [join(project, 'app.js'), join(project, 'sync-worker.js')];
    const common = { entryPoints, bundle: true, platform: 'node', format: 'cjs', logLevel: 'error' } as const;
    buildSync({ ...common, outdir: join(project, 'out'), external: ['loopthread'] });
    buildSync({ ...common, outdir: ship });
    buildSync({
      ...common,
      entryPoints: [join(project, 'esm-app.mjs')],
      format: 'esm',
      outExtension: { '.js': '.mjs' },
      outdir: ship,
      // The README's banner: the CommonJS code inside an ES module bundle needs a require.
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    });
  });

  after(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('with loopthread external, works as installed (the recommended way)', async () => {
    const { result } = await run(join(project, 'out', 'app.js'), 'work');
    assert.deepEqual(result, working);
  });

  it('bundled whole without the worker files, every part throws at once, naming the missing file', async () => {
    const { result } = await run(join(ship, 'app.js'), 'missing');
    const main = join(ship, 'loop-thread-main.bundle.js');
    const poolMain = join(ship, 'executor', 'worker-main.bundle.js');
    const expected = {
      LoopThread: main,
      ThreadPoolExecutor: poolMain,
      spawnThread: poolMain,
      toThread: poolMain,
      createSyncFn: main,
    };
    for (const [part, file] of Object.entries(expected)) {
      const error = result[part] as { name: string; code: string; message: string };
      assert.equal(error.name, 'WorkerEntryNotFoundError', `${part}: ${JSON.stringify(error)}`);
      assert.equal(error.code, 'ERR_LOOPTHREAD_WORKER_ENTRY_NOT_FOUND');
      assert.ok(error.message.includes(`its file ${file} does not exist`), error.message);
      assert.match(error.message, /external.*LOOPTHREAD_WORKER_DIR/s);
      assert.doesNotMatch(error.message, /stopped unexpectedly/);
    }
  });

  it('a LOOPTHREAD_WORKER_DIR without the files is named in the error', async () => {
    const nowhere = join(ship, 'nowhere');
    const { result } = await run(join(ship, 'app.js'), 'missing', { LOOPTHREAD_WORKER_DIR: nowhere });
    const error = result.LoopThread as { message: string };
    assert.ok(
      error.message.includes(`its file ${join(nowhere, 'loop-thread-main.bundle.js')} does not exist`),
      error.message,
    );
    assert.match(error.message, /in LOOPTHREAD_WORKER_DIR, which must name a copy of loopthread's dist\/src folder/);
  });

  describe('bundled whole, with a copy of dist/src as its worker folder', () => {
    before(() => {
      // The README's recipe: copy node_modules/loopthread/dist/src next to the bundle.
      cpSync(join(project, 'node_modules', 'loopthread', 'dist', 'src'), join(ship, 'loopthread'), {
        recursive: true,
      });
    });

    it('named by LOOPTHREAD_WORKER_DIR: runSync, the pool, spawnThread, toThread, synckit and a Channel work', async () => {
      const { result } = await run(join(ship, 'app.js'), 'work', { LOOPTHREAD_WORKER_DIR: join(ship, 'loopthread') });
      assert.deepEqual(result, working);
    });

    it('named by the option workerDir: LoopThread and the pool work', async () => {
      const { result } = await run(join(ship, 'app.js'), 'option');
      assert.deepEqual(result, { sum: 5, doubled: 42 });
    });

    it('as an ES module bundle, named by the option workerDir as a URL: LoopThread and the pool work', async () => {
      const { result } = await run(join(ship, 'esm-app.mjs'), 'option');
      assert.deepEqual(result, { sum: 5, doubled: 42 });
    });
  });
});
