/**
 * "Every waiter wakes" (issue #10, point 2), generated: direction x call kind x way the other side
 * ends. In each case the caller makes its call beside an awaited companion call on the same
 * connection, the other side ends, and every call must fail with loopthread's typed error for that
 * end, with the cause and exit code the dying side left: never a hang. A wait still pending after
 * WATCHDOG_MS is reported as a hang (a blocked call through its `timeout`, then TimeoutError): a
 * watchdog, not a time assertion. The wake-up times (from the moment the end began) are printed.
 * MATRIX_SEED=n replays a run; MATRIX_ALL=1 runs every valid case once instead of a sample.
 *
 * Directions (who calls whom):
 *   a  the main thread owns a LoopThread and calls it (runSync / run);
 *   b  a worker calls a LoopThread owned by the main thread, through LoopThread.connect(handle);
 *   c  the main thread calls a Portal opened on a worker (fnSync / fn);
 *   d  a worker calls a Portal opened on the main thread.
 * Call kinds: sync (blocking), async (an awaited Future), iter-sync (for...of over a remote async
 * generator returned by reference: blocking), iter-async (for await over it), cb-sync / cb-async
 * (a blocking / awaited call passing a callback, which the other side calls; the end begins while
 * the callback runs, phase 'during', or once it has answered, 'after').
 * Ways the other side ends, and what every caller gets:
 *   uncaught    thrown from a setImmediate there: WorkerCrashedError, cause that error, exitCode 1;
 *   exit        process.exit(n) there: WorkerCrashedError, exitCode n, no cause;
 *   terminate   by the owner of the thread, once the call is in flight: loop.terminate() (a, b):
 *               ClosedError; worker.terminate() of the Portal's worker (c), which leaves no word:
 *               WorkerCrashedError;
 *   oom         resourceLimits { maxOldGenerationSizeMb: 16 } and an allocation loop:
 *               WorkerCrashedError (a: cause ERR_WORKER_OUT_OF_MEMORY, exitCode 1, from the owner;
 *               b, c: the dying thread leaves nothing, and the callers' exit codes differ, see below);
 *   never       a promise that nothing settles: NeverSettledError from a LoopThread (a, b). A Portal
 *               never answers NeverSettledError and does not keep its thread alive: on a worker with
 *               nothing else to do (c) that thread's loop runs out, and its callers get ClosedError;
 *   close       loop.close() by its owner (a, b), portal.close() by its own thread (c, d): ClosedError;
 *   disconnect  the caller closes its connection (connection.closeSync()): ClosedError;
 *   owner-exit  the worker that owns the LoopThread ends naturally (b): ClosedError.
 * (b oom: a blocked caller gets exitCode 1, which the owner writes on seeing the exit; an awaiting
 * one sees its port close first, with no exit code. Only the class is asserted.)
 *
 * Excluded combinations (not generated), and why:
 *   - A blocked caller (sync, iter-sync, cb-sync 'after') with an end that only the caller itself
 *     could bring about: terminate and close in (a), whose owner is the caller; terminate in (c),
 *     where the main thread owns the Portal's worker; disconnect. A blocked thread runs no code but
 *     callbacks: cb-sync 'during' is generated, its callback ending the other side.
 *   - KNOWN LIMIT, (c) oom with a blocked caller (sync, iter-sync, cb-sync) and (c) terminate from
 *     the callback of a blocked caller: the caller waits for ever (here: until its timeout; a test
 *     below asserts that). A thread killed by the heap limit or terminate() runs no exit hook, so
 *     nothing reaches the shared memory the caller waits on, and the caller has no native handle of
 *     a worker that loopthread did not start. Awaiting callers see the port close: generated.
 *   - (d) uncaught, exit, oom, owner-exit: the serving thread is the main thread, whose end ends the
 *     process and every caller with it. (d) terminate: the main thread cannot be terminated.
 *     (d) never: the main thread stays alive and free, so the call is merely pending (the README:
 *     give it a timeout); it ends with the portal's close, the close case.
 *   - (a) owner-exit: the owner is the caller. (c) owner-exit: the Portal's owner is its serving
 *     thread, whose natural end is the never case of (c).
 *   - (a) disconnect: the owner of a LoopThread has no connection of its own (its close is the close case).
 * Where the threads are placed, when a case needs it:
 *   - (a) never with an awaiting caller: NeverSettledError comes once the calling thread has nothing
 *     else to do, which a test runner's main thread never has: the owner is a worker then.
 *   - (b) never: NeverSettledError comes only when no caller can act any more (README), and the
 *     owner (the main thread) could still call: it blocks on a never-settling call of its own too.
 *     In the other (b) cases the calling worker has other work while it waits (an interval): an
 *     awaiting thread with nothing left to do gets NeverSettledError as soon as the loop thread is
 *     idle, though the owner, free, could still end or settle the call (an open question).
 *   - (b) owner-exit: a worker owns the LoopThread; the calling worker is another one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Worker, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import * as fc from 'fast-check';
import { LoopThread, LoopThreadError, Portal, type LoopThreadHandle, type PortalHandle } from 'loopthread';
import type { Kind, Outcome, Report, Target } from './fixtures/matrix-caller.mjs';
import type { Plan, Way } from './fixtures/matrix-api.mjs';
import { within } from './helpers.js';

type Api = typeof import('./fixtures/matrix-api.mjs');
type Direction = 'a' | 'b' | 'c' | 'd';
type Phase = 'during' | 'after';

/** How long a case may wait for anything before it is reported as hung. */
const WATCHDOG_MS = 5_000;
/** Generated cases per run of the file: a sample of the valid ones (the seed is printed). */
const NUM_RUNS = 30;

