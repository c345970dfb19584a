/**
 * loopthread/synckit (issue 14): synckit's createSyncFn and runAsWorker, run on synckit's own
 * README examples, with synckit's options and semantics, and without its hangs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { TimeoutError } from 'loopthread';
import { createSyncFn, runAsWorker, TsRunner } from 'loopthread/synckit';
import { thrown } from './helpers.js';

type Worker = (op: string, ...args: number[]) => Promise<number>;

const worker = require.resolve('./fixtures/synckit-worker.mjs');
const tsDir = join(__dirname, '..', '..', 'test', 'synckit-ts');

describe('loopthread/synckit', () => {
  it("runs synckit's README example: a worker's async function called synchronously", () => {
    // the worker path must be absolute
    const syncFn = createSyncFn<Worker>(worker, { tsRunner: 'tsx' });
    // do whatever you want, you will get the result synchronously!
    const result: number = syncFn('add', 1, 2, 3);
    assert.equal(result, 6);
    assert.equal(syncFn('add', 40, 2), 42);
  });

  it('returns the same function for the same path (a file URL or a path), as synckit caches', () => {
    assert.equal(createSyncFn(pathToFileURL(worker)), createSyncFn(worker));
    assert.equal(createSyncFn(pathToFileURL(worker).href), createSyncFn(worker));
  });

  it("rethrows the worker's error with its properties", () => {
    const error = thrown(() => createSyncFn<Worker>(worker)('fail')) as Error & { code?: string };
    assert.equal(error.message, 'the worker failed');
    assert.equal(error.code, 'E_WORKER');
  });

  it('refuses a relative worker path, as synckit does', () => {
    assert.throws(() => createSyncFn('./fixtures/synckit-worker.mjs'), { message: '`workerPath` must be absolute' });
  });

  it('a number as second argument is the timeout: the call throws TimeoutError', () => {
    const syncFn = createSyncFn<Worker>(require.resolve('./fixtures/synckit-worker-again.mjs'), 300);
    assert.ok(thrown(() => syncFn('slow')) instanceof TimeoutError);
    // The worker serves the next call.
    assert.equal(syncFn('add', 1, 1), 2);
  });

  it('a worker that fails to load fails the call instead of hanging it', () => {
    const syncFn = createSyncFn(require.resolve('./fixtures/synckit-throws-on-load.mjs'));
    assert.match((thrown(() => syncFn()) as Error).message, /the worker is broken/);
  });

  it('a module that never calls runAsWorker is told so', () => {
    const syncFn = createSyncFn(require.resolve('./fixtures/synckit-no-worker.mjs'));
    assert.match((thrown(() => syncFn()) as Error).message, /did not call runAsWorker/);
  });

  it('runAsWorker does nothing on the main thread', () => {
    runAsWorker(() => 1);
    assert.equal((globalThis as Record<symbol, unknown>)[Symbol.for('loopthread.synckit.worker')], undefined);
  });

  it('a TypeScript worker with tsRunner TsRunner.TSX, found from its .mjs name as synckit does', () => {
    const syncFn = createSyncFn<(name: string) => Promise<string>>(join(tsDir, 'worker.mjs'), {
      tsRunner: TsRunner.TSX,
    });
    assert.equal(syncFn('synckit'), 'hello synckit');
  });
});
