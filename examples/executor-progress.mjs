// Offloading with the workers talking back: a CPU job runs on a ThreadPoolExecutor while the main
// event loop keeps serving it. The job asks the main loop for data (a blocking call through a
// Portal, answered by an async function here) and reports its progress, and the main loop stays
// free for its own work (the ticks) all along.
import { clearInterval, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { Portal, ThreadPoolExecutor } from 'loopthread';

const started = performance.now();
const log = (what) => console.log(`${(performance.now() - started).toFixed(0).padStart(5)} ms  ${what}`);

// What the main thread offers the job: it runs on the main event loop.
const portal = Portal.open({
  async block(i) {
    await sleep(20); // as if read from a database or the network
    return Array.from({ length: 100_000 }, (_, k) => i * 100_000 + k);
  },
  progress(done, total) {
    log(`progress: ${done} of ${total} blocks`);
  },
});

const pool = new ThreadPoolExecutor({ maxWorkers: 2 });
const job = pool.import(new URL('./executor-job.mjs', import.meta.url));

// Each task gets a handle of its own (a handle is one connection, for one thread).
const result = job.sumOfRoots(portal.createHandle(), 5);

// Meanwhile the main loop is free.
const ticker = setInterval(() => log('main loop tick'), 50);
log(`sum of square roots: ${await result}`);
clearInterval(ticker);

// A job can be cancelled while it computes: its loop polls throwIfCancelled().
const cancelled = job.sumOfRoots(portal.createHandle(), 1_000);
setTimeout(() => cancelled.cancel(), 100);
await cancelled.catch((error) => log(`second job: ${error.name}`));
await cancelled.settled;

await pool.shutdown();
await portal.close();
