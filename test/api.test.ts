/**
 * The public API of loopthread, as users import it: values by copy, DataCloneError, remote error
 * fidelity, Future semantics, importSync/import proxies and their types, inline functions,
 * per-call options and currentSignal(), output ordering, process lifetime and the ES module entry.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  CancelledError,
  ClosedError,
  DataCloneError,
  Future,
  LoopThread,
  LoopThreadError,
  TimeoutError,
  type Syncified,
} from 'loopthread';

type ModuleApi = typeof import('./fixtures/api-module.mjs');
type GateApi = typeof import('./fixtures/api-gate.mjs');
type ErrorsApi = typeof import('./fixtures/api-errors.mjs');

const root = resolve(__dirname, '..', '..');
const fixture = (name: string): URL => new URL(`./fixtures/${name}`, pathToFileURL(__filename));

const identity = <T>(value: T): T => value;

/** What `fn` throws; fails the test if it returns. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return assert.fail('expected a throw');
}

/** What `p` rejects with; fails the test if it fulfills. */
async function rejection(p: PromiseLike<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  return assert.fail('expected a rejection');
}

/** A class, as the right-hand side of instanceof (private constructors included). */
interface ClassLike<T> {
  readonly prototype: T;
  readonly name: string;
  [Symbol.hasInstance](value: unknown): boolean;
}

function assertInstance<T>(value: unknown, ctor: ClassLike<T>): asserts value is T {
  assert.ok(value instanceof ctor, `expected an instance of ${ctor.name}, got ${String(value)}`);
}

/** Runs `script` in a child node process in the package root, guarded by a timeout. */
function runChild(
  args: string[],
  timeout = 20_000,
): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** Distinct keys for held calls, so tests never share a gate. */
let gateCount = 0;
const gateKey = (): string => `gate-${String(++gateCount)}`;

// ---- 1. values by copy -----------------------------------------------------------------------

