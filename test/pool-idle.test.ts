/**
 * How an idle pool worker waits for its next task: in its event loop while that has something to
 * run, parked in Atomics.wait once it runs dry (woken by notify). These tests race the main
 * thread's submits and messages against every step of a worker going idle.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ThreadPoolExecutor, WorkerCrashedError, type ExecutorOptions } from 'loopthread';
import { rejectionWithin, within as withinMs } from './helpers.js';

type Tasks = typeof import('./fixtures/executor-tasks.mjs');

const SETTLE_LIMIT_MS = 20_000;
const tasksURL = new URL('./fixtures/executor-tasks.mjs', pathToFileURL(__filename));
const within = <T>(promise: PromiseLike<T>, what: string): Promise<T> => withinMs(promise, what, SETTLE_LIMIT_MS);

function startPool(t: TestContext, options: ExecutorOptions = {}): ThreadPoolExecutor {
  const pool = new ThreadPoolExecutor({ name: t.name, ...options });
  t.after(async () => {
    await within(pool.terminate(), `terminate() of "${pool.name}"`);
    assert.equal(pool.threads.length, 0);
  });
  return pool;
}

/** Lets the main thread do something else for a while that differs from one round to the next. */
async function pause(round: number): Promise<void> {
  switch (round % 4) {
    case 0:
      return;
    case 1:
      await new Promise((resolve) => setImmediate(resolve));
      return;
    case 2: {
      const end = performance.now() + (round % 50) / 1000;
      while (performance.now() < end);
      return;
    }
    default:
      // Long enough, now and then, for the worker to have parked.
      if (round % 64 === 3) await new Promise((resolve) => setTimeout(resolve, 1));
      else await Promise.resolve();
  }
}

describe('an idle pool worker', () => {
  it('never misses a task submitted while it goes idle, turns its loop or is parked', async (t) => {
    const pool = startPool(t, { maxWorkers: 1, minWorkers: 1 });
    const tasks = pool.import<Tasks>(tasksURL);
    for (let round = 0; round < 3_000; round++) {
      await pause(round);
      const n = round % 3 === 0 ? 2 : 1;
      const results = await within(
        Promise.all(Array.from({ length: n }, (_, i) => tasks.add(round, i))),
        `the tasks of round ${round}`,
      );
      assert.deepEqual(
        results,
        Array.from({ length: n }, (_, i) => round + i),
      );
    }
    assert.equal(pool.threads.length, 1);
  });

  it('leaves when its pool closes as it answers (a message that came while it was busy is read)', async () => {
    for (let round = 0; round < 40; round++) {
      const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
      const tasks = pool.import<Tasks>(tasksURL);
      assert.equal(await within(tasks.add(round, 0), 'the first task'), round);
      await pause(round);
      // Closing asks the worker to leave as soon as this answer is in: while it may still be busy.
      const last = tasks.add(round, 1);
      const closing = round % 2 === 0 ? pool.close() : pool.shutdown();
      assert.equal(await within(last, 'the last task'), round + 1);
      await within(closing, `closing the pool (round ${round})`);
      assert.equal(pool.threads.length, 0);
    }
  });

  it('leaves after idleTimeout while parked', async (t) => {
    const pool = startPool(t, { maxWorkers: 1, idleTimeout: 20 });
    const tasks = pool.import<Tasks>(tasksURL);
    assert.equal(await within(tasks.add(1, 1), 'the task'), 2);
    const [thread] = pool.threads;
    assert.ok(thread !== undefined);
    await within(new Promise((resolve) => thread.once('exit', resolve)), 'the idle worker leaving');
    assert.equal(await within(tasks.add(2, 2), 'a task after it left'), 4);
  });

  it("serves on with a 'beforeExit' listener of the user's in its thread, which still runs", async (t) => {
    const pool = startPool(t, { maxWorkers: 1 });
    const sab = new SharedArrayBuffer(4);
    await within(
      pool.submit((shared: SharedArrayBuffer) => {
        process.on('beforeExit', () => Atomics.add(new Int32Array(shared), 0, 1));
      }, sab),
      'the task that listens',
    );
    const tasks = pool.import<Tasks>(tasksURL);
    for (let round = 0; round < 200; round++) {
      await pause(round);
      assert.equal(await within(tasks.add(round, 1), `task ${round}`), round + 1);
    }
    // The worker's loop ran dry between tasks, and the listener was told each time.
    assert.ok(Atomics.load(new Int32Array(sab), 0) > 0);
  });

  it('that crashes fails the task it ran, and the tasks behind it run on a new worker', async (t) => {
    const pool = startPool(t, { maxWorkers: 1 });
    const tasks = pool.import<Tasks>(tasksURL);
    for (let round = 0; round < 5; round++) {
      assert.equal(await within(tasks.add(round, 0), 'a task before the crash'), round);
      await pause(round * 17 + 3);
      const crash = tasks.exit(3);
      const behind = [tasks.add(round, 1), tasks.add(round, 2)];
      assert.ok((await rejectionWithin(crash, 'the crashing task', SETTLE_LIMIT_MS)) instanceof WorkerCrashedError);
      assert.deepEqual(await within(Promise.all(behind), 'the tasks behind it'), [round + 1, round + 2]);
    }
  });
});
