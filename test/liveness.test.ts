/**
 * Liveness from facts (README "Never hang"): whether a loop thread is starting, running or gone is
 * decided from what the thread writes and from its exit, never from a time guess; a call's
 * timeout is its own; a blocked caller learns why the thread died as much as an awaiting one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  LoopThread,
  ThreadPoolExecutor,
  WorkerCrashedError,
  type LoopThreadHandle,
  type LoopThreadOptions,
} from 'loopthread';
import { rejectionWithin, thrown, within } from './helpers.js';

/** A watchdog for what must settle: it reports a hang, it never times a machine. */
const SETTLE_LIMIT_MS = 60_000;
const entry = require.resolve('loopthread');
/** .cjs fixtures are not compiled: they are used from the source tree. */
const fixture = (name: string): string => join(__dirname, '..', '..', 'test', 'fixtures', name);

function startLoop(t: TestContext, options: LoopThreadOptions = {}): LoopThread {
  const loop = new LoopThread({ name: t.name, ...options });
  t.after(async () => {
    await within(loop.terminate(), 'terminate()', SETTLE_LIMIT_MS);
  });
  return loop;
}

/** Runs `node file ...args`; resolves with its stdout once it exits with code 0. */
function runNode(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    // 'close', not 'exit': a child's output may still be unread when 'exit' comes.
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${file} exited with ${String(code ?? signal)}: ${err}`));
    });
  });
}

// ---- start-up ------------------------------------------------------------------------------

test('8 processes starting 8 LoopThreads each at once on 2 cores: every first call is answered, no false crash', async () => {
  const runs = Array.from({ length: 8 }, () => runNode(fixture('liveness-startup.cjs'), [entry]));
  const outputs = await within(Promise.all(runs), '8 processes', SETTLE_LIMIT_MS * 2);
  const expected = [0, 2, 4, 6, 8, 10, 12, 14];
  for (const output of outputs) assert.deepEqual(JSON.parse(output), expected);
});

test("a call's timeout does not count the thread's start-up: a blocking call on a slow-starting thread succeeds", async (t) => {
  const env = { ...process.env, LIVENESS_START_DELAY_MS: '1000' };
  const slow: LoopThreadOptions = { timeout: 300, env, execArgv: ['--require', fixture('liveness-slow-start.cjs')] };
  // Both threads start at once; the async call is made first so that both wait for a start-up.
  const awaited = startLoop(t, slow);
  const future = awaited.run((n: number) => n + 1, 1);
  const blocking = startLoop(t, slow);
  assert.equal(
    blocking.runSync((n: number) => n + 1, 41),
    42,
  );
  assert.equal(await within(future, 'the awaited call', SETTLE_LIMIT_MS), 2);
});

test('a thread that never starts still fails its calls after startupTimeout, blocked and awaited', async (t) => {
  const env = { ...process.env, LIVENESS_START_DELAY_MS: '60000' };
  const options: LoopThreadOptions = {
    startupTimeout: 200,
    env,
    execArgv: ['--require', fixture('liveness-slow-start.cjs')],
  };
  const awaited = startLoop(t, options);
  const pending = awaited.run(() => 1);
  const blocking = startLoop(t, options);
  const error = thrown(() => blocking.runSync(() => 1));
  assert.ok(error instanceof WorkerCrashedError, String(error));
  assert.match(error.message, /did not start within 200 ms/);
  const asyncError = await rejectionWithin(pending, 'the awaited call', SETTLE_LIMIT_MS);
  assert.ok(asyncError instanceof WorkerCrashedError, String(asyncError));
  assert.match(asyncError.message, /did not start within 200 ms/);
});

// ---- a blocked caller knows as much as an awaiting one -----------------------------------------

interface Death {
  name: string;
  exitCode: number | undefined;
  causeName: string | undefined;
  causeMessage: string | undefined;
  causeCode: unknown;
}

function death(error: unknown): Death {
  assert.ok(error instanceof WorkerCrashedError, String(error));
  const cause = error.cause as (Error & { code?: unknown }) | undefined;
  return {
    name: error.name,
    exitCode: error.exitCode,
    causeName: cause?.name,
    causeMessage: cause?.message,
    causeCode: cause?.code,
  };
}

/** Kills a thread in one of the ways a thread dies, from inside a call. */
type Killer = () => Promise<never>;

const ways: [string, LoopThreadOptions, Killer, Partial<Death>][] = [
  [
    'an uncaught error',
    {},
    () =>
      new Promise<never>(() => {
        setImmediate(() => {
          throw Object.assign(new RangeError('uncaught on the loop thread'), { code: 'E_LIVENESS' });
        });
      }),
    { exitCode: 1, causeName: 'RangeError', causeMessage: 'uncaught on the loop thread', causeCode: 'E_LIVENESS' },
  ],
  [
    'process.exit(7)',
    {},
    () =>
      new Promise<never>(() => {
        setImmediate(() => process.exit(7));
      }),
    { exitCode: 7, causeName: undefined },
  ],
  [
    'running out of memory',
    { resourceLimits: { maxOldGenerationSizeMb: 16 } },
    () => {
      const hoard: number[][] = [];
      for (;;) hoard.push(new Array<number>(1000).fill(Math.random()));
    },
    { exitCode: 1, causeCode: 'ERR_WORKER_OUT_OF_MEMORY' },
  ],
];

for (const [how, options, kill, expected] of ways) {
  test(`${how}: a blocked caller gets the same cause and exit code as an awaiting one`, async (t) => {
    const blockedLoop = startLoop(t, options);
    const awaitedLoop = startLoop(t, options);
    const blocked = death(thrown(() => blockedLoop.runSync(kill)));
    const awaited = death(await rejectionWithin(awaitedLoop.run(kill), 'the awaited call', SETTLE_LIMIT_MS));
    assert.deepEqual(blocked, awaited);
    assert.deepEqual({ ...blocked, ...expected }, blocked);
  });
}

test('a --require preload that throws: the blocked caller gets its error as cause, as the awaiting one does', async (t) => {
  const execArgv = ['--require', fixture('never-hang-throws-on-require.cjs')];
  const blocked = death(thrown(() => startLoop(t, { execArgv }).runSync(() => 1)));
  const awaited = death(
    await rejectionWithin(
      startLoop(t, { execArgv }).run(() => 1),
      'run',
      SETTLE_LIMIT_MS,
    ),
  );
  assert.deepEqual(blocked, awaited);
  assert.equal(blocked.exitCode, 1);
  assert.match(String(blocked.causeMessage), /require-boom/);
});

// ---- connections from other threads --------------------------------------------------------

/** Runs `source` (an async function body) in a worker with `handle`; resolves with what it returns. */
async function inWorker(source: string, handle: LoopThreadHandle): Promise<unknown> {
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const { LoopThread } = require(workerData.entry);
     const describe = (e) => ({ name: e.name, exitCode: e.exitCode, cause: e.cause && e.cause.message });
     (async () => { ${source} })().then((v) => parentPort.postMessage(v));`,
    { eval: true, workerData: { handle, entry }, transferList: [handle.port] },
  );
  try {
    const [message] = (await within(once(worker, 'message'), 'the worker', SETTLE_LIMIT_MS)) as [unknown];
    return message;
  } finally {
    await worker.terminate();
  }
}

