/**
 * Start-up (issue 11): a LoopThread's worker loads only the files a call needs. What only lending,
 * imports, entered resources, errors, a dying thread or calls that never settle use is loaded on
 * first use, and then works.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LoopThread } from '../src/index.js';

/** loopthread's own files the loop thread has loaded, relative to dist/src. */
function ownFilesLoaded(loop: LoopThread): string[] {
  return loop.runSync(() => {
    const { createRequire } = process.getBuiltinModule('node:module');
    return Object.keys(createRequire('/').cache)
      .map((file) => file.replaceAll('\\', '/'))
      .filter((file) => file.includes('/dist/src/'))
      .map((file) => file.slice(file.lastIndexOf('/dist/src/') + '/dist/src/'.length));
  });
}

/** Files a call that sends and returns plain data does not need. */
const RARE = [
  'portal/lender.js',
  'portal/remote.js',
  'portal/exports.js',
  'portal/resources.js',
  'portal/idle-watch.js',
  'modules.js',
  'codec/standalone.js',
  'codec/error-serde.js',
  'shm/thread-liveness.js',
];

describe('a LoopThread starting', () => {
  const loop = new LoopThread({ name: 'start-up' });
  after(() => {
    loop.closeSync();
  });

  it('answers a trivial call without loading what lending and imports need', () => {
    assert.equal(
      loop.runSync(() => 1),
      1,
    );
    const loaded = ownFilesLoaded(loop);
    assert.ok(loaded.includes('portal/host.js'), `the host's own file is seen: ${loaded.join(', ')}`);
    for (const file of RARE) assert.ok(!loaded.includes(file), `${file} was loaded at start-up`);
  });

  it('loads the lending code when it first lends, and the lent function works', () => {
    const add = loop.runSync(() => (a: number, b: number) => a + b);
    assert.equal(add(2, 3), 5);
    const loaded = ownFilesLoaded(loop);
    assert.ok(loaded.includes('portal/lender.js') && loaded.includes('portal/remote.js'));
  });

  it('loads what errors need when one first crosses, and the error keeps its class', () => {
    assert.throws(
      () =>
        loop.runSync(() => {
          throw new RangeError('out of range');
        }),
      (error: unknown) => error instanceof RangeError && error.message === 'out of range',
    );
    assert.ok(ownFilesLoaded(loop).includes('codec/error-serde.js'));
  });
});
