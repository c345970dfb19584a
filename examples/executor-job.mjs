// The worker side of executor-progress.mjs: a CPU-bound job that runs in a pool worker, asks the
// main thread's event loop for its input, reports progress to it, and stops when cancelled.
import { Portal, throwIfCancelled } from 'loopthread';

/** Sums the square roots of `chunks` blocks of numbers, fetching each block from the main loop. */
export function sumOfRoots(handle, chunks) {
  const main = Portal.connect(handle); // this task's own connection
  try {
    let total = 0;
    for (let i = 0; i < chunks; i++) {
      const block = main.blockSync(i); // blocks this worker; the main loop runs block(i)
      for (const x of block) {
        throwIfCancelled(); // shared memory: a cancel is seen even though this loop never yields
        total += Math.sqrt(x);
      }
      main.progress(i + 1, chunks); // fire and forget: the job does not wait for the main loop
    }
    return Math.round(total);
  } finally {
    main.closeSync();
  }
}
