/**
 * Remote references: what is not plain data crosses by reference, and the proxies work from
 * synchronous code: method calls, property reads, `new`, iteration of async iterables, async
 * resources entered and exited, callbacks into the blocked caller; references are released.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { threadId } from 'node:worker_threads';
import {
  ClosedError,
  DataCloneError,
  LoopThread,
  byRef,
  byValue,
  isRemote,
  iterate,
  iterateSync,
  release,
  type Syncified,
} from 'loopthread';
import { thrown } from './helpers.js';

type RefsApi = typeof import('./fixtures/refs-module.mjs');
const fixture = (name: string): URL => new URL(`./fixtures/${name}`, pathToFileURL(__filename));

describe('copy or reference', () => {
  let loop: LoopThread;
  let refs: Syncified<RefsApi>;
  before(() => {
    loop = new LoopThread({ name: 'refs' });
    refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  it('a class instance returned by a blocking call is a reference whose methods block and return values', () => {
    const db = refs.open('app.db');
    assert.ok(isRemote(db));
    const rows: string[] = db.all('select 1');
    assert.deepEqual(rows, ['app.db: select 1']);
    assert.equal(db.path, 'app.db', 'a property read is a call to the loop thread');
    assert.equal(db.closed, false);
    db.close();
    assert.equal(db.closed, true, 'the object on the loop thread changed');
  });

  it('what a remote method returns follows the same rule: a returned object is a reference too', () => {
    const db = refs.open('x');
    const cursor = db.cursor('a', 'b');
    assert.ok(isRemote(cursor));
    assert.equal(cursor.next(), 'a');
    assert.equal(cursor.next(), 'b');
    assert.equal(cursor.next(), undefined);
  });

  it('plain data is copied: the copy does not change with the original', () => {
    const data = loop.runSync(() => {
      const o = { list: [1, 2], when: new Date(0) };
      (globalThis as { kept?: object }).kept = o;
      return o;
    });
    assert.ok(!isRemote(data));
    assert.deepEqual(data, { list: [1, 2], when: new Date(0) });
  });

  it('new on a remote class constructs on the loop thread', () => {
    const Remote = loop.runSync(
      () =>
        class Point {
          constructor(
            readonly x: number,
            readonly y: number,
          ) {}
          sum(): number {
            return this.x + this.y;
          }
        },
    );
    const p = new Remote(2, 3);
    assert.ok(isRemote(p));
    assert.equal(p.sum(), 5);
  });

  it('a reference passed back to its thread is the original object there', () => {
    const db = refs.open('same');
    assert.equal(db.same(db), true);
    const other = refs.open('other');
    assert.equal(db.same(other), false);
  });

  it('byRef sends copyable data by reference: changes made there are seen through it', () => {
    const counter = { n: 0 };
    const bump = loop.runSync(async (c: { n: number }) => {
      // On the loop thread `c` is a reference to the caller's object; reading it is a call back.
      return (await (c as unknown as { n: Promise<number> }).n) + 1;
    }, byRef(counter));
    assert.equal(bump, 1);
  });

  it('byValue copies the fields of a class instance', () => {
    class Settings {
      readonly depth = 3;
      readonly name = 'x';
      describe(): string {
        return `${this.name}:${String(this.depth)}`;
      }
    }
    const seen = loop.runSync(
      (s: object) => [Object.getPrototypeOf(s) === Object.prototype, JSON.stringify(s)],
      byValue(new Settings()),
    );
    assert.deepEqual(seen, [true, '{"depth":3,"name":"x"}']);
  });

  it('byRef and byValue refuse primitives with a clear TypeError', () => {
    assert.throws(() => byRef(1 as unknown as object), /byRef\(\) takes an object or a function/);
    assert.throws(() => byValue('x' as unknown as object), /byValue\(\) takes an object or a function/);
  });

  it('a reference from a non-blocking call is an async proxy: its methods return Futures', async () => {
    const api = await loop.import<RefsApi>(fixture('refs-module.mjs'));
    const db = await api.open('async.db');
    assert.ok(isRemote(db));
    assert.deepEqual(await db.all('q'), ['async.db: q']);
    const cursor = await db.cursor('z');
    assert.equal(await cursor.next(), 'z');
  });

  it('a released reference fails with a clear error, and release is idempotent-safe', () => {
    const db = refs.open('released');
    release(db);
    const e = thrown(() => db.all('q'));
    assert.ok(e instanceof ReferenceError);
    assert.match(e.message, /reference to Db was released/);
    assert.throws(() => {
      release({});
    }, /release\(\) takes a reference/);
  });

  it('a reference sent to another LoopThread fails with DataCloneError naming its owner', () => {
    using other = new LoopThread({ name: 'stranger' });
    const db = refs.open('mine');
    const e = thrown(() => other.runSync((x: unknown) => x, db));
    assert.ok(e instanceof DataCloneError);
    assert.equal(e.path, 'argument 1');
    assert.match(e.message, /a reference to an object of LoopThread "refs", which can only be passed back there/);
  });

  it('calls through a reference keep the LoopThread`s default timeout', () => {
    using slow = new LoopThread({ name: 'default-timeout', timeout: 1_000 });
    // Starting the thread and importing may take longer than the default on a busy machine.
    const sleeper = slow.with({ timeout: 60_000 }).importSync<RefsApi>(fixture('refs-module.mjs')).makeSleeper();
    assert.equal(sleeper.sleep(1), 1);
    assert.throws(() => sleeper.sleep(60_000), { name: 'TimeoutError' });
  });

  it('`using` on a reference disposes of the remote object and releases it', () => {
    const s = loop.runSync(() => {
      const state = { disposed: false };
      (globalThis as { disposable?: object }).disposable = state;
      return {
        state,
        resource: {
          [Symbol.asyncDispose]: async () => {
            await Promise.resolve();
            state.disposed = true;
          },
        },
      };
    });
    {
      using r = s.resource as unknown as Disposable;
      assert.ok(isRemote(r));
    }
    assert.equal(
      loop.runSync(() => (globalThis as unknown as { disposable: { disposed: boolean } }).disposable.disposed),
      true,
    );
  });
});

describe('async iterables from synchronous code', () => {
  let loop: LoopThread;
  let refs: Syncified<RefsApi>;
  before(() => {
    loop = new LoopThread({ name: 'iteration' });
    refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  it('for...of walks a remote async generator', () => {
    const seen: number[] = [];
    for (const i of refs.counter(5)) seen.push(i);
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    assert.equal(refs.takeLog().at(-1), 'gen finally');
  });

  it('break runs the generator`s finally before the loop statement ends', () => {
    refs.takeLog();
    for (const i of refs.counter(1000, 'b')) {
      if (i === 2) break;
    }
    const log = refs.takeLog();
    assert.equal(log.at(-1), 'b finally', 'the finally ran before the loop ended');
  });

  it('an exception in the loop body also ends the remote generator first', () => {
    refs.takeLog();
    assert.throws(() => {
      for (const i of refs.counter(1000, 't')) {
        if (i === 1) throw new Error('body failed');
      }
    }, /body failed/);
    assert.equal(refs.takeLog().at(-1), 't finally');
  });

  it('an error of the generator surfaces at its item, after the items before it', () => {
    const seen: number[] = [];
    const e = thrown(() => {
      for (const i of refs.failsAt(3)) seen.push(i);
    });
    assert.deepEqual(seen, [0, 1, 2]);
    assert.ok(e instanceof RangeError);
    assert.equal(e.message, 'failed at item 3');
  });

  it('items are prefetched in batches; batchSize 1 takes strictly one item per round trip', () => {
    refs.takeLog();
    const batched = iterateSync<number>(refs.counter(100, 'p'));
    assert.deepEqual(batched.next(), { value: 0, done: false });
    const madeAhead = refs.takeLog().filter((l) => l.startsWith('p ')).length;
    assert.ok(madeAhead > 1, `the first round trip brought several items (${String(madeAhead)})`);
    batched.return?.();

    refs.takeLog();
    const strict = iterateSync<number>(refs.counter(100, 's'), { batchSize: 1 });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(strict.next(), { value: i, done: false });
      assert.deepEqual(
        refs.takeLog().filter((l) => l.startsWith('s ')),
        [`s ${String(i)}`],
        'exactly one item made per item taken',
      );
    }
    strict.return?.();
    assert.deepEqual(refs.takeLog(), ['s finally']);
  });

  it('an endless synchronous iterator with a huge batchSize: one batch takes at most 65,536 items', () => {
    const endless = loop.runSync(() => {
      const state = globalThis as { made?: number };
      state.made = 0;
      return (function* () {
        for (let i = 0; ; i++) {
          state.made = i + 1;
          yield i;
        }
      })();
    });
    const it = iterateSync<number>(endless, { batchSize: 2 ** 31 });
    assert.deepEqual(it.next(), { value: 0, done: false });
    it.return?.();
    const made = loop.runSync(() => (globalThis as { made?: number }).made);
    assert.ok(made !== undefined && made <= 65_536 + 1, `the first batch pulled ${String(made)} items`);
  });

  it('a slow item does not hold back the items before it', () => {
    // Each item takes a timer tick: batches end at the item that is not ready yet.
    const seen = [...refs.slow(5)];
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  });

  it('two remote generators can be advanced in alternation', () => {
    const a = iterateSync<number>(refs.counter(3, 'a'), { batchSize: 1 });
    const b = iterateSync<number>(refs.counter(3, 'b'), { batchSize: 1 });
    const pairs: [number, number][] = [];
    for (;;) {
      const x = a.next();
      const y = b.next();
      if (x.done === true || y.done === true) break;
      pairs.push([x.value, y.value]);
    }
    assert.deepEqual(pairs, [
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
  });

  it('a Node Readable, a web ReadableStream and a readline interface iterate from sync code', () => {
    assert.deepEqual([...refs.readable(3)], ['chunk 0', 'chunk 1', 'chunk 2']);
    assert.deepEqual([...refs.webStream(4)], [0, 1, 2, 3]);
    assert.deepEqual([...refs.lines('one\ntwo\nthree')], ['one', 'two', 'three']);
  });

  it('100,000 items cross in far fewer round trips than items', () => {
    // Counted on the loop thread: how many times the iterator was asked for a batch.
    const gen = loop.runSync(() => {
      const stats = { batches: 0 };
      (globalThis as { iterStats?: object }).iterStats = stats;
      return {
        [Symbol.asyncIterator]() {
          let i = 0;
          let turn = -1;
          let seenTurn = -2;
          const tick = (): void => {
            turn++;
          };
          return {
            async next() {
              // A new batch starts in a new event-loop turn: count the turns that pulled items.
              if (turn !== seenTurn) {
                seenTurn = turn;
                stats.batches++;
                setImmediate(tick);
              }
              await Promise.resolve();
              return i < 100_000 ? { value: i++, done: false } : { value: undefined, done: true };
            },
          };
        },
      };
    });
    let sum = 0;
    for (const i of gen as unknown as Iterable<number>) sum += i;
    assert.equal(sum, (100_000 * 99_999) / 2);
    const batches = loop.runSync(() => (globalThis as unknown as { iterStats: { batches: number } }).iterStats.batches);
    assert.ok(batches < 1_000, `${String(batches)} round trips for 100,000 items`);
  });

  it('a non-blocking reference iterates with for await, in batches', async () => {
    const api = await loop.import<RefsApi>(fixture('refs-module.mjs'));
    const seen: number[] = [];
    for await (const i of iterate<number>(await api.counter(4))) seen.push(i);
    assert.deepEqual(seen, [0, 1, 2, 3]);
    const more: number[] = [];
    for await (const i of await api.counter(2)) more.push(i);
    assert.deepEqual(more, [0, 1]);
  });

  it('a real async client: a FileHandle from fs/promises, its methods and its readLines()', () => {
    const fsp = loop.importSync<typeof import('node:fs/promises')>('node:fs/promises');
    const file = fsp.open(__filename);
    assert.ok(isRemote(file));
    const size = file.stat().size;
    assert.equal(size, readFileSync(__filename).length);
    const lines = [...file.readLines()];
    const expected = readFileSync(__filename, 'utf8').replace(/\n$/, '');
    assert.equal(lines.join('\n'), expected);
    // readLines() starts reading at once: lines read before for...of begins must not be lost.
    for (let i = 0; i < 10; i++) {
      const again = fsp.open(__filename);
      assert.equal(typeof again.fd, 'number'); // a round trip between opening and iterating
      assert.equal([...again.readLines()].length, lines.length, `round ${String(i)}`);
    }
  });

  it('an iteration left open is ended when the LoopThread closes: the generator`s finally runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopthread-iter-'));
    const file = join(dir, 'finally.log');
    try {
      const other = new LoopThread({ name: 'left-open' });
      const api = other.importSync<RefsApi>(fixture('refs-module.mjs'));
      const it = iterateSync<number>(api.counter(1000, 'open', file), { batchSize: 1 });
      assert.deepEqual(it.next(), { value: 0, done: false });
      assert.equal(existsSync(file), false);
      other.closeSync();
      assert.equal(readFileSync(file, 'utf8'), 'open finally\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('iterateSync refuses what is not a remote iterable', () => {
    assert.throws(() => iterateSync([1, 2]), /iterateSync\(\) takes a reference to an iterable/);
    assert.throws(() => iterateSync(refs.open('x')), /Db of LoopThread "iteration" is not iterable/);
  });
});

describe('async resources from synchronous code', () => {
  it('enterSync enters on the loop thread and exits at close, last in first out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopthread-enter-'));
    const file = join(dir, 'exits.log');
    try {
      const loop = new LoopThread({ name: 'resources' });
      const refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
      const a = loop.enterSync(refs.session, 'a', file);
      loop.enterSync(refs.session, 'b', file);
      assert.match(a.whoami(), /^a /);
      assert.deepEqual(refs.takeLog(), ['enter a', 'enter b']);
      assert.equal(existsSync(file), false, 'nothing exited before close');
      loop.closeSync();
      assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n'), [
        'exit b store=store of b',
        'exit a store=store of a',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the exit sees the AsyncLocalStorage value set on enter (one async frame)', () => {
    using loop = new LoopThread({ name: 'frame' });
    const refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
    {
      using s = loop.usingSync(refs.session, 's');
      assert.equal(s.whoami(), 's store=undefined', 'a call of its own does not see the frame`s store');
      assert.deepEqual(refs.takeLog(), ['enter s']);
    }
    assert.deepEqual(refs.takeLog(), ['exit s store=store of s'], 'exited at the end of the block, in its frame');
  });

  it('withSync returns the body`s value and the exit sees the body`s error', () => {
    using loop = new LoopThread({ name: 'with' });
    const refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
    const ended = loop.with({ exit: 'end' });
    assert.equal(
      ended.withSync(refs.connect, [false], (c) => c.suppress),
      false,
    );
    assert.deepEqual(refs.takeLog(), ['end error=none']);
    const e = thrown(() =>
      ended.withSync(refs.connect, [false], (): number => {
        throw new TypeError('body broke');
      }),
    );
    assert.ok(e instanceof TypeError);
    assert.equal(e.message, 'body broke', 'the body`s own error propagates');
    assert.deepEqual(refs.takeLog(), ['end error=TypeError: body broke']);
    // An exit that returns true suppresses the error, as __aexit__ does.
    assert.equal(
      ended.withSync(refs.connect, [true], (): number => {
        throw new Error('swallowed');
      }),
      undefined,
    );
    assert.deepEqual(refs.takeLog(), ['end error=Error: swallowed']);
  });

  it('the factory runs on the loop thread; what is not a resource is a TypeError', () => {
    using loop = new LoopThread({ name: 'factory' });
    const refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
    const ran = loop.enterSync(refs.threadResource);
    assert.equal(ran.here, refs.loopThreadId());
    assert.notEqual(ran.here, threadId);
    assert.throws(() => loop.enterSync(() => '' as unknown as object), /the function returned string, not a resource/);
    assert.throws(() => loop.enterSync(refs.connect), /no Symbol.asyncDispose or Symbol.dispose method/);
    assert.throws(() => loop.with({ exit: 'nope' }).enterSync(refs.connect), /has no method 'nope'/);
  });

  it('after close, enterSync fails with ClosedError', () => {
    const loop = new LoopThread({ name: 'closed-enter' });
    loop.closeSync();
    assert.throws(() => loop.enterSync(() => ({ [Symbol.asyncDispose]: async () => undefined })), ClosedError);
  });
});

describe('callbacks into the blocked caller', () => {
  let loop: LoopThread;
  let refs: Syncified<RefsApi>;
  before(() => {
    loop = new LoopThread({ name: 'callbacks' });
    refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  it('a function argument is called on the caller`s thread while it is blocked', () => {
    const threads: number[] = [];
    // Typed as returning a Promise (the loop side awaits it); a blocked caller answers at once.
    const result = refs.callTwice(
      ((n: number) => {
        threads.push(threadId);
        return n * 10;
      }) as unknown as (n: number) => Promise<number>,
      1,
    );
    assert.deepEqual(result, [10, 20]);
    assert.deepEqual(threads, [threadId, threadId]);
  });

  it('nested: a callback calls the loop again synchronously, which calls back, to depth 5', () => {
    const depths: number[] = [];
    const dive = (depth: number): number => {
      depths.push(depth);
      if (depth === 5) return depth;
      return loop.runSync(
        async (cb: (d: number) => number | Promise<number>, d: number) => (await cb(d + 1)) + 0,
        dive,
        depth,
      );
    };
    assert.equal(dive(0), 5);
    assert.deepEqual(depths, [0, 1, 2, 3, 4, 5]);
  });

  it('a callback that throws rejects the promise on the loop side with the faithful error', () => {
    class QuotaError extends Error {
      override name = 'QuotaError';
      readonly limit = 3;
    }
    const seen = loop.runSync(
      async (cb: () => Promise<void>) => {
        try {
          await cb();
          return 'no error';
        } catch (e) {
          const err = e as Error & { limit?: number };
          return `${err.name}: ${err.message} (limit ${String(err.limit)}, an Error: ${String(err instanceof Error)})`;
        }
      },
      () => {
        throw new QuotaError('too many');
      },
    );
    assert.equal(seen, 'QuotaError: too many (limit 3, an Error: true)');
  });

  it('a callback of a blocked caller that returns a promise is refused with a clear error there', () => {
    const message = loop.runSync(
      async (cb: () => Promise<number>) => {
        try {
          return String(await cb());
        } catch (e) {
          return (e as Error).message;
        }
      },
      async () => {
        await Promise.resolve();
        return 1;
      },
    );
    assert.match(message, /must return synchronously/);
  });

  it('when the caller is not blocked, callbacks run on its event loop (async callbacks too)', async () => {
    const order: string[] = [];
    const result = await loop.run(
      async (cb: (s: string) => Promise<string>) => (await cb('a')) + (await cb('b')),
      async (s: string) => {
        order.push(s);
        await new Promise((resolve) => setImmediate(resolve));
        return s.toUpperCase();
      },
    );
    assert.equal(result, 'AB');
    assert.deepEqual(order, ['a', 'b']);
  });

  it('a callback called after its blocking call timed out runs on the caller`s event loop later', async () => {
    let ran!: () => void;
    const late = new Promise<void>((resolve) => (ran = resolve));
    const e = thrown(() =>
      loop.with({ timeout: 50 }).runSync(refs.callAfterAbort, () => {
        ran();
        return Promise.resolve(1);
      }),
    );
    assert.equal((e as Error).name, 'TimeoutError');
    assert.equal(
      loop.runSync((x: number) => x + 1, 1),
      2,
      'the next blocking call is not confused by the late callback',
    );
    await late;
  });
});

describe('bad input', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'bad-input' });
  });
  after(() => {
    loop.closeSync();
  });

  it('a 4 MiB string crosses whole both ways (larger than any buffer; 64 MiB in the soak)', async () => {
    const big = 'x'.repeat(4 * 1024 * 1024 - 3) + 'end';
    const length = loop.runSync((s: string) => (s.endsWith('end') ? s.length : -1), big);
    assert.equal(length, big.length);
    const back = await loop.run((n: number) => 'y'.repeat(n) + '!', 4 * 1024 * 1024);
    assert.equal(back.length, 4 * 1024 * 1024 + 1);
    assert.ok(back.endsWith('y!'));
  });

  it('cyclic structures keep their shape', () => {
    const a: { self?: unknown; list: unknown[] } = { list: [] };
    a.self = a;
    a.list.push(a);
    const back = loop.runSync((x: typeof a) => x, a);
    assert.equal(back.self, back);
    assert.equal(back.list[0], back);
  });

  it('symbols are refused with DataCloneError', () => {
    const e = thrown(() => loop.runSync((x: unknown) => x, { s: Symbol('k') }));
    assert.ok(e instanceof DataCloneError);
    assert.equal(e.path, 'argument 1 at .s');
  });

  it('a revoked proxy in a result is refused with a clear error', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        const { proxy, revoke } = Proxy.revocable({}, {});
        revoke();
        return { proxy };
      }),
    );
    assert.ok(e instanceof DataCloneError);
    assert.match(e.message, /the result at \.proxy is a revoked Proxy/);
  });
});

describe('lifetime of lent objects', () => {
  it('references returned by 10,000 calls and dropped are released there (a million in the soak)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const loop = new LoopThread({ name: 'lifetime' });
    try {
      const refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
      const calls = 10_000;
      let sum = 0;
      for (let i = 0; i < calls; i++) {
        sum += refs.track(1).n;
        // Dropped proxies are released from this thread's event loop: let it turn now and then.
        if (i % 2_500 === 2_499) await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(sum, calls);
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      // Asked by the port, after the releases this thread posted there.
      const alive = await loop.run(refs.alive);
      // Without releases all 10,000 would be; after a full collection on both sides, next to none are.
      assert.ok(alive < 1_000, `${String(alive)} of ${String(calls)} lent objects still alive`);
    } finally {
      loop.closeSync();
    }
  });
});