describe('values by copy round-trip through an identity call', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'values' });
  });
  after(() => {
    loop.closeSync();
  });

  /** The value back from runSync and from run (the two channels: shared memory and port). */
  async function roundTrip<T>(value: T): Promise<[T, T]> {
    const viaRunSync = loop.runSync(identity, value) as T;
    const viaRun = (await loop.run(identity, value)) as T;
    return [viaRunSync, viaRun];
  }

  async function assertRoundTrip(value: unknown): Promise<void> {
    for (const back of await roundTrip(value)) assert.deepStrictEqual(back, value);
  }

  it('strings: empty, Latin-1, other non-ASCII, emoji and 64 KiB', async () => {
    for (const s of [
      '',
      'a',
      '\u0000 nul and \u007f del',
      'ÿ latin-1 only: àéîõü',
      'héllo wörld',
      '日本語のテキスト',
      '👍🏽 👨‍👩‍👧 🏳️‍🌈',
      'x'.repeat(64 * 1024),
      'é€😀'.repeat(16 * 1024),
      // one byte per character up to the end, then not: the boundaries of the codec's paths
      'ÿ'.repeat(48),
      'ÿ'.repeat(49),
      `${'é'.repeat(48)}\u0100`,
      'é'.repeat(64 * 1024),
      `${'é'.repeat(64 * 1024)}\u0100`,
    ]) {
      for (const back of await roundTrip(s)) assert.equal(back, s);
    }
  });

  it('a 4 MiB string (larger than the shared slot) arrives equal (64 MiB in the soak)', async () => {
    const unit = 'abcdé€😀';
    const big = unit.repeat(Math.ceil((4 * 1024 * 1024) / unit.length)).slice(0, 4 * 1024 * 1024);
    for (const back of await roundTrip(big)) {
      assert.equal(back.length, big.length);
      assert.ok(back === big, 'the 4 MiB string came back different');
    }
  });

  it('strings with lone surrogates round-trip unchanged', async () => {
    for (const s of ['\uD800', 'a\uDC00b', `${'x'.repeat(100)}\uD83D`]) {
      for (const back of await roundTrip(s)) {
        assert.equal(back.length, s.length);
        assert.ok(back === s, `${JSON.stringify(s)} came back as ${JSON.stringify(back)}`);
      }
    }
  });

  it('numbers: -0, NaN, Infinity, int32 bounds, 2**31 and fractions', async () => {
    for (const n of [
      0,
      -0,
      NaN,
      Infinity,
      -Infinity,
      2 ** 31,
      2 ** 31 - 1,
      -(2 ** 31),
      -(2 ** 31) - 1,
      0.1 + 0.2,
      -1.5,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      Number.MAX_SAFE_INTEGER,
    ]) {
      for (const back of await roundTrip(n)) assert.ok(Object.is(back, n), `${String(n)} came back as ${String(back)}`);
    }
  });

  it('bigints: zero, negative and huge', async () => {
    for (const b of [0n, 1n, -1n, -(2n ** 64n), 2n ** 200n + 12345n, -(3n ** 300n)]) {
      for (const back of await roundTrip(b)) assert.equal(back, b);
    }
  });

  it('booleans, null and undefined', async () => {
    for (const v of [true, false, null, undefined]) {
      for (const back of await roundTrip(v)) assert.equal(back, v);
    }
  });

  it('arguments arrive in order, trailing undefined included', async () => {
    const fn = (...args: unknown[]): [number, unknown[]] => [args.length, args];
    const expected = [4, [1, undefined, 'x', undefined]];
    assert.deepStrictEqual(loop.runSync(fn, 1, undefined, 'x', undefined), expected);
    assert.deepStrictEqual(await loop.run(fn, 1, undefined, 'x', undefined), expected);
  });

  it('nested plain objects and arrays', async () => {
    await assertRoundTrip({
      a: 1,
      b: { c: [1, 2, { d: 'e' }], f: [] },
      g: [[[]], { h: null, i: undefined }],
      '': 'empty key',
      42: 'numeric key',
    });
  });

  it('sparse arrays keep their length and their holes, as structuredClone does', async () => {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 3, , ,];
    for (const back of await roundTrip(sparse)) {
      assert.equal(back.length, 5);
      assert.deepStrictEqual([...back], [1, undefined, 3, undefined, undefined]);
      assert.ok(!(1 in back), 'a hole stays a hole');
      assert.deepStrictEqual(back, structuredClone(sparse));
    }
  });

  it('an own __proto__ key stays an own property and pollutes nothing', async () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
    for (const back of await roundTrip(value)) {
      assert.equal(Object.getPrototypeOf(back), Object.prototype);
      assert.deepStrictEqual(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, { polluted: true });
      assert.equal((back as { polluted?: unknown }).polluted, undefined);
    }
  });

  it('Map and Set, with object keys and members', async () => {
    const key = { k: 1 };
    const value = {
      map: new Map<unknown, unknown>([
        ['s', 1],
        [2, [3]],
        [key, new Set([1, 'two'])],
      ]),
      set: new Set<unknown>([1, 'a', key, null]),
    };
    for (const back of await roundTrip(value)) {
      assert.deepStrictEqual(back, value);
      assertInstance(back.map, Map);
      assertInstance(back.set, Set);
    }
  });

  it('Date, invalid Date and RegExp with flags', async () => {
    for (const back of await roundTrip([new Date(1_700_000_000_123), new Date(NaN), /a+(b)?\//giu, /x/sy])) {
      const [date, invalid, re, sticky] = back;
      assertInstance(date, Date);
      assert.equal(date.getTime(), 1_700_000_000_123);
      assertInstance(invalid, Date);
      assert.ok(Number.isNaN(invalid.getTime()));
      assertInstance(re, RegExp);
      assert.equal(re.source, 'a+(b)?\\/');
      assert.equal(re.flags, 'giu');
      assertInstance(sticky, RegExp);
      assert.equal(sticky.flags, 'sy');
    }
  });

  it('ArrayBuffer', async () => {
    const buffer = new Uint8Array([0, 1, 2, 255]).buffer;
    for (const back of await roundTrip(buffer)) {
      assertInstance(back, ArrayBuffer);
      assert.deepStrictEqual([...new Uint8Array(back)], [0, 1, 2, 255]);
    }
  });

  it('every typed array kind, with its own class and contents', async () => {
    const arrays = [
      new Int8Array([-128, 0, 127]),
      new Uint8Array([0, 255]),
      new Uint8ClampedArray([0, 255]),
      new Int16Array([-32768, 32767]),
      new Uint16Array([0, 65535]),
      new Int32Array([-(2 ** 31), 2 ** 31 - 1]),
      new Uint32Array([0, 2 ** 32 - 1]),
      new Float32Array([1.5, -0, NaN]),
      new Float64Array([Math.PI, -Infinity]),
      new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
      new BigUint64Array([0n, 2n ** 64n - 1n]),
    ];
    for (const back of await roundTrip(arrays)) {
      assert.equal(back.length, arrays.length);
      back.forEach((array, i) => {
        const original = arrays[i]!;
        assert.equal(Object.getPrototypeOf(array), Object.getPrototypeOf(original), original.constructor.name);
        assert.deepStrictEqual(array, original);
      });
    }
  });

  it('a typed array that views part of a buffer comes back with just its part', async () => {
    const part = new Uint16Array(new Uint16Array([1, 2, 3, 4]).buffer, 2, 2);
    for (const back of await roundTrip(part)) {
      assertInstance(back, Uint16Array);
      assert.deepStrictEqual([...back], [2, 3]);
    }
  });

  it('DataView', async () => {
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, -2.5);
    for (const back of await roundTrip(view)) {
      assertInstance(back, DataView);
      assert.equal(back.byteLength, 8);
      assert.equal(back.getFloat64(0), -2.5);
    }
  });

  it('a Buffer comes back as a Buffer', async () => {
    const buf = Buffer.from('héllo, buffer');
    for (const back of await roundTrip(buf)) {
      assert.ok(Buffer.isBuffer(back));
      assert.equal(back.toString(), 'héllo, buffer');
    }
  });

  it('boxed primitives stay boxed', async () => {
    const boxed = [new Number(3.5), new String('s'), new Boolean(false), Object(5n) as object];
    for (const back of await roundTrip(boxed)) {
      for (const b of back) assert.equal(typeof b, 'object');
      assert.deepStrictEqual(back, boxed);
    }
  });

  it('an object with a null prototype comes back as a plain object with the same own properties', async () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, b: [2] });
    for (const back of await roundTrip(bare)) {
      // Like structuredClone: the prototype is not kept, the data is.
      assert.equal(Object.getPrototypeOf(back), Object.prototype);
      assert.deepStrictEqual({ ...back }, { a: 1, b: [2] });
    }
  });

  it('cyclic structures and shared references keep their identity', async () => {
    const shared = { s: 1 };
    const self: Record<string, unknown> = { shared, again: shared, list: [shared] };
    self.self = self;
    const array: unknown[] = [1];
    array.push(array);
    const map = new Map<string, unknown>();
    map.set('me', map);
    const set = new Set<unknown>([shared]);
    for (const back of await roundTrip({ self, array, map, set, shared })) {
      const s = back.self;
      assert.equal(s.self, s);
      assert.equal(s.shared, s.again);
      assert.equal((s.list as unknown[])[0], s.shared);
      assert.equal(back.shared, s.shared);
      assert.equal(back.array[1], back.array);
      assert.equal(back.map.get('me'), back.map);
      assert.ok(back.set.has(back.shared));
    }
  });

  it('shared references keep their identity among many objects, also after a part was replaced by its text', async () => {
    // The encoder numbers the first few objects in a list and the rest in a Map: references must
    // resolve across that switch, and after an error's uncopyable field was undone and replaced.
    const nodes: { i: number; first?: unknown; prev?: unknown; error?: Error; fresh?: unknown }[] = [];
    // First met inside the part that is replaced, then again after it: it must come whole.
    const fresh = { fresh: true };
    for (let i = 0; i < 30; i++) {
      const node: (typeof nodes)[number] = { i, first: nodes[0], prev: nodes[i - 1] };
      if (i === 13) node.fresh = fresh;
      if (i === 12)
        node.error = Object.assign(new Error('with a symbol'), {
          tag: { fresh, deep: Symbol('uncopyable'), ref: nodes[5] },
          back: nodes[3],
        });
      nodes.push(node);
    }
    for (const back of await roundTrip(nodes)) {
      assert.equal(back.length, 30);
      for (let i = 1; i < 30; i++) {
        assert.equal(back[i]?.first, back[0], `node ${String(i)}: its first`);
        assert.equal(back[i]?.prev, back[i - 1], `node ${String(i)}: its previous`);
      }
      const error = back[12]?.error as Error & { tag?: unknown; back?: unknown };
      assertInstance(error, Error);
      assert.equal(typeof error.tag, 'string', 'the uncopyable field travels as its text');
      assert.match(error.tag as string, /Symbol\(uncopyable\)/);
      assert.equal(error.back, back[3], 'a reference after the replaced field still resolves');
      assert.deepStrictEqual(back[13]?.fresh, { fresh: true });
    }
  });

  it('Error values keep their class, message, cause and own properties', async () => {
    const error = Object.assign(new RangeError('out of range', { cause: new Error('why') }), { code: 'E_RANGE' });
    for (const back of await roundTrip([error, error])) {
      const [e, again] = back;
      assertInstance(e, RangeError);
      assert.equal(e, again, 'a shared error keeps its identity');
      assert.equal(e.message, 'out of range');
      assert.equal(e.code, 'E_RANGE');
      assertInstance(e.cause, Error);
      assert.equal(e.cause.message, 'why');
    }
  });

  it('an error inside a cyclic structure keeps its identity', async () => {
    const error = new Error('owned') as Error & { data?: { owner: Error } };
    error.data = { owner: error };
    for (const back of await roundTrip(error)) {
      assertInstance(back, Error);
      assert.equal(back.data?.owner, back);
    }
  });

  it('errors whose causes form a cycle come back with the cycle', async () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    for (const back of await roundTrip(a)) {
      assertInstance(back.cause, Error);
      assert.equal(back.cause.message, 'b');
      assert.equal(back.cause.cause, back);
    }
  });

  it('several errors that point back to their container are copied without hanging', () => {
    // In a child process: the bug this guards against makes encoding run (practically) forever.
    const script = `
      const { LoopThread } = require('loopthread');
      const loop = new LoopThread();
      const owner = {};
      for (let i = 0; i < 3; i++) { const e = new Error('e' + i); e.owner = owner; owner['e' + i] = e; }
      const back = loop.runSync((v) => v, owner);
      console.log(back.e0.owner === back && back.e2.owner === back);
      loop.closeSync();
    `;
    const child = runChild(['-e', script], 15_000);
    assert.equal(child.signal, null, `the child was killed (${String(child.signal)}): copying hung`);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'true\n');
  });
});

