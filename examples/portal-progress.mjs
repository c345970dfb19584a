// The classic demonstration of asyncio.run_coroutine_threadsafe, with a Portal: the main event
// loop runs a long task that reports progress, while a worker thread calls a coroutine on the main
// loop and blocks until it is done. The output interleaves: both make progress at once.
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Portal } from 'loopthread';

const started = performance.now();
const log = (who, what) =>
  console.log(`${((performance.now() - started) / 1000).toFixed(1)}s  ${who.padEnd(6)} ${what}`);

// What the main thread offers to other threads: it runs on the main event loop.
const portal = Portal.open({
  async slowSquare(n) {
    log('main', `slowSquare(${n}) starts on the main loop`);
    await sleep(1_200);
    return n * n;
  },
});

// The worker gets a handle of its own, and blocks on the main loop through it.
const handle = portal.createHandle();
const worker = new Worker(new URL('./portal-worker.mjs', import.meta.url), {
  workerData: { handle },
  transferList: [handle.port],
});
const answer = new Promise((resolve, reject) => {
  worker.once('message', resolve);
  worker.once('error', reject);
});

// Meanwhile the main loop goes on with its own long task, reporting progress.
for (let step = 1; step <= 4; step++) {
  await sleep(500);
  log('main', `long task: step ${step} of 4`);
}
log('main', `the worker reports: ${await answer}`);
await worker.terminate();
await portal.close();
