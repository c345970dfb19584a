import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DeadlockError, LoopThread, Portal, type LoopThreadHandle } from 'loopthread';

const entry = require.resolve('loopthread');

/** Runs `source` in a new worker with `handle` and the library's path as workerData; resolves with its first message. */
async function inWorker(source: string, handle: LoopThreadHandle): Promise<unknown> {
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const { LoopThread } = require(workerData.entry);
     (async () => { ${source} })().then((v) => parentPort.postMessage({ ok: true, v }), (e) => parentPort.postMessage({ ok: false, name: e.name, message: e.message }));`,
    { eval: true, workerData: { handle, entry }, transferList: [handle.port] },
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
      (error: Error) => error.name === 'DataCloneError' && /argument 1 at \.line .*must be posted/.test(error.message),
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

test('a thread blocked through a handle wakes with a typed error when the loop closes', async () => {
  const loop = new LoopThread({ name: 'closing' });
  await loop.run(async () => {
    const g = globalThis as { started?: Promise<void>; markStarted?: () => void };
    g.started = new Promise((resolve) => (g.markStarted = resolve));
  });
  const running = inWorker(
    `const loop = LoopThread.connect(workerData.handle);
     loop.runSync(async () => {
       globalThis.markStarted();
       return new Promise((resolve) => setTimeout(resolve, 60_000));
     });`,
    loop.createHandle(),
  );
  // Wait until the worker's blocking call runs on the loop thread, then close under it.
  await loop.run(async () => (globalThis as { started?: Promise<void> }).started);
  await loop.close({ grace: 100 });
  const message = (await running) as { ok: boolean; name: string };
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
      const connection = Portal.connect(handle);
      assert.equal(await connection.hello('a'), 'hello a');
      connection.closeSync();
      return new WeakRef(handle.line);
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

// (The loop thread's host still serves a handle never connected, until its port closes.)
test("a LoopThread's owner holds no handle's shared memory: its connection ended, its thread gone, or never used", async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const loop = new LoopThread({ name: 'many handles' });
  try {
    // Each made and ended in a function of its own, so that nothing of this frame holds the handle.
    const closedHere = async (): Promise<WeakRef<SharedArrayBuffer>> => {
      const handle = loop.createHandle();
      const connection = LoopThread.connect(handle);
      assert.equal(await connection.run((a: number) => a + 1, 1), 2);
      connection.closeSync();
      return new WeakRef(handle.line);
    };
    const threadGone = async (): Promise<WeakRef<SharedArrayBuffer>> => {
      const handle = loop.createHandle();
      // The worker connects, calls, and is terminated without closing its connection.
      const message = await inWorker(`return LoopThread.connect(workerData.handle).runSync(() => 3);`, handle);
      assert.deepEqual(message, { ok: true, v: 3 });
      return new WeakRef(handle.line);
    };
    const neverUsed = (): WeakRef<SharedArrayBuffer> => new WeakRef(loop.createHandle().line);
    const lines = [await closedHere(), await closedHere(), await threadGone(), neverUsed()];
    // Looked at again after each turn of the loop (a condition, not a delay); the bound only ends a failure.
    for (let turn = 0; turn < 1000 && lines.some((l) => l.deref() !== undefined); turn++) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    }
    assert.deepEqual(
      lines.map((l) => l.deref() === undefined),
      [true, true, true, true],
      'the LoopThread holds the half megabyte of shared memory of a handle',
    );
  } finally {
    await loop.close();
  }
});

// The loop thread, terminated, writes nothing on the connections' lines: the owner's word tells them.
test('a thread blocked through a handle wakes with ClosedError when the loop is terminated', async () => {
  const loop = new LoopThread({ name: 'terminated' });
  await loop.run(async () => {
    const g = globalThis as { started?: Promise<void>; markStarted?: () => void };
    g.started = new Promise((resolve) => (g.markStarted = resolve));
  });
  const running = inWorker(
    `const loop = LoopThread.connect(workerData.handle);
     loop.runSync(async () => {
       globalThis.markStarted();
       return new Promise((resolve) => setTimeout(resolve, 60_000));
     });`,
    loop.createHandle(),
  );
  await loop.run(async () => (globalThis as { started?: Promise<void> }).started);
  await loop.terminate();
  const message = (await running) as { ok: boolean; name: string };
  assert.deepEqual([message.ok, message.name], [false, 'ClosedError']);
});
