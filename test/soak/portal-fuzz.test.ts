/** Soak (`npm run test:soak`): many more runs of random frames into a portal's connections. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzzPortal } from '../portal-fuzz.js';

test("50000 runs of random frames into a handle's line and port: the host survives and serves the others", async () => {
  const { answered, refused } = await fuzzPortal(50_000);
  assert.ok(answered > 0 && refused > 0);
});
