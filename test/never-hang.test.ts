/**
 * "Never hang" (DESIGN.md section 5): every way the loop thread can fail wakes every caller,
 * blocked or not, with a typed error; timeouts and signals cancel the remote call and its late
 * reply never reaches another call; close settles everything. Each LoopThread made here is
 * terminated after its test, and the last test checks that all of them have stopped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as fc from 'fast-check';
import {
  CancelledError,
  ClosedError,
  Future,
  LoopThread,
  LoopThreadError,
  NeverSettledError,
  TimeoutError,
  WorkerCrashedError,
  type LoopThreadOptions,
  type Syncified,
} from 'loopthread';
import { generatedSequences } from './generated-calls.js';
// A blocked call that is never woken cannot be stopped from this thread: thrown() does not return,
// and the test runner kills the file and fails it.
import { rejectionWithin, thrown, within as withinMs } from './helpers.js';

type Remote = typeof import('./fixtures/never-hang-remote.mjs');
/** Inline functions reach the loop thread's globals through this. */
type Globals = typeof globalThis & Record<string, unknown>;

/** How long anything awaited here may stay pending before the test reports it as hung. */
const SETTLE_LIMIT_MS = 10_000;
/**
 * A timeout for closes that must return before it runs out (they end when the thread has
 * stopped): returning at all before it shows that, however slow the machine.
 */
const CLOSE_TIMEOUT_MS = 60_000;
/** A child process still running after this is hung (the child scenarios take well under a second). */
const CHILD_HANG_MS = 60_000;

const repoRoot = join(__dirname, '..', '..');
const fixtureURL = (name: string): URL => new URL(`./fixtures/${name}`, pathToFileURL(__filename));
/** .cjs fixtures are not compiled: they are used from the source tree. */
const fixtureSource = (name: string): string => join(repoRoot, 'test', 'fixtures', name);
const remoteURL = fixtureURL('never-hang-remote.mjs');

interface ChildRun {
  lines: string[];
  status: number | null;
  stderr: string;
}
const childRuns = new Map<string, ChildRun>();

/**
 * Runs a scenario of fixtures/never-hang-child.cjs in a process of its own (once; later calls
 * reuse the result): the lines it printed, and how it exited. A child that does not exit by
 * itself (kept alive by a LoopThread, or hung) is killed after CHILD_HANG_MS and fails the test.
 */
function child(scenario: string): ChildRun {
  let run = childRuns.get(scenario);
  if (run === undefined) {
    const result = spawnSync(process.execPath, [fixtureSource('never-hang-child.cjs'), scenario], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: CHILD_HANG_MS,
      killSignal: 'SIGKILL',
    });
    assert.equal(result.signal, null, `the child "${scenario}" did not exit by itself: ${result.stdout}`);
    assert.equal(result.error, undefined);
    run = { lines: result.stdout.trim().split('\n'), status: result.status, stderr: result.stderr };
    childRuns.set(scenario, run);
  }
  return run;
}

/** Every LoopThread these tests started. */
const started: LoopThread[] = [];

/** Starts a LoopThread that is terminated (a no-op if it is already closed) after the test. */
function startLoop(t: TestContext, options: LoopThreadOptions = {}): LoopThread {
  const loop = new LoopThread({ name: t.name, ...options });
  started.push(loop);
  t.after(async () => {
    await within(loop.terminate(), `terminate() of "${loop.name}"`);
  });
  return loop;
}

/** Awaits `promise`, failing with StillPending if it has not settled within `ms` ms (a watchdog, not a sleep). */
const within = <T>(promise: PromiseLike<T>, what: string, ms = SETTLE_LIMIT_MS): Promise<T> =>
  withinMs(promise, what, ms);

/** The reason `promise` rejects with (failing if it fulfils or stays pending). */
const rejection = (promise: PromiseLike<unknown>, what = 'the call'): Promise<unknown> =>
  rejectionWithin(promise, what, SETTLE_LIMIT_MS);

/** Resolves once `count` calls have run `markStarted` on the loop thread (polled there, not slept on here). */
async function startedOnLoop(loop: LoopThread, count: number): Promise<void> {
  await within(
    loop.run(async (n: number) => {
      const g = globalThis as Globals;
      while (((g.neverHangStarted as number | undefined) ?? 0) < n) await new Promise((r) => setImmediate(r));
    }, count),
    `${String(count)} calls starting`,
  );
}

