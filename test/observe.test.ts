/**
 * Observability (issue 14, point 5): the diagnostics channels loopthread publishes on (calls,
 * threads, pool tasks), stats() on LoopThread, ThreadPoolExecutor and Channel, and the
 * LOOPTHREAD_DEBUG logger. Every thread and pool a test starts is closed by the test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  CancelledError,
  Channel,
  LoopThread,
  ThreadPoolExecutor,
  TimeoutError,
  WorkerCrashedError,
  diagnosticsChannels,
  type CallMessage,
  type TaskMessage,
  type ThreadMessage,
} from 'loopthread';
import { rejectionWithin, thrown, within } from './helpers.js';

const WATCHDOG = 30_000;
const entry = require.resolve('loopthread');

/** Collects what `names` publish while `body` runs, as [name, message] pairs in order. */
async function recording<T>(names: string[], body: () => Promise<T> | T): Promise<[T, [string, unknown][]]> {
  const seen: [string, unknown][] = [];
  const listeners = names.map((name) => {
    const listener = (message: unknown): void => {
      seen.push([name, message]);
    };
    diagnostics.subscribe(name, listener);
    return [name, listener] as const;
  });
  try {
    return [await body(), seen];
  } finally {
    for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener);
  }
}

const { callStart, callEnd, callError, threadStart, threadStop, threadCrash, taskQueued, taskStarted, taskDone } =
  diagnosticsChannels;

test('the channel names are the documented ones', () => {
  assert.deepEqual(diagnosticsChannels, {
    callStart: 'loopthread:call:start',
    callEnd: 'loopthread:call:end',
    callError: 'loopthread:call:error',
    threadStart: 'loopthread:thread:start',
    threadStop: 'loopthread:thread:stop',
    threadCrash: 'loopthread:thread:crash',
    taskQueued: 'loopthread:pool:task:queued',
    taskStarted: 'loopthread:pool:task:started',
    taskDone: 'loopthread:pool:task:done',
  });
});

test('a blocking and an async call publish start and end, one message each, with its fields', async () => {
  await using loop = new LoopThread({ name: 'observed' });
  loop.runSync(() => 0); // started
  const [, seen] = await recording([callStart, callEnd, callError], async () => {
    assert.equal(
      loop.runSync((a: number) => a + 1, 1),
      2,
    );
    assert.equal(await loop.run(() => 'x'), 'x');
  });
  assert.deepEqual(
    seen.map(([name]) => name),
    [callStart, callEnd, callStart, callEnd],
  );
  const [sync, async] = [seen[0]?.[1], seen[2]?.[1]] as CallMessage[];
  assert.equal(seen[1]?.[1], sync, 'start and end share one message');
  assert.equal(seen[3]?.[1], async);
  for (const [m, blocking] of [
    [sync, true],
    [async, false],
  ] as const) {
    assert.equal(m?.target, 'LoopThread "observed"');
    assert.equal(m?.threadId, loop.threadId);
    assert.equal(m?.blocking, blocking);
    assert.equal(typeof m?.id, 'number');
    assert.ok(typeof m?.duration === 'number' && m.duration >= 0);
    assert.equal('error' in (m ?? {}), false);
  }
  assert.notEqual(sync?.id, async?.id);
});

test('a call that throws publishes error with what it threw', async () => {
  await using loop = new LoopThread();
  const [, seen] = await recording([callStart, callEnd, callError], async () => {
    thrown(() =>
      loop.runSync(() => {
        throw new RangeError('sync boom');
      }),
    );
    await rejectionWithin(
      loop.run(() => Promise.reject(new TypeError('async boom'))),
      'the failing call',
      WATCHDOG,
    );
    await rejectionWithin(
      loop.with({ timeout: 1 }).run(() => new Promise(() => undefined)),
      'the call that times out',
      WATCHDOG,
    );
  });
  assert.deepEqual(
    seen.map(([name]) => name),
    [callStart, callError, callStart, callError, callStart, callError],
  );
  const errors = seen.filter(([name]) => name === callError).map(([, m]) => (m as CallMessage).error);
  assert.ok(errors[0] instanceof RangeError && errors[0].message === 'sync boom');
  assert.ok(errors[1] instanceof TypeError && errors[1].message === 'async boom');
  assert.ok(errors[2] instanceof TimeoutError);
});

test('a LoopThread that exits unexpectedly publishes start, crash and stop', async () => {
  const [, seen] = await recording([threadStart, threadCrash, threadStop], async () => {
    const loop = new LoopThread({ name: 'doomed' });
    const error = await rejectionWithin(
      loop.run(() => {
        process.exit(7);
      }),
      'the call that exits',
      WATCHDOG,
    );
    assert.ok(error instanceof WorkerCrashedError);
    await within(loop.closed, 'the thread to stop', WATCHDOG);
    return loop;
  });
  const mine = seen.filter(([, m]) => (m as ThreadMessage).name === 'doomed');
  assert.deepEqual(
    mine.map(([name]) => name),
    [threadStart, threadCrash, threadStop],
  );
  const [start, crash, stop] = mine.map(([, m]) => m as ThreadMessage);
  assert.equal(start?.kind, 'loopthread');
  assert.ok((start?.threadId ?? 0) > 0);
  assert.equal(crash?.threadId, start?.threadId);
  assert.ok(crash?.error instanceof WorkerCrashedError);
  assert.equal(stop?.exitCode, 7);
  assert.equal(stop?.threadId, start?.threadId);
});

