/**
 * The one lifecycle (issue 12): close({ grace, signal }) returning a Promise, closed and isClosed,
 * on each part, and what grace and signal mean for each.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test, type TestContext } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import {
  CancelledError,
  Channel,
  ClosedError,
  DeadlockError,
  LoopThread,
  Portal,
  ThreadPoolExecutor,
  spawnThread,
  type LoopThreadHandle,
} from 'loopthread';

/** Resolves once word 0 of `words` is no longer `from` (awaited, no polling). */
async function changed(words: Int32Array, from: number): Promise<void> {
  while (Atomics.load(words, 0) === from) {
    const w = Atomics.waitAsync(words, 0, from);
    if (w.async) await w.value;
  }
}

/** Whether `promise` is still pending after a few turns of the event loop (nothing here can settle it meanwhile). */
async function pending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await turn();
  return !settled;
}

/** A process that keeps a core busy for the test (killed after it). */
async function busyLoop(t: TestContext): Promise<void> {
  const child = spawn(process.execPath, ['-e', 'process.stdout.write("x"); for (;;) {}'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  t.after(() => {
    child.kill('SIGKILL');
  });
  await once(child.stdout, 'data');
}

/**
 * Registers, on the loop thread, an exit hook that works for `ms` before it sets word 0 of
 * `words`: a thread that is terminated runs no exit hook, so the word tells a thread that left
 * by itself, however long its exit took.
 */
async function slowExitHook(loop: LoopThread, words: Int32Array, ms: number): Promise<void> {
  await loop.run(
    (sab: SharedArrayBuffer, work: number) => {
      process.on('exit', () => {
        const end = Date.now() + work;
        while (Date.now() < end);
        Atomics.store(new Int32Array(sab), 0, 1);
      });
    },
    words.buffer as SharedArrayBuffer,
    ms,
  );
}

describe('LoopThread', () => {
  test("aborting close()'s signal ends even a long grace period (given here by its 0.1 name, timeout): a call that ignores its signal is cut short", async () => {
    const loop = new LoopThread({ name: 'close signal' });
    const words = new Int32Array(new SharedArrayBuffer(4));
    const stuck = loop.run(async (sab: SharedArrayBuffer) => {
      const w = new Int32Array(sab);
      Atomics.store(w, 0, 1);
      Atomics.notify(w, 0);
      await new Promise(() => setInterval(() => undefined, 1_000)); // ignores its signal
    }, words.buffer);
    await changed(words, 0);
    const controller = new AbortController();
    const closing = loop.close({ timeout: 600_000, signal: controller.signal });
    assert.equal(loop.isClosed, true);
    assert.equal(await pending(closing), true, 'the grace period holds until the signal aborts');
    controller.abort();
    await closing;
    await assert.rejects(stuck, ClosedError);
    assert.equal(loop.exitError, undefined);
  });

  test('a connection closed with a grace period lets its pending calls finish first; closed then resolves', async () => {
    await using loop = new LoopThread({ name: 'connection grace' });
    const conn = LoopThread.connect(loop.createHandle());
    const words = new Int32Array(new SharedArrayBuffer(4));
    const call = conn.run(async (sab: SharedArrayBuffer) => {
      const w = new Int32Array(sab);
      const r = Atomics.waitAsync(w, 0, 0);
      if (r.async) await r.value;
      return 'finished';
    }, words.buffer);
    const closing = conn.close({ grace: 600_000 });
    assert.equal(await pending(closing), true, 'close waits for the pending call');
    assert.equal(conn.isClosed, false);
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    assert.equal(await call, 'finished');
    await closing;
    assert.equal(conn.isClosed, true);
    await conn.closed;
    assert.throws(() => conn.runSync(async () => 1), ClosedError);
    assert.equal(
      loop.runSync(async () => 2),
      2,
      'closing a connection leaves the LoopThread open',
    );
  });
  for (const how of ['closeSync', 'close'] as const) {
    test(`${how}() lets the thread leave by itself after its answer, however long its exit takes (its exit is a fact awaited, not a time)`, async () => {
      const loop = new LoopThread({ name: `slow exit ${how}` });
      const words = new Int32Array(new SharedArrayBuffer(4));
      await slowExitHook(loop, words, 500);
      if (how === 'closeSync') loop.closeSync();
      else await loop.close();
      await loop.closed;
      assert.equal(Atomics.load(words, 0), 1, 'the thread was terminated during its exit');
      assert.equal(loop.exitError, undefined);
    });
  }

  test('a close racing with calls from the owner and from another thread, under load: each call gets its value or ClosedError, the thread leaves by itself', async (t) => {
    await busyLoop(t);
    const loop = new LoopThread({ name: 'close race' });
    const words = new Int32Array(new SharedArrayBuffer(4));
    await slowExitHook(loop, words, 0);
    const handle: LoopThreadHandle = loop.createHandle();
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { LoopThread } = require(workerData.entry);
       const conn = LoopThread.connect(workerData.handle);
       const seen = { values: 0, errors: [] };
       for (let i = 0; ; i++) {
         try {
           if (conn.runSync((x) => x * 2, i) !== i * 2) throw new Error('wrong value');
           seen.values++;
           if (seen.values === 20) parentPort.postMessage('calling');
         } catch (error) {
           seen.errors.push(error.name);
           break;
         }
       }
       parentPort.postMessage(seen);`,
      { eval: true, workerData: { handle, entry: require.resolve('loopthread') }, transferList: [handle.port] },
    );
    t.after(() => worker.terminate());
    const messages = once(worker, 'message');
    assert.equal((await messages)[0], 'calling');
    const result = once(worker, 'message');
    const calls = Array.from({ length: 50 }, (_, i) => loop.run((x: number) => x + 1, i));
    loop.closeSync();
    const outcomes = await Promise.allSettled(calls);
    outcomes.forEach((o, i) => {
      if (o.status === 'fulfilled') assert.equal(o.value, i + 1);
      else assert.ok(o.reason instanceof ClosedError, String(o.reason));
    });
    const [seen] = (await result) as [{ values: number; errors: string[] }];
    assert.deepEqual(seen.errors, ['ClosedError']);
    await loop.closed;
    assert.equal(Atomics.load(words, 0), 1, 'the thread was terminated');
    assert.equal(loop.exitError, undefined);
  });
  test('a close while a caller on another thread is blocked elsewhere, its late reply and callbacks never read: the close does not wait out its grace, and the thread leaves by itself', async (t) => {
    const loop = new LoopThread({ name: 'unread reply' });
    const words = new Int32Array(new SharedArrayBuffer(8));
    await slowExitHook(loop, words, 0);
    await loop.run((sab: SharedArrayBuffer) => {
      (globalThis as { gate?: Int32Array }).gate = new Int32Array(sab);
    }, words.buffer);
    const handle: LoopThreadHandle = loop.createHandle();
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { LoopThread } = require(workerData.entry);
       const conn = LoopThread.connect(workerData.handle);
       const words = new Int32Array(workerData.words);
       try {
         // Answered (three callbacks, then the value) only once the caller has stopped waiting.
         conn.with({ timeout: 1 }).runSync(async (cb) => {
           const w = globalThis.gate;
           while (Atomics.load(w, 1) === 0) await Atomics.waitAsync(w, 1, 0).value;
           // The caller has stopped waiting: these callbacks are never answered, or fail with
           // CancelledError once its cancel arrives; a failure must not be an unhandled
           // rejection, which would end the thread.
           for (const p of [cb(1), cb(2), cb(3)]) p.catch(() => undefined);
           return 1;
         }, (x) => x);
       } catch (error) {
         parentPort.postMessage(error.name);
       }
       Atomics.wait(words, 1, 1); // blocked elsewhere for good
      `,
      {
        eval: true,
        workerData: { handle, entry: require.resolve('loopthread'), words: words.buffer },
        transferList: [handle.port],
      },
    );
    t.after(() => worker.terminate());
    assert.equal((await once(worker, 'message'))[0], 'TimeoutError');
    // Now the call answers, into a mailbox nobody reads.
    Atomics.store(words, 1, 1);
    Atomics.notify(words, 1);
    // What waits for that caller's mailbox belongs to a call it gave up: the host drops it when
    // the cancel comes, instead of holding the close for its whole grace.
    const grace = 30_000;
    const start = performance.now();
    loop.closeSync({ grace });
    assert.ok(performance.now() - start < grace, 'the close waited out its grace');
    await loop.closed;
    assert.equal(Atomics.load(words, 0), 1, 'the thread was terminated');
  });
});

describe('Portal', () => {
  test('closed resolves once the portal is closed, and so does that of each connection', async () => {
    const portal = Portal.open({ ping: async () => 'pong' });
    const conn = Portal.connect(portal.createHandle());
    const quick = conn.with({ timeout: 5_000 });
    assert.equal(await quick.ping(), 'pong');
    assert.equal(await pending(portal.closed), true);
    assert.equal(portal.isClosed, false);
    await portal.close();
    assert.equal(portal.isClosed, true);
    await portal.closed;
    // A connection's closed does not hold the event loop: the port's 'close' event tells it.
    const hold = setInterval(() => undefined, 1_000);
    await conn.closed;
    await quick.closed;
    clearInterval(hold);
    assert.equal(conn.isClosed, true);
    await assert.rejects(conn.ping(), ClosedError);
  });

  test('an api function whose name a connection keeps for itself is refused when the portal opens', () => {
    assert.throws(() => Portal.open({ close: () => 1 }), /"close" would hide the connection's own close/);
    assert.throws(() => Portal.open({ with: () => 1 }), TypeError);
  });
});

describe('ThreadPoolExecutor and spawnThread', () => {
  test('close({ grace: 0 }) cancels the queued and running tasks and terminates the workers', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1, name: 'close grace 0' });
    const words = new Int32Array(new SharedArrayBuffer(4));
    const running = pool.submit((sab: SharedArrayBuffer) => {
      const w = new Int32Array(sab);
      Atomics.store(w, 0, 1);
      Atomics.notify(w, 0);
      for (;;) {
        // ignores its signal
      }
    }, words.buffer);
    const queued = pool.submit(() => 'never');
    await changed(words, 0);
    await pool.close({ grace: 0 });
    assert.equal(running.cancelled(), true);
    assert.equal(queued.cancelled(), true);
    assert.equal(pool.threads.length, 0);
    await assert.rejects(
      pool.submit(() => 1),
      ClosedError,
    );
  });

  test('close() with no grace lets queued tasks run, as shutdown() does', async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1, name: 'close' });
    const futures = [1, 2, 3].map((x) => pool.submit((y: number) => y * 2, x));
    await pool.close();
    assert.deepEqual(await Promise.all(futures), [2, 4, 6]);
    await pool.closed;
  });

  test("a spawned thread's terminate() stops a job that ignores its signal; closed resolves", async () => {
    const words = new Int32Array(new SharedArrayBuffer(4));
    const job = spawnThread((sab: SharedArrayBuffer) => {
      const w = new Int32Array(sab);
      Atomics.store(w, 0, 1);
      Atomics.notify(w, 0);
      for (;;) {
        // ignores its signal
      }
    }, words.buffer);
    await changed(words, 0);
    assert.equal(job.isClosed, false);
    await job.terminate();
    assert.equal(job.isClosed, true);
    await job.closed;
    await assert.rejects(job.future, CancelledError);
  });
});