const fixtureURL = (name: string): URL => new URL(`./fixtures/${name}`, pathToFileURL(__filename));
const apiURL = fixtureURL('matrix-api.mjs');
const workerURL = fixtureURL('matrix-worker.mjs');
const loadApi = (): Promise<Api> => import(apiURL.href) as Promise<Api>;
const loadCaller = (): Promise<typeof import('./fixtures/matrix-caller.mjs')> =>
  import(fixtureURL('matrix-caller.mjs').href) as Promise<typeof import('./fixtures/matrix-caller.mjs')>;
const OOM_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 16 };

interface Case {
  direction: Direction;
  kind: Kind;
  way: Way;
  phase: Phase;
  code: number;
}

const DIRECTIONS: readonly Direction[] = ['a', 'b', 'c', 'd'];
const KINDS: readonly Kind[] = ['sync', 'async', 'iter-sync', 'iter-async', 'cb-sync', 'cb-async'];
const WAYS: readonly Way[] = ['uncaught', 'exit', 'terminate', 'oom', 'never', 'close', 'disconnect', 'owner-exit'];

const blocked = (kind: Kind): boolean => kind === 'sync' || kind === 'iter-sync' || kind === 'cb-sync';

/** Which thread ends the other side: the serving thread itself, the caller, or a third thread. */
function endedBy(direction: Direction, way: Way): 'server' | 'caller' | 'third' {
  if (way === 'disconnect') return 'caller';
  if (way === 'owner-exit') return 'third';
  // A Portal is closed by its own thread.
  if (way === 'close' && (direction === 'c' || direction === 'd')) return 'server';
  // By the owner of the LoopThread (a: the caller, b: the main thread) or of the Portal's worker (c: the caller).
  if (way === 'terminate' || way === 'close') return direction === 'b' ? 'third' : 'caller';
  return 'server';
}

/** Why a combination is not generated (see the header), or undefined if it is. */
function exclusion(direction: Direction, kind: Kind, phase: Phase, way: Way): string | undefined {
  if (direction === 'd' && way !== 'close' && way !== 'disconnect') {
    return way === 'never' ? 'a Portal on the free main thread: merely pending' : 'the main thread serves';
  }
  if (way === 'owner-exit' && direction !== 'b')
    return 'owner-exit: the owner is the caller (a), or the never case (c)';
  if (way === 'disconnect' && direction === 'a') return 'the owner of a LoopThread has no connection to close';
  if (endedBy(direction, way) === 'caller' && blocked(kind) && !(kind === 'cb-sync' && phase === 'during')) {
    return 'a blocked caller cannot end the other side';
  }
  if (direction === 'c' && way === 'oom' && blocked(kind)) return 'KNOWN LIMIT: a blocked caller is not told';
  if (direction === 'c' && way === 'terminate' && blocked(kind)) return 'KNOWN LIMIT: a blocked caller is not told';
  return undefined;
}

