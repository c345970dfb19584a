import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { threadId } from 'node:worker_threads';
import { LoopThread, WorkerCrashedError } from 'loopthread';

test('addDoneCallback runs once when the loop thread stops, and at once when added after', async () => {
  const loop = new LoopThread({ name: 'done' });
  const seen: string[] = [];
  loop.addDoneCallback((l) => seen.push(`before:${l.name}`));
  assert.equal(
    loop.runSync(async () => 1),
    1,
  );
  assert.equal(seen.length, 0, 'not before the thread stopped');
  await loop.close();
  assert.deepEqual(seen, ['before:done']);
  loop.addDoneCallback((l) => seen.push(`after:${String(l.exitError)}`));
  assert.deepEqual(seen, ['before:done', 'after:undefined']);
  await loop.close();
  assert.equal(seen.length, 2, 'a second close runs no callback again');
});

test('addDoneCallback also runs after a crash, and exitError tells why', async () => {
  const loop = new LoopThread({ name: 'crashing' });
  const done = new Promise<LoopThread>((resolve) => {
    loop.addDoneCallback(resolve);
  });
  assert.throws(() => loop.runSync(async () => process.exit(7)), WorkerCrashedError);
  const stopped = await done;
  assert.equal(stopped, loop);
  assert.ok(loop.exitError instanceof WorkerCrashedError);
  assert.equal(loop.exitError.exitCode, 7);
});

test('a LoopThread runs on a thread of its own and names itself in errors', async () => {
  await using loop = new LoopThread({ name: 'named' });
  const remote = loop.runSync(async () => (await import('node:worker_threads')).threadId);
  assert.equal(remote, loop.threadId);
  assert.notEqual(remote, threadId);
  assert.throws(() => {
    loop.with({ timeout: 10 }).runSync(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    });
  }, /LoopThread "named"/);
});

test('the env option gives the loop thread its own environment', async () => {
  await using loop = new LoopThread({ env: { LOOPTHREAD_TEST: 'from the option' } });
  assert.equal(
    loop.runSync(async () => process.env.LOOPTHREAD_TEST),
    'from the option',
  );
  assert.equal(process.env.LOOPTHREAD_TEST, undefined);
});

for (const [where, platform, expected] of [
  ['on Linux, the OS thread probe stands in silently', 'linux', ['still works']],
  ['elsewhere, a warning says what is lost', 'darwin', ['LOOPTHREAD_NO_WORKER_PROBE', 'still works']],
] as const) {
  test(
    `without the worker's native handle (Bun, Deno, a Node that renamed it): ${where}`,
    {
      skip: process.platform !== 'linux' && 'the OS thread probe reads /proc (Linux)',
    },
    () => {
      // The handle is found among the Worker's own symbols: hide them all, as such a runtime would.
      const script = `
      const { LoopThread } = require(${JSON.stringify(require.resolve('loopthread'))});
      process.on('warning', (w) => console.log(w.code));
      Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });
      Object.getOwnPropertySymbols = () => [];
      const loop = new LoopThread();
      console.log(loop.runSync(async () => 'still works'));
      loop.closeSync();
    `;
      const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(run.stdout.trim().split('\n').sort(), expected);
    },
  );
}