/** Every later way to call `loop` fails with an error of `expected`'s class (and `check`). */
async function assertCallsFail<E extends Error>(
  loop: LoopThread,
  expected: new (...args: never[]) => E,
  check: (error: E) => void = () => undefined,
): Promise<void> {
  const errors: unknown[] = [
    thrown(() => loop.runSync(() => 1), 'runSync'),
    thrown(() => loop.with({ timeout: 1_000 }).runSync(() => 1), 'with().runSync'),
    thrown(() => loop.importSync('node:os'), 'importSync'),
    await rejection(
      loop.run(() => 1),
      'run',
    ),
    await rejection(loop.import('node:os'), 'import'),
  ];
  for (const error of errors) {
    assert.ok(error instanceof expected, `expected ${expected.name}, got ${String(error)}`);
    check(error);
  }
}

// ---- 1. an uncaught error on the loop thread -------------------------------------------------

test('an uncaught error on the loop thread wakes a blocked runSync with WorkerCrashedError carrying it', async (t) => {
  const loop = startLoop(t);
  const pending = loop.run(() => new Promise<never>(() => {}));
  const error = thrown(() =>
    loop.runSync(() => {
      setTimeout(() => {
        throw new Error('boom');
      }, 10);
      return new Promise<never>(() => {});
    }),
  );
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assert.match(error.message, /boom/);
  assert.ok(error.cause instanceof Error);
  assert.equal(error.cause.message, 'boom');

  // The async call pending meanwhile is woken with the same crash.
  const asyncError = await rejection(pending, 'the async call pending during the crash');
  assert.ok(asyncError instanceof WorkerCrashedError, String(asyncError));
  assert.match(asyncError.message, /boom/);

  await within(loop.closed, 'loop.closed');
  assert.ok(loop.exitError instanceof WorkerCrashedError);
  assert.match(loop.exitError.message, /boom/);
  // Later calls keep reporting the crash (WorkerCrashedError, not ClosedError).
  await assertCallsFail(loop, WorkerCrashedError, (e) => {
    assert.match(e.message, /boom/);
  });
  // Closing a crashed LoopThread is a no-op that keeps the crash as its exit error.
  loop.closeSync();
  await within(loop.close(), 'close()');
  assert.ok(loop.exitError instanceof WorkerCrashedError);
});

test('an uncaught error during async calls rejects every pending future with WorkerCrashedError', async (t) => {
  const loop = startLoop(t);
  const crashing = loop.run(() => {
    setTimeout(() => {
      throw new Error('boom');
    }, 10);
    return new Promise<never>(() => {});
  });
  const other = loop.run(() => new Promise<never>(() => {}));
  // Waited on by blocking: resultSync wakes with the crash.
  const blockedError = thrown(() => crashing.resultSync(), 'resultSync');
  assert.ok(blockedError instanceof WorkerCrashedError, String(blockedError));
  assert.match(blockedError.message, /boom/);
  assert.equal(crashing.done(), true);
  // Awaited: rejects with the crash.
  const awaitedError = await rejection(other, 'the other pending call');
  assert.ok(awaitedError instanceof WorkerCrashedError, String(awaitedError));
  assert.ok(awaitedError.cause instanceof Error);
  assert.equal(awaitedError.cause.message, 'boom');
  await within(Promise.all([crashing.settled, other.settled]), 'future.settled');
  await within(loop.closed, 'loop.closed');
  await assertCallsFail(loop, WorkerCrashedError, (e) => {
    assert.match(e.message, /boom/);
  });
});

// ---- 2. process.exit on the loop thread ------------------------------------------------------

test('process.exit(3) on the loop thread wakes a blocked caller with WorkerCrashedError and exitCode 3', async (t) => {
  const loop = startLoop(t);
  const pending = loop.run(() => new Promise<never>(() => {}));
  const error = thrown(() => loop.runSync(() => process.exit(3)));
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assert.equal(error.exitCode, 3);
  const asyncError = await rejection(pending, 'the async call pending during the exit');
  assert.ok(asyncError instanceof WorkerCrashedError, String(asyncError));
  assert.equal(asyncError.exitCode, 3);
  await within(loop.closed, 'loop.closed');
  assert.ok(loop.exitError instanceof WorkerCrashedError);
  assert.equal(loop.exitError.exitCode, 3);
  await assertCallsFail(loop, WorkerCrashedError, (e) => {
    assert.equal(e.exitCode, 3);
  });
});