/** Every combination (callbacks come in both phases, other kinds in one), with why it is excluded. */
const ALL = DIRECTIONS.flatMap((direction) =>
  KINDS.flatMap((kind) =>
    (kind.startsWith('cb-') ? (['during', 'after'] as const) : (['after'] as const)).flatMap((phase) =>
      WAYS.map((way) => ({
        skeleton: { direction, kind, phase, way },
        excluded: exclusion(direction, kind, phase, way),
      })),
    ),
  ),
);
const VALID: Omit<Case, 'code'>[] = ALL.filter((c) => c.excluded === undefined).map((c) => c.skeleton);

const token = (c: Case): string => `uncaught in case ${label(c)}`;
const label = (c: Case): string =>
  `${c.direction}/${c.kind}${c.kind.startsWith('cb-') ? `(${c.phase})` : ''}/${c.way}${c.way === 'exit' ? `(${String(c.code)})` : ''}`;

function planOf(c: Case): Plan {
  return {
    way: c.way,
    by: endedBy(c.direction, c.way) === 'server' ? 'server' : 'other',
    phase: c.phase,
    code: c.code,
    token: token(c),
  };
}

// ---- threads --------------------------------------------------------------------------------

/** Every worker the cases started, with whether it has exited. */
const workers: { worker: Worker; exited: Promise<number> }[] = [];
const loops: LoopThread[] = [];

interface Started {
  worker: Worker;
  /** The worker's first message; rejects if it fails or exits first. */
  message: Promise<unknown>;
  /** Its exit code, once it has exited. */
  exited: Promise<number>;
}

function startWorker(
  data: Record<string, unknown>,
  transferList: MessagePort[] = [],
  resourceLimits?: ResourceLimits,
): Started {
  const worker = new Worker(workerURL, { workerData: data, transferList: transferList as never[], resourceLimits });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  workers.push({ worker, exited });
  const message = new Promise<unknown>((resolve, reject) => {
    worker.once('message', resolve);
    // A serving worker's death is the case itself: only a worker that fails before its message is an error.
    worker.on('error', reject);
    void exited.then((code) => {
      reject(new Error(`the worker exited with code ${String(code)} before its message`));
    });
  });
  message.catch(() => undefined);
  return { worker, message, exited };
}

function newLoop(c: Case): LoopThread {
  const loop = new LoopThread({
    name: `matrix ${label(c)}`,
    timeout: WATCHDOG_MS,
    resourceLimits: c.way === 'oom' ? OOM_LIMITS : undefined,
  });
  loops.push(loop);
  return loop;
}

async function loopTarget(loop: LoopThread): Promise<Target> {
  const sync = loop.importSync<Api>(apiURL);
  const async = await loop.import<Api>(apiURL);
  return {
    holdSync: sync.hold,
    itemsSync: sync.items as Target['itemsSync'],
    hold: async.hold,
    items: async.items as Target['items'],
  };
}

// ---- one case -------------------------------------------------------------------------------

interface Result {
  outcome: Outcome;
  /** (b) never: the owner's own blocked call. */
  owner?: Report;
}