describe('Channel', () => {
  test('close({ grace }) resolves once getters have drained the channel', async () => {
    const ch = new Channel<number>();
    for (const x of [1, 2, 3]) await ch.put(x);
    const closing = ch.close({ grace: 600_000 });
    assert.equal(ch.isClosed, true);
    await assert.rejects(ch.put(4), ClosedError);
    assert.equal(await pending(closing), true, 'close waits for the items to be got');
    const got = [];
    for await (const x of ch) got.push(x);
    assert.deepEqual(got, [1, 2, 3]);
    await closing;
  });

  test("aborting close()'s signal drops what is left", async () => {
    const ch = new Channel<number>();
    for (const x of [1, 2, 3]) await ch.put(x);
    const controller = new AbortController();
    const closing = ch.close({ signal: controller.signal });
    assert.equal(await ch.get(), 1);
    assert.equal(await pending(closing), true);
    controller.abort();
    await closing;
    assert.equal(ch.size, 0);
    await assert.rejects(ch.get(), /dropped/);
  });

  test('close() without grace resolves at once and leaves the items to the getters', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    await ch.close();
    assert.equal(await ch.get(), 1);
  });

  test('closed resolves when another connection closes the channel', async () => {
    const ch = new Channel<number>();
    const other = Channel.connect<number>(ch.createHandle());
    const closed = ch.closed;
    assert.equal(await pending(closed), true);
    other.closeSync();
    await closed;
    assert.equal(ch.isClosed, true);
  });

  test('closeSync({ grace }) is a blocking wait: refused on the main thread unless allowed, then drops what is left', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    assert.throws(() => {
      ch.closeSync({ grace: 10 });
    }, DeadlockError);
    ch.closeSync({ grace: 10, allowBlockingMainThread: true });
    assert.equal(ch.size, 0);
  });
});