test('process.exit(3) during async calls rejects every pending future with WorkerCrashedError and exitCode 3', async (t) => {
  const loop = startLoop(t);
  const exiting = loop.run(() => {
    setTimeout(() => process.exit(3), 10);
    return new Promise<never>(() => {});
  });
  const other = loop.run(() => new Promise<never>(() => {}));
  for (const [future, what] of [
    [exiting, 'the exiting call'],
    [other, 'the other pending call'],
  ] as const) {
    const error = await rejection(future, what);
    assert.ok(error instanceof WorkerCrashedError, String(error));
    assert.equal(error.exitCode, 3);
  }
  await within(loop.closed, 'loop.closed');
  assert.equal((loop.exitError as WorkerCrashedError | undefined)?.exitCode, 3);
});

test('awaiting loop.closed after a crash seen by a blocked caller keeps the process alive until it settles', () => {
  const run = child('await-closed');
  assert.deepEqual(run.lines, [...[1, 2, 3, 4, 5].map((r) => `round ${String(r)}: closed`), 'done']);
  assert.equal(run.status, 0);
});

// ---- 3. terminate -----------------------------------------------------------------------------

test('terminate() rejects pending async calls with ClosedError and later calls throw ClosedError', async (t) => {
  const loop = startLoop(t);
  const futures = [0, 1, 2].map((i) =>
    loop.run((n: number) => {
      const g = globalThis as Globals;
      g.neverHangStarted = ((g.neverHangStarted as number | undefined) ?? 0) + 1;
      return new Promise((resolve) => {
        setTimeout(() => {
          resolve(n);
        }, 60_000);
      });
    }, i),
  );
  await startedOnLoop(loop, 3);
  assert.ok(futures.every((f) => f.running()));
  const terminated = loop.terminate();
  // Every future is done as soon as terminate() has been called, before the thread is even gone.
  assert.ok(futures.every((f) => f.done()));
  await within(terminated, 'terminate()');
  for (const future of futures) {
    const error = await rejection(future);
    assert.ok(error instanceof ClosedError, String(error));
  }
  await within(Promise.all(futures.map((f) => f.settled)), 'future.settled');
  await within(loop.closed, 'loop.closed');
  assert.equal(loop.exitError, undefined);
  await assertCallsFail(loop, ClosedError);
  await within(loop.terminate(), 'a second terminate()');
});

// ---- 4. out of memory -------------------------------------------------------------------------

test('running out of memory (resourceLimits) wakes a blocked caller with WorkerCrashedError', async (t) => {
  const loop = startLoop(t, { resourceLimits: { maxOldGenerationSizeMb: 16 } });
  const pending = loop.run(() => new Promise<never>(() => {}));
  const error = thrown(() =>
    loop.runSync(() => {
      const hoard: number[][] = [];
      for (;;) hoard.push(new Array<number>(1000).fill(Math.random()));
    }),
  );
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assert.match(error.message, /out of memory|memory limit/i);
  const asyncError = await rejection(pending, 'the async call pending during the crash');
  assert.ok(asyncError instanceof WorkerCrashedError, String(asyncError));
  await within(loop.closed, 'loop.closed');
  assert.ok(loop.exitError instanceof WorkerCrashedError);
  await assertCallsFail(loop, WorkerCrashedError);
});

test('running out of memory during an async call rejects it with WorkerCrashedError', async (t) => {
  const loop = startLoop(t, { resourceLimits: { maxOldGenerationSizeMb: 16 } });
  const error = await rejection(
    loop.run(async () => {
      const hoard: number[][] = [];
      for (;;) hoard.push(new Array<number>(1000).fill(Math.random()));
    }),
  );
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assert.match(error.message, /out of memory|memory limit/i);
  await within(loop.closed, 'loop.closed');
});

// ---- 5. calls that can never settle ------------------------------------------------------------

for (const [what, never] of [
  ['a promise nothing resolves', () => new Promise<never>(() => {})],
  ["an unref'd timer", () => new Promise<void>((resolve) => setTimeout(resolve, 60_000).unref())],
] as const) {
  test(`a blocked call waiting on ${what} gets NeverSettledError, then the LoopThread is closed`, async (t) => {
    const loop = startLoop(t);
    assert.equal(
      loop.runSync((x: number) => x + 1, 1),
      2,
    );
    const error = thrown(() => {
      loop.runSync(never);
    });
    assert.ok(error instanceof NeverSettledError, String(error));
    await within(loop.closed, 'loop.closed');
    await assertCallsFail(loop, ClosedError);
  });
}

