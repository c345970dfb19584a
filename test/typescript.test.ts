/**
 * TypeScript modules (issue 14): importSync/import, the pool and spawnThread load .ts/.mts/.cts
 * files natively where Node strips types, and through a `tsRunner` (tested with tsx) everywhere.
 * The pool and spawnThread take execArgv and env as LoopThread does, and a workerData of the user's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import { LoopThread, ThreadPoolExecutor, spawnThread, type ExecutorOptions, type LoopThreadOptions } from 'loopthread';
import { thrown, within } from './helpers.js';

// The fixtures' types (the fixtures are not compiled: they are loaded as TypeScript).
interface Math {
  add(pair: { a: number; b: number }): Promise<number>;
  square(x: number): number;
}
interface Mts {
  triple(x: number): number;
}
interface Cts {
  half(x: number): number;
}

const LIMIT_MS = 60_000;
const dir = join(__dirname, '..', '..', 'test', 'ts');
const workerDataURL = new URL('./fixtures/worker-data.mjs', pathToFileURL(__filename));
const preload = join(__dirname, '..', '..', 'test', 'fixtures', 'worker-data-preload.cjs');
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/** Node strips types by default from 22.18. */
const nativeTypes = major > 22 || (major === 22 && minor >= 18);

function startLoop(t: TestContext, options: LoopThreadOptions = {}): LoopThread {
  const loop = new LoopThread({ name: t.name, ...options });
  t.after(() => loop.terminate());
  return loop;
}

function startPool(t: TestContext, options: ExecutorOptions = {}): ThreadPoolExecutor {
  const pool = new ThreadPoolExecutor({ name: t.name, maxWorkers: 1, ...options });
  t.after(async () => {
    void pool.shutdown({ wait: false, cancelFutures: true });
    await Promise.all(pool.threads.map((w) => w.terminate()));
    await within(pool.shutdown(), 'the pool shutting down', LIMIT_MS);
  });
  return pool;
}

describe('TypeScript modules', () => {
  it('importSync loads .ts, .mts and .cts with tsRunner "tsx"', (t) => {
    const loop = startLoop(t, { tsRunner: 'tsx' });
    assert.equal(loop.importSync<Math>(join(dir, 'math.ts')).add({ a: 2, b: 3 }), 5);
    assert.equal(loop.importSync<Mts>(join(dir, 'math.mts')).triple(4), 12);
    assert.equal(loop.importSync<Cts>(pathToFileURL(join(dir, 'math.cts'))).half(9), 4.5);
  });

  it('import() loads a .ts module with tsRunner "tsx"', async (t) => {
    const loop = startLoop(t, { tsRunner: 'tsx' });
    const math = await loop.import<Math>(join(dir, 'math.ts'));
    assert.equal(await math.square(7), 49);
  });

  it('a LoopThread whose execArgv has --import tsx loads .ts', (t) => {
    const loop = startLoop(t, { execArgv: ['--import', 'tsx'] });
    assert.equal(loop.importSync<Math>(join(dir, 'math.ts')).square(3), 9);
  });

  it('the pool and spawnThread load .ts with tsRunner "tsx"', async (t) => {
    const pool = startPool(t, { tsRunner: 'tsx' });
    const math = pool.import<Math>(join(dir, 'math.ts'));
    assert.equal(await within(math.add({ a: 20, b: 22 }), 'a pool task', LIMIT_MS), 42);
    const job = spawnThread.with({ tsRunner: 'tsx' })(math.square, 6);
    t.after(() => job.terminate());
    assert.equal(await within(job.future, 'a spawned job', LIMIT_MS), 36);
  });

  it('without a runner, .ts loads where Node strips types, and is explained where it does not', (t) => {
    const loop = startLoop(t);
    const load = () => loop.importSync<Math>(join(dir, 'math.ts')).square(5);
    if (nativeTypes) {
      assert.equal(load(), 25);
      return;
    }
    const error = thrown(load) as Error & { code?: string };
    assert.equal(error.code, 'ERR_UNKNOWN_FILE_EXTENSION');
    assert.match(error.message, /does not strip types/);
    assert.match(error.message, /tsRunner: 'tsx'/);
    assert.match(error.message, /math\.ts/);
  });

  it('an unknown tsRunner, or one whose package is missing, is a TypeError at construction', () => {
    assert.throws(() => new LoopThread({ tsRunner: 'nope' as 'tsx' }), {
      name: 'TypeError',
      message: /unknown tsRunner "nope"/,
    });
    assert.throws(() => new ThreadPoolExecutor({ tsRunner: 'esbuild-runner' }), {
      name: 'TypeError',
      message: /needs the package esbuild-runner/,
    });
  });
});

describe('pool and spawnThread thread options', () => {
  it('the pool passes execArgv and env to its workers', async (t) => {
    const pool = startPool(t, { execArgv: ['--no-warnings'], env: { LOOPTHREAD_TEST_VALUE: 'pool' } });
    const seen = await within(
      pool.submit(() => [process.execArgv, process.env.LOOPTHREAD_TEST_VALUE]),
      'a pool task',
      LIMIT_MS,
    );
    assert.deepEqual(seen, [['--no-warnings'], 'pool']);
  });

  it('spawnThread.with passes execArgv and env to its thread', async (t) => {
    const job = spawnThread.with({ execArgv: ['--no-warnings'], env: { LOOPTHREAD_TEST_VALUE: 'spawned' } })(() => [
      process.execArgv,
      process.env.LOOPTHREAD_TEST_VALUE,
    ]);
    t.after(() => job.terminate());
    assert.deepEqual(await within(job.future, 'a spawned job', LIMIT_MS), [['--no-warnings'], 'spawned']);
  });

  it("the pool's workerData is what its tasks and preloads find as worker_threads.workerData", async (t) => {
    const data = { scale: 2, list: [1, 'two'], when: new Date(0), counter: new SharedArrayBuffer(4) };
    const pool = startPool(t, { maxWorkers: 2, workerData: data, execArgv: ['--require', preload] });
    const tasks = pool.import<{ seen(): unknown; count(n: number): number }>(workerDataURL);
    const seen = await within(tasks.seen(), 'a pool task', LIMIT_MS);
    assert.deepEqual(seen, data);
    const preloaded = await within(
      pool.submit(() => (globalThis as { preloadSawWorkerData?: unknown }).preloadSawWorkerData),
      'a pool task',
      LIMIT_MS,
    );
    assert.deepEqual(preloaded, data);
    // A copy per worker, its SharedArrayBuffer shared: every task adds to the same word.
    const counts = await within(Promise.all([1, 2, 3, 4].map((n) => tasks.count(n))), 'four tasks', LIMIT_MS);
    assert.equal(Math.max(...counts), 10);
    assert.equal(Atomics.load(new Int32Array(data.counter), 0), 10);
  });

  it("without workerData, tasks find undefined (as in any worker), not the pool's own values", async (t) => {
    const pool = startPool(t);
    const tasks = pool.import<{ seen(): unknown }>(workerDataURL);
    assert.equal(await within(tasks.seen(), 'a pool task', LIMIT_MS), undefined);
  });

  it('spawnThread.with passes workerData to its thread', async (t) => {
    const job = spawnThread.with({ workerData: { job: 'spawned' }, execArgv: ['--require', preload] })(
      () => (globalThis as { preloadSawWorkerData?: unknown }).preloadSawWorkerData,
    );
    t.after(() => job.terminate());
    assert.deepEqual(await within(job.future, 'a spawned job', LIMIT_MS), { job: 'spawned' });
  });
});
