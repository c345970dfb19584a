/**
 * Soak (`npm run test:soak`): a million calls returning remote references. Each proxy dropped here
 * is collected and released, so the loop thread's table of lent objects stays bounded however
 * many calls go by. `npm test` checks the same at 10,000 calls (refs.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LoopThread } from 'loopthread';

type RefsApi = typeof import('../fixtures/refs-module.mjs');
const fixture = (name: string): URL => new URL(`../fixtures/${name}`, pathToFileURL(__filename));

test('a million calls returning references do not grow the loop thread`s table without bound', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const loop = new LoopThread({ name: 'lifetime soak' });
  try {
    const refs = loop.importSync<RefsApi>(fixture('refs-module.mjs'));
    const calls = 1_000_000;
    let sum = 0;
    for (let i = 0; i < calls; i++) {
      sum += refs.track(1).n;
      // Dropped proxies are released from this thread's event loop: let it turn now and then.
      if (i % 50_000 === 49_999) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(sum, calls);
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    // Asked by the port, after the releases this thread posted there.
    const alive = await loop.run(refs.alive);
    assert.ok(alive < 10_000, `${String(alive)} of ${String(calls)} lent objects still alive`);
  } finally {
    loop.closeSync();
  }
});
