/* eslint-disable @typescript-eslint/no-deprecated -- many tests here use 0.1's channel.handle, which this file tests too */
/**
 * Channel (issue 6): a queue shared by threads with blocking and async ends. Workers run the
 * tasks of test/fixtures/channel-worker.mts; they are terminated after the tests that use them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as fc from 'fast-check';
import {
  CancelledError,
  Channel,
  ClosedError,
  DataCloneError,
  DeadlockError,
  DisconnectedError,
  TimeoutError,
  type ChannelHandle,
} from 'loopthread';
import type { Peer } from './fixtures/channel-peer.mjs';
import type { Item, Outcome, Task } from './fixtures/channel-worker.mjs';
import { rejectionWithin, thrown } from './helpers.js';
import { STALE_MS } from '../src/channel/lock.js';

const fixture = new URL('./fixtures/channel-worker.mjs', pathToFileURL(__filename));
const peerFixture = new URL('./fixtures/channel-peer.mjs', pathToFileURL(__filename));
const entry = require.resolve('loopthread');

/** Header words the tests look at (src/channel/layout.ts). */
const GET_WAITERS = 48;
const PUT_WAITERS = 49;
const PUTTERS = 51;
const GETTERS = 52;
/**
 * A watchdog for waits that must end by themselves: a blocked wait that would hang without the
 * behaviour under test fails with TimeoutError instead, and the test with it.
 */
const WATCHDOG = 30_000;

const workers = new Set<Worker>();
after(async () => {
  await Promise.all([...workers].map((w) => w.terminate()));
});

function spawn(): Worker {
  const worker = new Worker(fixture);
  workers.add(worker);
  worker.once('exit', () => workers.delete(worker));
  return worker;
}

/** Runs one task in `worker`; resolves with its outcome. */
async function send(worker: Worker, task: Task): Promise<Outcome> {
  worker.postMessage(task);
  for (;;) {
    const [message] = (await once(worker, 'message')) as [{ done?: Outcome }];
    if (message.done !== undefined) return message.done;
  }
}

/** Resolves once `predicate` holds, checking at each turn of the event loop (a condition, not a delay). */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
}

const waiters = (handle: ChannelHandle, index: number): number => Atomics.load(new Int32Array(handle.buffer), index);

/** A promise's outcome without awaiting it: 'pending' if it has not settled by the next turn. */
async function state(promise: Promise<unknown>): Promise<string> {
  const pending = {};
  const result = await Promise.race([
    promise.then(
      () => 'fulfilled',
      () => 'rejected',
    ),
    new Promise((resolve) => setImmediate(resolve, pending)),
  ]);
  return result === pending ? 'pending' : (result as string);
}