test('async calls that can never settle get NeverSettledError when their caller blocks on them', async (t) => {
  const loop = startLoop(t);
  const forever = loop.run(() => new Promise<never>(() => {}));
  const unrefd = loop.run(() => new Promise<void>((resolve) => setTimeout(resolve, 60_000).unref()));
  // Blocked in resultSync, this thread cannot send anything that would settle them.
  const error = thrown(() => forever.resultSync(), 'resultSync');
  assert.ok(error instanceof NeverSettledError, String(error));
  const other = await rejection(unrefd, 'the call waiting on an unref’d timer');
  assert.ok(other instanceof NeverSettledError, String(other));
  await within(Promise.all([forever.settled, unrefd.settled]), 'future.settled');
});

test('an awaited async call that can never settle gets NeverSettledError once its thread has nothing else to do', () => {
  const run = child('never-settled-await');
  assert.deepEqual(run.lines, ['NeverSettledError', 'done']);
  assert.equal(run.status, 0);
});

test('a call awaiting Atomics.waitAsync that its caller notifies, and then has nothing left to do, settles', () => {
  // The loop thread said it was idle before the notify: its caller asks it once more before it
  // gives up (before the fix: NeverSettledError, in 5 of 5 runs).
  for (const scenario of ['wait-async-woken-await', 'wait-async-woken-blocked']) {
    const run = child(scenario);
    assert.deepEqual(run.lines, ['woken', 'done'], scenario);
    assert.equal(run.status, 0, scenario);
  }
});

test('after async calls got NeverSettledError the LoopThread is closed', async (t) => {
  const loop = startLoop(t);
  const forever = loop.run(() => new Promise<never>(() => {}));
  assert.ok(thrown(() => forever.resultSync(), 'resultSync') instanceof NeverSettledError);
  await within(loop.closed, 'loop.closed');
  await assertCallsFail(loop, ClosedError);
});

test('a call made right after a NeverSettledError is refused with ClosedError, not run', async (t) => {
  // The loop thread announced that it is closing when it answered NeverSettledError: a call that
  // reaches it then must fail with ClosedError (and not run), however quickly it comes.
  for (let round = 0; round < 10; round++) {
    const loop = startLoop(t, { name: `${t.name} #${String(round)}` });
    for (let i = 0; i < 20; i++) loop.runSync((x: number) => x, i);
    const error = thrown(() => loop.runSync(() => new Promise<never>(() => {})));
    assert.ok(error instanceof NeverSettledError, String(error));
    const next = thrown(
      () =>
        loop.runSync(() => {
          (globalThis as Globals).neverHangRanAfterClose = true;
          return 'ran';
        }),
      `round ${String(round)}: the call after NeverSettledError`,
    );
    assert.ok(next instanceof ClosedError, `round ${String(round)}: ${String(next)}`);
    await within(loop.closed, 'loop.closed');
  }
});

// ---- 6. start-up failures --------------------------------------------------------------------

test('an invalid execArgv makes the constructor throw', () => {
  assert.throws(
    () => new LoopThread({ name: 'bad flag', execArgv: ['--no-such-flag'] }),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.equal((error as NodeJS.ErrnoException).code, 'ERR_WORKER_INVALID_EXEC_ARGV');
      assert.match(error.message, /--no-such-flag/);
      return true;
    },
  );
});

/** The caller was woken because the thread died, not because its startupTimeout (30 s) ran out. */
function assertSeenDying(error: WorkerCrashedError): void {
  assert.doesNotMatch(error.message, /did not start within/, 'the death went unseen until the startup timeout');
}

test('a --require preload that throws makes the first runSync throw WorkerCrashedError instead of hanging', async (t) => {
  const loop = startLoop(t, { execArgv: ['--require', fixtureSource('never-hang-throws-on-require.cjs')] });
  const error = thrown(() => loop.runSync(() => 1));
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assertSeenDying(error);
  await within(loop.closed, 'loop.closed');
  assert.ok(loop.exitError instanceof WorkerCrashedError);
  await assertCallsFail(loop, WorkerCrashedError);
});

test('a --require preload that throws rejects the first async call with WorkerCrashedError carrying its error', async (t) => {
  const loop = startLoop(t, { execArgv: ['--require', fixtureSource('never-hang-throws-on-require.cjs')] });
  const error = await rejection(loop.run(() => 1));
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assert.match(String((error.cause as Error | undefined)?.message), /require-boom/);
  await within(loop.closed, 'loop.closed');
});