async function runCase(c: Case): Promise<Result> {
  const stage = new Int32Array(new SharedArrayBuffer(16));
  const plan = planOf(c);
  const { perform } = await loadCaller();
  const { stageReached, setStage, STARTED, ENDING } = await loadApi();
  const cleanups: (() => Promise<unknown>)[] = [];
  const workerOf = (started: Started): Started => {
    cleanups.push(() => started.worker.terminate());
    return started;
  };
  const report = async (started: Started, what: string): Promise<Outcome> =>
    (await within(started.message, `${what} in case ${label(c)}`, 2 * WATCHDOG_MS)) as Outcome;
  /** Ends the other side from this (main) thread once the call is in flight. */
  const endFromHere = async (end: () => void): Promise<void> => {
    assert.ok(await stageReached(stage, STARTED, WATCHDOG_MS), `the call of case ${label(c)} never started`);
    end();
    setStage(stage, ENDING);
  };
  try {
    switch (c.direction) {
      case 'a': {
        if (c.way === 'never' && !blocked(c.kind)) {
          const owner = workerOf(startWorker({ role: 'owner-caller', stage: stage.buffer, plan, kind: c.kind }));
          return { outcome: await report(owner, 'the owning worker') };
        }
        const loop = newLoop(c);
        cleanups.push(() => loop.terminate());
        const target = await loopTarget(loop);
        await (await loop.import<Api>(apiURL)).arm(stage.buffer);
        const trigger =
          c.way === 'terminate'
            ? () => void loop.terminate()
            : c.way === 'close'
              ? () => void loop.close({ grace: 0 })
              : undefined;
        return { outcome: await perform(target, plan, c.kind, stage, trigger) };
      }
      case 'b': {
        let handle: LoopThreadHandle;
        let loop: LoopThread | undefined;
        if (c.way === 'owner-exit') {
          const owner = workerOf(startWorker({ role: 'owner', stage: stage.buffer, plan, kind: c.kind }));
          handle = (await within(owner.message, 'the owner’s handle', WATCHDOG_MS)) as LoopThreadHandle;
        } else {
          const l = newLoop(c);
          loop = l;
          cleanups.push(() => l.terminate());
          await (await l.import<Api>(apiURL)).arm(stage.buffer);
          handle = l.createHandle();
        }
        const caller = workerOf(
          startWorker({ role: 'caller', stage: stage.buffer, plan, kind: c.kind, handle }, [handle.port]),
        );
        let owner: Report | undefined;
        if (loop !== undefined && c.way === 'terminate') await endFromHere(() => void loop.terminate());
        if (loop !== undefined && c.way === 'close') await endFromHere(() => void loop.close({ grace: 0 }));
        if (loop !== undefined && c.way === 'never') {
          const ownerCalls = loop.importSync<Api>(apiURL);
          assert.ok(await stageReached(stage, STARTED, WATCHDOG_MS), `the call of case ${label(c)} never started`);
          owner = capture(() => ownerCalls.hold({ ...plan, companion: true }), stage);
        }
        return { outcome: await report(caller, 'the calling worker'), owner };
      }
      case 'c': {
        const host = workerOf(
          startWorker(
            { role: 'host', stage: stage.buffer, plan, kind: c.kind },
            [],
            c.way === 'oom' ? OOM_LIMITS : undefined,
          ),
        );
        const handle = (await within(host.message, 'the portal’s handle', WATCHDOG_MS)) as PortalHandle<Api>;
        const client = Portal.connect(handle, { timeout: WATCHDOG_MS });
        cleanups.push(async () => {
          client.closeSync();
        });
        const trigger =
          c.way === 'terminate'
            ? () => void host.worker.terminate()
            : c.way === 'disconnect'
              ? () => {
                  client.closeSync();
                }
              : undefined;
        const target: Target = {
          holdSync: client.holdSync,
          itemsSync: client.itemsSync as Target['itemsSync'],
          hold: client.hold,
          items: client.items as Target['items'],
        };
        return { outcome: await perform(target, plan, c.kind, stage, trigger) };
      }
      case 'd': {
        const api = await loadApi();
        const portal = Portal.open(api, { name: 'portal on the main thread' });
        cleanups.push(() => portal.close({ grace: 0 }));
        api.arm(stage.buffer);
        api.setEnders({ close: () => void portal.close({ grace: 0 }) });
        const handle = portal.createHandle();
        const caller = workerOf(
          startWorker({ role: 'caller', stage: stage.buffer, plan, kind: c.kind, handle }, [handle.port]),
        );
        return { outcome: await report(caller, 'the calling worker') };
      }
    }
    return assert.fail(`unknown direction in ${label(c)}`);
  } finally {
    for (const cleanup of cleanups.reverse()) await within(cleanup(), `cleaning up case ${label(c)}`, WATCHDOG_MS);
  }
}

