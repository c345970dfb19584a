/**
 * Soak (`npm run test:soak`): many more and longer generated sequences of calls, timeouts, cancels
 * and a close than never-hang.test.ts runs: every future settles once with its own result or a
 * typed error, and every LoopThread started stops.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import type { LoopThread } from 'loopthread';
import { generatedSequences } from '../generated-calls.js';
import { within } from '../helpers.js';

const started: LoopThread[] = [];

test('400 generated sequences of up to 60 calls, timeouts, cancels and a close', async () => {
  await fc.assert(generatedSequences(started, 60), { numRuns: 400, includeErrorInReport: true });
});

test('every LoopThread the sequences started has stopped', async () => {
  assert.ok(started.length > 0);
  await within(Promise.all(started.map((loop) => loop.closed)), 'loop.closed of every LoopThread', 10_000);
});