test('a missing --require module makes the first runSync throw WorkerCrashedError', async (t) => {
  const loop = startLoop(t, { execArgv: ['--require', fixtureSource('never-hang-no-such-file.cjs')] });
  const error = thrown(() => loop.runSync(() => 1));
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assertSeenDying(error);
  await within(loop.closed, 'loop.closed');
});

// A thread stuck before it starts cannot be stopped from here if these go wrong: they run in a
// process of their own.
test('a thread that does not start within startupTimeout fails a blocked call with WorkerCrashedError', () => {
  const run = child('startup-sync');
  assert.match(run.lines[0] ?? '', /^WorkerCrashedError: .*did not start within 300 ms/);
});

test('a LoopThread whose thread never started does not keep the process alive after its startup timeout', () => {
  const run = child('startup-sync');
  assert.deepEqual(run.lines.slice(1), ['done']);
  assert.equal(run.status, 0);
});

test('terminate() stops a thread that never started', () => {
  const run = child('startup-terminate');
  assert.match(run.lines[0] ?? '', /^WorkerCrashedError: /);
  assert.deepEqual(run.lines.slice(1), ['terminated', 'done']);
  assert.equal(run.status, 0);
});

test('an async call to a thread that does not start within startupTimeout fails with WorkerCrashedError', () => {
  const run = child('startup-async');
  assert.match(run.lines[0] ?? '', /^WorkerCrashedError: .*did not start within 300 ms/);
});

test('a module that throws while loading makes importSync and import throw its error, and the loop goes on', async (t) => {
  const loop = startLoop(t);
  const url = fixtureURL('never-hang-throws-on-load.mjs');
  const error = thrown(() => loop.importSync(url), 'importSync');
  assert.ok(error instanceof Error);
  assert.ok(!(error instanceof LoopThreadError), String(error));
  assert.match(error.message, /module-boom/);
  const asyncError = await rejection(loop.import(url), 'import');
  assert.ok(asyncError instanceof Error);
  assert.match(asyncError.message, /module-boom/);
  assert.equal(
    loop.runSync((x: number) => x * 2, 21),
    42,
  );
});

// ---- 7. timeouts and signals cancel ------------------------------------------------------------

/**
 * The name of the abort reason of the call remote.slow() recorded under `key`, once its signal
 * aborted: a TimeoutError (after SETTLE_LIMIT_MS) if it never does.
 */
function abortReason(loop: LoopThread, remote: Syncified<Remote>, key: string): string {
  return loop.with({ timeout: SETTLE_LIMIT_MS }).runSync(remote.abortReasonOf, key);
}

/**
 * The same through an async call, for calls made with run(): the blocking and the async channel
 * are not ordered with each other, but each is ordered in itself.
 */
async function abortReasonAfterAsync(loop: LoopThread, remote: Syncified<Remote>, key: string): Promise<string> {
  return within(loop.with({ timeout: SETTLE_LIMIT_MS }).run(remote.abortReasonOf, key), `the abort reason of "${key}"`);
}

test('a per-call timeout on runSync throws TimeoutError and aborts the remote call’s signal', (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const error = thrown(() => loop.with({ timeout: 50 }).runSync(remote.slow, 'sync timeout', 60_000));
  assert.ok(error instanceof TimeoutError, String(error));
  assert.equal(error.name, 'TimeoutError');
  // The remote call's signal aborted, with a TimeoutError as its reason.
  assert.equal(abortReason(loop, remote, 'sync timeout'), 'TimeoutError');
  // The next call returns its own value.
  assert.equal(
    loop.runSync((x: number) => x * 2, 21),
    42,
  );
});

/** Makes a gate on the loop thread: gated calls block that thread until open() (no timing involved). */
async function gate(loop: LoopThread): Promise<{ open: () => void }> {
  const word = new Int32Array(new SharedArrayBuffer(4));
  await within(
    loop.run((sab: SharedArrayBuffer) => {
      (globalThis as Globals).neverHangGate = new Int32Array(sab);
    }, word.buffer),
    'setting up the gate',
  );
  return {
    open: () => {
      Atomics.store(word, 0, 1);
      Atomics.notify(word, 0);
    },
  };
}

/** Blocks the loop thread until the gate opens, then marks itself finished and returns `value`. */
const gated = (value: string): string => {
  const g = globalThis as Globals;
  Atomics.wait(g.neverHangGate as Int32Array, 0, 0, 30_000);
  g.neverHangLateFinished = true;
  return value;
};

