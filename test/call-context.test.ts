/**
 * A call finds its own signal after any await (currentSignal), however its code came to the
 * thread. Where AsyncLocalStorage costs every promise a hook (Node 20 and 22), calls run in their
 * context only once the thread's code may ask (src/call/context.ts): these are the ways it may,
 * each on a fresh thread whose first call asks only after an await. Each call waits for its
 * signal to abort: finding the never-aborting signal instead would leave it pending (the watchdog).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it, type TestContext } from 'node:test';
import { LoopThread, TimeoutError, type Future } from '../src/index.js';
import { rejectionWithin, within } from './helpers.js';

interface LateSignal {
  abortAfterAwait: () => Promise<void>;
  reason: () => string | undefined;
}

const lateSignal = new URL('./fixtures/late-signal.mjs', pathToFileURL(__filename));
/** loopthread's ES module entry, as user code imports it. */
const esmEntry = pathToFileURL(join(__dirname, '..', 'src', 'esm.mjs')).href;
/** Enough for a loaded machine; only a call that never sees its signal abort waits this long. */
const WATCHDOG_MS = 30_000;

function freshLoop(t: TestContext): LoopThread {
  const loop = new LoopThread({ name: 'contexts' });
  t.after(() => loop.close());
  return loop;
}

/** The call failed with TimeoutError, and ended: it saw its signal abort (else it would still be pending). */
async function timedOutAndSeen<T>(call: Future<T>): Promise<void> {
  assert.ok((await rejectionWithin(call, 'the call', WATCHDOG_MS)) instanceof TimeoutError);
  await within(call.settled, 'the call seeing its signal abort', WATCHDOG_MS);
}

/** The name of the reason the inline calls below recorded. */
const recorded = (): unknown => (globalThis as { reason?: unknown }).reason;

describe('currentSignal() after an await, on the first call of a fresh thread', () => {
  it('in a module that imports loopthread', async (t) => {
    const loop = freshLoop(t);
    const m = loop.importSync<LateSignal>(lateSignal);
    const call = loop.with({ timeout: 20 }).run(m.abortAfterAwait);
    await timedOutAndSeen(call);
    assert.equal(await loop.run(m.reason), 'TimeoutError');
  });

  it('in an inline function that imports loopthread after the await (its source names it)', async (t) => {
    const loop = freshLoop(t);
    const call = loop.with({ timeout: 20 }).run(async (entry: string) => {
      const alive = setInterval(() => undefined, 60_000);
      try {
        await new Promise((resolve) => setImmediate(resolve));
        const { currentSignal } = (await import(entry)) as typeof import('../src/index.js');
        const signal = currentSignal();
        if (!signal.aborted)
          await new Promise((resolve) => {
            signal.addEventListener('abort', resolve, { once: true });
          });
        (globalThis as { reason?: unknown }).reason = (signal.reason as Error).name;
      } finally {
        clearInterval(alive);
      }
    }, esmEntry);
    await timedOutAndSeen(call);
    assert.equal(await loop.run(recorded), 'TimeoutError');
  });

  it('in a call that loads loopthread before its first await (its source names nothing)', async (t) => {
    const loop = freshLoop(t);
    // The package and the function are named by arguments, so only loading the entry can tell.
    const call = loop.with({ timeout: 20 }).run(
      async (file: string, pkg: string, ask: string) => {
        const { createRequire } = process.getBuiltinModule('node:module');
        const api = createRequire(file)(pkg) as Record<string, () => AbortSignal>;
        const alive = setInterval(() => undefined, 60_000);
        try {
          await new Promise((resolve) => setImmediate(resolve));
          const signal = api[ask]!();
          if (!signal.aborted)
            await new Promise((resolve) => {
              signal.addEventListener('abort', resolve, { once: true });
            });
          (globalThis as { reason?: unknown }).reason = (signal.reason as Error).name;
        } finally {
          clearInterval(alive);
        }
      },
      __filename,
      ['loop', 'thread'].join(''),
      ['current', 'Signal'].join(''),
    );
    await timedOutAndSeen(call);
    assert.equal(await loop.run(recorded), 'TimeoutError');
  });
});