/** What a blocking call of this thread got (the owner's own call in case b/never). */
function capture(run: () => unknown, stage: Int32Array): Report {
  const wakeMs = (): number => {
    const at = new Float64Array(stage.buffer, 8, 1)[0] ?? 0;
    return at === 0 ? Number.NaN : performance.timeOrigin + performance.now() - at;
  };
  try {
    return { name: 'returned', message: String(run()), typed: false, wakeMs: wakeMs() };
  } catch (error) {
    const e = error as Error & { exitCode?: number };
    return { name: e.name, message: e.message, typed: e instanceof LoopThreadError, wakeMs: wakeMs() };
  }
}

// ---- expectations ---------------------------------------------------------------------------

interface Expected {
  name: 'WorkerCrashedError' | 'ClosedError' | 'NeverSettledError';
  causeMessage?: string;
  causeCode?: string;
  exitCode?: number;
  /** process.exit leaves an exit code and no error. */
  noCause?: boolean;
}

function expected(c: Case): Expected {
  switch (c.way) {
    case 'uncaught':
      return { name: 'WorkerCrashedError', causeMessage: token(c), exitCode: 1 };
    case 'exit':
      return { name: 'WorkerCrashedError', exitCode: c.code, noCause: true };
    case 'oom':
      // The owner of a LoopThread sees the worker's exit: the heap limit's error and exit code.
      return c.direction === 'a'
        ? { name: 'WorkerCrashedError', causeCode: 'ERR_WORKER_OUT_OF_MEMORY', exitCode: 1 }
        : { name: 'WorkerCrashedError' };
    case 'terminate':
      return { name: c.direction === 'c' ? 'WorkerCrashedError' : 'ClosedError' };
    case 'never':
      return { name: c.direction === 'c' ? 'ClosedError' : 'NeverSettledError' };
    default:
      return { name: 'ClosedError' };
  }
}

/** Wake-up times by way, for the summary. */
const wakeTimes = new Map<Way, number[]>();

function check(c: Case, result: Result): void {
  const want = expected(c);
  const { outcome } = result;
  const reports: [string, Report][] = [
    [blocked(c.kind) ? 'the blocked call' : 'the awaited call', outcome.primary],
    ['the awaited companion call', outcome.companion],
  ];
  if (result.owner !== undefined) reports.push(['the owner’s blocked call', result.owner]);
  for (const [what, got] of reports) {
    const context = `${what} of case ${label(c)} got ${JSON.stringify(got)}`;
    assert.equal(got.name, want.name, context);
    assert.ok(got.typed, `not a loopthread error: ${context}`);
    if (want.causeMessage !== undefined) assert.equal(got.causeMessage, want.causeMessage, context);
    if (want.causeCode !== undefined) assert.equal(got.causeCode, want.causeCode, context);
    if (want.noCause === true) assert.equal(got.causeMessage, undefined, context);
    if (want.exitCode !== undefined) assert.equal(got.exitCode, want.exitCode, context);
  }
  if (c.kind.startsWith('iter-')) {
    assert.deepEqual(outcome.items, [1, 2].slice(0, outcome.items.length), `items of case ${label(c)}`);
  }
  if (c.kind.startsWith('cb-')) assert.ok(outcome.callbackRan, `the callback of case ${label(c)} never ran`);
  const times = wakeTimes.get(c.way) ?? [];
  times.push(outcome.primary.wakeMs);
  wakeTimes.set(c.way, times);
}

async function runAndCheck(c: Case): Promise<void> {
  check(c, await runCase(c));
}

// ---- the generated matrix -------------------------------------------------------------------

const seedText = process.env.MATRIX_SEED;