// ---- 2. values that cannot be copied ---------------------------------------------------------

describe('values that can be neither copied nor lent fail with DataCloneError', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'uncopyable' });
  });
  after(() => {
    loop.closeSync();
  });

  /** The DataCloneError of runSync and of run for the same call. */
  async function cloneErrors(fn: (...args: never[]) => unknown, ...args: unknown[]): Promise<DataCloneError[]> {
    const call = fn as (...a: unknown[]) => unknown;
    const sync = thrown(() => loop.runSync(call, ...args));
    const async = await rejection(loop.run(call, ...args));
    assertInstance(sync, DataCloneError);
    assertInstance(async, DataCloneError);
    return [sync, async];
  }

  it('a function nested in copied data crosses by reference; a symbol there is named by its path', async () => {
    // There the function is a reference: calling it gives a promise.
    const call = (o: { a: { b: [number, () => Promise<number>] } }): Promise<number> => o.a.b[1]();
    const data: { a: { b: [number, () => number] } } = { a: { b: [1, () => 2] } };
    assert.equal(await loop.run(call, data), 2, 'the function went by reference');
    for (const e of await cloneErrors(identity, { a: { b: [1, Symbol('x')] } })) {
      assert.equal(e.path, 'argument 1 at .a.b[1]');
      assert.match(e.message, /argument 1 at \.a\.b\[1\] is a symbol/);
      assert.equal(e.name, 'DataCloneError');
      assertInstance(e, LoopThreadError);
    }
  });

  it('a value in a Map names the Map entry', async () => {
    for (const e of await cloneErrors(identity, new Map([['k', Symbol('v')]]))) {
      assert.match(e.path, /^argument 1 at <Map value of "k">/);
    }
  });

  it('a refused value in a Set, a sparse array or a Map key names where it sits', async () => {
    const sparse: unknown[] = [];
    sparse[5] = Symbol('in a hole-y array');
    const named = Object.assign([] as unknown[], { label: Symbol('named') });
    named[3] = 0;
    const cases: [unknown, string][] = [
      [new Set([1, Symbol('s')]), 'argument 1 at <Set member>'],
      [sparse, 'argument 1 at [5]'],
      [named, 'argument 1 at .label'],
      [new Map([[Symbol('k'), 1]]), 'argument 1 at <Map key>'],
      [[0, new Map([[2, Symbol('v')]])], 'argument 1 at [1]<Map value of number>'],
    ];
    for (const [value, path] of cases) {
      for (const e of await cloneErrors(identity, value)) assert.equal(e.path, path);
    }
  });

  it('a revoked proxy is refused, saying so', async () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    for (const e of await cloneErrors(identity, 1, proxy)) {
      assert.equal(e.path, 'argument 2');
      assert.match(e.message, /argument 2 is a revoked Proxy/);
    }
  });

  it('a symbol argument is refused', async () => {
    for (const e of await cloneErrors(identity, Symbol('s'))) {
      assert.equal(e.path, 'argument 1');
      assert.match(e.message, /a symbol \(Symbol\(s\)\)/);
    }
  });

  it('a SharedArrayBuffer is refused by a blocking call, naming run() as the way', () => {
    const e = thrown(() => loop.runSync((shared: SharedArrayBuffer) => shared.byteLength, new SharedArrayBuffer(8)));
    assertInstance(e, DataCloneError);
    assert.equal(e.path, 'argument 1');
    assert.match(e.message, /argument 1 is an instance of SharedArrayBuffer/);
    assert.match(e.message, /run\(\)/);
  });

  it('a SharedArrayBuffer passed to run() is shared, not copied, both ways', async () => {
    const shared = new SharedArrayBuffer(8);
    const back = await loop.run((sab: SharedArrayBuffer) => {
      new Int32Array(sab)[0] = 7;
      return sab;
    }, shared);
    assert.equal(new Int32Array(shared)[0], 7, 'the write on the loop thread is seen here');
    assertInstance(back, SharedArrayBuffer);
    new Int32Array(back)[1] = 9;
    assert.equal(new Int32Array(shared)[1], 9, 'the returned buffer is the same memory');
  });

  it('a typed array backed by a SharedArrayBuffer is refused, saying why', async () => {
    const view = new Int32Array(new SharedArrayBuffer(8));
    const fn = (n: number, v: Int32Array): number => n + v.length;
    for (const e of [thrown(() => loop.runSync(fn, 0, view)), await rejection(loop.run(fn, 0, view))]) {
      assertInstance(e, DataCloneError);
      assert.equal(e.path, 'argument 2');
      assert.match(e.message, /^argument 2 is an instance of Int32Array/);
      // Typed arrays are otherwise copied: the message must say that the shared buffer is the problem.
      assert.match(e.message, /SharedArrayBuffer/);
    }
  });

  it('a result with an uncopyable part names its path', async () => {
    const withSymbol = (): object => ({ list: [1, Symbol('z')] });
    for (const e of await cloneErrors(withSymbol)) {
      assert.equal(e.path, 'the result at .list[1]');
    }
  });

  it('a thrown value that cannot be copied fails with DataCloneError about "the thrown value"', async () => {
    const throwsSymbol = (): never => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw Symbol('thrown');
    };
    for (const e of await cloneErrors(throwsSymbol)) {
      assert.match(e.message, /^the thrown value is a symbol/);
    }
  });

  it('after a refused argument, the same inline function still works (runSync and run)', async () => {
    const double = (n: unknown): unknown => (typeof n === 'number' ? n * 2 : n);
    assert.throws(() => loop.runSync(double, Symbol('no')), DataCloneError);
    assert.equal(loop.runSync(double, 21), 42);
    assertInstance(await rejection(loop.run(double, Symbol('no'))), DataCloneError);
    assert.equal(await loop.run(double, 4), 8);
  });
});

