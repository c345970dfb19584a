/**
 * TypeScript modules (issue 14): importSync/import, the pool and spawnThread load .ts/.mts/.cts
 * files natively where Node strips types, and through a `tsRunner` (tested with tsx) everywhere.
 * The pool and spawnThread take execArgv and env as LoopThread does.
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
});
