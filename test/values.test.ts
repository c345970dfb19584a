/**
 * The value rule: what crosses by copy arrives as structuredClone would make it (errors as real
 * errors, platform value classes as themselves, data class instances as their fields), what is
 * lent arrives as a proxy, and lengths read from shared memory are bounded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { types } from 'node:util';
import { ClosedError, DataCloneError, LoopThread } from 'loopthread';
import { thrown } from './helpers.js';

describe('errors arrive as real errors', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'values-errors' });
  });
  after(() => {
    loop.closeSync();
  });

  it('an error thrown on the loop thread is a native error of its class, which structuredClone keeps', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        throw Object.assign(new TypeError('bad input'), { code: 'E_BAD', detail: { at: 3 } });
      }),
    );
    assert.ok(e instanceof TypeError);
    assert.ok(types.isNativeError(e), 'util.types.isNativeError');
    assert.equal(Object.prototype.toString.call(e), '[object Error]');
    assert.equal(e.message, 'bad input');
    assert.equal((e as { code?: unknown }).code, 'E_BAD');
    assert.deepEqual((e as { detail?: unknown }).detail, { at: 3 });
    const cloned = structuredClone(e);
    assert.ok(cloned instanceof TypeError, 'structuredClone of the copy is still a TypeError');
    assert.equal(cloned.message, 'bad input');
  });

  it('an awaited call rejects with a native error too, and a subclass of ours keeps its class', async () => {
    const e = await loop
      .run(() => Promise.reject(new RangeError('out of range', { cause: new Error('below zero') })))
      .then(
        () => assert.fail('fulfilled'),
        (error: unknown) => error,
      );
    assert.ok(e instanceof RangeError && types.isNativeError(e));
    assert.ok(e.cause instanceof Error && types.isNativeError(e.cause));
    assert.equal(e.cause.message, 'below zero');
    const closed = thrown(() =>
      loop.runSync(async () => {
        const { ClosedError: Closed } = await import('loopthread');
        throw new Closed('gone');
      }),
    );
    assert.ok(closed instanceof ClosedError && types.isNativeError(closed));
    assert.equal(closed.name, 'ClosedError');
  });

  it('an error whose stack is undefined arrives with an undefined stack, not a made-up one', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        const error = new Error('no stack');
        error.stack = undefined;
        throw error;
      }),
    );
    assert.ok(e instanceof Error);
    assert.equal(e.stack, undefined);
    assert.equal(structuredClone(e).stack, undefined, 'as structuredClone keeps it');
  });

  it('an AggregateError keeps its errors, each a native error', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        throw new AggregateError([new SyntaxError('a'), new URIError('b')], 'both');
      }),
    );
    assert.ok(e instanceof AggregateError && types.isNativeError(e));
    assert.deepEqual(
      e.errors.map((x: unknown) => [types.isNativeError(x), (x as Error).name]),
      [
        [true, 'SyntaxError'],
        [true, 'URIError'],
      ],
    );
  });

  it('an error copied as data (an argument) is a native error on the other side', () => {
    const seen = loop.runSync(async (e: Error) => {
      const { types } = await import('node:util');
      return [types.isNativeError(e), e instanceof EvalError, Object.prototype.toString.call(e)];
    }, new EvalError('as data'));
    assert.deepEqual(seen, [true, true, '[object Error]']);
  });

  it('DataCloneError and ClosedError from loopthread itself still cross as themselves', () => {
    const e = thrown(() => loop.runSync((x: unknown) => x, Symbol('s')));
    assert.ok(e instanceof DataCloneError);
  });
});

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

class Account {
  constructor(public balance: number) {}
  deposit(n: number): number {
    return (this.balance += n);
  }
}

describe('one value rule for arguments', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'values-rule' });
  });
  after(() => {
    loop.closeSync();
  });

  it('a data class instance (no methods) is copied as its own fields, as structuredClone copies it', async () => {
    assert.equal(
      loop.runSync((p) => p.x + p.y, new Point(1, 2)),
      3,
    );
    assert.deepEqual(
      await loop.run((p) => [p.x, p.y, Object.getPrototypeOf(p) === Object.prototype], new Point(3, 4)),
      [3, 4, true],
    );
  });

  it('a class instance with methods is lent: its reads are promises there, and its methods run here', () => {
    const account = new Account(10);
    const seen = loop.runSync(
      async (a) => [a.balance instanceof Promise, await a.balance, await a.deposit(5)],
      account,
    );
    assert.deepEqual(seen, [true, 10, 15]);
    assert.equal(account.balance, 15, 'the method ran on the caller thread, on its object');
  });

  it('URL and URLSearchParams cross as themselves: fs/promises reads a URL passed through importSync', () => {
    const fsp = loop.importSync<typeof import('node:fs/promises')>('node:fs/promises');
    const text = fsp.readFile(new URL('../../package.json', `file://${__dirname}/`), 'utf8') as string;
    assert.equal((JSON.parse(text) as { name: string }).name, 'loopthread');
    const back = loop.runSync(
      (u: URL, q: URLSearchParams) => [u, q, u instanceof URL, q instanceof URLSearchParams],
      new URL('https://a.example/p?x=1#h'),
      new URLSearchParams('a=1&a=2'),
    );
    assert.ok(back[0] instanceof URL && back[0].href === 'https://a.example/p?x=1#h');
    assert.ok(back[1] instanceof URLSearchParams && back[1].getAll('a').join() === '1,2');
    assert.deepEqual(back.slice(2), [true, true]);
  });

  it('a Blob goes to a non-blocking call (beside the message); a blocking call refuses it with a clear error', async () => {
    const text = await loop.run((b: Blob) => b.text(), new Blob(['blob bytes']));
    assert.equal(text, 'blob bytes');
    const e = thrown(() => loop.runSync((b: Blob) => b.size, new Blob(['x'])));
    assert.ok(e instanceof DataCloneError);
    assert.match(e.message, /argument 1 is an instance of Blob .*asynchronously/);
  });

  it('a detached ArrayBuffer is refused with a DataCloneError that names where it sits', () => {
    const b = new ArrayBuffer(8);
    structuredClone(b, { transfer: [b] });
    const e = thrown(() => loop.runSync((x: unknown) => x, { data: [b] }));
    assert.ok(e instanceof DataCloneError);
    assert.equal(e.path, 'argument 1 at .data[0]');
    assert.match(e.message, /detached ArrayBuffer/);
  });

  it('a sparse array of length 2 ** 32 - 1 crosses at once, holes and all', () => {
    const a: string[] = [];
    a.length = 2 ** 32 - 1;
    a[5] = 'x';
    const back = loop.runSync((v: string[]) => v, a);
    assert.equal(back.length, 2 ** 32 - 1);
    assert.equal(back[5], 'x');
    assert.ok(!(4 in back));
  });

  it('views keep their byteOffset, and views of one buffer share one buffer; a resizable buffer stays resizable', () => {
    const buffer = new ArrayBuffer(16, { maxByteLength: 64 });
    const a = new Uint8Array(buffer, 4, 4);
    const b = new Uint16Array(buffer, 8, 2);
    const views: [Uint8Array, Uint16Array] = [a, b];
    const [ca, cb] = loop.runSync((v: [Uint8Array, Uint16Array]) => v, views);
    assert.equal(ca.byteOffset, 4);
    assert.equal(cb.byteOffset, 8);
    assert.equal(ca.buffer, cb.buffer);
    assert.ok((ca.buffer as ArrayBuffer).resizable);
    assert.equal((ca.buffer as ArrayBuffer).maxByteLength, 64);
  });
});

describe('channels and pools copy what structuredClone copies', () => {
  it('a Channel copies a class instance as its fields', async () => {
    const { Channel } = await import('loopthread');
    const channel = new Channel<unknown>();
    await channel.put(new Point(1, 2));
    await channel.put(new Account(3));
    assert.deepEqual(await channel.get(), { x: 1, y: 2 });
    assert.deepEqual(await channel.get(), { balance: 3 });
    await channel.close();
  });

  it('the pool copies a class instance argument as its fields', async () => {
    const { ThreadPoolExecutor } = await import('loopthread');
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      assert.equal(await pool.submit((p: { x: number; y: number }) => p.x + p.y, new Point(4, 5)), 9);
    } finally {
      await pool.close();
    }
  });
});

describe('lengths read from shared memory are bounded', () => {
  it('a corrupted Channel record length fails the get with a clear error, not a huge array', async () => {
    const { Channel, LoopThreadError } = await import('loopthread');
    const channel = new Channel<string>({ allowBlockingMainThread: true });
    channel.putSync('abc');
    // The first record starts the ring, after the 64-word header: its length word is overwritten.
    new Int32Array(channel.createHandle().buffer)[64] = 1_000_000_000;
    const e = thrown(() => channel.getSync());
    assert.ok(e instanceof LoopThreadError, String(e));
    assert.match(e.message, /corrupt channel record \(length 1000000000/);
    channel.closeSync();
  });
});

describe('a call made while the arguments of another are written', () => {
  it('from a getter of an argument, to the same thread: both are answered, each its own, small and large', () => {
    const loop = new LoopThread({ name: 'nested' });
    try {
      const small = {
        a: 'outer',
        get g(): string {
          return loop.runSync((x: string) => x.toUpperCase(), 'inner');
        },
        z: 'tail',
      };
      assert.deepEqual(
        loop.runSync((v: { a: string; g: string; z: string }) => [v.a, v.g, v.z], small),
        ['outer', 'INNER', 'tail'],
      );
      const large = {
        s: 'q'.repeat(1 << 20),
        get g(): number {
          return loop.runSync((x: string) => x.length, 'z'.repeat(1 << 20));
        },
      };
      assert.deepEqual(
        loop.runSync((v: { s: string; g: number }) => [v.s.length, v.g], large),
        [1 << 20, 1 << 20],
      );
      assert.equal(
        loop.runSync(() => 'still serving'),
        'still serving',
      );
    } finally {
      loop.closeSync();
    }
  });
});

describe('bytes around the size where copies out of shared memory change method', () => {
  it('arrive whole, in a buffer of their own of exactly their size, both ways', () => {
    const loop = new LoopThread({ name: 'bytes' });
    try {
      for (const n of [2047, 2048, 4097, 65_535]) {
        const sent = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
        const [size, own, back] = loop.runSync(
          (b: Uint8Array) => [b.byteLength, b.buffer.byteLength, b] as const,
          sent,
        );
        assert.equal(size, n);
        assert.equal(own, n, 'the loop thread got a larger buffer than its bytes');
        assert.deepEqual(back, sent);
        assert.equal(back.buffer.byteLength, n);
        assert.notEqual(back.buffer, sent.buffer);
      }
    } finally {
      loop.closeSync();
    }
  });
});

describe('strings around the lengths where reading them changes method', () => {
  it('arrive whole and equal, both ways, for one-byte and two-byte characters', () => {
    const loop = new LoopThread({ name: 'strings' });
    try {
      // Up to 8 one-byte characters are made in one step, longer ones by Buffer; both at the edges of latin1.
      const chars = ['\u0000', 'a', '\u007f', '\u0080', '\u00ff', '\u0100', '\u{1f600}'];
      for (let n = 0; n <= 18; n++) {
        for (const c of chars) {
          const s = c.repeat(n);
          const mixed = Array.from({ length: n }, (_, i) => String.fromCharCode((i * 37 + n) & 255)).join('');
          const [back, backMixed] = loop.runSync((a: string, b: string) => [a, b] as const, s, mixed);
          assert.equal(back, s, `${JSON.stringify(c)} x ${String(n)}`);
          assert.equal(backMixed, mixed, `mixed one-byte characters x ${String(n)}`);
        }
      }
    } finally {
      loop.closeSync();
    }
  });
});