test('a clean close publishes stop without crash', async () => {
  const [, seen] = await recording([threadStart, threadCrash, threadStop], async () => {
    const loop = new LoopThread({ name: 'tidy' });
    loop.runSync(() => 0);
    await loop.close();
  });
  assert.deepEqual(
    seen.filter(([, m]) => (m as ThreadMessage).name === 'tidy').map(([name]) => name),
    [threadStart, threadStop],
  );
});

test('pool tasks publish queued, started and done; a crashed worker publishes crash', async () => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1, name: 'observed pool' });
  try {
    const [, seen] = await recording(
      [taskQueued, taskStarted, taskDone, threadStart, threadCrash, threadStop],
      async () => {
        assert.equal(await pool.submit((a: number) => a * 2, 21), 42);
        await rejectionWithin(
          pool.submit(() => {
            throw new Error('task boom');
          }),
          'the failing task',
          WATCHDOG,
        );
        await rejectionWithin(
          pool.submit(() => {
            process.exit(3);
          }),
          'the task whose worker exits',
          WATCHDOG,
        );
        await pool.close();
      },
    );
    const tasks = seen.filter(([name]) => name.startsWith('loopthread:pool:'));
    assert.deepEqual(
      tasks.map(([name, m]) => `${name} ${String((m as TaskMessage).id)}`),
      [1, 2, 3].flatMap((id) => [`${taskQueued} ${id}`, `${taskStarted} ${id}`, `${taskDone} ${id}`]),
    );
    const done = tasks.filter(([name]) => name === taskDone).map(([, m]) => m as TaskMessage);
    const workers = seen.filter(([name]) => name === threadStart).map(([, m]) => (m as ThreadMessage).threadId);
    assert.equal(done[0]?.pool, 'observed pool');
    assert.equal(done[0]?.status, 'ok');
    assert.ok(typeof done[0]?.runTime === 'number' && done[0].runTime >= 0);
    assert.ok(typeof done[0]?.waitTime === 'number' && done[0].waitTime >= 0);
    assert.equal(done[0]?.threadId, workers[0]);
    assert.equal(done[1]?.status, 'error');
    assert.equal((done[1]?.error as Error).message, 'task boom');
    assert.equal(done[2]?.status, 'error');
    assert.ok(done[2]?.error instanceof WorkerCrashedError);
    const crashes = seen.filter(([name]) => name === threadCrash).map(([, m]) => m as ThreadMessage);
    assert.equal(crashes.length, 1);
    assert.equal(crashes[0]?.kind, 'pool-worker');
    assert.equal(crashes[0]?.threadId, workers[0]);
    // Every worker started also stopped (the crashed one, and its replacement at close).
    const stopped = seen.filter(([name]) => name === threadStop).map(([, m]) => (m as ThreadMessage).threadId);
    assert.deepEqual([...stopped].sort(), [...workers].sort());
  } finally {
    await pool.terminate();
  }
});

test('LoopThread.stats() counts calls, errors, calls in flight and how blocking waits ended', async () => {
  await using loop = new LoopThread();
  loop.runSync(() => 0);
  // Unobserved, calls are counted but not timed: timing starts with the first stats().
  const first = loop.stats();
  assert.deepEqual([first.calls, first.inFlight, first.errors, first.time.count], [1, 0, 0, 0]);
  for (let i = 0; i < 5; i++) loop.runSync((n: number) => n, i);
  thrown(() =>
    loop.runSync(() => {
      throw new Error('x');
    }),
  );
  const pending = loop.run(() => new Promise((resolve) => setTimeout(resolve, 10)));
  const during = loop.stats();
  assert.equal(during.calls, 8);
  assert.equal(during.inFlight, 1);
  assert.equal(during.errors, 1);
  assert.equal(during.spins + during.sleeps, 7, 'each blocking call waited once');
  assert.equal(during.time.count, 6);
  assert.ok(during.time.p50 > 0 && during.time.p50 <= during.time.p99 && during.time.p99 <= during.time.max);
  await pending;
  const after = loop.stats();
  assert.equal(after.inFlight, 0);
  assert.equal(after.time.count, 7);
});

