/**
 * How a portal's host finds blocking requests (a WAKE message when it sleeps, its spin after a
 * reply, the poller's looks between turns: request-poller.ts), with awaited calls in between.
 * Generated programs of several threads (blocking, awaited and unawaited calls, gaps in which the
 * host may fall asleep, calls that hold the host's loop or keep it turning, blocking calls answered on a later turn) must each get every
 * answer, its own, and never hang; a portal closed in the middle wakes every caller with
 * ClosedError.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as fc from 'fast-check';
import { LoopThread, Portal } from 'loopthread';
import { within } from './helpers.js';

const entry = require.resolve('loopthread');
const workerFile = join(__dirname, '..', '..', 'test', 'fixtures', 'portal-worker.cjs');
/** The spin policy's module, as the loop thread loaded it (the same file, so the same module there). */
const spinPolicyFile = join(__dirname, '..', 'src', 'shm', 'spin-policy.js');
/** How long a run may take before it is reported as hung (a watchdog, not a sleep). */
const HANG_MS = 15_000;

type Op =
  | { k: 'sync' }
  | { k: 'await' }
  | { k: 'fire' }
  | { k: 'pause'; ms: number }
  | { k: 'hold'; ms: number }
  | { k: 'turns'; n: number }
  | { k: 'syncTurns'; n: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constant({ k: 'sync' as const }), weight: 4 },
  { arbitrary: fc.constant({ k: 'await' as const }), weight: 3 },
  { arbitrary: fc.constant({ k: 'fire' as const }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('pause' as const), ms: fc.integer({ min: 0, max: 3 }) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('hold' as const), ms: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('turns' as const), n: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
  // A blocking call answered on a later turn: the poller then watches its connection.
  { arbitrary: fc.record({ k: fc.constant('syncTurns' as const), n: fc.integer({ min: 1, max: 4 }) }), weight: 2 },
);

const scenario: fc.Arbitrary<Scenario> = fc.record({
  programs: fc.array(fc.array(opArb, { minLength: 1, maxLength: 40 }), { minLength: 2, maxLength: 4 }),
  /** ms after the start at which the portal closes, or null: it stays open. */
  closeAfter: fc.option(fc.integer({ min: 0, max: 15 })),
});

const api = {
  echo: (x: unknown) => x,
  /** Holds the host's loop: requests of the other threads pile up meanwhile. */
  hold(x: unknown, ms: number) {
    const end = performance.now() + ms;
    while (performance.now() < end);
    return x;
  },
  /** Keeps the host's loop turning for `n` turns. */
  async turns(x: unknown, n: number) {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
    return x;
  },
};

type Outcome = { ok: true; value: number | { closed: number } } | { ok: false; name: string; message: string };

interface Scenario {
  programs: Op[][];
  closeAfter: number | null;
}

async function run({ programs, closeAfter }: Scenario): Promise<void> {
  const portal = Portal.open(api, { name: 'doorbell portal' });
  const workers: Worker[] = [];
  try {
    const outcomes = programs.map((program, id) => {
      const handle = portal.createHandle();
      const worker = new Worker(workerFile, {
        workerData: { handle, entry, script: 'program', arg: program, id },
        transferList: [handle.port] as never[],
      });
      workers.push(worker);
      return Promise.race([
        once(worker, 'message').then(([m]) => m as Outcome),
        once(worker, 'error').then(([e]): Outcome => ({
          ok: false,
          name: (e as Error).name,
          message: (e as Error).message,
        })),
      ]);
    });
    let timer: NodeJS.Timeout | undefined;
    if (closeAfter !== null) timer = setTimeout(() => void portal.close({ grace: 0 }), closeAfter);
    const done = await within(Promise.all(outcomes), 'the callers', HANG_MS);
    clearTimeout(timer);
    done.forEach((outcome, i) => {
      const calls = (programs[i] ?? []).filter((op) => op.k !== 'pause').length;
      if (!outcome.ok) assert.fail(`thread ${String(i)}: ${outcome.name}: ${outcome.message}`);
      if (closeAfter === null) assert.equal(outcome.value, calls, `thread ${String(i)}`);
      else if (typeof outcome.value === 'number') assert.equal(outcome.value, calls, `thread ${String(i)}`);
      else assert.ok(outcome.value.closed <= calls, `thread ${String(i)}`);
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await portal.close({ grace: 0 });
  }
}

test('generated programs of several threads get every answer, their own, and a close wakes them all', async () => {
  await fc.assert(fc.asyncProperty(scenario, run), { numRuns: 25, includeErrorInReport: true });
});

// ---- a caller the poller watches does not wake the host ------------------------------------------

test(
  'while the poller watches a blocking caller, its next calls wake the host by no message',
  { skip: availableParallelism() < 2 && 'one core: the host never watches (it never spins)' },
  async (t) => {
    const loop = new LoopThread({ name: 'watched' });
    t.after(() => loop.close());
    // A second connection, which has called once: the host then serves two callers, and answers
    // the owner's blocking calls by watching for its next request between turns of its loop.
    const handle = loop.createHandle();
    const other = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { LoopThread } = require(workerData.entry);
       const conn = LoopThread.connect(workerData.handle);
       conn.run(() => 1).then(() => parentPort.postMessage('ready'));
       parentPort.on('message', () => { void conn.close().then(() => parentPort.close()); });`,
      { eval: true, workerData: { handle, entry }, transferList: [handle.port] },
    );
    t.after(async () => {
      other.postMessage('close');
      await once(other, 'exit');
    });
    await within(once(other, 'message'), 'the other connection', HANG_MS);
    // The wake-up cost the loop thread has measured decides how long it watches: made so large
    // here that it watches for the whole test (every look finds the next request in time).
    const huge = loop.runSync((file: string) => {
      const policy = process.getBuiltinModule('node:module').createRequire(file)(
        file,
      ) as typeof import('../src/shm/spin-policy.js');
      for (let i = 0; i < 400; i++) policy.observeWake(1e12);
      return policy.wakeCost();
    }, spinPolicyFile);
    assert.ok(huge > 60_000, `the loop thread's wake-up estimate is ${String(huge)} ms`);
    const before = loop.stats().wakes;
    for (let i = 0; i < 20; i++)
      assert.equal(
        loop.runSync((n: number) => n, i),
        i,
      );
    // The first call may find the host idle; after it the poller watches and no call posts a WAKE.
    // (Before the fix, the host set its "asleep" flag again after each answer: 20 WAKEs.)
    assert.ok(loop.stats().wakes - before <= 1, `${String(loop.stats().wakes - before)} of 20 calls woke the host`);
  },
);

// ---- a crowded host tells its blocking callers not to spin ---------------------------------------

test('a blocking reply says whether other blocking callers crowd the cores; the caller then stops spinning', async (t) => {
  const loop = new LoopThread({ name: 'crowded' });
  t.after(() => loop.close());
  const cores = availableParallelism();
  const calls = (): number => {
    const before = loop.stats().crowded;
    for (let i = 0; i < 20; i++)
      assert.equal(
        loop.runSync((n: number) => n, i),
        i,
      );
    return loop.stats().crowded - before;
  };
  // Alone: this caller and the loop thread.
  assert.equal(calls(), 2 > cores ? 20 : 0);
  // Another thread's blocking call stays in flight: three threads want the cores.
  const handle = loop.createHandle();
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const other = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const { LoopThread } = require(workerData.entry);
     const conn = LoopThread.connect(workerData.handle);
     // (A SharedArrayBuffer goes by message, to an awaited call: the blocking one finds it there.)
     conn.run((sab) => { globalThis.crowdedFlags = new Int32Array(sab); }, workerData.sab).then(() => {
       const held = conn.runSync(async () => {
         const flags = globalThis.crowdedFlags;
         Atomics.store(flags, 0, 1);
         Atomics.notify(flags, 0);
         // A pending waitAsync keeps no loop alive: without a ref'd handle the loop thread would see
         // its loop idle and answer this call with NeverSettledError.
         const keep = setInterval(() => undefined, 1 << 30);
         try {
           while (Atomics.load(flags, 1) === 0) await Atomics.waitAsync(flags, 1, 0).value;
         } finally {
           clearInterval(keep);
         }
         return 'released';
       });
       conn.closeSync();
       parentPort.postMessage(held);
     });`,
    { eval: true, workerData: { handle, entry, sab: flags.buffer }, transferList: [handle.port] },
  );
  const answer = once(other, 'message');
  // Listened for from the start: the thread may exit in the same turn as it answers.
  const exited = once(other, 'exit');
  const started = Atomics.waitAsync(flags, 0, 0);
  // (The thread failing first rejects `answer`, which then says why.)
  if (started.async) await within(Promise.race([started.value, answer]), "the other thread's call starting", HANG_MS);
  try {
    assert.equal(calls(), 3 > cores ? 20 : 0);
  } finally {
    Atomics.store(flags, 1, 1);
    Atomics.notify(flags, 1);
  }
  assert.deepEqual(await within(answer, "the other thread's answer", HANG_MS), ['released']);
  await within(exited, 'the other thread exiting', HANG_MS);
});
