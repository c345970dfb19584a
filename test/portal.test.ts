import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Worker, type MessagePort } from 'node:worker_threads';
import { currentSignal, LoopThread, Portal, type PortalHandle } from 'loopthread';

const entry = require.resolve('loopthread');
const workerFile = join(__dirname, '..', '..', 'test', 'fixtures', 'portal-worker.cjs');

interface Outcome {
  ok: boolean;
  value?: unknown;
  name?: string;
  message?: string;
}

/** Starts the fixture worker on `script` with a handle of `portal`; resolves with its outcome. */
function startWorker(
  portal: Portal<object>,
  script: string,
  extra: Record<string, unknown> = {},
  transfer: MessagePort[] = [],
): { outcome: Promise<Outcome>; worker: Worker } {
  const handle = portal.createHandle();
  const worker = new Worker(workerFile, {
    workerData: { handle, entry, script, ...extra },
    transferList: [handle.port, ...transfer] as never[],
  });
  const outcome = Promise.race([
    once(worker, 'message').then(([m]) => m as Outcome),
    once(worker, 'error').then(([e]) => ({ ok: false, name: (e as Error).name, message: (e as Error).message })),
  ]).finally(() => void worker.terminate());
  return { outcome, worker };
}

/** A promise with its resolver, to wait for a signal instead of sleeping. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => (fire = resolve));
  return { promise, fire };
}

describe('a portal on the main thread', () => {
  const started = signal();
  const aborted = signal();
  const abortReasons: string[] = [];
  const slowDone = signal();
  const order: string[] = [];
  const api = {
    add: (a: number, b: number) => a + b,
    async lookup(id: number) {
      await new Promise((resolve) => setImmediate(resolve));
      return `value ${String(id)}`;
    },
    fail(message: string) {
      throw Object.assign(new RangeError(message), { code: 'E_PORTAL' });
    },
    started() {
      started.fire();
    },
    async waitForAbort() {
      const s = currentSignal();
      await new Promise<void>((resolve) => {
        s.addEventListener('abort', () => {
          abortReasons.push((s.reason as Error).name);
          aborted.fire();
          resolve();
        });
      });
      return 'aborted';
    },
    async slow(tag: string) {
      await slowDone.promise;
      order.push(tag);
      return tag;
    },
    fast(tag: string) {
      order.push(tag);
      slowDone.fire();
      return tag;
    },
    echo: (x: unknown) => x,
  };
  const portal = Portal.open(api, { name: 'main portal' });
  after(async () => {
    await portal.close({ grace: 100 });
  });

  test('a worker calls it blocking (fnSync) and not (fn), with the values of the main thread', async () => {
    assert.deepEqual(await startWorker(portal, 'basic').outcome, { ok: true, value: [5, 'value 7'] });
    assert.deepEqual(await startWorker(portal, 'asyncCall').outcome, { ok: true, value: 42 });
  });

  test('an error thrown on the portal thread reaches the worker faithfully', async () => {
    assert.deepEqual(await startWorker(portal, 'remoteError').outcome, {
      ok: true,
      value: ['RangeError', 'boom', 'E_PORTAL'],
    });
  });

  test('a timeout fails the worker with TimeoutError and aborts the served call (currentSignal)', async () => {
    const before = abortReasons.length;
    assert.deepEqual(await startWorker(portal, 'timeout').outcome, { ok: true, value: 'TimeoutError' });
    await aborted.promise;
    assert.equal(abortReasons[before], 'TimeoutError');
  });

  test("a slow call from one thread does not hold up another thread's fast call", async () => {
    // The slow call only finishes once the fast one has run: served one after the other, it never would.
    const slow = startWorker(portal, 'slow', { arg: 'slow' });
    const fast = startWorker(portal, 'fast', { arg: 'fast' });
    assert.deepEqual(await slow.outcome, { ok: true, value: 'slow' });
    assert.deepEqual(await fast.outcome, { ok: true, value: 'fast' });
    assert.deepEqual(order, ['fast', 'slow']);
  });

  test('a blocking call from the portal thread into its own portal throws DeadlockError at once', () => {
    using self = Portal.connect(portal.createHandle());
    assert.throws(() => self.addSync(1, 2), { name: 'DeadlockError' });
  });

  test('a handle connects once: a second client on it is refused', () => {
    const handle = portal.createHandle();
    using first = Portal.connect(handle);
    assert.ok(first);
    assert.throws(() => Portal.connect(handle), /already connected/);
  });

  test('connect refuses what is not a portal handle', () => {
    assert.throws(() => Portal.connect({} as PortalHandle), TypeError);
  });
});

test('two threads blocking on each other fail with DeadlockError naming both', async () => {
  await using portal = Portal.open({ add: (a: number, b: number) => a + b });
  const loop = new LoopThread({ name: 'cycle' });
  try {
    await loop.run((handle: PortalHandle) => {
      (globalThis as { handle?: PortalHandle }).handle = handle;
    }, portal.createHandle());
    // This thread blocks on the loop thread, which blocks on this thread's portal: a cycle.
    const message = loop.runSync(async (path: string) => {
      const { Portal: P } = (await import(path)) as typeof import('loopthread');
      interface Api {
        add(a: number, b: number): number;
      }
      const main = P.connect((globalThis as { handle?: PortalHandle<Api> }).handle!);
      try {
        return String(main.addSync(1, 1));
      } catch (error) {
        return `${(error as Error).name}: ${(error as Error).message}`;
      }
    }, entry);
    assert.match(
      message,
      /^DeadlockError: .*thread (\d+) \(this thread\) waits for thread 0 \(portal on thread 0\) waits for thread \1 \(this thread\)/,
    );
  } finally {
    loop.closeSync();
  }
});

test('close: new calls fail with ClosedError, calls in flight abort, blocked clients wake', async () => {
  const started = signal();
  const reasons: string[] = [];
  const portal = Portal.open({
    async waitForAbort() {
      started.fire();
      const s = currentSignal();
      await new Promise<void>((resolve) => {
        s.addEventListener('abort', () => {
          reasons.push((s.reason as Error).name);
          resolve();
        });
      });
      return 'aborted';
    },
  });
  const blocked = startWorker(portal, 'blockForever');
  await started.promise;
  await portal.close({ grace: 50 });
  const outcome = await blocked.outcome;
  assert.equal(outcome.ok, outcome.value === 'aborted', 'it either finished aborted or failed');
  assert.deepEqual(reasons, ['ClosedError']);
  assert.throws(() => portal.createHandle(), { name: 'ClosedError' });
  assert.equal(portal.isClosed, true);
});

test('a worker uses the main thread`s objects by reference, its callbacks run in the blocked worker', async () => {
  class Counter {
    constructor(private n: number) {}
    add(k: number): void {
      this.n += k;
    }
    value(): number {
      return this.n;
    }
  }
  await using portal = Portal.open({
    makeCounter: (start: number) => new Counter(start),
    async each(list: number[], fn: (x: number) => Promise<number>) {
      let sum = 0;
      for (const x of list) sum += await fn(x);
      return sum;
    },
    async *range(n: number) {
      for (let i = 0; i < n; i++) yield await Promise.resolve(i);
    },
  });
  const outcome = await startWorker(portal, 'references').outcome;
  assert.deepEqual(outcome, { ok: true, value: [17, 600, [1, 2, 3], [0, 1, 2, 3]] });
});

test('a client thread that dies with a call in flight: the call is aborted, the portal goes on', async () => {
  const started = signal();
  const aborted = signal();
  let reason = '';
  await using portal = Portal.open({
    untilRunning: () => started.promise,
    async waitForAbort() {
      started.fire();
      const s = currentSignal();
      await new Promise<void>((resolve) => {
        s.addEventListener('abort', () => {
          reason = (s.reason as Error).name;
          aborted.fire();
          resolve();
        });
      });
    },
    add: (a: number, b: number) => a + b,
  });
  const dying = startWorker(portal, 'blockThenCrash');
  const outcome = await dying.outcome;
  assert.deepEqual([outcome.ok, outcome.message], [false, 'this worker dies with a call in flight']);
  // The portal hears of the death by its port's 'close' event, which does not keep this loop alive.
  const keepAlive = setInterval(() => undefined, 1_000);
  await aborted.promise;
  clearInterval(keepAlive);
  assert.equal(reason, 'ClosedError');
  // The portal still serves other threads.
  assert.deepEqual(await startWorker(portal as Portal<object>, 'asyncCall').outcome, { ok: true, value: 42 });
});

test('stress: 8 threads x 5,000 mixed calls into one LoopThread and the main portal, none lost or crossed', async () => {
  await using portal = Portal.open({ echo: (x: unknown) => x });
  const loop = new LoopThread({ name: 'stress' });
  try {
    const runs = Array.from({ length: 8 }, (_, id) => {
      const handle = loop.createHandle();
      return startWorker(portal, 'stress', { arg: id, count: 5_000, loop: handle }, [handle.port]).outcome;
    });
    const outcomes = await Promise.all(runs);
    for (const outcome of outcomes) assert.deepEqual(outcome, { ok: true, value: 2_500 });
  } finally {
    await loop.close();
  }
});