describe('Channel on one thread', () => {
  test('items come out in the order they went in, through the async ends', async () => {
    const ch = new Channel<unknown>({ capacity: 8 });
    const values = [1, 'two', { three: [3] }, new Map([[4, 'four']]), null, undefined, 7n, new Date(8)];
    for (const v of values) await ch.put(v);
    assert.equal(ch.size, 8);
    assert.equal(ch.capacity, 8);
    const got = [];
    while (got.length < values.length) got.push(await ch.get());
    assert.deepEqual(got, values);
    assert.equal(ch.size, 0);
  });

  test('strings and numbers round-trip exactly, whether or not they take the fast path', async () => {
    const ch = new Channel<unknown>();
    const values = [
      '',
      'a',
      'abcdefgh',
      'x'.repeat(16),
      'y'.repeat(17),
      'z'.repeat(64),
      'w'.repeat(65),
      'é',
      'é'.repeat(48),
      'é'.repeat(49),
      `${'ÿ'.repeat(47)}\u0100`,
      'ÿ'.repeat(5000),
      'ab\u{1F600}',
      '\ud800',
      0,
      -0,
      1,
      -1,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 31,
      0.5,
      NaN,
      Infinity,
      -Infinity,
    ];
    for (const v of values) await ch.put(v);
    const got = [];
    while (got.length < values.length) got.push(await ch.get());
    assert.deepEqual(got, values);
    assert.ok(Object.is(got[values.findIndex((v) => Object.is(v, -0))], -0));
    for (const v of values) ch.tryPut(v);
    ch.closeSync();
    const iterated = [];
    for await (const v of ch) iterated.push(v);
    assert.deepEqual(iterated, values);
  });

  test('values are copies', async () => {
    const ch = new Channel<{ a: number[] }>();
    const v = { a: [1] };
    await ch.put(v);
    v.a.push(2);
    const got = await ch.get();
    assert.deepEqual(got, { a: [1] });
    assert.notEqual(got, v);
  });

  test('tryPut returns false when the item count is at capacity, tryGet { ok: false } when empty', () => {
    const ch = new Channel<number>({ capacity: 2 });
    assert.deepEqual(ch.tryGet(), { ok: false });
    assert.equal(ch.tryPut(1), true);
    assert.equal(ch.tryPut(2), true);
    assert.equal(ch.tryPut(3), false);
    assert.deepEqual(ch.tryGet(), { ok: true, value: 1 });
    assert.equal(ch.tryPut(3), true);
    assert.deepEqual(ch.tryGet(), { ok: true, value: 2 });
    assert.deepEqual(ch.tryGet(), { ok: true, value: 3 });
    assert.deepEqual(ch.tryGet(), { ok: false });
  });

  test('tryPut returns false when the buffer has no room for the bytes, and records wrap around it', () => {
    const ch = new Channel<Uint8Array>({ bytes: true, bufferSize: 64 });
    assert.equal(ch.bufferSize, 64);
    const item = (k: number): Uint8Array => new Uint8Array(20).fill(k);
    // 24 bytes per record: two fit in 64, a third does not.
    assert.equal(ch.tryPut(item(1)), true);
    assert.equal(ch.tryPut(item(2)), true);
    assert.equal(ch.tryPut(item(3)), false);
    for (let k = 3; k < 40; k++) {
      const got = ch.tryGet();
      assert.ok(got.ok);
      assert.deepEqual(got.value, item(k - 2));
      assert.equal(ch.tryPut(item(k)), true);
    }
  });

  test('an item larger than the buffer fails at once with a RangeError that names bufferSize', async () => {
    const ch = new Channel<string>({ bufferSize: 64 });
    assert.throws(() => ch.tryPut('x'.repeat(100)), /does not fit this channel.*bufferSize/);
    await assert.rejects(ch.put('x'.repeat(100)), RangeError);
    const bytes = new Channel<Uint8Array>({ bytes: true, bufferSize: 64 });
    assert.equal(bytes.tryPut(new Uint8Array(60)), true);
    assert.throws(() => bytes.tryPut(new Uint8Array(61)), RangeError);
  });

  test('bad input: options, handles, values and timeouts are refused with clear errors', async () => {
    assert.throws(() => new Channel({ capacity: 0 }), RangeError);
    assert.throws(() => new Channel({ capacity: 1.5 }), RangeError);
    assert.throws(() => new Channel({ bufferSize: 8 }), RangeError);
    assert.throws(() => Channel.connect({} as ChannelHandle), TypeError);
    assert.throws(() => Channel.connect(null as unknown as ChannelHandle), TypeError);
    const ch = new Channel<unknown>();
    assert.throws(
      () => ch.tryPut({ f: () => 1 }),
      (e: unknown) => e instanceof DataCloneError && e.path === 'the item at .f',
    );
    assert.equal(ch.size, 0);
    await assert.rejects(ch.get({ timeout: -1 }), TypeError);
    const bytes = new Channel<unknown>({ bytes: true });
    assert.throws(() => bytes.tryPut('text'), /bytes mode takes Uint8Arrays/);
  });

  test('close() lets the items left drain, then gets fail with ClosedError and iterations end', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    await ch.put(2);
    ch.closeSync();
    assert.equal(ch.isClosed, true);
    await assert.rejects(ch.put(3), ClosedError);
    assert.throws(() => ch.tryPut(3), ClosedError);
    assert.equal(await ch.get(), 1);
    const rest = [];
    for await (const v of ch) rest.push(v);
    assert.deepEqual(rest, [2]);
    await assert.rejects(ch.get(), ClosedError);
    assert.throws(() => ch.tryGet(), ClosedError);
    ch.closeSync();
    ch.closeSync({ grace: 0 });
  });

  test('closeSync({ grace: 0 }) drops the items left', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    await ch.put(2);
    ch.closeSync({ grace: 0 });
    assert.equal(ch.size, 0);
    await assert.rejects(ch.get(), /dropped/);
    const rest = [];
    for await (const v of ch) rest.push(v);
    assert.deepEqual(rest, []);
  });

  test('an immediate close after a plain close drops what was still draining', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    ch.closeSync();
    ch.closeSync({ grace: 0 });
    await assert.rejects(ch.get(), ClosedError);
  });

  test('close wakes every blocked async getter with ClosedError', async () => {
    const ch = new Channel<number>();
    const getters = [ch.get(), ch.get(), ch.get({ timeout: 60_000 })];
    await until(() => waiters(ch.handle, GET_WAITERS) === 3);
    assert.deepEqual(await Promise.all(getters.map(state)), ['pending', 'pending', 'pending']);
    ch.closeSync();
    for (const g of getters) await assert.rejects(g, ClosedError);
    assert.equal(waiters(ch.handle, GET_WAITERS), 0);
  });

  test('close wakes every blocked async putter with ClosedError, the items already in stay', async () => {
    const ch = new Channel<number>({ capacity: 1 });
    await ch.put(0);
    const putters = [ch.put(1), ch.put(2)];
    await until(() => waiters(ch.handle, PUT_WAITERS) === 2);
    ch.closeSync();
    for (const p of putters) await assert.rejects(p, ClosedError);
    assert.equal(await ch.get(), 0);
  });

  test('a put wakes a waiting async getter, a get wakes a waiting async putter', async () => {
    const ch = new Channel<number>({ capacity: 1 });
    const getter = ch.get();
    await until(() => waiters(ch.handle, GET_WAITERS) === 1);
    await ch.put(5);
    assert.equal(await getter, 5);
    await ch.put(6);
    const putter = ch.put(7);
    await until(() => waiters(ch.handle, PUT_WAITERS) === 1);
    assert.equal(await ch.get(), 6);
    await putter;
    assert.equal(await ch.get(), 7);
  });

  test('async timeouts: get on empty and put on full fail with TimeoutError; timeout 0 does not wait', async () => {
    const ch = new Channel<number>({ capacity: 1 });
    await assert.rejects(
      ch.get({ timeout: 20 }),
      (e: unknown) => e instanceof TimeoutError && e.name === 'TimeoutError',
    );
    await assert.rejects(ch.get({ timeout: 0 }), TimeoutError);
    await ch.put(1);
    await assert.rejects(ch.put(2, { timeout: 20 }), TimeoutError);
    assert.equal(ch.size, 1);
    assert.equal(waiters(ch.handle, GET_WAITERS) + waiters(ch.handle, PUT_WAITERS), 0);
  });

  test('an AbortSignal cancels a waiting get or put with CancelledError carrying the reason', async () => {
    const ch = new Channel<number>({ capacity: 1 });
    const controller = new AbortController();
    const getter = ch.get({ signal: controller.signal });
    await until(() => waiters(ch.handle, GET_WAITERS) === 1);
    controller.abort('stop');
    await assert.rejects(getter, (e: unknown) => e instanceof CancelledError && e.cause === 'stop');
    await assert.rejects(ch.get({ signal: AbortSignal.abort('early') }), CancelledError);
    await ch.put(1);
    const c2 = new AbortController();
    const putter = ch.put(2, { signal: c2.signal });
    await until(() => waiters(ch.handle, PUT_WAITERS) === 1);
    c2.abort();
    await assert.rejects(putter, CancelledError);
    // The cancelled put left nothing behind; the next get is the first item.
    assert.equal(await ch.get(), 1);
    assert.equal(ch.size, 0);
  });

  test('the blocking methods refuse the main thread unless allowed, with DeadlockError', () => {
    const ch = new Channel<number>();
    assert.throws(() => {
      ch.putSync(1);
    }, DeadlockError);
    assert.throws(() => ch.getSync(), /would block the main thread/);
    assert.throws(() => ch.iterateSync(), DeadlockError);
    ch.putSync(1, { allowBlockingMainThread: true });
    assert.equal(ch.getSync({ allowBlockingMainThread: true }), 1);
    assert.throws(() => ch.getSync({ allowBlockingMainThread: true, timeout: 10 }), TimeoutError);
    const allowed = new Channel<number>({ allowBlockingMainThread: true });
    allowed.putSync(2);
    allowed.closeSync();
    assert.deepEqual([...allowed.iterateSync()], [2]);
    const connected = Channel.connect<number>(ch.handle, { allowBlockingMainThread: true });
    connected.putSync(3);
    assert.equal(connected.getSync(), 3);
  });

  test('join() waits until taskDone() was called for every item; taskDone() too often is a RangeError', async () => {
    const ch = new Channel<number>();
    await ch.join();
    await ch.put(1);
    await ch.put(2);
    const joined = ch.join();
    assert.equal(await state(joined), 'pending');
    await ch.get();
    ch.taskDone();
    assert.equal(ch.unfinished, 1);
    assert.equal(await state(joined), 'pending');
    await ch.get();
    ch.taskDone();
    await joined;
    assert.throws(() => {
      ch.taskDone();
    }, RangeError);
    await ch.put(3);
    await assert.rejects(ch.join({ timeout: 10 }), TimeoutError);
    assert.throws(() => {
      ch.joinSync({ allowBlockingMainThread: true, timeout: 10 });
    }, TimeoutError);
  });

  test('an immediate close releases join() for the items it dropped', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    const joined = ch.join();
    ch.closeSync({ grace: 0 });
    await joined;
    assert.equal(ch.unfinished, 0);
  });

  test('the transfer option detaches the ArrayBuffers listed, and the item still arrives', async () => {
    const ch = new Channel<Uint8Array>({ bytes: true });
    const ab = new ArrayBuffer(8);
    new Uint8Array(ab).fill(9);
    await ch.put(new Uint8Array(ab), { transfer: [ab] });
    assert.equal(ab.byteLength, 0);
    assert.deepEqual(await ch.get(), new Uint8Array(8).fill(9));
  });

  test('an iteration stopped early gives back the items it took ahead, in order', async () => {
    const ch = new Channel<number>();
    for (let i = 0; i < 10; i++) await ch.put(i);
    for await (const v of ch) {
      assert.equal(v, 0);
      break;
    }
    assert.equal(ch.size, 9);
    const sync = Channel.connect<number>(ch.handle, { allowBlockingMainThread: true });
    for (const v of sync.iterateSync()) {
      assert.equal(v, 1);
      break;
    }
    assert.equal(ch.size, 8);
    const rest = [];
    for (let got = ch.tryGet(); got.ok; got = ch.tryGet()) rest.push(got.value);
    assert.deepEqual(rest, [2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('an iteration whose body throws gives back the items it took ahead, in order', async () => {
    const ch = new Channel<number>({ allowBlockingMainThread: true });
    for (let i = 0; i < 10; i++) await ch.put(i);
    await assert.rejects(async () => {
      for await (const v of ch) throw new Error(`stop at ${v}`);
    }, /stop at 0/);
    assert.equal(ch.size, 9);
    assert.throws(() => {
      for (const v of ch.iterateSync()) throw new Error(`stop at ${v}`);
    }, /stop at 1/);
    assert.equal(ch.size, 8);
    ch.closeSync();
    const rest = [];
    for await (const v of ch) rest.push(v);
    assert.deepEqual(rest, [2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('items given back by an iteration reach a getter in another thread', async () => {
    const ch = new Channel<number>();
    for (let i = 0; i < 5; i++) await ch.put(i);
    for await (const v of ch) {
      assert.equal(v, 0);
      break;
    }
    const w = spawn();
    try {
      ch.closeSync();
      assert.deepEqual(await send(w, { op: 'iterateSync', handle: ch.handle }), { ok: true, value: [1, 2, 3, 4] });
    } finally {
      await w.terminate();
    }
  });

  test('items an iteration holds keep their room: producers cannot take it, so they always go back', async () => {
    // Small integers take 12 bytes each (4 of header, 5 encoded, padded to 8): 64 fill the buffer.
    const full = 64;
    const ch = new Channel<number>({ bufferSize: full * 12 });
    let put = 0;
    while (ch.tryPut(put)) put++;
    assert.equal(put, full);
    const it = ch[Symbol.asyncIterator]();
    assert.deepEqual(await it.next(), { done: false, value: 0 });
    // The iteration took a batch ahead, but only the item it handed out freed its room, and `size`
    // still counts the rest.
    assert.equal(ch.size, full - 1);
    assert.equal(ch.tryPut(put++), true);
    assert.equal(ch.tryPut(put), false);
    assert.equal(ch.size, full);
    await it.return?.();
    // Another Channel object (as another thread would) gets every item left, once, in order: none
    // stayed behind on `ch`.
    const other = Channel.connect<number>(ch.handle);
    const got = [];
    for (let g = other.tryGet(); g.ok; g = other.tryGet()) got.push(g.value);
    assert.deepEqual(
      got,
      Array.from({ length: full }, (_, i) => i + 1),
    );
    assert.equal(ch.size, 0);
  });

  test('a plain close lets an iteration hand out what it took ahead; an immediate close drops it', async () => {
    const ch = new Channel<number>();
    for (let i = 0; i < 5; i++) await ch.put(i);
    const got = [];
    for await (const v of ch) {
      got.push(v);
      if (v === 0) ch.closeSync();
    }
    assert.deepEqual(got, [0, 1, 2, 3, 4]);

    const now = new Channel<number>();
    for (let i = 0; i < 5; i++) await now.put(i);
    const joined = now.join();
    const dropped = [];
    for await (const v of now) {
      dropped.push(v);
      now.closeSync({ grace: 0 });
    }
    assert.deepEqual(dropped, [0]);
    // The dropped items count as done, as the ring's do; the one handed out waits for taskDone().
    assert.equal(now.unfinished, 1);
    now.taskDone();
    await joined;
    assert.equal(now.unfinished, 0);
  });

  test('Symbol.dispose closes', () => {
    let kept: Channel<number> | undefined;
    {
      using ch = new Channel<number>();
      kept = ch;
    }
    assert.equal(kept.isClosed, true);
  });
});

describe('Channel across threads', () => {
  const [a, b] = [spawn(), spawn()];
  after(async () => {
    await Promise.all([a.terminate(), b.terminate()]);
  });

  test('a worker puts with putSync, the main loop gets with for await', async () => {
    const ch = new Channel<Item>({ capacity: 3, bufferSize: 256 });
    const producing = send(a, { op: 'produce', handle: ch.handle, producer: 0, count: 200, sync: true });
    const got: Item[] = [];
    for await (const v of ch) {
      got.push(v);
      if (got.length === 200) ch.closeSync();
    }
    assert.deepEqual(await producing, { ok: true, value: 200 });
    assert.deepEqual(
      got.map((v) => v.i),
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  test('the main loop puts with put, a worker gets with iterateSync', async () => {
    const ch = new Channel<number>({ capacity: 2 });
    const consuming = send(a, { op: 'iterateSync', handle: ch.handle });
    for (let i = 0; i < 100; i++) await ch.put(i);
    ch.closeSync();
    assert.deepEqual(await consuming, { ok: true, value: Array.from({ length: 100 }, (_, i) => i) });
  });

  test('bytes mode carries Uint8Arrays between threads', async () => {
    const ch = new Channel<Uint8Array>({ bytes: true });
    const consuming = send(a, { op: 'getSync', handle: ch.handle });
    await ch.put(new Uint8Array([1, 2, 3]));
    const outcome = await consuming;
    assert.ok(outcome.ok);
    assert.deepEqual(outcome.value, new Uint8Array([1, 2, 3]));
  });

  test('join() on the main loop resolves once workers have marked every item done', async () => {
    const ch = new Channel<number>({ capacity: 4 });
    const consuming = [
      send(a, { op: 'consume', handle: ch.handle, sync: true, taskDone: true }),
      send(b, { op: 'consume', handle: ch.handle, sync: false, taskDone: true }),
    ];
    for (let i = 0; i < 50; i++) await ch.put(i);
    await ch.join();
    assert.equal(ch.unfinished, 0);
    ch.closeSync();
    const got = (await Promise.all(consuming)).flatMap((o) => (o.ok ? (o.value as number[]) : []));
    assert.deepEqual(
      got.sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  test('close from another thread wakes a getter blocked in getSync with ClosedError', async () => {
    const ch = new Channel<number>();
    const blocked = send(a, { op: 'getSync', handle: ch.handle });
    await until(() => waiters(ch.handle, GET_WAITERS) === 1);
    await send(b, { op: 'close', handle: ch.handle, immediate: false });
    assert.deepEqual(await blocked, { ok: false, name: 'ClosedError', message: 'the channel is closed and drained' });
  });

  test('close wakes a putter blocked in putSync with ClosedError', async () => {
    const ch = new Channel<number>({ capacity: 1 });
    await ch.put(0);
    const blocked = send(a, { op: 'putSync', handle: ch.handle, value: 1 });
    await until(() => waiters(ch.handle, PUT_WAITERS) === 1);
    ch.closeSync({ grace: 0 });
    const outcome = await blocked;
    assert.equal(outcome.ok ? 'ok' : outcome.name, 'ClosedError');
  });

  test('getSync and putSync time out with TimeoutError', async () => {
    const ch = new Channel<number>({ capacity: 1 });
    const got = await send(a, { op: 'getSync', handle: ch.handle, timeout: 20 });
    assert.equal(got.ok ? 'ok' : got.name, 'TimeoutError');
    await ch.put(1);
    const put = await send(a, { op: 'putSync', handle: ch.handle, value: 2, timeout: 20 });
    assert.equal(put.ok ? 'ok' : put.name, 'TimeoutError');
    assert.equal(ch.size, 1);
  });

  test('a sync getter is woken by a put from the main loop', async () => {
    const ch = new Channel<string>();
    const blocked = send(b, { op: 'getSync', handle: ch.handle });
    await until(() => waiters(ch.handle, GET_WAITERS) === 1);
    await ch.put('hello');
    assert.deepEqual(await blocked, { ok: true, value: 'hello' });
  });

  test('a worker producer keeps the channel full while the main loop breaks out of iterations holding a batch: nothing is lost', async () => {
    const full = 64;
    const ch = new Channel<number>({ bufferSize: full * 12 });
    const producing = send(a, { op: 'count', handle: ch.handle, count: 1_000_000 });
    const got: number[] = [];
    for (let round = 0; round < 20; round++) {
      await until(() => ch.size === full);
      for await (const v of ch) {
        got.push(v);
        // The producer refills all it can while this iteration holds the rest of its batch.
        await until(() => ch.size === full);
        break;
      }
    }
    ch.closeSync();
    const put = await producing;
    assert.ok(put.ok);
    // Another thread, through another Channel object, gets the rest: every item once, in order.
    const rest = await send(b, { op: 'iterateSync', handle: ch.handle });
    assert.ok(rest.ok);
    assert.deepEqual(
      [...got, ...(rest.value as number[])],
      Array.from({ length: put.value as number }, (_, i) => i),
    );
  });

  test('the main loop keeps the channel full while a worker breaks out of iterateSync holding a batch: nothing is lost', async () => {
    const full = 64;
    const ch = new Channel<number>({ bufferSize: full * 12 });
    const consuming = send(a, { op: 'iterBreak', handle: ch.handle, rounds: 20, full });
    let put = 0;
    const producing = (async () => {
      try {
        for (;;) {
          await ch.put(put);
          put++;
        }
      } catch (error) {
        if (!(error instanceof ClosedError)) throw error;
      }
    })();
    const got = await consuming;
    assert.ok(got.ok);
    ch.closeSync();
    await producing;
    const rest = [];
    for await (const v of ch) rest.push(v);
    assert.deepEqual(
      [...(got.value as number[]), ...rest],
      Array.from({ length: put }, (_, i) => i),
    );
  });
});

describe('Channel when a thread dies', () => {
  test('a worker terminated while blocked in getSync does not break the channel for the others', async () => {
    const ch = new Channel<number>();
    const w = spawn();
    void send(w, { op: 'getSync', handle: ch.handle }).catch(() => undefined);
    await until(() => waiters(ch.handle, GET_WAITERS) === 1);
    await w.terminate();
    await ch.put(1);
    assert.equal(await ch.get(), 1);
    const getter = ch.get();
    await ch.put(2);
    assert.equal(await getter, 2);
  });

  test('a worker terminated mid-iteration loses only the batch it held, whose room stays taken', async () => {
    // A capacity of 40 makes batches of 10 (a quarter).
    const ch = new Channel<number>({ capacity: 40 });
    for (let i = 0; i < 20; i++) await ch.put(i);
    const w = spawn();
    w.postMessage({ op: 'iterHold', handle: ch.handle } satisfies Task);
    const [message] = (await once(w, 'message')) as [{ holding: number }];
    assert.equal(message.holding, 0);
    await w.terminate();
    const got = [];
    for (let g = ch.tryGet(); g.ok; g = ch.tryGet()) got.push(g.value);
    assert.deepEqual(
      got,
      Array.from({ length: 10 }, (_, i) => i + 10),
    );
    // The 9 items it took ahead and never handed out are gone, and still count.
    assert.equal(ch.size, 9);
    let more = 0;
    while (ch.tryPut(more)) more++;
    assert.equal(more, 31);
    for (let i = 0; i < 31; i++) assert.equal(await ch.get(), i);
  });

  test('a worker that crashes after getting an item takes only that item', async () => {
    const ch = new Channel<number>();
    const w = spawn();
    w.on('error', () => undefined);
    const exited = new Promise<number>((resolve) => w.once('exit', resolve));
    void send(w, { op: 'blockThenCrash', handle: ch.handle }).catch(() => undefined);
    await until(() => waiters(ch.handle, GET_WAITERS) === 1);
    await ch.put(1);
    await ch.put(2);
    assert.equal(await exited, 1);
    assert.equal(await ch.get(), 2);
  });

  test('a worker terminated while holding the put lock: gets go on, puts take the lock over', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    const w = spawn();
    w.postMessage({ op: 'holdLock', handle: ch.handle, lock: 'put' } satisfies Task);
    await once(w, 'message');
    await w.terminate();
    // Gets take the other lock: they do not wait for the dead putter.
    assert.equal(await ch.get(), 1);
    // The put lock is still marked as held by the dead thread: the next put finds that thread gone
    // (or, where the OS does not tell, waits out the one-second rule), then takes the lock over.
    assert.equal(ch.tryPut(2), true);
    assert.deepEqual(ch.tryGet(), { ok: true, value: 2 });
    assert.equal(ch.size, 0);
  });

  test(
    'a live thread holding a lock for longer than the old one-second rule keeps it: only an ended holder loses it',
    { skip: process.platform !== 'linux' && 'the OS tells when a thread has ended only on Linux' },
    async () => {
      const ch = new Channel<number>();
      const holder = spawn();
      const release = new Int32Array(new SharedArrayBuffer(4));
      const held = send(holder, { op: 'holdLock', handle: ch.handle, lock: 'put', release: release.buffer });
      await once(holder, 'message');
      const putter = spawn();
      let putDone = false;
      const put = send(putter, { op: 'putSync', handle: ch.handle, value: 7 }).finally(() => {
        putDone = true;
      });
      // Longer than the time rule this replaces (STALE_MS): a put that took the lock over from a
      // live holder would have finished by then. The holder's thread runs, so the put must wait.
      await new Promise((resolve) => setTimeout(resolve, STALE_MS * 1.5));
      assert.equal(putDone, false, 'a put took the lock from a live holder');
      assert.equal(ch.size, 0);
      Atomics.store(release, 0, 1);
      Atomics.notify(release, 0);
      assert.deepEqual(await held, { ok: true, value: true });
      assert.equal((await put).ok, true);
      assert.equal(await ch.get(), 7);
    },
  );

  test('a worker terminated while holding the get lock: puts go on, gets take the lock over', async () => {
    const ch = new Channel<number>();
    await ch.put(1);
    const w = spawn();
    w.postMessage({ op: 'holdLock', handle: ch.handle, lock: 'get' } satisfies Task);
    await once(w, 'message');
    await w.terminate();
    assert.equal(ch.tryPut(2), true);
    assert.equal(await ch.get(), 1);
    assert.equal(await ch.get(), 2);
    ch.closeSync();
    await assert.rejects(ch.get(), ClosedError);
  });
});

interface Started {
  worker: Worker;
  /** The next message of the peer that has `key` (each message is kept until asked for: none is missed). */
  next: (key: string) => Promise<Record<string, unknown>>;
  /** Its exit code. */
  exited: Promise<number>;
}

/** Starts a worker of test/fixtures/channel-peer.mts playing `peer`. */
function startPeer(peer: Peer): Started {
  const port = peer.handle?.port;
  const worker = new Worker(peerFixture, { workerData: peer, transferList: port === undefined ? [] : [port] });
  workers.add(worker);
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  worker.once('exit', () => workers.delete(worker));
  // Peers that end with an uncaught error: the exit code says it.
  worker.on('error', () => undefined);
  const queue: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  worker.on('message', (m: Record<string, unknown>) => {
    queue.push(m);
    wake?.();
  });
  const next = async (key: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const i = queue.findIndex((m) => key in m);
      if (i >= 0) return queue.splice(i, 1)[0]!;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  return { worker, next, exited };
}

const word = (handle: ChannelHandle, index: number): number => Atomics.load(new Int32Array(handle.buffer), index);

/** A handle to look at `ch`'s header with, which leaves the connection counts as they were. */
function peek(ch: Channel<never> | Channel<number>): ChannelHandle {
  const handle = ch.createHandle();
  Channel.connect(handle).disconnect();
  return handle;
}

describe('Channel: nobody left on the other side (DisconnectedError)', () => {
  test("the issue's case: a worker producer puts one item and exits; the consumer's next getSync fails", async () => {
    const ch = new Channel<number>({ role: 'get', allowBlockingMainThread: true });
    const producer = startPeer({ handle: ch.createHandle({ role: 'put' }), put: [1], end: 'return' });
    // This thread blocks: its event loop does not run, so what wakes it is the producer's own exit.
    assert.equal(ch.getSync({ timeout: WATCHDOG }), 1);
    const error = thrown(() => ch.getSync({ timeout: WATCHDOG }));
    assert.ok(error instanceof DisconnectedError, String(error));
    assert.ok(error instanceof ClosedError);
    assert.equal(error.name, 'DisconnectedError');
    assert.match(error.message, /empty and every connection that may put has ended/);
    assert.throws(() => ch.tryGet(), DisconnectedError);
    assert.equal(await producer.exited, 0);
  });

  test('likewise the async get fails, and iterations (for await, iterateSync) end', async () => {
    const ch = new Channel<number>({ role: 'get', allowBlockingMainThread: true });
    startPeer({ handle: ch.createHandle({ role: 'put' }), put: [1, 2], end: 'return' });
    assert.equal(await ch.get(), 1);
    assert.equal(await ch.get(), 2);
    assert.ok(
      (await rejectionWithin(ch.get(), 'a get with nobody left to put', WATCHDOG)) instanceof DisconnectedError,
    );

    const iterated = new Channel<number>({ role: 'get', allowBlockingMainThread: true });
    startPeer({ handle: iterated.createHandle({ role: 'put' }), put: [1, 2, 3], end: 'return' });
    const got = [];
    for await (const v of iterated) got.push(v);
    assert.deepEqual(got, [1, 2, 3]);

    const sync = new Channel<number>({ role: 'get', allowBlockingMainThread: true });
    startPeer({ handle: sync.createHandle({ role: 'put' }), put: [1, 2, 3], end: 'return' });
    assert.deepEqual([...sync.iterateSync({ timeout: WATCHDOG })], [1, 2, 3]);
  });

  for (const [end, code] of [
    ['exit', 7],
    ['throw', 1],
  ] as const) {
    test(`a producer that ends by ${end === 'exit' ? 'process.exit()' : 'an uncaught error'} wakes a blocked getter`, async () => {
      const ch = new Channel<number>({ role: 'get', allowBlockingMainThread: true });
      const producer = startPeer({ handle: ch.createHandle({ role: 'put' }), put: [1], end });
      assert.equal(ch.getSync({ timeout: WATCHDOG }), 1);
      assert.throws(() => ch.getSync({ timeout: WATCHDOG }), DisconnectedError);
      assert.equal(await producer.exited, code);
    });
  }

  test('symmetrically, a putter of a full channel fails once its only consumer has exited', async () => {
    const ch = new Channel<number>({ capacity: 1, role: 'put', allowBlockingMainThread: true });
    const consumer = startPeer({ handle: ch.createHandle({ role: 'get' }), get: 1, end: 'return' });
    ch.putSync(1, { timeout: WATCHDOG });
    // Waits, if need be, until the consumer has taken 1.
    ch.putSync(2, { timeout: WATCHDOG });
    assert.throws(() => {
      ch.putSync(3, { timeout: WATCHDOG });
    }, DisconnectedError);
    assert.deepEqual(await consumer.next('got'), { got: [1] });
    assert.throws(() => ch.tryPut(3), /full and every connection that may get has ended/);
    await assert.rejects(ch.put(3), DisconnectedError);
    // Items not done, with nobody left to mark them done.
    await assert.rejects(ch.join(), DisconnectedError);
    assert.equal(ch.size, 1);

    const async = new Channel<number>({ capacity: 1, role: 'put' });
    startPeer({ handle: async.createHandle({ role: 'get' }), get: 1, end: 'return' });
    await async.put(1);
    await async.put(2);
    assert.ok(
      (await rejectionWithin(async.put(3), 'a put with nobody left to get', WATCHDOG)) instanceof DisconnectedError,
    );
  });

  test('a getter that starts waiting before the producer has connected is not failed: its handle counts', async () => {
    const ch = new Channel<number>({ role: 'get' });
    const handle = ch.createHandle({ role: 'put' });
    const producer = startPeer({ handle, waitForGo: true, put: [1, 2], end: 'return' });
    const consumer = startPeer({ handle: ch.createHandle({ role: 'get' }), get: 1, end: 'return' });
    const got = ch.get();
    // Both getters sleep (the worker's in getSync) while the producer waits for its go, unconnected.
    await until(() => word(handle, GET_WAITERS) === 2);
    assert.equal(await state(got), 'pending');
    producer.worker.postMessage('go');
    const [mine, theirs] = await Promise.all([got, consumer.next('got')]);
    assert.deepEqual([mine, ...(theirs.got as number[])].sort(), [1, 2]);
  });

  test('two producers, one exits: the other still counts, and getters wait for it', async () => {
    const ch = new Channel<number>({ role: 'get' });
    const first = startPeer({ handle: ch.createHandle({ role: 'put' }), put: [1], end: 'return' });
    const handle = ch.createHandle({ role: 'put' });
    const second = startPeer({ handle, waitForGo: true, put: [2], end: 'return' });
    assert.equal(await ch.get(), 1);
    await first.exited;
    assert.equal(word(handle, PUTTERS), 1);
    const got = ch.get();
    await until(() => word(handle, GET_WAITERS) === 1);
    assert.equal(await state(got), 'pending');
    second.worker.postMessage('go');
    assert.equal(await got, 2);
    await second.exited;
    await assert.rejects(ch.get(), DisconnectedError);
  });

  test('a channel used on one thread alone never reports disconnection, whatever connections come and go', async () => {
    const ch = new Channel<number>({ capacity: 1, allowBlockingMainThread: true });
    const handle = peek(ch);
    Channel.connect(ch.createHandle({ role: 'put' })).disconnect();
    const getter = Channel.connect<number>(ch.createHandle({ role: 'get' }));
    getter.disconnect();
    assert.equal(word(handle, PUTTERS), 1);
    assert.deepEqual(ch.tryGet(), { ok: false });
    await assert.rejects(ch.get({ timeout: 10 }), TimeoutError);
    assert.throws(() => ch.getSync({ timeout: 10 }), TimeoutError);
    const got = ch.get();
    await until(() => word(handle, GET_WAITERS) === 1);
    assert.equal(await state(got), 'pending');
    await ch.put(5);
    assert.equal(await got, 5);
    await ch.put(6);
    assert.equal(ch.tryPut(7), false);
    await assert.rejects(ch.put(7, { timeout: 10 }), TimeoutError);
    assert.throws(() => {
      ch.putSync(7, { timeout: 10 });
    }, TimeoutError);
    assert.equal(ch.getSync(), 6);
  });

  test('a producer stopped by terminate(), which runs no exit hook, is seen gone by the thread that made its handle', async () => {
    const ch = new Channel<number>({ role: 'get' });
    const handle = ch.createHandle({ role: 'put' });
    const producer = startPeer({ handle, put: [1], end: 'block' });
    const consumer = startPeer({ handle: ch.createHandle({ role: 'get' }), get: 2, end: 'return' });
    // The producer has put 1 and blocks (it is not gone); the consumer took 1 and sleeps in getSync
    // for a second item.
    await producer.next('done');
    await until(() => ch.size === 0 && word(handle, GET_WAITERS) === 1);
    const got = ch.get();
    await until(() => word(handle, GET_WAITERS) === 2);
    assert.equal(await state(got), 'pending');
    assert.equal(word(handle, PUTTERS), 1);
    await producer.worker.terminate();
    assert.ok(
      (await rejectionWithin(got, 'a get after the producer was terminated', WATCHDOG)) instanceof DisconnectedError,
    );
    assert.deepEqual(await consumer.next('got'), { got: [1], error: 'DisconnectedError' });
  });

  test('a thread that connected from a handle sees the thread that made it terminated', async () => {
    const maker = startPeer({ make: { role: 'put', handleRole: 'get' }, put: [1], end: 'block' });
    const { handle } = (await maker.next('handle')) as { handle: ChannelHandle };
    const ch = Channel.connect<number>(handle);
    assert.equal(await ch.get(), 1);
    const got = ch.get();
    await until(() => word(handle, GET_WAITERS) === 1);
    assert.equal(await state(got), 'pending');
    await maker.worker.terminate();
    assert.ok(
      (await rejectionWithin(got, 'a get after the maker was terminated', WATCHDOG)) instanceof DisconnectedError,
    );
  });

  test('a handle sent to a worker that fails to start stops counting', async () => {
    const ch = new Channel<number>({ role: 'get' });
    const handle = ch.createHandle({ role: 'put' });
    const worker = new Worker('this is not javascript (', {
      eval: true,
      workerData: handle,
      transferList: [handle.port],
    });
    worker.on('error', () => undefined);
    assert.ok((await rejectionWithin(ch.get(), 'a get', WATCHDOG)) instanceof DisconnectedError);
  });

  test('roles: a connection only does what its role says; disconnect() ends one connection and wakes the other side', async () => {
    const ch = new Channel<number>({ role: 'get' });
    assert.throws(() => ch.tryPut(1), /role is 'get': it cannot put/);
    await assert.rejects(ch.put(1), TypeError);
    assert.throws(() => new Channel({ role: 'all' as 'both' }), TypeError);
    // Nobody may put: a get fails at once.
    assert.throws(() => ch.tryGet(), DisconnectedError);
    await assert.rejects(ch.get(), DisconnectedError);
    const handle = ch.createHandle({ role: 'put' });
    const putter = Channel.connect<number>(handle);
    assert.throws(() => Channel.connect(handle), /connected already/);
    assert.throws(() => putter.tryGet(), TypeError);
    assert.throws(() => putter[Symbol.asyncIterator](), TypeError);
    const got = ch.get();
    await putter.put(1);
    assert.equal(await got, 1);
    const waiting = ch.get();
    await until(() => word(handle, GET_WAITERS) === 1);
    putter.disconnect();
    putter.disconnect();
    await assert.rejects(waiting, DisconnectedError);
    assert.throws(() => putter.tryPut(2), /ended by disconnect/);
    assert.equal(word(handle, PUTTERS), 0);
    assert.equal(word(handle, GETTERS), 1);
  });

  test('close() still closes the channel for every connection, and ClosedError wins over disconnection', async () => {
    const ch = new Channel<number>({ role: 'get' });
    ch.closeSync();
    await assert.rejects(ch.get(), (e: unknown) => e instanceof ClosedError && !(e instanceof DisconnectedError));
  });

  test('the 0.1 handle (channel.handle) connects uncounted: once it is read, no disconnection is reported', async () => {
    const ch = new Channel<number>({ role: 'get' });
    const handle = ch.handle;
    assert.deepEqual(Object.keys(handle).sort(), ['buffer', 'kind']);
    await assert.rejects(ch.get({ timeout: 10 }), TimeoutError);
  });
});

test('a pending async get keeps the event loop alive until an item comes; an idle channel does not', () => {
  const script = `
    const { Channel } = require(${JSON.stringify(entry)});
    const { Worker } = require('node:worker_threads');
    const ch = new Channel();
    const w = new Worker(\`
      const { workerData } = require('node:worker_threads');
      const { Channel } = require(workerData.entry);
      const ch = Channel.connect(workerData.handle);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      ch.putSync(42);\`, { eval: true, workerData: { handle: ch.handle, entry: ${JSON.stringify(entry)} } });
    w.unref();
    ch.get().then((v) => { console.log('got', v); new Channel(); });`;
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.stdout.trim(), 'got 42');
  assert.equal(result.status, 0);
});

describe('Channel: generated interleavings', () => {
  const pool = [spawn(), spawn(), spawn()];
  after(async () => {
    await Promise.all(pool.map((w) => w.terminate()));
  });

  type Role = { kind: 'producer'; count: number; sync: boolean } | { kind: 'consumer'; sync: boolean } | null;
  const role: fc.Arbitrary<Role> = fc.oneof(
    fc.constant(null),
    fc.record({ kind: fc.constant('producer' as const), count: fc.integer({ min: 0, max: 40 }), sync: fc.boolean() }),
    fc.record({ kind: fc.constant('consumer' as const), sync: fc.boolean() }),
  );
  const scenario = fc.record({
    capacity: fc.integer({ min: 1, max: 6 }),
    bufferSize: fc.constantFrom(128, 200, 512, 4096),
    workerRoles: fc.tuple(role, role, role),
    mainProducers: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 2 }),
    mainConsumers: fc.integer({ min: 0, max: 2 }),
    /** Main consumers break out of their iteration after this many items (0: never) and go on with a new Channel object. */
    breakEvery: fc.integer({ min: 0, max: 5 }),
    close: fc.constantFrom('after producers', 'racing', 'racing immediate'),
    closeAfterTurns: fc.integer({ min: 0, max: 30 }),
  });

  type Scenario = typeof scenario extends fc.Arbitrary<infer S> ? S : never;

  async function check(s: Scenario): Promise<void> {
    const ch = new Channel<Item>({ capacity: s.capacity, bufferSize: s.bufferSize });
    const producers: Promise<number>[] = [];
    const consumers: Promise<Item[]>[] = [];
    let producerId = 0;
    const unwrap = async (p: Promise<Outcome>): Promise<unknown> => {
      const o = await p;
      if (!o.ok) throw new Error(`${o.name}: ${o.message}`);
      return o.value;
    };
    s.workerRoles.forEach((r, k) => {
      const worker = pool[k]!;
      if (r?.kind === 'producer') {
        const task = { op: 'produce', handle: ch.handle, producer: producerId++, count: r.count, sync: r.sync };
        producers.push(unwrap(send(worker, task as Task)) as Promise<number>);
      } else if (r?.kind === 'consumer') {
        consumers.push(unwrap(send(worker, { op: 'consume', handle: ch.handle, sync: r.sync })) as Promise<Item[]>);
      }
    });
    for (const count of s.mainProducers) {
      const p = producerId++;
      producers.push(
        (async () => {
          let put = 0;
          try {
            for (let i = 0; i < count; i++) {
              await ch.put({ p, i, pad: 'x'.repeat((i * 7 + p * 3) % 41) });
              put++;
            }
          } catch (error) {
            if (!(error instanceof ClosedError)) throw error;
          }
          return put;
        })(),
      );
    }
    let mainConsumers = s.mainConsumers;
    if (consumers.length === 0 && mainConsumers === 0) mainConsumers = 1;
    for (let c = 0; c < mainConsumers; c++) {
      consumers.push(
        (async () => {
          const got: Item[] = [];
          // Items that a broken-off iteration took ahead must reach the next one: a fresh Channel
          // object, so that none can hide in the old one.
          for (let c = ch, ended = false; !ended; c = Channel.connect<Item>(ch.handle)) {
            ended = true;
            let n = 0;
            for await (const v of c) {
              got.push(v);
              if (++n === s.breakEvery) {
                ended = false;
                break;
              }
            }
          }
          return got;
        })(),
      );
    }
    let puts: number[];
    let gots: Item[][];
    try {
      if (s.close === 'after producers') {
        await Promise.all(producers);
        ch.closeSync();
      } else {
        for (let t = 0; t < s.closeAfterTurns; t++) await new Promise((resolve) => setImmediate(resolve));
        ch.closeSync(s.close === 'racing immediate' ? { grace: 0 } : {});
      }
      puts = await Promise.all(producers);
      gots = await Promise.all(consumers);
    } finally {
      // Whatever failed, no task may outlive this run and answer the next one.
      ch.closeSync({ grace: 0 });
      await Promise.allSettled([...producers, ...consumers]);
    }
    const seen = new Set<string>();
    // Items an iteration gives back are older than those other getters may have got meanwhile:
    // with several getters and iterations broken off, each getter's order is not kept.
    const ordered = s.breakEvery === 0 || gots.length === 1;
    for (const got of gots) {
      const last = new Map<number, number>();
      for (const v of got) {
        const key = `${v.p}:${v.i}`;
        assert.ok(!seen.has(key), `duplicated ${key}`);
        seen.add(key);
        assert.ok(v.i < (puts[v.p] ?? 0), `${key} was never put`);
        if (ordered) assert.ok((last.get(v.p) ?? -1) < v.i, `producer ${v.p} out of order`);
        last.set(v.p, v.i);
        assert.equal(v.pad, 'x'.repeat((v.i * 7 + v.p * 3) % 41));
      }
    }
    const total = puts.reduce((x, y) => x + y, 0);
    if (s.close !== 'racing immediate') assert.equal(seen.size, total, 'items lost');
    assert.equal(waiters(ch.handle, GET_WAITERS) + waiters(ch.handle, PUT_WAITERS), 0);
  }

  test('every item put before close is got exactly once, in per-producer order, and nobody stays blocked', async () => {
    await fc.assert(fc.asyncProperty(scenario, check), { numRuns: 60 });
  });

  test('the same with capacities large enough that iterations take items in batches', async () => {
    const batched = scenario.chain((s) => fc.constantFrom(32, 200, 0x7fffffff).map((capacity) => ({ ...s, capacity })));
    await fc.assert(fc.asyncProperty(batched, check), { numRuns: 60 });
  });
});
