// The same smoke checks on every runtime loopthread supports (Node 20-26, Bun, Deno), run from the
// packed tarball installed into a fresh project (scripts/runtime-smoke.sh). Prints one line per
// check and exits 1 if any failed. Where a runtime cannot do something, the check states what it
// does instead (README, "Runtimes"), so a change there shows up here.
import { Channel, LoopThread, Portal, ThreadPoolExecutor } from 'loopthread';

const runtime =
  typeof globalThis.Bun !== 'undefined' ? 'bun' : typeof globalThis.Deno !== 'undefined' ? 'deno' : 'node';
let failed = 0;

async function check(name, fn, skip) {
  if (skip) {
    console.log(`skip ${name}: ${skip}`);
    return;
  }
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error?.stack ?? String(error)}`);
  }
}

function expect(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

function errorOf(fn) {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('it did not throw');
}

async function rejectionOf(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('it did not reject');
}

/** Runs fn with a fresh LoopThread, closed afterwards (no `await using`: Node 20 lacks it). */
async function withLoop(fn) {
  const loop = new LoopThread();
  try {
    return await fn(loop);
  } finally {
    await loop.close();
  }
}

await check('runSync, importSync and an awaited run', () =>
  withLoop(async (loop) => {
    expect(
      loop.runSync(async (a, b) => a + b, 2, 3),
      5,
      'runSync',
    );
    const path = loop.importSync('node:path');
    expect(path.join('a', 'b'), 'a/b', 'importSync');
    expect(await loop.run(async () => 'x'.repeat(70_000)).then((s) => s.length), 70_000, 'run');
  }),
);

await check('a timeout cancels the call', () =>
  withLoop(async (loop) => {
    const error = errorOf(() =>
      loop.with({ timeout: 50 }).runSync(async () => {
        const { setTimeout } = await import('node:timers/promises');
        await setTimeout(60_000, undefined, { signal: (await import('loopthread')).currentSignal() });
      }),
    );
    expect(error.name, 'TimeoutError', 'error');
  }),
);

await check('process.exit on the loop thread wakes the blocked caller', async () => {
  const loop = new LoopThread();
  const error = errorOf(() => loop.runSync(() => process.exit(3)));
  expect(error.name, 'WorkerCrashedError', 'error');
  expect(error.exitCode, 3, 'exit code');
  await loop.closed;
});

await check('an uncaught error on the loop thread reaches the awaiting caller as cause', async () => {
  const loop = new LoopThread();
  const error = await rejectionOf(
    loop.run(() => {
      setTimeout(() => {
        throw new Error('boom');
      });
      return new Promise(() => {});
    }),
  );
  expect(error.name, 'WorkerCrashedError', 'error');
  expect(error.cause?.message, 'boom', 'cause');
  await loop.closed;
});

await check(
  'out of memory under resourceLimits wakes the blocked caller',
  async () => {
    const loop = new LoopThread({ resourceLimits: { maxOldGenerationSizeMb: 24 } });
    const error = errorOf(() =>
      loop.runSync(() => {
        const a = [];
        for (;;) a.push(new Array(100_000).fill(1));
      }),
    );
    expect(error.name, 'WorkerCrashedError', 'error');
    await loop.closed;
  },
  runtime === 'bun' && 'Bun does not apply resourceLimits (the thread would take all memory)',
);

await check('a call that can never settle', async () => {
  const loop = new LoopThread();
  const error = errorOf(() => loop.runSync(() => new Promise(() => {})));
  // Deno's workers emit no 'beforeExit': the loop thread ends instead, which the caller is told.
  expect(error.name, runtime === 'deno' ? 'WorkerCrashedError' : 'NeverSettledError', 'error');
  await loop.close();
});

await check('a Portal on the main thread, called from a LoopThread', async () => {
  const portal = Portal.open({ add: async (a, b) => a + b });
  const handle = portal.createHandle();
  await withLoop(async (loop) => {
    const sum = await loop.run(async (h) => {
      const { Portal: P } = await import('loopthread');
      const remote = P.connect(h);
      return remote.add(20, 22);
    }, handle);
    expect(sum, 42, 'sum');
  });
  await portal.close();
});

await check('a pool runs tasks and survives a crashing one', async () => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
  expect(await pool.submit((x) => x * 2, 21), 42, 'task');
  const error = await rejectionOf(pool.submit(() => process.exit(5)));
  expect(error.name, 'WorkerCrashedError', 'crash');
  expect(await pool.submit((x) => x + 1, 1), 2, 'after the crash');
  await pool.shutdown();
});

await check('a Channel between the main thread and a LoopThread', async () => {
  const channel = new Channel();
  await withLoop(async (loop) => {
    const done = loop.run(
      async (h) => {
        const { Channel: C } = await import('loopthread');
        const c = C.connect(h);
        for (let i = 0; i < 1000; i++) await c.put(i);
        c.close();
      },
      channel.createHandle ? channel.createHandle() : channel.handle,
    );
    let sum = 0;
    for await (const v of channel) sum += v;
    await done;
    expect(sum, 499_500, 'sum');
  });
});

console.log(failed === 0 ? `${runtime}: all smoke checks passed` : `${runtime}: ${failed} smoke check(s) failed`);
process.exit(failed === 0 ? 0 : 1);
