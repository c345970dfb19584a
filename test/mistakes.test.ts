/**
 * Clearer mistakes (issue 14): an inline function that uses a variable of the scope it was written
 * in, and a module that cannot be found, are explained in terms of what the caller wrote.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { LoopThread, ThreadPoolExecutor } from 'loopthread';
import { rejectionWithin, thrown, within } from './helpers.js';

const LIMIT_MS = 60_000;

function startLoop(t: TestContext): LoopThread {
  const loop = new LoopThread({ name: t.name });
  t.after(() => loop.terminate());
  return loop;
}

function startPool(t: TestContext): ThreadPoolExecutor {
  const pool = new ThreadPoolExecutor({ name: t.name, maxWorkers: 1 });
  t.after(async () => {
    void pool.shutdown({ wait: false, cancelFutures: true });
    await Promise.all(pool.threads.map((w) => w.terminate()));
    await within(pool.shutdown(), 'the pool shutting down', LIMIT_MS);
  });
  return pool;
}

const base = 40;

/** The explanation of a captured variable, naming it. */
function assertCaptureExplained(error: unknown, name: string): void {
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'ReferenceError');
  assert.match(error.message, new RegExp(`^${name} is not defined: an inline function`));
  assert.match(error.message, new RegExp(`cannot capture "${name}"`));
  assert.match(error.message, /as an argument/);
}

describe('an inline function that captures a variable', () => {
  it('runSync says the inline function cannot capture it, naming it (sync and async functions)', (t) => {
    const loop = startLoop(t);
    assertCaptureExplained(
      thrown(() => loop.runSync(() => base + 2)),
      'base',
    );
    assertCaptureExplained(
      thrown(() =>
        loop.runSync(async () => {
          await Promise.resolve();
          return base + 2;
        }),
      ),
      'base',
    );
    // The same function with the value passed in works.
    assert.equal(
      loop.runSync((b: number) => b + 2, base),
      42,
    );
  });

  it('a pool task says the same', async (t) => {
    const pool = startPool(t);
    assertCaptureExplained(
      await rejectionWithin(
        pool.submit(() => base + 2),
        'the task',
        LIMIT_MS,
      ),
      'base',
    );
  });

  it('a ReferenceError raised deeper than the inline function itself is left as it is', (t) => {
    const loop = startLoop(t);
    const error = thrown(() =>
      loop.runSync(() => {
        // eslint-disable-next-line @typescript-eslint/no-implied-eval -- code that the inline function compiles in turn
        const inner = new Function('return notDefinedAnywhere') as () => unknown;
        return inner();
      }),
    ) as Error;
    assert.equal(error.message, 'notDefinedAnywhere is not defined');
  });
});

describe('a module that cannot be found', () => {
  it('importSync names the file, the working directory it was resolved against, and new URL()', (t) => {
    const loop = startLoop(t);
    const error = thrown(() => loop.importSync('./no-such-module.js')) as Error & { code?: string };
    assert.equal(error.code, 'ERR_MODULE_NOT_FOUND');
    assert.ok(error.message.includes(`${process.cwd()}/no-such-module.js`), error.message);
    assert.ok(error.message.includes(`working directory (${process.cwd()})`), error.message);
    assert.match(error.message, /new URL\('\.\/file\.js', import\.meta\.url\)/);
    assert.doesNotMatch(error.message, /loop-thread-main/);
  });

  it('a pool task of a missing module says the same', async (t) => {
    const pool = startPool(t);
    const mod = pool.import<{ f(): number }>('./no-such-module.js');
    const error = (await rejectionWithin(mod.f(), 'the task', LIMIT_MS)) as Error;
    assert.match(error.message, /working directory/);
    assert.doesNotMatch(error.message, /worker-main/);
  });
});