test('the late reply to a timed-out runSync is discarded: the next call gets its own value', async (t) => {
  const loop = startLoop(t);
  const { open } = await gate(loop);
  // The loop thread is blocked until the gate opens, so this call cannot be answered in time.
  const error = thrown(() => loop.with({ timeout: 50 }).runSync(gated, 'late'));
  assert.ok(error instanceof TimeoutError, String(error));
  // Now it finishes and replies (it runs synchronously: the cancel cannot reach it first).
  open();
  const next = loop.runSync(() => ({
    own: 'mine',
    lateFinished: (globalThis as Globals).neverHangLateFinished === true,
  }));
  assert.deepEqual(next, { own: 'mine', lateFinished: true });
  assert.equal(
    loop.runSync((x: number) => x + 1, 1),
    2,
  );
});

test('a per-call timeout on run rejects with TimeoutError and aborts the remote call’s signal', async (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const future = loop.with({ timeout: 50 }).run(remote.slow, 'async timeout', 60_000);
  const error = await rejection(future);
  assert.ok(error instanceof TimeoutError, String(error));
  assert.equal(error.name, 'TimeoutError');
  assert.equal(await abortReasonAfterAsync(loop, remote, 'async timeout'), 'TimeoutError');
  // The remote call then stopped: its late reply settles the future's remote side, not its result.
  await within(future.settled, 'future.settled');
  assert.equal(future.state, 'finished');
  assert.ok((await rejection(future)) instanceof TimeoutError);
  assert.equal(
    await within(
      loop.run((x: number) => x * 2, 21),
      'the next call',
    ),
    42,
  );
});

test('the late reply to a timed-out run is discarded: the next call gets its own value', async (t) => {
  const loop = startLoop(t);
  const { open } = await gate(loop);
  const late = loop.with({ timeout: 50 }).run(gated, 'late');
  const error = await rejection(late);
  assert.ok(error instanceof TimeoutError, String(error));
  open();
  await within(late.settled, 'the late call finishing');
  assert.ok((await rejection(late)) instanceof TimeoutError);
  assert.deepEqual(
    await within(
      loop.run(() => ({ own: 'mine', lateFinished: (globalThis as Globals).neverHangLateFinished === true })),
      'the next call',
    ),
    { own: 'mine', lateFinished: true },
  );
});

test('aborting the signal given to with() cancels an async call: CancelledError here, its signal aborted there', async (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const controller = new AbortController();
  const future = loop.with({ signal: controller.signal }).run(remote.slow, 'signal', 60_000);
  const reason = new Error('stop');
  controller.abort(reason);
  const error = await rejection(future);
  assert.ok(error instanceof CancelledError, String(error));
  assert.equal(error.cause, reason);
  assert.equal(future.cancelled(), true);
  assert.equal(await abortReasonAfterAsync(loop, remote, 'signal'), 'CancelledError');
  await within(future.settled, 'future.settled');
  assert.equal(
    loop.runSync((x: number) => x * 2, 21),
    42,
  );
});

test('future.cancel() of a running call aborts its remote signal', async (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const future = loop.run(remote.slow, 'cancel', 60_000);
  assert.equal(future.cancel(), true);
  assert.equal(future.cancelled(), true);
  assert.ok((await rejection(future)) instanceof CancelledError);
  assert.equal(await abortReasonAfterAsync(loop, remote, 'cancel'), 'CancelledError');
  await within(future.settled, 'future.settled');
  assert.equal(future.cancel(), true, 'cancel() of a cancelled future returns true');
});

test('a signal aborted before the call fails runSync and run with CancelledError without running it', async (t) => {
  const loop = startLoop(t);
  const signal = AbortSignal.abort(new Error('too late'));
  const mark = (): number => {
    const g = globalThis as Globals;
    g.neverHangAbortedRuns = ((g.neverHangAbortedRuns as number | undefined) ?? 0) + 1;
    return 1;
  };
  const error = thrown(() => loop.with({ signal }).runSync(mark));
  assert.ok(error instanceof CancelledError, String(error));
  const asyncError = await rejection(loop.with({ signal }).run(mark));
  assert.ok(asyncError instanceof CancelledError, String(asyncError));
  assert.equal(
    loop.runSync(() => ((globalThis as Globals).neverHangAbortedRuns as number | undefined) ?? 0),
    0,
  );
});

// ---- 8. close racing with calls ------------------------------------------------------------------