test(`generated: direction x call kind x way to end, ${String(NUM_RUNS)} of ${String(VALID.length)} valid cases; every caller wakes with its typed error`, async (t) => {
  const seed = seedText === undefined ? Math.floor(Math.random() * 0x7fffffff) : Number(seedText);
  t.diagnostic(`seed ${String(seed)} (MATRIX_SEED=${String(seed)} replays this run)`);
  const reasons = new Map<string, number>();
  for (const { excluded } of ALL) if (excluded !== undefined) reasons.set(excluded, (reasons.get(excluded) ?? 0) + 1);
  for (const [reason, count] of reasons) t.diagnostic(`not generated: ${String(count)} x ${reason}`);
  const arbitrary = fc
    .record({ skeleton: fc.constantFrom(...VALID), code: fc.integer({ min: 1, max: 120 }) })
    .map(({ skeleton, code }): Case => ({ ...skeleton, code }));
  if (process.env.MATRIX_ALL !== undefined) {
    const failures: string[] = [];
    for (const skeleton of VALID) {
      try {
        await runAndCheck({ ...skeleton, code: 5 });
      } catch (error) {
        failures.push(`${label({ ...skeleton, code: 5 })}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    assert.deepEqual(failures, []);
    return;
  }
  await fc.assert(fc.asyncProperty(arbitrary, runAndCheck), { numRuns: NUM_RUNS, seed, endOnFailure: true });
  for (const [way, times] of wakeTimes) {
    const sorted = times.filter((ms) => !Number.isNaN(ms)).sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
    t.diagnostic(
      `${way}: ${String(times.length)} cases, wake-up after the end began: median ${median.toFixed(1)} ms, max ${(sorted.at(-1) ?? Number.NaN).toFixed(1)} ms`,
    );
  }
});

// ---- the cases of the issue, named -----------------------------------------------------------

test('a Portal on a worker that calls process.exit(7) wakes the main thread blocked in fnSync() with WorkerCrashedError, exitCode 7', async () => {
  await runAndCheck({ direction: 'c', kind: 'sync', way: 'exit', phase: 'after', code: 7 });
});

test('a worker awaiting conn.run() sees the LoopThread crash: WorkerCrashedError with the uncaught error as cause', async () => {
  await runAndCheck({ direction: 'b', kind: 'async', way: 'uncaught', phase: 'after', code: 1 });
});

test('after await portal.close(), a connected worker’s awaited echo() rejects with ClosedError, as echoSync() throws it', async () => {
  const api = await loadApi();
  const portal = Portal.open(api, { name: 'closing portal' });
  const stage = new Int32Array(new SharedArrayBuffer(16));
  const handle = portal.createHandle();
  const late = startWorker({ role: 'late-caller', stage: stage.buffer, handle }, [handle.port]);
  try {
    assert.ok(await api.stageReached(stage, api.STARTED, WATCHDOG_MS), 'the worker never connected');
    await portal.close();
    api.setStage(stage, api.ENDING);
    assert.deepEqual(await within(late.message, 'the worker’s calls after the close', WATCHDOG_MS), {
      awaited: 'ClosedError',
      blocking: 'ClosedError',
    });
  } finally {
    await late.worker.terminate();
  }
});

// ---- what the matrix found (each failed before its fix) ---------------------------------------

test('a thread blocked on a LoopThread through a connection wakes with ClosedError when the worker that owns it ends', async () => {
  await runAndCheck({ direction: 'b', kind: 'sync', way: 'owner-exit', phase: 'after', code: 1 });
});

test('a call made while the loop thread’s idle notice is on its way is not answered as never settling', async () => {
  // The notice was sent before the loop thread read that call: it is stale, and the call settles.
  const stale = startWorker({ role: 'stale-idle', stage: new SharedArrayBuffer(16) });
  try {
    assert.deepEqual(await within(stale.message, 'the worker’s calls', 2 * WATCHDOG_MS), {
      later: 'settled',
      pending: 'NeverSettledError',
    });
  } finally {
    await stale.worker.terminate();
  }
});

test('a blocked owner gets NeverSettledError when the last other connection leaves while the loop thread waits idle', async () => {
  const loop = new LoopThread({ name: 'left alone', timeout: WATCHDOG_MS });
  loops.push(loop);
  const stage = new Int32Array(new SharedArrayBuffer(16));
  const handle = loop.createHandle();
  const leaving = startWorker({ role: 'leaving', stage: stage.buffer, handle }, [handle.port]);
  try {
    const calls = loop.importSync<Api>(apiURL);
    await (await loop.import<Api>(apiURL)).arm(stage.buffer);
    const { stageReached, STARTED } = await loadApi();
    assert.ok(await stageReached(stage, STARTED, WATCHDOG_MS), 'the worker never connected');
    // The loop thread goes idle over this call while the worker, free, might still call: it waits.
    // Then the worker closes its connection (on ENDING, set once the loop went idle): no one is left.
    const error = capture(() => calls.holdUntilIdle(), stage);
    assert.equal(error.name, 'NeverSettledError', JSON.stringify(error));
    assert.equal(await within(leaving.message, 'the worker’s close', WATCHDOG_MS), 'closed');
  } finally {
    await leaving.worker.terminate();
    await loop.terminate();
  }
});

test('the timeout given to Portal.connect also bounds the calls of a for...of over a remote generator', async () => {
  const api = await loadApi();
  api.arm(new SharedArrayBuffer(16));
  const portal = Portal.open(api, { name: 'stalling generator' });
  const handle = portal.createHandle();
  const plan: Plan = { way: 'never', by: 'other', phase: 'after', code: 0, token: '' };
  // Each call gets the whole timeout: the two items arrive well within it even on a loaded
  // machine, and only the third next(), which never settles, can end by it.
  const timeout = 2_000;
  const iterating = startWorker({ role: 'iter-timeout', stage: new SharedArrayBuffer(16), plan, handle, timeout }, [
    handle.port,
  ]);
  try {
    assert.deepEqual(await within(iterating.message, 'the iteration', WATCHDOG_MS + timeout), {
      name: 'TimeoutError',
      items: [1, 2],
    });
  } finally {
    await iterating.worker.terminate();
    await portal.close({ grace: 0 });
  }
});

// ---- known limits ------------------------------------------------------------------------------

/** Long enough for the worker to be gone well before it ends the wait (the test holds either way). */
const LIMIT_TIMEOUT_MS = 500;

for (const way of ['terminate', 'oom'] as const) {
  const how = way === 'oom' ? 'is killed by the heap limit' : 'is terminated (from a callback of the call)';
  test(`KNOWN LIMIT: a main thread blocked on a Portal whose worker ${how} is not told; only a timeout ends the wait`, async () => {
    const { setStage, IN_CALLBACK } = await loadApi();
    const stage = new Int32Array(new SharedArrayBuffer(16));
    const plan: Plan = { way, by: way === 'oom' ? 'server' : 'other', phase: 'during', code: 0, token: '' };
    const host = startWorker({ role: 'host', stage: stage.buffer, plan }, [], way === 'oom' ? OOM_LIMITS : undefined);
    try {
      const handle = (await within(host.message, 'the portal’s handle', WATCHDOG_MS)) as PortalHandle<Api>;
      using client = Portal.connect(handle, { timeout: LIMIT_TIMEOUT_MS });
      const error =
        way === 'oom'
          ? capture(() => client.holdSync(plan), stage)
          : capture(
              () =>
                client.holdSync(plan, () => {
                  setStage(stage, IN_CALLBACK);
                  void host.worker.terminate();
                  return 'answered';
                }),
              stage,
            );
      assert.equal(error.name, 'TimeoutError', JSON.stringify(error));
      // The worker is gone indeed.
      await within(host.exited, 'the portal worker’s exit', WATCHDOG_MS);
    } finally {
      await host.worker.terminate();
    }
  });
}

test('every worker and LoopThread the cases started has stopped', async () => {
  await within(Promise.all(workers.map((w) => w.exited)), 'the workers’ exits', WATCHDOG_MS);
  await within(Promise.all(loops.map((loop) => loop.closed)), 'the LoopThreads’ ends', WATCHDOG_MS);
});
