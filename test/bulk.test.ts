/**
 * Blocking messages larger than the shared slot between two threads (256 KiB): they cross by the
 * connection's port in one piece, the slot carrying only a marker (src/protocol/bulk.ts). The
 * 64 MiB soak (test/soak/large-values.test.ts) checks the same at scale. Bytes and strings too
 * large for the room left go in parts of their own beside the message (Writer.parts).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DataCloneError, LoopThread, LoopThreadError } from 'loopthread';
import { decodeValue } from '../src/codec/decode.js';
import { encodeValue } from '../src/codec/encode.js';
import { Reader, Writer } from '../src/codec/writer.js';
import { SharedSpare } from '../src/protocol/bulk.js';
import { lineSentOn } from './helpers.js';

const MiB = 1024 * 1024;
/** Word indexes of the two mailboxes' sequence counters in a connection's line (src/protocol/line.ts). */
const REQUEST_SEQ = 4;
const REPLY_SEQ = 10;

describe('messages larger than the slot', () => {
  const loop = new LoopThread({ name: 'bulk' });
  after(() => {
    loop.closeSync();
  });

  test('cross each way in one handoff, not in chunks, and arrive equal', () => {
    const handle = loop.createHandle();
    const lineOf = lineSentOn(handle.port);
    using conn = LoopThread.connect(handle);
    const words = new Int32Array(lineOf(), 0, 16);
    const big = 'abcdé€😀'.repeat(MiB).slice(0, 4 * MiB);
    const bytes = new Uint8Array(6 * MiB).map((_, i) => i % 251);
    conn.runSync(() => 0); // the connection is set up

    const requests = Atomics.load(words, REQUEST_SEQ);
    const replies = Atomics.load(words, REPLY_SEQ);
    const back = conn.runSync((s: string, b: Uint8Array) => [s, b] as const, big, bytes);
    // Chunks of the slot's size would have moved each counter by 40 or more.
    assert.equal(Atomics.load(words, REQUEST_SEQ) - requests, 1);
    assert.equal(Atomics.load(words, REPLY_SEQ) - replies, 1);
    assert.ok(back[0] === big, 'the string came back different');
    assert.deepEqual(back[1], bytes);
  });

  test('a large reply reaches a blocked caller behind the async replies the port holds before it', async () => {
    const small = loop.run(async () => 'small');
    // This thread blocks at once: the async reply waits in its port, ahead of the large one.
    const large = loop.runSync((n: number) => 'y'.repeat(n) + '!', 3 * MiB);
    assert.equal(large.length, 3 * MiB + 1);
    assert.ok(large.endsWith('y!'));
    assert.equal(await small, 'small');
  });

  test('async calls made before a large blocking request run before it, in order', () => {
    loop.runSync(() => {
      (globalThis as { order?: string[] }).order = [];
    });
    for (const tag of ['a', 'b']) {
      void loop.run((t: string) => {
        (globalThis as unknown as { order: string[] }).order.push(t);
      }, tag);
    }
    const order = loop.runSync(
      (s: string) => {
        const seen = (globalThis as unknown as { order: string[] }).order;
        seen.push(`large ${String(s.length)}`);
        return seen;
      },
      'z'.repeat(2 * MiB),
    );
    assert.deepEqual(order, ['a', 'b', `large ${String(2 * MiB)}`]);
  });

  test('a blocked caller serves a callback with large values both ways', () => {
    const total = loop.runSync(
      // The loop side gets a promise for the callback's value.
      async (callback: (s: string) => string | Promise<string>, s: string) => (await callback(s)).length,
      (s: string) => s + 'b'.repeat(2 * MiB),
      'a'.repeat(3 * MiB),
    );
    assert.equal(total, 5 * MiB);
  });
});

