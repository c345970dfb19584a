/**
 * Generated sequences of calls, timeouts, cancels and aborts on one LoopThread, ended by
 * closeSync, close or terminate: every future settles once, with its own result or a typed error,
 * and no call runs twice. never-hang.test.ts runs a few; the soak runs many more, and longer.
 */
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import * as fc from 'fast-check';
import { CancelledError, ClosedError, LoopThread, TimeoutError, type Future } from 'loopthread';
import { rejectionWithin, thrown, within as withinMs } from './helpers.js';

type Remote = typeof import('./fixtures/never-hang-remote.mjs');
const remoteURL = new URL('./fixtures/never-hang-remote.mjs', pathToFileURL(__filename));

/** How long anything awaited here may stay pending before the run reports it as hung. */
const SETTLE_LIMIT_MS = 10_000;
const within = <T>(promise: PromiseLike<T>, what: string): Promise<T> => withinMs(promise, what, SETTLE_LIMIT_MS);
const rejection = (promise: PromiseLike<unknown>, what = 'the call'): Promise<unknown> =>
  rejectionWithin(promise, what, SETTLE_LIMIT_MS);

type Op =
  | { kind: 'sync'; ms: number; respect: boolean }
  | { kind: 'syncTimeout'; ms: number; timeout: number; respect: boolean }
  | { kind: 'async'; ms: number; respect: boolean }
  | { kind: 'asyncTimeout'; ms: number; timeout: number; respect: boolean }
  | { kind: 'asyncSignal'; ms: number; respect: boolean }
  | { kind: 'cancel'; pick: number }
  | { kind: 'abort'; pick: number }
  | { kind: 'wait'; pick: number }
  | { kind: 'turn' };

type Ending = 'closeSync' | 'close' | 'terminate';

const ms = fc.integer({ min: 0, max: 20 });
const callTimeout = fc.integer({ min: 1, max: 30 });
const pick = fc.nat({ max: 19 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('sync' as const), ms, respect: fc.boolean() }),
  fc.record({ kind: fc.constant('syncTimeout' as const), ms, timeout: callTimeout, respect: fc.boolean() }),
  fc.record({ kind: fc.constant('async' as const), ms, respect: fc.boolean() }),
  fc.record({ kind: fc.constant('asyncTimeout' as const), ms, timeout: callTimeout, respect: fc.boolean() }),
  fc.record({ kind: fc.constant('asyncSignal' as const), ms, respect: fc.boolean() }),
  fc.record({ kind: fc.constant('cancel' as const), pick }),
  fc.record({ kind: fc.constant('abort' as const), pick }),
  fc.record({ kind: fc.constant('wait' as const), pick }),
  fc.record({ kind: fc.constant('turn' as const) }),
);

