import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runInNewContext } from 'node:vm';
import { DeadlockError, LoopThread, Portal, type LoopThreadHandle, type PortalHandle } from 'loopthread';
import { lineSentOn } from './helpers.js';

const entry = require.resolve('loopthread');

/** Runs `source` in a new worker with `handle` and the library's path as workerData; resolves with its first message. */
async function inWorker(
  source: string,
  handle: LoopThreadHandle | PortalHandle,
  extra: Record<string, unknown> = {},
): Promise<unknown> {
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const { LoopThread, Portal } = require(workerData.entry);
     (async () => { ${source} })().then((v) => parentPort.postMessage({ ok: true, v }), (e) => parentPort.postMessage({ ok: false, name: e.name, message: e.message }));`,
    { eval: true, workerData: { handle, entry, ...extra }, transferList: [handle.port] },
  );
  try {
    const [message] = (await once(worker, 'message')) as [unknown];
    return message;
  } finally {
    await worker.terminate();
  }
}

describe('handles', () => {
  const loop = new LoopThread({ name: 'handles' });
  after(() => {
    loop.closeSync();
  });

  test('a blocking call from the loop thread into its own LoopThread throws DeadlockError at once', async () => {
    const result = await loop.run(
      async (handle: LoopThreadHandle, path: string) => {
        const { LoopThread: Loop } = (await import(path)) as typeof import('loopthread');
        const self = Loop.connect(handle);
        try {
          self.runSync(async () => 1);
          return 'returned';
        } catch (error) {
          return (error as Error).name;
        } finally {
          self.closeSync();
        }
      },
      loop.createHandle(),
      entry,
    );
    assert.equal(result, 'DeadlockError');
    assert.equal(new DeadlockError('x').name, 'DeadlockError');
  });

  test('another thread calls the loop through a handle, blocking and not', async () => {
    const message = await inWorker(
      `const loop = LoopThread.connect(workerData.handle);
       const a = loop.runSync(async (x) => x * 2, 21);
       const b = await loop.run(async (x) => x + 1, 1);
       return [a, b];`,
      loop.createHandle(),
    );
    assert.deepEqual(message, { ok: true, v: [42, 2] });
  });

  test('a handle cannot be sent through a blocking call (its port must be posted)', () => {
    const handle = loop.createHandle();
    assert.throws(
      () => loop.runSync(async (h: unknown) => typeof h, handle),
      (error: Error) => error.name === 'DataCloneError' && /argument 1 at \.port .*must be posted/.test(error.message),
    );
    handle.port.close();
  });

  test('a closed connection refuses calls with ClosedError', async () => {
    const message = await inWorker(
      `const loop = LoopThread.connect(workerData.handle);
       loop.close();
       loop.runSync(async () => 1);`,
      loop.createHandle(),
    );
    assert.deepEqual(message, {
      ok: false,
      name: 'ClosedError',
      message: 'this connection to LoopThread "handles" is closed',
    });
  });

  test('connect refuses what is not a handle', () => {
    assert.throws(() => LoopThread.connect({} as LoopThreadHandle), TypeError);
  });
});

/**
 * A LoopThread with a worker blocked in a call through a handle of it, running on the loop thread
 * once this resolves; `outcome` is what the worker's call ended with.
 */
async function blockedThroughHandle(name: string): Promise<{ loop: LoopThread; outcome: Promise<unknown> }> {
  const loop = new LoopThread({ name });
  await loop.run(async () => {
    const g = globalThis as { started?: Promise<void>; markStarted?: () => void };
    g.started = new Promise((resolve) => (g.markStarted = resolve));
  });
  const outcome = inWorker(
    `const loop = LoopThread.connect(workerData.handle);
     loop.runSync(async () => {
       globalThis.markStarted();
       return new Promise((resolve) => setTimeout(resolve, 60_000));
     });`,
    loop.createHandle(),
  );
  // Until the worker's blocking call runs on the loop thread.
  await loop.run(async () => (globalThis as { started?: Promise<void> }).started);
  return { loop, outcome };
}

test('a thread blocked through a handle wakes with a typed error when the loop closes', async () => {
  const { loop, outcome } = await blockedThroughHandle('closing');
  await loop.close({ grace: 100 });
  const message = (await outcome) as { ok: boolean; name: string };
  assert.deepEqual([message.ok, message.name], [false, 'ClosedError']);
});

test("a Portal does not keep the shared memory of its handles' connections once they have ended", async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const portal = Portal.open({ hello: (who: string) => `hello ${who}` });
  try {
    // Made and ended in a function of its own, so that nothing of this frame holds the handle.
    const ended = async (): Promise<WeakRef<SharedArrayBuffer>> => {
      const handle = portal.createHandle();
      const lineOf = lineSentOn(handle.port);
      const connection = Portal.connect(handle);
      assert.equal(await connection.hello('a'), 'hello a');
      connection.closeSync();
      return new WeakRef(lineOf());
    };
    const lines = [await ended(), await ended(), await ended()];
    // The host hears of each end on a later turn of this loop; a full collection then takes the
    // line. Looked at again after each turn (a condition, not a delay); the bound only ends a failure.
    for (let turn = 0; turn < 1000 && lines.some((l) => l.deref() !== undefined); turn++) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    }
    assert.deepEqual(
      lines.map((l) => l.deref() === undefined),
      [true, true, true],
      'an ended connection still holds its half megabyte of shared memory',
    );
  } finally {
    await portal.close();
  }
});

// A handle's line is made by the thread that connects: one never connected costs the loop thread one port.
test('a LoopThread serves a handle only once connected, and forgets it once its connection ended or its thread is gone', async () => {
  const loop = new LoopThread({ name: 'many handles' });
  try {
    // Awaited calls go by the port the handles' requests took, after them.
    const main = pathToFileURL(join(dirname(entry), 'loop-thread-main.js'));
    const { servedConnections } = await loop.import<{ servedConnections(): number }>(main);
    /** Looked at again after each answer (a condition, not a delay); the bound only ends a failure. */
    const servedBecomes = async (count: number): Promise<void> => {
      let served = await servedConnections();
      for (let turn = 0; turn < 1000 && served !== count; turn++) served = await servedConnections();
      assert.equal(served, count);
    };
    const unused = Array.from({ length: 8 }, () => loop.createHandle());
    assert.equal(await servedConnections(), 1, 'the loop thread serves handles never connected');

    const here = loop.createHandle();
    const connection = LoopThread.connect(here);
    assert.equal(await connection.run((a: number) => a + 1, 1), 2);
    assert.equal(await servedConnections(), 2);
    connection.closeSync();
    await servedBecomes(1);

    // The worker connects, calls, and is terminated without closing its connection.
    const message = await inWorker(
      `return LoopThread.connect(workerData.handle).runSync(() => 3);`,
      loop.createHandle(),
    );
    assert.deepEqual(message, { ok: true, v: 3 });
    await servedBecomes(1);
    for (const handle of unused) handle.port.close();
  } finally {
    await loop.close();
  }
});

test('a handle connected twice is refused, and its first connection goes on', () => {
  const loop = new LoopThread({ name: 'twice' });
  try {
    const handle = loop.createHandle();
    using first = LoopThread.connect(handle);
    assert.throws(() => LoopThread.connect(handle), { name: 'TypeError', message: /already connected/ });
    assert.equal(
      first.runSync(() => 1),
      1,
    );
  } finally {
    loop.closeSync();
  }
});

/** A worker given `handle` that connects once `go` is set, then calls blocking and awaited; it writes 1 to `go[1]` when done. */
const connectOnGo = (connect: string): string => `
  Atomics.wait(workerData.go, 0, 0);
  const c = ${connect}(workerData.handle);
  const call = c.runSync ? () => c.runSync(() => 1) : () => c.helloSync('x');
  let blocking = 'returned';
  try { call(); } catch (e) { blocking = e.name; }
  Atomics.store(workerData.go, 1, 1);
  Atomics.notify(workerData.go, 1);
  const awaited = await (c.run ? c.run(() => 1) : c.hello('x')).then(() => 'returned', (e) => e.name);
  return [blocking, awaited];`;

describe('connect racing the end of what it connects to', () => {
  const go = (): Int32Array => new Int32Array(new SharedArrayBuffer(8));
  const start = (words: Int32Array): void => {
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
  };

  for (const [how, end, error] of [
    ['close()', (loop: LoopThread) => loop.close(), 'ClosedError'],
    ['terminate()', (loop: LoopThread) => loop.terminate(), 'ClosedError'],
    [
      'a crash',
      (loop: LoopThread) => loop.run(() => process.exit(3)).then(undefined, () => loop.closed),
      'WorkerCrashedError',
    ],
  ] as const) {
    test(`a LoopThread ended by ${how}, then a handle sent before is connected`, async () => {
      const loop = new LoopThread({ name: 'ends first' });
      const words = go();
      const running = inWorker(connectOnGo('LoopThread.connect'), loop.createHandle(), { go: words });
      await end(loop);
      start(words);
      assert.deepEqual(await running, { ok: true, v: [error, error] });
    });
  }

  test('a LoopThread closed by closeSync() while its owner stays blocked, then connected', async () => {
    const loop = new LoopThread({ name: 'closed in sync' });
    const words = go();
    const running = inWorker(connectOnGo('LoopThread.connect'), loop.createHandle(), { go: words });
    loop.closeSync();
    start(words);
    // This thread does not turn its loop meanwhile (no exit event): the blocking call must end anyway.
    // (The bound only ends a failure.)
    Atomics.wait(words, 1, 0, 30_000);
    assert.equal(Atomics.load(words, 1), 1, 'the blocking call was still waiting');
    assert.deepEqual(await running, { ok: true, v: ['ClosedError', 'ClosedError'] });
  });

  test('a LoopThread connected and called, then closed', async () => {
    const loop = new LoopThread({ name: 'connected first' });
    const words = go();
    const handle = loop.createHandle();
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { LoopThread } = require(workerData.entry);
       const c = LoopThread.connect(workerData.handle);
       parentPort.postMessage(c.runSync(() => 'served'));
       Atomics.wait(workerData.go, 0, 0);
       let blocking = 'returned';
       try { c.runSync(() => 1); } catch (e) { blocking = e.name; }
       c.run(() => 1).then(() => 'returned', (e) => e.name).then((awaited) => parentPort.postMessage([blocking, awaited]));`,
      { eval: true, workerData: { handle, entry, go: words }, transferList: [handle.port] },
    );
    try {
      assert.deepEqual(await once(worker, 'message'), ['served']);
      await loop.close();
      start(words);
      assert.deepEqual(await once(worker, 'message'), [['ClosedError', 'ClosedError']]);
    } finally {
      await worker.terminate();
    }
  });

  test('a Portal closed, then a handle sent before is connected', async () => {
    const portal = Portal.open({ hello: (who: string) => `hello ${who}` });
    const words = go();
    const running = inWorker(connectOnGo('Portal.connect'), portal.createHandle(), { go: words });
    await portal.close();
    start(words);
    assert.deepEqual(await running, { ok: true, v: ['ClosedError', 'ClosedError'] });
  });

  test('a Portal connected, then closed before it serves the connection', async () => {
    const portal = Portal.open({ hello: (who: string) => `hello ${who}` });
    const handle = portal.createHandle();
    const connection = Portal.connect(handle);
    // Its line is on the way to this thread's loop: the portal closes first.
    const closing = portal.close();
    const outcome = await connection.hello('x').then(
      () => 'returned',
      (error: unknown) => (error as Error).name,
    );
    await closing;
    assert.equal(outcome, 'ClosedError');
  });
});

// The loop thread, terminated, writes nothing on the connections' lines: the owner's word tells them.
test('a thread blocked through a handle wakes with ClosedError when the loop is terminated', async () => {
  const { loop, outcome } = await blockedThroughHandle('terminated');
  await loop.terminate();
  const message = (await outcome) as { ok: boolean; name: string };
  assert.deepEqual([message.ok, message.name], [false, 'ClosedError']);
});
