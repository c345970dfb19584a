/**
 * Soak (`npm run test:soak`): 64 MiB strings, far larger than any buffer between the threads,
 * cross both ways whole. `npm test` checks the same with 4 MiB strings (api.test.ts, refs.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LoopThread } from 'loopthread';

const MiB = 1024 * 1024;
const identity = <T>(value: T): T => value;

let loop: LoopThread;
before(() => {
  loop = new LoopThread({ name: 'large values' });
});
after(() => {
  loop.closeSync();
});

test('a 64 MiB string of multi-byte characters arrives equal, through runSync and run', async () => {
  const unit = 'abcdé€😀';
  const big = unit.repeat(Math.ceil((64 * MiB) / unit.length)).slice(0, 64 * MiB);
  for (const back of [loop.runSync(identity, big), await loop.run(identity, big)]) {
    assert.equal(back.length, big.length);
    assert.ok(back === big, 'the 64 MiB string came back different');
  }
});

test('a 64 MiB string crosses whole as an argument and as a result made on the loop thread', async () => {
  const big = 'x'.repeat(64 * MiB - 3) + 'end';
  const length = loop.runSync((s: string) => (s.endsWith('end') ? s.length : -1), big);
  assert.equal(length, big.length);
  const back = await loop.run((n: number) => 'y'.repeat(n) + '!', 64 * MiB);
  assert.equal(back.length, 64 * MiB + 1);
  assert.ok(back.endsWith('y!'));
});