interface AsyncCall {
  i: number;
  future: Future<{ i: number }>;
  timeout: boolean;
  controller: AbortController | undefined;
  /** cancel() or an abort took the future while it was not done: it must end cancelled. */
  mustBeCancelled: boolean;
  doneCallbacks: number;
  /** What resultSync gave, when an op waited on it. */
  waited?: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/** Runs one generated sequence on a LoopThread of its own, then ends it as `ending` says. */
async function runSequence(ops: Op[], ending: Ending, closeTimeout: number, started: LoopThread[]): Promise<void> {
  const loop = new LoopThread({ name: 'generated sequence' });
  started.push(loop);
  try {
    const remote = loop.importSync<Remote>(remoteURL);
    const calls: AsyncCall[] = [];
    const syncValues = new Set<number>();
    let next = 0;
    for (const op of ops) {
      const i = next++;
      switch (op.kind) {
        case 'sync': {
          assert.deepEqual(loop.runSync(remote.echo, i, op.ms, op.respect), { i }, `sync call ${String(i)}`);
          syncValues.add(i);
          break;
        }
        case 'syncTimeout': {
          try {
            assert.deepEqual(
              loop.with({ timeout: op.timeout }).runSync(remote.echo, i, op.ms, op.respect),
              { i },
              `sync call ${String(i)}`,
            );
            syncValues.add(i);
          } catch (error) {
            assert.ok(error instanceof TimeoutError, `sync call ${String(i)}: ${String(error)}`);
          }
          break;
        }
        case 'async':
        case 'asyncTimeout':
        case 'asyncSignal': {
          const controller = op.kind === 'asyncSignal' ? new AbortController() : undefined;
          const options = op.kind === 'asyncTimeout' ? { timeout: op.timeout } : { signal: controller?.signal };
          const future = loop.with(options).run(remote.echo, i, op.ms, op.respect);
          const call: AsyncCall = {
            i,
            future,
            timeout: op.kind === 'asyncTimeout',
            controller,
            mustBeCancelled: false,
            doneCallbacks: 0,
          };
          future.addDoneCallback(() => {
            call.doneCallbacks++;
          });
          calls.push(call);
          break;
        }
        case 'cancel': {
          const call = calls[op.pick % Math.max(1, calls.length)];
          if (call === undefined) break;
          const wasDone = call.future.done();
          const cancelled = call.future.cancel();
          if (!wasDone) {
            assert.equal(cancelled, true, `cancel() of pending call ${String(call.i)}`);
            call.mustBeCancelled = true;
          } else {
            assert.equal(cancelled, call.future.cancelled(), `cancel() of done call ${String(call.i)}`);
          }
          break;
        }
        case 'abort': {
          const call = calls[op.pick % Math.max(1, calls.length)];
          if (call?.controller === undefined) break;
          if (!call.future.done()) call.mustBeCancelled = true;
          call.controller.abort();
          break;
        }
        case 'wait': {
          const call = calls[op.pick % Math.max(1, calls.length)];
          if (call === undefined) break;
          // A resultSync that timed out would not match the future's outcome, checked below.
          try {
            call.waited = { ok: true, value: call.future.resultSync({ timeout: SETTLE_LIMIT_MS }) };
          } catch (error) {
            call.waited = { ok: false, error };
          }
          assert.equal(call.future.done(), true, `call ${String(call.i)} after resultSync`);
          break;
        }
        case 'turn':
          await new Promise((resolve) => setImmediate(resolve));
          break;
      }
    }

    // No call ran twice; every sync call that returned a value ran once.
    const runs = new Map(loop.runSync(remote.echoRuns));
    for (const [i, count] of runs) assert.ok(count <= 1, `call ${String(i)} ran ${String(count)} times`);
    for (const i of syncValues) assert.equal(runs.get(i), 1, `sync call ${String(i)} returned without running`);

    if (ending === 'closeSync') loop.closeSync({ grace: closeTimeout });
    else if (ending === 'close') await within(loop.close({ grace: closeTimeout }), 'close()');
    else await within(loop.terminate(), 'terminate()');
    // Once closing has returned, no future is still waiting.
    assert.deepEqual(
      calls.filter((c) => !c.future.done()).map((c) => c.i),
      [],
      `futures still pending after ${ending}`,
    );

    const outcomes = await within(Promise.allSettled(calls.map((c) => c.future)), 'the futures');
    await within(Promise.all(calls.map((c) => c.future.settled)), 'future.settled');
    await new Promise((resolve) => setImmediate(resolve));
    outcomes.forEach((outcome, k) => {
      const call = calls[k]!;
      const label = `async call ${String(call.i)}`;
      assert.equal(call.doneCallbacks, 1, `${label}: done callbacks run`);
      if (call.mustBeCancelled) {
        assert.equal(call.future.cancelled(), true, `${label} must be cancelled`);
        assert.equal(outcome.status, 'rejected', label);
      }
      if (outcome.status === 'fulfilled') {
        assert.deepEqual(outcome.value, { i: call.i }, `${label} got another call's result`);
        assert.equal(call.future.state, 'finished', label);
      } else {
        const error: unknown = outcome.reason;
        const allowed =
          error instanceof ClosedError ||
          (error instanceof CancelledError && call.future.cancelled()) ||
          (error instanceof TimeoutError && call.timeout);
        assert.ok(allowed, `${label}: ${String(error)}`);
        assert.equal(call.future.cancelled(), error instanceof CancelledError, label);
      }
      // resultSync gave the very outcome the future ended with.
      if (call.waited !== undefined) {
        if (call.waited.ok) {
          assert.equal(outcome.status, 'fulfilled', label);
          assert.deepEqual(call.waited.value, { i: call.i }, label);
        } else {
          assert.equal(outcome.status, 'rejected', label);
          assert.equal(call.waited.error, outcome.reason, label);
        }
      }
    });
    await within(loop.closed, 'loop.closed');
    assert.ok(thrown(() => loop.runSync(() => 1)) instanceof ClosedError);
    assert.ok((await rejection(loop.run(() => 1))) instanceof ClosedError);
  } finally {
    await within(loop.terminate(), 'terminate()');
  }
}

/**
 * The property: sequences of up to `maxLength` operations. Every LoopThread it starts is added to
 * `started` (and terminated when its sequence ends).
 */
export function generatedSequences(started: LoopThread[], maxLength: number) {
  return fc.asyncProperty(
    fc.array(opArb, { maxLength }),
    fc.constantFrom<Ending>('closeSync', 'close', 'terminate'),
    fc.constantFrom(0, 20, 100),
    (ops, ending, closeTimeout) => runSequence(ops, ending, closeTimeout, started),
  );
}