/** A Future of any result type (Future<T> is invariant in T). */
type AnyFuture = PromiseLike<unknown> & Pick<Future<unknown>, 'done' | 'cancelled' | 'settled' | 'state'>;

interface RaceCall {
  i: number;
  kind: 'fast' | 'cooperative' | 'stubborn';
  future: AnyFuture;
}

/** Starts 30 async calls: fast ones, slow ones that stop when their signal aborts, slow ones that ignore it. */
function startRace(loop: LoopThread): RaceCall[] {
  const remote = loop.importSync<Remote>(remoteURL);
  const calls: RaceCall[] = [];
  for (let i = 0; i < 30; i++) {
    const kind = (['fast', 'cooperative', 'stubborn'] as const)[i % 3]!;
    const future: AnyFuture =
      kind === 'fast'
        ? loop.run((n: number) => ({ i: n }), i)
        : kind === 'cooperative'
          ? loop.run(remote.cooperative, i, 60_000)
          : loop.run(remote.stubborn, i, 60_000);
    calls.push({ i, kind, future });
  }
  return calls;
}

/**
 * Every call settled with its own value or ClosedError, as its kind allows. With `inFlight` (every
 * call had reached the loop thread before close began), exactly: the fast ones finished, the
 * cooperative ones stopped when their signal aborted, the stubborn ones were cut off.
 */
async function assertRaceOutcomes(calls: RaceCall[], inFlight: boolean): Promise<void> {
  const outcomes = await within(Promise.allSettled(calls.map((c) => c.future)), 'the futures');
  outcomes.forEach((outcome, k) => {
    const { i, kind } = calls[k]!;
    const label = `call ${String(i)} (${kind})`;
    const value = kind === 'fast' ? { i } : { i, stopped: 'ClosedError' };
    if (inFlight && kind !== 'stubborn') {
      assert.equal(outcome.status, 'fulfilled', `${label}: ${String((outcome as PromiseRejectedResult).reason)}`);
    }
    if (outcome.status === 'rejected') {
      assert.ok(outcome.reason instanceof ClosedError, `${label}: ${String(outcome.reason)}`);
      return;
    }
    assert.notEqual(kind, 'stubborn', `${label} ignores its signal: it cannot have finished`);
    assert.deepEqual(outcome.value, value, label);
  });
  await within(Promise.all(calls.map((c) => c.future.settled)), 'future.settled');
}

async function assertClosedForGood(loop: LoopThread): Promise<void> {
  await within(loop.closed, 'loop.closed');
  assert.equal(loop.exitError, undefined);
  await assertCallsFail(loop, ClosedError);
  // Idempotent: every way to close again returns before its timeout (there is nothing to wait for).
  const start = performance.now();
  loop.closeSync({ grace: CLOSE_TIMEOUT_MS });
  await within(
    Promise.all([loop.close({ grace: CLOSE_TIMEOUT_MS }), loop.close(), loop.terminate()]),
    'closing again',
    CLOSE_TIMEOUT_MS,
  );
  assert.ok(performance.now() - start < CLOSE_TIMEOUT_MS, 'closing again waited out its timeout');
  assert.equal(loop.exitError, undefined);
}

test('closeSync({ grace: 200 }) racing many async calls settles every one with its value or ClosedError', async (t) => {
  const loop = startLoop(t);
  const calls = startRace(loop);
  // The stubborn calls ignore their signals and take a minute: closeSync does not wait for them
  // past its timeout (assertRaceOutcomes checks that none of them finished).
  loop.closeSync({ grace: 200 });
  // No caller is left waiting once closeSync has returned.
  assert.deepEqual(
    calls.filter((c) => !c.future.done()).map((c) => c.i),
    [],
  );
  await assertRaceOutcomes(calls, false);
  await assertClosedForGood(loop);
});

test('close({ grace: 200 }) racing many async calls settles every one with its value or ClosedError', async (t) => {
  const loop = startLoop(t);
  const calls = startRace(loop);
  // Let the calls reach the loop thread first, so that some are in flight when close begins.
  await within(
    loop.run(() => undefined),
    'a call behind the others',
  );
  await within(loop.close({ grace: 200 }), 'close()');
  assert.deepEqual(
    calls.filter((c) => !c.future.done()).map((c) => c.i),
    [],
  );
  await assertRaceOutcomes(calls, true);
  await assertClosedForGood(loop);
});