test('ThreadPoolExecutor.stats() counts tasks by outcome and shows the queue', async () => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  try {
    assert.equal(pool.stats().submitted, 0);
    const gate = new SharedArrayBuffer(4);
    // The first task holds the only worker until the gate opens: the others wait meanwhile.
    const blocker = pool.submit((sab: SharedArrayBuffer) => {
      Atomics.wait(new Int32Array(sab), 0, 0);
    }, gate);
    const fails = pool.submit(() => {
      throw new Error('no');
    });
    const dropped = pool.submit(() => 1);
    const controller = new AbortController();
    const cancelled = pool.with({ signal: controller.signal }).submit(() => 2);
    const during = pool.stats();
    assert.equal(during.submitted, 4);
    assert.equal(during.queued + during.running, 4);
    assert.equal(during.workers, 1);
    controller.abort();
    assert.ok((await rejectionWithin(cancelled, 'the cancelled task', WATCHDOG)) instanceof CancelledError);
    Atomics.store(new Int32Array(gate), 0, 1);
    Atomics.notify(new Int32Array(gate), 0);
    await blocker;
    await rejectionWithin(fails, 'the failing task', WATCHDOG);
    assert.equal(await dropped, 1);
    // A cancelled task handed ahead to the worker is settled once the worker skips it.
    await within(cancelled.settled, 'the cancelled task to settle', WATCHDOG);
    const after = pool.stats();
    assert.deepEqual(
      [after.submitted, after.completed, after.failed, after.cancelled, after.queued, after.running],
      [4, 2, 1, 1, 0, 0],
    );
    assert.ok(after.waitTime.count >= 3, 'the tasks handed to the worker were timed');
    assert.equal(after.runTime.count >= 3, true);
    assert.ok(after.runTime.max >= after.runTime.p50);
  } finally {
    await pool.terminate();
  }
});

test('Channel.stats() shows the queue and counts its blocking and async waits', async () => {
  const channel = new Channel<number>({ capacity: 1, allowBlockingMainThread: true });
  channel.putSync(1);
  const before = channel.stats();
  assert.deepEqual([before.size, before.capacity, before.unfinished], [1, 1, 1]);
  assert.deepEqual([before.spins, before.sleeps, before.asyncWaits, before.waitTime.count], [0, 0, 0, 0]);
  // Full: an async put waits (it starts waiting before put() returns).
  const put = channel.put(2);
  assert.equal(channel.stats().asyncWaits, 1);
  assert.equal(channel.getSync(), 1);
  await within(put, 'the waiting put', WATCHDOG);
  assert.equal(channel.getSync(), 2);
  // Empty: a blocking get sleeps until a worker, which waits to see it asleep, puts.
  const handle = channel.createHandle({ role: 'put' });
  const worker = new Worker(
    `const { Channel } = require(${JSON.stringify(entry)});
     const channel = Channel.connect(require('node:worker_threads').workerData);
     const nap = new Int32Array(new SharedArrayBuffer(4));
     while (channel.stats().sleepingGetters === 0) Atomics.wait(nap, 0, 0, 1);
     channel.putSync(3);`,
    { eval: true, workerData: handle, transferList: [handle.port] },
  );
  const exited = once(worker, 'exit');
  assert.equal(channel.getSync({ timeout: WATCHDOG }), 3);
  await within(exited, 'the worker to exit', WATCHDOG);
  const after = channel.stats();
  assert.ok(after.sleeps >= 1, JSON.stringify(after));
  assert.equal(after.waitTime.count, after.spins + after.sleeps);
  assert.equal(after.size, 0);
  channel.closeSync();
});

/** Runs a LoopThread call and a pool task in a child process with LOOPTHREAD_DEBUG set; its stderr. */
function debugRun(setting: string | undefined): string {
  const script = `
    const { LoopThread, ThreadPoolExecutor } = require(${JSON.stringify(entry)});
    const loop = new LoopThread({ name: 'dbg' });
    loop.runSync(() => 1);
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    pool.submit(() => 2).then(() => pool.close()).then(() => loop.close());
  `;
  const env = { ...process.env };
  delete env.LOOPTHREAD_DEBUG;
  if (setting !== undefined) env.LOOPTHREAD_DEBUG = setting;
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env, timeout: WATCHDOG });
  assert.equal(result.status, 0, result.stderr);
  return result.stderr;
}

test('LOOPTHREAD_DEBUG logs lifecycle events to stderr, only those it names', () => {
  const all = debugRun('1');
  for (const event of ['thread:start', 'call:start', 'call:end', 'pool:task:queued', 'pool:task:done', 'thread:stop']) {
    assert.match(all, new RegExp(`^loopthread \\d+/0 ${event} `, 'm'), `${event} in:\n${all}`);
  }
  assert.match(all, /call:end target=LoopThread "dbg" threadId=\d+ id=1 blocking=true duration=[\d.]+/);
  const some = debugRun('thread, call:end');
  assert.match(some, /thread:start kind=loopthread name=dbg/);
  assert.match(some, /call:end /);
  assert.doesNotMatch(some, /call:start|pool:task/);
  assert.equal(debugRun(undefined), '');
});