for (const kind of ['blocked', 'awaiting'] as const) {
  test(`${kind === 'blocked' ? 'a blocked' : 'an awaiting'} caller on a connection gets the loop thread's uncaught error as cause and its exit code`, async (t) => {
    const loop = startLoop(t);
    const call =
      kind === 'blocked'
        ? `try { loop.runSync(die); return 'returned'; } catch (e) { return describe(e); }`
        : `return loop.run(die).then(() => 'returned', describe);`;
    const outcome = await inWorker(
      `const loop = LoopThread.connect(workerData.handle);
       const die = () => new Promise(() => { setImmediate(() => { throw new Error('the loop thread dies'); }); });
       ${call}`,
      loop.createHandle(),
    );
    assert.deepEqual(outcome, { name: 'WorkerCrashedError', exitCode: 1, cause: 'the loop thread dies' });
  });
}

test(
  'without a native worker handle (Bun, Deno) a thread that ends is seen through the OS thread id it wrote',
  {
    skip: process.platform !== 'linux' && 'the OS thread fallback reads /proc (Linux)',
  },
  async () => {
    const { ThreadLiveness } = await import('../src/shm/thread-liveness.js');
    const word = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
     const { ownOsThreadId } = require(workerData.osThread);
     Atomics.store(workerData.word, 0, ownOsThreadId());
     parentPort.postMessage('ran');
     parentPort.once('message', () => process.exit(0));`,
      { eval: true, workerData: { word, osThread: join(__dirname, '../src/shm/os-thread.js') } },
    );
    await once(worker, 'message');
    // No native handle, as on those runtimes.
    const probe = new ThreadLiveness(undefined, () => Atomics.load(word, 0));
    assert.ok(Atomics.load(word, 0) > 0, 'the thread found its OS thread id');
    assert.equal(probe.canProbe, true);
    assert.equal(probe.stopped(), false, 'a running thread was reported stopped');
    const exited = once(worker, 'exit');
    worker.postMessage('end');
    await exited;
    // Node joins the thread before it emits 'exit': its /proc entry is gone by now.
    assert.equal(probe.stopped(), true, 'an ended thread was not seen');
  },
);

test('a thread that has not written its fact yet is never reported stopped', () => {
  return import('../src/shm/thread-liveness.js').then(({ ThreadLiveness }) => {
    const probe = new ThreadLiveness(undefined, () => 0);
    assert.equal(probe.stopped(), false);
  });
});

test('an answer published just before the other side ended is read, not lost to the end it announced', async () => {
  const { waitForChange } = await import('../src/shm/wait.js');
  const words = new Int32Array(new SharedArrayBuffer(8));
  let checks = 0;
  // The other side answers and dies between the waiter's look at the word and its liveness check.
  const checkAlive = (): number => {
    checks++;
    Atomics.store(words, 0, 1);
    throw new Error('the other side has ended');
  };
  assert.notEqual(waitForChange(words, 0, 0, Infinity, checkAlive), 0, 'the wait did not return the answer');
  assert.equal(checks, 1);
  // With nothing published, the end is what the waiter hears.
  assert.throws(
    () =>
      waitForChange(words, 0, 1, Infinity, () => {
        throw new Error('the other side has ended');
      }),
    /has ended/,
  );
});

test('a thread that throws a value that is not an Error: blocked and awaiting callers, and pool tasks, are told what it threw', async () => {
  // Inline functions travel as source: each throws its own literal.
  const blockedOn = new LoopThread();
  const blocked = thrown(() =>
    blockedOn.runSync(
      () =>
        new Promise(() => {
          setImmediate(() => {
            throw 42; // eslint-disable-line @typescript-eslint/only-throw-error
          });
        }),
    ),
  );
  assert.ok(blocked instanceof WorkerCrashedError);
  assert.match(blocked.message, /stopped unexpectedly: it threw 42$/);
  assert.equal(blocked.cause, 42);
  const awaitedOn = new LoopThread();
  const awaited = await awaitedOn
    .run(
      () =>
        new Promise(() => {
          setImmediate(() => {
            throw { code: 7 }; // eslint-disable-line @typescript-eslint/only-throw-error
          });
        }),
    )
    .then(
      () => assert.fail('the call succeeded'),
      (error: unknown) => error,
    );
  assert.ok(awaited instanceof WorkerCrashedError);
  assert.match(awaited.message, /stopped unexpectedly: it threw \{ code: 7 \}$/);
  await using pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  const task = await pool
    .submit(
      () =>
        new Promise(() => {
          setImmediate(() => {
            throw 42; // eslint-disable-line @typescript-eslint/only-throw-error
          });
        }),
    )
    .then(
      () => assert.fail('the task succeeded'),
      (error: unknown) => error,
    );
  assert.ok(task instanceof WorkerCrashedError);
  assert.match(task.message, /stopped unexpectedly: it threw 42$/);
});