describe('large bytes and strings travel in parts of their own', () => {
  const big = (n: number): Uint8Array => new Uint8Array(n).map((_, i) => i % 253);
  const encode = (value: unknown): { w: Writer; parts: ArrayBuffer[] } => {
    const parts: ArrayBuffer[] = [];
    const w = new Writer(Buffer.alloc(1024), 0, undefined, parts);
    encodeValue(w, value);
    return { w, parts };
  };

  test('a Uint8Array is copied once, into a part that the decoded array is a view over, of exactly its bytes', () => {
    const bytes = big(MiB);
    const { w, parts } = encode(bytes);
    assert.equal(parts.length, 1);
    assert.ok(w.pos < 64, `the bytes were also written into the message (${String(w.pos)} bytes)`);
    assert.ok(!w.spilled, 'the message left its buffer for a larger one');
    const back = decodeValue(new Reader(w.buf, 0, w.pos, [], parts)) as Uint8Array;
    assert.equal(back.buffer, parts[0]);
    assert.equal(back.buffer.byteLength, MiB);
    assert.deepEqual(back, bytes);
    assert.equal(bytes.byteLength, MiB, 'the argument itself was detached');
  });

  test('strings of one and of two bytes a character go in parts and come back equal', () => {
    const latin1 = 'aé'.repeat(MiB / 2);
    const utf16 = 'a€😀'.repeat(MiB / 4);
    const { w, parts } = encode([latin1, utf16]);
    assert.equal(parts.length, 2);
    assert.deepEqual(
      parts.map((p) => p.byteLength),
      [latin1.length, 2 * utf16.length],
    );
    const back = decodeValue(new Reader(w.buf, 0, w.pos, [], parts)) as string[];
    assert.ok(back[0] === latin1 && back[1] === utf16, 'a string came back different');
  });

  test('small bytes, and bytes that fit in the room left, stay in the message', () => {
    const { parts } = encode([new Uint8Array(100), 'x'.repeat(100)]);
    assert.equal(parts.length, 0);
    const roomy = new Writer(Buffer.alloc(4 * MiB), 0, undefined, []);
    encodeValue(roomy, big(MiB));
    assert.equal(roomy.parts?.length, 0);
  });

  test('bytes in parts still count toward the 2 GiB a message may take', () => {
    // Never written nor read before the refusal, so its pages are never touched.
    const huge = new Uint8Array(2 ** 31 + 1);
    assert.throws(() => encode(huge), RangeError);
  });

  test('a message naming a part twice, one not there, or a string whose part is not its length, is corrupt', () => {
    const { w, parts } = encode([big(MiB), big(MiB)]);
    const read = (buf: Buffer, ps: ArrayBuffer[]): unknown => decodeValue(new Reader(buf, 0, w.pos, [], ps));
    assert.throws(() => read(w.buf, parts.slice(0, 1)), LoopThreadError);
    // The second view's part index sits before its byteOffset and length (two f64s).
    const twice = Buffer.from(w.buf.subarray(0, w.pos));
    assert.equal(twice.readUInt32LE(w.pos - 20), 1);
    twice.writeUInt32LE(0, w.pos - 20);
    assert.throws(() => read(twice, parts), /corrupt message \(a part beside the message that is not there\)/);

    const s = encode('y'.repeat(MiB));
    assert.throws(
      () => decodeValue(new Reader(s.w.buf, 0, s.w.pos, [], [new ArrayBuffer(MiB - 1)])),
      /a string whose part is not its length/,
    );
  });

  test('a writer to a mailbox puts one large string a message in its spare, reused while each message needs it', () => {
    const spare = new SharedSpare();
    const write = (value: unknown): { w: Writer; parts: ArrayBuffer[]; used: SharedArrayBuffer | undefined } => {
      const parts: ArrayBuffer[] = [];
      const w = new Writer(Buffer.alloc(1024), 0, undefined, parts, spare);
      encodeValue(w, value);
      return { w, parts, used: spare.done() };
    };
    const first = write(['a'.repeat(MiB), 'b€'.repeat(MiB / 2)]);
    assert.ok(first.used instanceof SharedArrayBuffer);
    assert.equal(first.parts.length, 1, 'the second string goes in a part: the spare holds one');
    const read = (m: typeof first): unknown => decodeValue(new Reader(m.w.buf, 0, m.w.pos, [], m.parts, m.used));
    assert.deepEqual(read(first), ['a'.repeat(MiB), 'b€'.repeat(MiB / 2)]);
    const second = write('c'.repeat(MiB / 2));
    assert.equal(second.used, first.used, 'the spare was not reused');
    assert.equal(read(second), 'c'.repeat(MiB / 2));
    assert.equal(write('small').used, undefined);
    const third = write('d'.repeat(MiB));
    assert.notEqual(third.used, first.used, 'a spare was kept past a message that did not need it');
    assert.throws(() => decodeValue(new Reader(third.w.buf, 0, third.w.pos)), /a string larger than its spare/);
  });

  test("a writer's spare is let go once its thread's event loop turns: one huge call does not hold its memory until the next", async () => {
    const spare = new SharedSpare();
    const write = (value: unknown): SharedArrayBuffer | undefined => {
      encodeValue(new Writer(Buffer.alloc(1024), 0, undefined, [], spare), value);
      return spare.done();
    };
    const first = write('a'.repeat(MiB));
    assert.equal(write('b'.repeat(MiB)), first, 'consecutive messages reuse it');
    await new Promise((resolve) => setImmediate(resolve));
    const afterTurn = write('c'.repeat(MiB));
    assert.ok(afterTurn instanceof SharedArrayBuffer);
    assert.notEqual(afterTurn, first, 'the spare outlived a turn of the event loop');
  });

  const loop = new LoopThread({ name: 'parts' });
  after(() => {
    loop.closeSync();
  });

  test("views of a large buffer keep their offsets and share one buffer there, and the copy is the loop thread's own", () => {
    const buffer = new ArrayBuffer(2 * MiB);
    const a = new Uint8Array(buffer, 8, MiB);
    const b = new Float64Array(buffer, MiB, 1024);
    a.fill(7);
    b[0] = 1.5;
    const views: [Uint8Array, Float64Array, Buffer] = [a, b, Buffer.alloc(MiB, 3)];
    const seen = loop.runSync((v: [Uint8Array, Float64Array, Buffer]) => {
      (globalThis as { kept?: unknown }).kept = v;
      return [v[0].buffer === v[1].buffer, v[0].byteOffset, v[0].buffer.byteLength, v[1][0], Buffer.isBuffer(v[2])];
    }, views);
    assert.deepEqual(seen, [true, 8, 2 * MiB, 1.5, true]);
    // Changing the caller's bytes leaves the loop thread's copy as it was, both ways.
    a.fill(9);
    assert.equal(
      loop.runSync(() => {
        const kept = (globalThis as unknown as { kept: [Uint8Array, Float64Array, Buffer] }).kept;
        const first = kept[0][0];
        kept[0].fill(1);
        return first;
      }),
      7,
    );
    assert.equal(a[0], 9);
    assert.equal(buffer.byteLength, 2 * MiB, 'the argument was detached');
    // A large view of shared memory is refused as a small one is: sharing goes by run() or import().
    assert.throws(
      () => loop.runSync((v: Uint8Array) => v.length, new Uint8Array(new SharedArrayBuffer(2 * MiB), 8)),
      (e: unknown) => e instanceof DataCloneError && e.message.includes('over a SharedArrayBuffer'),
    );
    const resizable = new ArrayBuffer(MiB, { maxByteLength: 4 * MiB });
    assert.deepEqual(
      loop.runSync((r: ArrayBuffer) => [r.resizable, r.maxByteLength, r.byteLength], resizable),
      [true, 4 * MiB, MiB],
    );
  });

  test('large strings one call after another, each way, arrive whole: a spare is reused only once read', () => {
    const sent = ['a', 'b', 'c'].map((c) => c.repeat(MiB) + '!');
    for (const s of sent) {
      loop.runSync((v: string) => {
        ((globalThis as { got?: string[] }).got ??= []).push(v);
      }, s);
    }
    const got = loop.runSync(() => (globalThis as unknown as { got: string[] }).got);
    assert.ok(got.length === 3 && got.every((g, i) => g === sent[i]), 'a string the loop thread received changed');
    const chars = ['x', 'y', 'z'];
    const back = chars.map((c) => loop.runSync((ch: string, n: number) => ch.repeat(n) + '?', c, MiB));
    assert.ok(
      back.every((b, i) => b === (chars[i] ?? '').repeat(MiB) + '?'),
      'a string received here changed',
    );
  });

  test('an awaited call and its reply carry large bytes in parts too', async () => {
    const bytes = big(3 * MiB);
    const back = await loop.run((v: Uint8Array) => v, bytes);
    assert.deepEqual(back, bytes);
    assert.equal(back.buffer.byteLength, 3 * MiB);
  });
});