// ---- 3. errors thrown remotely ---------------------------------------------------------------

describe('errors thrown on the loop thread', () => {
  let loop: LoopThread;
  let errors: Syncified<ErrorsApi>;
  let mod: Syncified<ModuleApi>;
  before(() => {
    loop = new LoopThread({ name: 'errors' });
    errors = loop.importSync<ErrorsApi>(fixture('api-errors.mjs'));
    mod = loop.importSync<ModuleApi>(fixture('api-module.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  it('arrive with name, message, code, own properties and a nested cause chain', async () => {
    const throwing = async (): Promise<never> => {
      await Promise.resolve();
      const root = new TypeError('root cause', { cause: 'the bottom' });
      const middle = new Error('middle', { cause: root });
      throw Object.assign(new Error('top', { cause: middle }), { code: 'E_TOP', details: { n: 1, list: [2] } });
    };
    for (const e of [thrown(() => loop.runSync(throwing)), await rejection(loop.run(throwing))]) {
      assertInstance(e, Error);
      assert.equal(e.name, 'Error');
      assert.equal(e.message, 'top');
      const fields = e as Error & { code?: unknown; details?: unknown };
      assert.equal(fields.code, 'E_TOP');
      assert.deepStrictEqual(fields.details, { n: 1, list: [2] });
      assertInstance(e.cause, Error);
      assert.equal(e.cause.message, 'middle');
      assertInstance(e.cause.cause, TypeError);
      assert.equal(e.cause.cause.message, 'root cause');
      assert.equal(e.cause.cause.cause, 'the bottom');
    }
  });

  it('a system error keeps code, errno, syscall and path', () => {
    const fsp = loop.importSync<typeof import('node:fs/promises')>('node:fs/promises');
    const e = thrown(() => fsp.readFile('/no/such/file/here'));
    assertInstance(e, Error);
    const sys = e as NodeJS.ErrnoException;
    assert.equal(sys.code, 'ENOENT');
    assert.equal(sys.syscall, 'open');
    assert.equal(sys.path, '/no/such/file/here');
    assert.equal(typeof sys.errno, 'number');
  });

  it('AggregateError keeps its errors', () => {
    const e = thrown(() =>
      loop.runSync(() => {
        throw new AggregateError([new TypeError('one'), 'two', new RangeError('three')], 'several');
      }),
    );
    assertInstance(e, AggregateError);
    assert.equal(e.message, 'several');
    const [one, two, three] = e.errors as unknown[];
    assertInstance(one, TypeError);
    assert.equal(one.message, 'one');
    assert.equal(two, 'two');
    assertInstance(three, RangeError);
  });

  it('built-in error classes are rebuilt', () => {
    const cases: [string, ClassLike<Error>][] = [
      ['TypeError', TypeError],
      ['RangeError', RangeError],
      ['SyntaxError', SyntaxError],
      ['ReferenceError', ReferenceError],
      ['EvalError', EvalError],
      ['URIError', URIError],
    ];
    for (const [name, ctor] of cases) {
      const e = thrown(() =>
        loop.runSync((n: string) => {
          const C = (globalThis as unknown as Record<string, new (m: string) => Error>)[n]!;
          throw new C(`a ${n}`);
        }, name),
      );
      assertInstance(e, ctor);
      assert.equal(e.name, name);
      assert.equal(e.message, `a ${name}`);
    }
  });

  it('a custom subclass arrives as its nearest built-in, keeping its name and fields', () => {
    const e = thrown(() => errors.throwValidationError());
    assertInstance(e, RangeError);
    assert.equal(e.name, 'ValidationError');
    assert.equal(e.message, 'bad email');
    assert.equal((e as Error & { field?: unknown }).field, 'email');
    assert.match(String(e), /^ValidationError: bad email/);
  });

  it('a DOMException arrives as a DOMException with its name', () => {
    const e = thrown(() => errors.throwAbortError());
    assertInstance(e, DOMException);
    assert.equal(e.name, 'AbortError');
  });

  it('thrown non-errors arrive as thrown', async () => {
    /* eslint-disable @typescript-eslint/only-throw-error */
    assert.equal(
      thrown(() =>
        loop.runSync(() => {
          throw 'a string';
        }),
      ),
      'a string',
    );
    assert.deepStrictEqual(
      thrown(() =>
        loop.runSync(() => {
          throw { plain: 'object', n: [1] };
        }),
      ),
      { plain: 'object', n: [1] },
    );
    assert.equal(
      thrown(() =>
        loop.runSync(() => {
          throw 42;
        }),
      ),
      42,
    );
    assert.equal(
      await rejection(
        loop.run(async () => {
          await Promise.resolve();
          throw undefined;
        }),
      ),
      undefined,
    );
    /* eslint-enable @typescript-eslint/only-throw-error */
  });

  it('the stack shows the remote frames, then the caller of runSync', function callerOfRunSync() {
    const e = thrown(() =>
      loop.runSync(() => {
        function thrownOnTheLoopThread(): never {
          throw new Error('with a stack');
        }
        thrownOnTheLoopThread();
      }),
    );
    assertInstance(e, Error);
    const stack = e.stack ?? '';
    assert.match(stack, /^Error: with a stack\n/);
    const remote = stack.indexOf('thrownOnTheLoopThread');
    const local = stack.indexOf('callerOfRunSync');
    assert.ok(remote > 0, `no remote frame in:\n${stack}`);
    assert.ok(local > remote, `the caller's frames do not follow the remote ones in:\n${stack}`);
  });

  it('the stack shows the remote frames, then the caller of an importSync function', function callerOfStub() {
    const e = thrown(() => mod.throwFromFixture());
    assertInstance(e, TypeError);
    const stack = e.stack ?? '';
    const remote = stack.indexOf('throwFromFixture');
    const local = stack.indexOf('callerOfStub');
    assert.ok(remote > 0, `no remote frame in:\n${stack}`);
    assert.ok(local > remote, `the caller's frames do not follow the remote ones in:\n${stack}`);
  });

  it("loopthread's own errors thrown remotely come back as the same class", async () => {
    const timeout = await rejection(
      loop.import<ErrorsApi>(fixture('api-errors.mjs')).then((m) => m.throwOwnTimeoutError()),
    );
    assertInstance(timeout, TimeoutError);
    assertInstance(timeout, LoopThreadError);
    assert.equal(timeout.name, 'TimeoutError');
    assert.equal(timeout.message, 'created on the loop thread');
    const clone = thrown(() => errors.throwOwnDataCloneError());
    assertInstance(clone, DataCloneError);
    assert.equal(clone.path, 'argument 3 at .x');
  });
});

// ---- 4. Future semantics ---------------------------------------------------------------------

describe('Future', () => {
  let loop: LoopThread;
  let gate: Syncified<GateApi>;
  before(() => {
    loop = new LoopThread({ name: 'futures' });
    gate = loop.importSync<GateApi>(fixture('api-gate.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  /**
   * Starts a held call through the port and waits (by a later port call) until it runs remotely.
   * The future comes wrapped: an async function returning a thenable would adopt it.
   */
  async function started(key: string, honorSignal = true): Promise<{ future: Future<string> }> {
    const future = loop.run(gate.hold, key, honorSignal);
    assert.equal(await loop.run(gate.isHeld, key), true);
    return { future };
  }

  it('run() returns a Future that is running until its call finishes, then finished', async () => {
    const key = gateKey();
    const { future } = await started(key);
    assertInstance(future, Future);
    assert.equal(future.state, 'running');
    assert.equal(future.running(), true);
    assert.equal(future.done(), false);
    assert.equal(future.cancelled(), false);
    assert.equal(gate.release(key, 'value'), true);
    assert.equal(await future, 'value');
    assert.equal(future.state, 'finished');
    assert.equal(future.running(), false);
    assert.equal(future.done(), true);
  });

  it('a future whose call failed is finished, and rejects', async () => {
    const future = loop.run(() => {
      throw new TypeError('failed');
    });
    assertInstance(await rejection(future), TypeError);
    assert.equal(future.state, 'finished');
    assert.equal(future.cancelled(), false);
  });

  it('cancel() succeeds before done and the future becomes cancelled', async () => {
    const key = gateKey();
    const { future } = await started(key);
    const reason = new Error('no longer needed');
    assert.equal(future.cancel(reason), true);
    assert.equal(future.state, 'cancelled');
    assert.equal(future.cancelled(), true);
    assert.equal(future.done(), true);
    assert.equal(future.running(), false);
    assert.equal(future.cancel(), true, 'cancelling again still reports cancelled');
    const e = await rejection(future);
    assertInstance(e, CancelledError);
    assert.equal(e.cause, reason);
  });

  it('cancel() fails once the future is done', async () => {
    const ok = loop.run(identity, 1);
    await ok;
    assert.equal(ok.cancel(), false);
    assert.equal(ok.state, 'finished');
    assert.equal(ok.resultSync(), 1);
    const failed = loop.run(() => {
      throw new Error('x');
    });
    await rejection(failed);
    assert.equal(failed.cancel(), false);
    assert.equal(failed.state, 'finished');
  });

  it('a cancelled future: resultSync and exceptionSync throw CancelledError', async () => {
    const key = gateKey();
    const { future } = await started(key);
    future.cancel();
    assert.throws(() => future.resultSync(), CancelledError);
    assert.throws(() => future.exceptionSync(), CancelledError);
  });

  it('cancelling a running call aborts its signal on the loop thread', async () => {
    const key = gateKey();
    const { future } = await started(key);
    future.cancel();
    await future.settled;
    assertInstance(await loop.run(gate.abortReasonOf, key), CancelledError);
    assert.equal(gate.isHeld(key), false);
  });

  it('settled resolves after a cancel only once the remote side has finished', async () => {
    const key = gateKey();
    const { future } = await started(key, false);
    let settled = false;
    void future.settled.then(() => {
      settled = true;
    });
    assert.equal(future.cancel(), true);
    // The call ignores its signal: it is still running, so `settled` cannot have resolved.
    assert.equal(await loop.run(gate.isHeld, key), true);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false);
    assert.equal(gate.release(key, 'late'), true);
    await future.settled;
    assert.equal(settled, true);
    assert.equal(future.state, 'cancelled', 'a late result does not undo the cancel');
    assert.throws(() => future.resultSync(), CancelledError);
  });

  it('addDoneCallback runs once, also when added after completion', async () => {
    const key = gateKey();
    const { future } = await started(key);
    const seen: string[] = [];
    future.addDoneCallback((f) => {
      assert.equal(f, future);
      seen.push(`early:${f.state}`);
    });
    assert.equal(seen.length, 0);
    gate.release(key, 'v');
    await future;
    assert.deepStrictEqual(seen, ['early:finished']);
    future.addDoneCallback((f) => seen.push(`late:${f.state}`));
    assert.deepStrictEqual(seen, ['early:finished', 'late:finished'], 'a late callback runs at once');
    assert.equal(future.cancel(), false);
    await future.settled;
    assert.deepStrictEqual(seen, ['early:finished', 'late:finished'], 'callbacks never run twice');
  });

  it('addDoneCallback runs for a cancelled future', async () => {
    const key = gateKey();
    const { future } = await started(key);
    const states: string[] = [];
    future.addDoneCallback((f) => states.push(f.state));
    future.cancel();
    future.cancel();
    assert.deepStrictEqual(states, ['cancelled']);
  });

  it('resultSync({ timeout }) throws TimeoutError while the future stays running, and later resolves', async () => {
    const key = gateKey();
    const { future } = await started(key);
    const e = thrown(() => future.resultSync({ timeout: 30 }));
    assertInstance(e, TimeoutError);
    assert.equal(e.name, 'TimeoutError');
    assert.equal(future.state, 'running');
    assert.throws(() => future.exceptionSync({ timeout: 10 }), TimeoutError);
    assert.equal(gate.release(key, 'eventually'), true);
    assert.equal(future.resultSync(), 'eventually');
    assert.equal(future.state, 'finished');
  });

  it('resultSync blocks until the result arrives', () => {
    const future = loop.run(async (ms: number) => {
      await new Promise((r) => setTimeout(r, ms));
      return 'after a timer';
    }, 20);
    assert.equal(future.resultSync(), 'after a timer');
  });

  it('exceptionSync returns the error, or undefined on success', () => {
    const failing = loop.run(() => {
      throw new RangeError('expected');
    });
    const e = failing.exceptionSync();
    assertInstance(e, RangeError);
    assert.equal(e.message, 'expected');
    assert.throws(() => failing.resultSync(), RangeError);
    assert.equal(loop.run(identity, 'fine').exceptionSync(), undefined);
  });

  it('await, then, catch and finally work', async () => {
    assert.equal(await loop.run((a: number, b: number) => a * b, 6, 7), 42);
    assert.equal(await loop.run(identity, 'x').then((v) => `${v}!`), 'x!');
    const caught = await loop
      .run(() => {
        throw new Error('caught');
      })
      .catch((e: unknown) => (e as Error).message);
    assert.equal(caught, 'caught');
    let finallyRan = false;
    assert.equal(
      await loop.run(identity, 1).finally(() => {
        finallyRan = true;
      }),
      1,
    );
    assert.equal(finallyRan, true);
    assert.equal(Object.prototype.toString.call(loop.run(identity, 0)), '[object Future]');
  });
});

// ---- 5. importSync and import ----------------------------------------------------------------

describe('importSync and import', () => {
  let loop: LoopThread;
  let mod: Syncified<ModuleApi>;
  before(() => {
    loop = new LoopThread({ name: 'imports' });
    mod = loop.importSync<ModuleApi>(fixture('api-module.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  it("importSync('node:fs/promises'): readFile returns the file's text", () => {
    const fsp = loop.importSync<typeof import('node:fs/promises')>('node:fs/promises');
    const text: string | Buffer = fsp.readFile(resolve(root, 'package.json'), 'utf8');
    assert.equal(typeof text, 'string');
    assert.equal((JSON.parse(text as string) as { name: string }).name, 'loopthread');
    // @ts-expect-error the function blocks and returns the value, not a Promise
    const notAPromise: Promise<unknown> = fsp.readFile(resolve(root, 'package.json'), 'utf8');
    assert.ok(!(notAPromise instanceof Promise));
  });

  it('functions of a module block and return awaited values, async and sync alike', () => {
    const sum: number = mod.add(2, 3);
    assert.equal(sum, 5);
    assert.equal(mod.multiply(4, 5), 20);
    assert.deepStrictEqual(mod.echo({ a: [1] }), { a: [1] });
    // @ts-expect-error add returns a number here, not a Promise
    const promised: Promise<number> = mod.add(1, 1);
    assert.equal(promised, 2);
  });

  it('a function from importSync can be passed to runSync and run', async () => {
    assert.equal(loop.runSync(mod.add, 1, 2), 3);
    assert.equal(await loop.run(mod.multiply, 3, 3), 9);
  });

  it('data exports are copied at import time', () => {
    assert.equal(mod.version, '1.2.3');
    assert.deepStrictEqual(mod.config, { retries: 3, tags: ['a', 'b'], when: new Date(0) });
    const fresh = loop.importSync<ModuleApi>(fixture('api-module.mjs'));
    const before = fresh.counter;
    assert.equal(fresh.bump(), before + 1);
    assert.equal(fresh.counter, before, 'the copy does not follow the module');
    const again = loop.importSync<ModuleApi>(fixture('api-module.mjs'));
    assert.equal(again.counter, before + 1, 'a new import copies the current value of the same module');
  });

  it('the proxy is frozen and tagged as a module', () => {
    assert.ok(Object.isFrozen(mod));
    assert.equal(Object.prototype.toString.call(mod), '[object Module]');
    assert.deepStrictEqual(Object.keys(mod).sort(), [
      'add',
      'api',
      'bump',
      'config',
      'counter',
      'default',
      'echo',
      'makeWidget',
      'multiply',
      'secretSymbol',
      'throwFromFixture',
      'version',
      'widget',
    ]);
  });

  it('a default export object with methods nests, with `this` bound to it', () => {
    assert.equal(mod.default.name, 'the default export');
    assert.equal(mod.default.describe(), 'I am the default export');
    assert.equal(mod.default.later(), 'later, the default export');
  });

  it('plain-object exports nest, their methods called with `this` bound to their object', () => {
    assert.equal(mod.api.label, 'api');
    assert.equal(mod.api.greet('you'), 'api greets you');
    assert.equal(mod.api.nested.depth, 2);
    assert.equal(mod.api.nested.depthTimes(21), 42);
  });

  it('an export that cannot be copied throws a clear TypeError when read', () => {
    // A class instance without methods is data: copied as its own fields, as structuredClone does.
    assert.deepEqual(mod.widget, { kind: 'widget' });
    const s = thrown(() => mod.secretSymbol);
    assertInstance(s, TypeError);
    assert.match(s.message, /export 'secretSymbol' is a symbol/);
    assert.ok(Object.keys(mod).includes('widget'), 'the export is still listed');
  });

  it('a remote function returning a class instance returns a reference to it', () => {
    const widget = mod.makeWidget();
    assert.equal(widget.kind, 'widget', 'a property read goes to the loop thread');
    assert.match((widget as unknown as { toString(): string }).toString(), /remote Widget/);
  });

  it('a relative path specifier resolves against the working directory', () => {
    let rel = relative(process.cwd(), resolve(__dirname, 'fixtures', 'api-module.mjs'));
    if (!rel.startsWith('..')) rel = `./${rel}`;
    assert.match(rel, /^\.\.?\//);
    const viaPath = loop.importSync<ModuleApi>(rel);
    assert.equal(viaPath.multiply(6, 7), 42);
    assert.equal(viaPath.version, '1.2.3');
  });

  it('an absolute path specifier and a URL specifier both load the module', () => {
    const viaAbsolute = loop.importSync<ModuleApi>(resolve(__dirname, 'fixtures', 'api-module.mjs'));
    assert.equal(viaAbsolute.add(1, 1), 2);
    const viaUrl = loop.importSync<ModuleApi>(fixture('api-module.mjs'));
    assert.equal(viaUrl.add(2, 2), 4);
    const viaHref = loop.importSync<ModuleApi>(fixture('api-module.mjs').href);
    assert.equal(viaHref.version, '1.2.3');
  });

  it('a missing module fails with the loader error and its ERR_MODULE_NOT_FOUND code', async () => {
    const missing = fixture('api-does-not-exist.mjs');
    const e = thrown(() => loop.importSync(missing));
    assertInstance(e, Error);
    assert.equal((e as NodeJS.ErrnoException).code, 'ERR_MODULE_NOT_FOUND');
    assert.match(e.message, /api-does-not-exist\.mjs/);
    const bare = thrown(() => loop.importSync('no-such-package-for-loopthread-tests'));
    assert.equal((bare as NodeJS.ErrnoException).code, 'ERR_MODULE_NOT_FOUND');
    const rejected = await rejection(loop.import(missing));
    assert.equal((rejected as NodeJS.ErrnoException).code, 'ERR_MODULE_NOT_FOUND');
  });

  it('import() gives a Promise of a proxy whose functions return Futures', async () => {
    const asyncMod = await loop.import<ModuleApi>(fixture('api-module.mjs'));
    const future: Future<number> = asyncMod.add(20, 22);
    assertInstance(future, Future);
    assert.equal(await future, 42);
    assert.equal(asyncMod.multiply(3, 4).resultSync(), 12);
    assert.equal(await asyncMod.default.describe(), 'I am the default export');
    assert.equal(await asyncMod.api.nested.depthTimes(2), 4);
    assert.equal(asyncMod.version, '1.2.3');
    // @ts-expect-error the stub returns a Future, not the number
    const notANumber: number = asyncMod.add(1, 2);
    assertInstance(notANumber, Future);
  });

  it("import('node:fs/promises'): readFile returns a Future of the text", async () => {
    const fsp = await loop.import<typeof import('node:fs/promises')>('node:fs/promises');
    const future: Future<string | Buffer<ArrayBuffer>> = fsp.readFile(resolve(root, 'package.json'), 'utf8');
    assert.equal(typeof (await future), 'string');
    // @ts-expect-error a Future, not the string itself
    const notAString: string = fsp.readFile(resolve(root, 'package.json'), 'utf8');
    assertInstance(notAString, Future);
  });

  it("runSync's return type is the awaited return type of the function", () => {
    const n: number = loop.runSync(async (a: number) => a + 1, 1);
    assert.equal(n, 2);
    const s: string = loop.runSync((a: string) => a.toUpperCase(), 'x');
    assert.equal(s, 'X');
    // @ts-expect-error runSync returns the awaited value, not a Promise
    const p: Promise<number> = loop.runSync(async () => 1);
    assert.equal(p, 1);
    const f: Future<number> = loop.run(async () => 1);
    // @ts-expect-error run returns a Future, not a Future of a Promise
    const nested: Future<Promise<number>> = loop.run(async () => 1);
    assert.equal(f.resultSync(), nested.resultSync());
    const asNumber = (a: number): number => a;
    // @ts-expect-error the arguments are type-checked against the function
    const unchecked = loop.runSync(asNumber, 'not a number');
    assert.equal(unchecked, 'not a number');
  });

  it('a function imported by one LoopThread is refused by another', () => {
    const other = new LoopThread({ name: 'other' });
    try {
      const e = thrown(() => other.runSync(mod.add, 1, 2));
      assertInstance(e, TypeError);
      assert.match(e.message, /another LoopThread/);
    } finally {
      other.closeSync();
    }
  });
});

// ---- 6. inline functions ---------------------------------------------------------------------

describe('inline functions', () => {
  let loop: LoopThread;
  before(() => {
    loop = new LoopThread({ name: 'inline' });
  });
  after(() => {
    loop.closeSync();
  });

  it('a method shorthand cannot be evaluated: a clear SyntaxError, from runSync and run', async () => {
    const holder = {
      triple(this: void, n: number): number {
        return n * 3;
      },
    };
    for (const e of [thrown(() => loop.runSync(holder.triple, 1)), await rejection(loop.run(holder.triple, 1))]) {
      assertInstance(e, SyntaxError);
      assert.match(e.message, /could not be evaluated/);
      assert.match(e.message, /method shorthand/);
    }
  });

  it('source that is not valid on its own (a private name) cannot be evaluated', () => {
    class Holder {
      readonly #secret = 7;
      read(l: LoopThread): number {
        return l.runSync(() => this.#secret);
      }
    }
    const e = thrown(() => new Holder().read(loop));
    assertInstance(e, SyntaxError);
    assert.match(e.message, /could not be evaluated/);
    assertInstance(e.cause, SyntaxError);
  });

  it('a function that failed to evaluate fails the same way when called again', () => {
    const holder = {
      twice(this: void, n: number): number {
        return n * 2;
      },
    };
    const first = thrown(() => loop.runSync(holder.twice, 1));
    const second = thrown(() => loop.runSync(holder.twice, 2));
    assertInstance(first, SyntaxError);
    assertInstance(second, SyntaxError);
    assert.equal(second.message, first.message);
  });

  it('a native function is refused at once with a TypeError', () => {
    const e = thrown(() => loop.runSync(Math.max, 1, 2));
    assertInstance(e, TypeError);
    assert.match(e.message, /native or bound function/);
    const future = loop.run(Math.max, 1, 2);
    assert.equal(future.done(), true, 'the future fails at once');
    assert.throws(() => future.resultSync(), TypeError);
  });

  it('a bound function is refused at once with a TypeError', () => {
    const bound = ((a: number) => a).bind(null);
    assert.throws(() => loop.runSync(bound, 1), { name: 'TypeError', message: /native or bound function/ });
    const future = loop.run(bound, 1);
    assert.equal(future.done(), true);
    assertInstance(future.exceptionSync(), TypeError);
  });

  it('something that is not a function is refused with a TypeError', () => {
    assert.throws(() => loop.runSync('() => 1' as unknown as () => number), TypeError);
  });

  it('a function using an outer variable fails on the loop thread with ReferenceError', () => {
    const outerValue = 42;
    const e = thrown(() => loop.runSync(() => outerValue));
    assertInstance(e, ReferenceError);
    assert.match(e.message, /outerValue is not defined/);
  });

  it('a function sees the globals of the loop thread and gets its data as arguments', async () => {
    const run = (a: { n: number }, b: number[]): [number, boolean, boolean] => [
      a.n + b.reduce((x, y) => x + y, 0),
      typeof setTimeout === 'function',
      typeof structuredClone === 'function',
    ];
    assert.deepStrictEqual(loop.runSync(run, { n: 1 }, [2, 3]), [6, true, true]);
    assert.deepStrictEqual(await loop.run(run, { n: 1 }, [2, 3]), [6, true, true]);
  });

  it('async functions are awaited; plain functions return at once', () => {
    assert.equal(
      loop.runSync(async (x: number) => {
        await new Promise((r) => setImmediate(r));
        return x * 2;
      }, 21),
      42,
    );
    assert.equal(
      loop.runSync(function plain(x: number) {
        return x + 1;
      }, 1),
      2,
    );
  });
});

// ---- 7. per-call options and currentSignal() --------------------------------------------------

describe('per-call options and currentSignal()', () => {
  let loop: LoopThread;
  let gate: Syncified<GateApi>;
  before(() => {
    loop = new LoopThread({ name: 'options' });
    gate = loop.importSync<GateApi>(fixture('api-gate.mjs'));
  });
  after(() => {
    loop.closeSync();
  });

  it('loop.with({ timeout }).runSync throws TimeoutError and aborts the remote signal with one', async () => {
    const key = gateKey();
    const e = thrown(() => loop.with({ timeout: 50 }).runSync(gate.hold, key));
    assertInstance(e, TimeoutError);
    assert.equal(e.name, 'TimeoutError');
    assertInstance(await loop.run(gate.abortedWith, key), TimeoutError);
    assert.equal(loop.runSync(identity, 'still works'), 'still works');
  });

  it('loop.with({ timeout }) applies to importSync functions', async () => {
    const slowGate = loop.with({ timeout: 50 }).importSync<GateApi>(fixture('api-gate.mjs'));
    const key = gateKey();
    assert.throws(() => slowGate.hold(key), TimeoutError);
    assertInstance(await loop.run(gate.abortedWith, key), TimeoutError);
    assert.equal(slowGate.isHeld(key), false);
  });

  it('loop.with({ timeout }).run rejects the future with TimeoutError', async () => {
    const key = gateKey();
    const future = loop.with({ timeout: 50 }).run(gate.hold, key);
    assertInstance(await rejection(future), TimeoutError);
    await future.settled;
    assertInstance(await loop.run(gate.abortReasonOf, key), TimeoutError);
  });

  it('a call that finishes in time is not affected by its timeout', () => {
    assert.equal(loop.with({ timeout: 60_000 }).runSync(identity, 'quick'), 'quick');
  });

  it('the constructor timeout is the default of every call', async () => {
    const strict = new LoopThread({ name: 'strict', timeout: 200 });
    try {
      // Only the held calls run into the default timeout: the thread starts and the module loads
      // under a generous one (a stub keeps the options of the importSync that made it).
      const patient = strict.with({ timeout: 60_000 });
      const strictGate = patient.importSync<GateApi>(fixture('api-gate.mjs'));
      assert.throws(() => strict.runSync(strictGate.hold, gateKey()), TimeoutError);
      assertInstance(await rejection(strict.run(strictGate.hold, gateKey())), TimeoutError);
      assert.throws(() => strict.with({}).runSync(strictGate.hold, gateKey()), TimeoutError);
      assert.equal(patient.runSync(identity, 'a call with its own timeout'), 'a call with its own timeout');
    } finally {
      strict.closeSync();
    }
  });

  it('an aborted signal cancels the call before it starts', () => {
    const signal = AbortSignal.abort('stop');
    const e = thrown(() => loop.with({ signal }).runSync(identity, 1));
    assertInstance(e, CancelledError);
    assert.equal(e.cause, 'stop');
    const future = loop.with({ signal }).run(identity, 1);
    assert.equal(future.state, 'cancelled');
  });

  it('aborting the signal cancels a running future and aborts the remote signal', async () => {
    const controller = new AbortController();
    const key = gateKey();
    const future = loop.with({ signal: controller.signal }).run(gate.hold, key);
    assert.equal(await loop.run(gate.isHeld, key), true);
    controller.abort('enough');
    assert.equal(future.cancelled(), true);
    const e = await rejection(future);
    assertInstance(e, CancelledError);
    assert.equal(e.cause, 'enough');
    await future.settled;
    assertInstance(await loop.run(gate.abortReasonOf, key), CancelledError);
  });

  it('currentSignal() inside a call is an AbortSignal, not aborted, kept across awaits', async () => {
    const expected = { isAbortSignal: true, aborted: false, afterAwait: true };
    assert.deepStrictEqual(gate.signalState(), expected);
    assert.deepStrictEqual(await loop.run(gate.signalState), expected);
    assert.deepStrictEqual(loop.with({ timeout: 60_000 }).runSync(gate.signalState), expected);
  });
});

// ---- 8-10. processes ---------------------------------------------------------------------------

describe('output, process lifetime and module entries', () => {
  it("console.log on the loop thread appears in order with the caller's output", () => {
    const script = `
      const { LoopThread } = require('loopthread');
      const loop = new LoopThread();
      console.log('before');
      loop.runSync(async () => {
        console.log('inside');
        await new Promise((r) => setTimeout(r, 10));
        console.log('inside, after a timer');
      });
      console.log('after');
      loop.closeSync();
    `;
    const child = runChild(['-e', script]);
    assert.equal(child.signal, null);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'before\ninside\ninside, after a timer\nafter\n');
  });

  it("console.error on the loop thread appears in order with the caller's stderr", () => {
    const script = `
      const { LoopThread } = require('loopthread');
      const loop = new LoopThread();
      console.error('before');
      loop.runSync(() => console.error('inside'));
      console.error('after');
      loop.closeSync();
    `;
    const child = runChild(['-e', script]);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stderr, 'before\ninside\nafter\n');
  });

  it('an idle LoopThread that is never closed does not keep the process alive', () => {
    const script = `
      const { LoopThread } = require('loopthread');
      const loop = new LoopThread();
      console.log(loop.runSync((a) => a * 2, 21));
    `;
    const child = runChild(['-e', script]);
    assert.equal(child.signal, null, 'the process had to be killed: the idle LoopThread kept it alive');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, '42\n');
  });

  it('a pending run() keeps the process alive until it settles, then the process exits', () => {
    const script = `
      const { LoopThread } = require('loopthread');
      const loop = new LoopThread();
      loop.run(async () => { await new Promise((r) => setTimeout(r, 50)); return 'settled'; }).then(console.log);
    `;
    const child = runChild(['-e', script]);
    assert.equal(child.signal, null, 'the process had to be killed');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'settled\n');
  });

  it('the ES module entry works', () => {
    const script = `
      import { LoopThread, Future, TimeoutError } from 'loopthread';
      const loop = new LoopThread();
      const future = loop.run((a) => a + 1, 1);
      console.log(future instanceof Future, await future, loop.runSync((s) => s.toUpperCase(), 'ok'));
      const fsp = loop.importSync('node:fs/promises');
      console.log(typeof fsp.readFile('package.json', 'utf8'), typeof TimeoutError);
      loop.closeSync();
    `;
    const child = runChild(['--input-type=module', '-e', script]);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'true 2 OK\nstring function\n');
  });

  it('the ES module entry gives the same objects as the CommonJS entry, every name of it', () => {
    const script = `
      const cjs = require('loopthread');
      import('loopthread').then((esm) => {
        const names = [...new Set([...Object.keys(cjs), ...Object.keys(esm)])]
          .filter((k) => k !== 'default' && k !== '__esModule').sort();
        console.log(JSON.stringify(names.map((k) => [k, cjs[k] !== undefined && esm[k] === cjs[k]])));
      });
    `;
    const child = runChild(['-e', script]);
    assert.equal(child.status, 0, child.stderr);
    const pairs = JSON.parse(child.stdout) as [string, boolean][];
    const names = pairs.map(([name]) => name);
    for (const expected of ['LoopThread', 'Future', 'currentSignal', 'TimeoutError', 'DataCloneError', 'ClosedError']) {
      assert.ok(names.includes(expected), `${expected} is missing`);
    }
    assert.deepStrictEqual(
      pairs.filter(([, same]) => !same).map(([name]) => name),
      [],
      'names that differ between the two entries',
    );
  });

  it('ClosedError is what calls get after closeSync', () => {
    const loop = new LoopThread({ name: 'closing' });
    assert.equal(loop.runSync(identity, 1), 1);
    loop.closeSync();
    assert.throws(() => loop.runSync(identity, 1), ClosedError);
  });
});
