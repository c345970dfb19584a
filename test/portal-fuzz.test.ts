/** Random bytes and frames into a portal's connections (see portal-fuzz.ts); the soak runs more. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzzPortal } from './portal-fuzz.js';

test("300 runs of random frames into a handle's line and port: the host survives and serves the others", async () => {
  const { answered, refused } = await fuzzPortal(300);
  // Both outcomes happened: the fuzz reached past the first checks and also tripped them.
  assert.ok(answered > 0, 'some connections were still answered');
  assert.ok(refused > 0, 'some connections were refused');
});
