/**
 * Channel: how items' bytes go into and out of the ring (src/channel/ring.ts, copy and fresh): by a
 * loop, set() or a native memcpy by size, split in two where they straddle the ring's end; in
 * bytes mode, an item of 2 KiB or more comes out in an array that was not zeroed first. Each item
 * carries a pattern of its own, so that a copy from or to the wrong place, of the wrong length, or
 * leaving bytes of an earlier item shows.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Channel } from 'loopthread';

const entry = require.resolve('loopthread');

/** `n` bytes that differ from those of any other `seed` at almost every position. */
function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 131 + seed * 71 + (i >> 8)) & 255;
  return a;
}

/** Whether `a` holds `pattern(n, seed)`. */
function isPattern(a: Uint8Array, n: number, seed: number): boolean {
  if (a.byteLength !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== ((i * 131 + seed * 71 + (i >> 8)) & 255)) return false;
  return true;
}

function got<T>(ch: Channel<T>): T {
  const r = ch.tryGet();
  assert.ok(r.ok, 'an item is there');
  return r.value;
}

describe('Channel copies', () => {
  test('bytes mode: items of 65 to 6,064 bytes straddle the ring end at every offset and come out whole', () => {
    const ch = new Channel<Uint8Array>({ bytes: true, bufferSize: 16 * 1024 });
    // Two items in the ring at any time, of sizes that walk the records over all offsets.
    let seed = 0;
    const sizes: number[] = [];
    for (let k = 0; k < 600; k++) sizes.push(65 + ((k * 397) % 6000));
    assert.equal(ch.tryPut(pattern(sizes[0] as number, 0)), true);
    for (let k = 1; k < sizes.length; k++) {
      assert.equal(ch.tryPut(pattern(sizes[k] as number, k)), true);
      const value = got(ch);
      assert.ok(isPattern(value, sizes[seed] as number, seed), `item ${String(seed)} of ${String(sizes[seed])} bytes`);
      seed++;
    }
    assert.ok(isPattern(got(ch), sizes[seed] as number, seed));
  });

  test('bytes mode: an item as large as the ring allows, put after the ring end moved, wraps and comes out whole', () => {
    const size = 64 * 1024;
    const ch = new Channel<Uint8Array>({ bytes: true, bufferSize: size });
    for (const shift of [4, 100, 4096, size / 2, size - 8]) {
      // One record of `shift - 4` bytes moves the ring's ends by `shift` (4 of header).
      assert.equal(ch.tryPut(new Uint8Array(shift - 4)), true);
      got(ch);
      assert.equal(ch.tryPut(pattern(size - 4, shift)), true);
      assert.ok(isPattern(got(ch), size - 4, shift), `after a shift of ${String(shift)}`);
    }
  });

  test('bytes mode: a large item comes out in a plain Uint8Array of its own, with only its bytes', () => {
    const ch = new Channel<Uint8Array>({ bytes: true, bufferSize: 1 << 20 });
    // Fills arrays' memory with a pattern before it is freed, so that an array not zeroed that
    // kept any of it would show.
    for (let k = 0; k < 8; k++) ch.tryPut(pattern(64 * 1024, 100 + k));
    for (let k = 0; k < 8; k++) assert.ok(isPattern(got(ch), 64 * 1024, 100 + k));
    for (const n of [2047, 2048, 4096, 5000, 64 * 1024]) {
      assert.equal(ch.tryPut(pattern(n, n)), true);
      const value = got(ch);
      assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype, 'a Uint8Array, not a Buffer');
      assert.ok(value.buffer instanceof ArrayBuffer, 'not shared memory');
      assert.equal(value.byteOffset, 0);
      assert.equal(value.buffer.byteLength, n, 'an array of its own: no pool or other items behind it');
      assert.ok(isPattern(value, n, n));
      // Changing it changes neither the ring nor the next item.
      value.fill(0);
      assert.equal(ch.tryPut(pattern(n, n + 1)), true);
      assert.ok(isPattern(got(ch), n, n + 1));
    }
  });

  test('values mode: long strings (one- and two-byte characters) and arrays straddle the ring end and come out whole', () => {
    const ch = new Channel<unknown>({ bufferSize: 8192 });
    const values = (k: number): unknown[] => [
      'abc'.repeat(30 + k * 7),
      'é€😀x'.repeat(20 + k * 5),
      pattern(100 + k * 37, k),
      { text: 'ü'.repeat(200 + k), bytes: pattern(300 + k, k + 1) },
    ];
    for (let k = 0; k < 60; k++) {
      const sent = values(k);
      for (const v of sent) assert.equal(ch.tryPut(v), true);
      for (const v of sent) assert.deepEqual(got(ch), v, `round ${String(k)}`);
    }
  });

  test('64 KiB items cross between threads whole, both ways, through a ring they wrap around', async () => {
    const n = 64 * 1024 - 36;
    const count = 40;
    // Room for three records and a bit: the records start at a different offset on each lap.
    const toWorker = new Channel<Uint8Array>({ bytes: true, bufferSize: 3 * (64 * 1024) + 4000, role: 'put' });
    const fromWorker = new Channel<Uint8Array>({ bytes: true, bufferSize: 3 * (64 * 1024) + 4000, role: 'get' });
    const there = toWorker.createHandle({ role: 'get' });
    const back = fromWorker.createHandle({ role: 'put' });
    // The worker sends each item back as it got it: what the test reads went through both rings.
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const { Channel } = require(workerData.entry);
       const input = Channel.connect(workerData.there);
       const output = Channel.connect(workerData.back);
       for (const item of input.iterateSync()) output.putSync(item);
       output.disconnect();`,
      { eval: true, workerData: { entry, there, back }, transferList: [there.port, back.port] },
    );
    try {
      const sending = (async () => {
        for (let k = 0; k < count; k++) await toWorker.put(pattern(n - (k % 5) * 4, k));
        await toWorker.close();
      })();
      let k = 0;
      for await (const value of fromWorker) {
        assert.ok(isPattern(value, n - (k % 5) * 4, k), `item ${String(k)}`);
        k++;
      }
      await sending;
      assert.equal(k, count);
      await once(worker, 'exit');
    } finally {
      await worker.terminate();
    }
  });
});