test('concurrent close() calls all resolve once the thread has stopped', async (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const cooperative = loop.run(remote.cooperative, 0, 60_000);
  const closes = [loop.close({ grace: 10_000 }), loop.close(), loop.close({ grace: 1 })];
  loop.closeSync();
  await within(Promise.all(closes), 'the close() calls');
  assert.deepEqual(await within(cooperative, 'the cooperative call'), { i: 0, stopped: 'ClosedError' });
  await assertClosedForGood(loop);
});

test('closeSync() while a close() is under way blocks until the close is done', async (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const cooperative = loop.run(remote.cooperative, 0, 60_000);
  const stubborn = loop.run(remote.stubborn, 1, 60_000);
  await within(
    loop.run(() => undefined),
    'a call behind the others',
  );
  const closing = loop.close({ grace: 200 });
  loop.closeSync();
  // closeSync "closes and blocks until done": nothing may still be waiting when it returns.
  const pending = [cooperative, stubborn].filter((f) => !f.done()).length;
  await within(closing, 'close()');
  assert.equal(pending, 0, 'futures still pending after closeSync() returned');
});

test('closeSync() of an idle LoopThread returns without waiting out its timeout', (t) => {
  const loop = startLoop(t);
  assert.equal(
    loop.runSync((x: number) => x + 1, 1),
    2,
  );
  const start = performance.now();
  loop.closeSync({ grace: CLOSE_TIMEOUT_MS });
  const took = performance.now() - start;
  assert.ok(took < CLOSE_TIMEOUT_MS, `closeSync waited out its timeout (${String(Math.round(took))} ms)`);
});

test('close() returns once the calls in flight have finished, not after its timeout', async (t) => {
  const loop = startLoop(t);
  const remote = loop.importSync<Remote>(remoteURL);
  const cooperative = loop.run(remote.cooperative, 7, 60_000);
  await within(
    loop.run(() => undefined),
    'a call behind the cooperative one',
  );
  const start = performance.now();
  await within(loop.close({ grace: CLOSE_TIMEOUT_MS }), 'close()', CLOSE_TIMEOUT_MS + SETTLE_LIMIT_MS);
  const took = performance.now() - start;
  assert.ok(took < CLOSE_TIMEOUT_MS, `close waited out its timeout (${String(Math.round(took))} ms)`);
  assert.deepEqual(await within(cooperative, 'the cooperative call'), { i: 7, stopped: 'ClosedError' });
});

test('`using` closes the LoopThread at the end of its block (Symbol.dispose)', async (t) => {
  let escaped: LoopThread | undefined;
  let future: AnyFuture | undefined;
  {
    using loop = startLoop(t);
    escaped = loop;
    assert.equal(
      loop.runSync((x: number) => x + 1, 1),
      2,
    );
    future = loop.run(loop.importSync<Remote>(remoteURL).cooperative, 1, 60_000);
  }
  assert.ok(future !== undefined && escaped !== undefined);
  assert.equal(future.done(), true);
  // Closed before or after the call reached the loop thread: either way it is settled.
  const [outcome] = await within(Promise.allSettled([future]), 'the future');
  if (outcome?.status === 'fulfilled') assert.deepEqual(outcome.value, { i: 1, stopped: 'ClosedError' });
  else assert.ok(outcome?.reason instanceof ClosedError, String(outcome?.reason));
  await assertClosedForGood(escaped);
});

test('`await using` closes the LoopThread at the end of its block (Symbol.asyncDispose)', async (t) => {
  let escaped: LoopThread | undefined;
  let future: AnyFuture | undefined;
  {
    await using loop = startLoop(t);
    escaped = loop;
    future = loop.run(loop.importSync<Remote>(remoteURL).cooperative, 2, 60_000);
    await within(
      loop.run(() => undefined),
      'a call behind the cooperative one',
    );
  }
  assert.ok(future !== undefined && escaped !== undefined);
  assert.equal(future.done(), true);
  assert.deepEqual(await within(future, 'the future'), { i: 2, stopped: 'ClosedError' });
  await assertClosedForGood(escaped);
});

// ---- 9. generated sequences ------------------------------------------------------------------

test('generated sequences of calls, timeouts, cancels and a close: every future settles once with its own result or a typed error', async () => {
  await fc.assert(generatedSequences(started, 20), { numRuns: 25, includeErrorInReport: true });
});

// ---- nothing left running -----------------------------------------------------------------------

test('every LoopThread these tests started has stopped', async () => {
  assert.ok(started.length > 0);
  await within(Promise.all(started.map((loop) => loop.closed)), 'loop.closed of every LoopThread');
});
