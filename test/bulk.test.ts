/**
 * Blocking messages larger than the shared slot between two threads (256 KiB): they cross by the
 * connection's port in one piece, the slot carrying only a marker (src/protocol/bulk.ts). The
 * 64 MiB soak (test/soak/large-values.test.ts) checks the same at scale.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LoopThread } from 'loopthread';

const MiB = 1024 * 1024;
/** Word indexes of the two mailboxes' sequence counters in a handle's `line` (src/protocol/line.ts). */
const REQUEST_SEQ = 4;
const REPLY_SEQ = 10;

describe('messages larger than the slot', () => {
  const loop = new LoopThread({ name: 'bulk' });
  after(() => {
    loop.closeSync();
  });

  test('cross each way in one handoff, not in chunks, and arrive equal', () => {
    const handle = loop.createHandle();
    const words = new Int32Array(handle.line, 0, 16);
    using conn = LoopThread.connect(handle);
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
