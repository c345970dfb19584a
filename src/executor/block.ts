/**
 * resultSync of a pool future: the calling thread blocks, and meanwhile does what its event loop
 * would have done (take results, hand out tasks); workers ring the BELL for it instead of posting
 * a message. A worker that dies meanwhile is noticed through its last words or its native handle,
 * since the 'exit' event cannot arrive while this thread is blocked.
 */
import { sleepOn } from '../shm/wait.js';
import { now as sharedNow, observeWake } from '../shm/spin-policy.js';
import { BELL, MainWaits } from './layout.js';
import type { Task } from './task-queue.js';
import type { PoolWorker } from './worker.js';

/** How often a thread blocked in resultSync looks whether the workers still live (ms). */
const BLOCK_SLICE_MS = 10;

/** What the blocked thread does of its pool's work. */
export interface BlockingPool {
  readonly workers: readonly PoolWorker[];
  /** Hands out what the workers can take. */
  pump(): void;
}

/** Blocks until `isDone()` or the deadline, on the process's BELL word (`awakeWords`). */
export function blockOn(
  pool: BlockingPool,
  awakeWords: Int32Array,
  task: Task,
  isDone: () => boolean,
  deadline: number,
): void {
  try {
    for (;;) {
      const seen = Atomics.load(awakeWords, BELL);
      for (const w of pool.workers) {
        w.mainWaits = MainWaits.Blocked;
        w.collect();
      }
      pool.pump();
      // Its own timeout: the timer cannot fire while this thread is blocked.
      if (performance.now() >= task.expiresAt) task.expire?.();
      if (isDone()) return;
      dropWhatBlocks(pool.workers, task);
      const now = performance.now();
      const left = deadline - now;
      if (left <= 0) return;
      const asleepAt = sharedNow();
      sleepOn(awakeWords, BELL, seen, Math.min(left, task.expiresAt - now, BLOCK_SLICE_MS));
      // Woken by a worker's BELL: a wake-up sample for the spin policy.
      let rang = 0;
      for (const w of pool.workers) rang = Math.max(rang, w.mainWokenAt);
      if (rang >= asleepAt) observeWake(sharedNow() - rang);
      for (const w of [...pool.workers]) w.checkAlive();
    }
  } finally {
    for (const w of pool.workers) w.mainWaits = MainWaits.No;
  }
}

/**
 * Blocked, this thread can cancel nothing: a stuck task (see PoolWorker.stuckOn) that `task` waits
 * for can never settle. That is the one its worker is stuck on (`task` itself or one ahead of
 * it); for a task still waiting for a worker, every stuck one if no other worker will make room.
 */
function dropWhatBlocks(workers: readonly PoolWorker[], task: Task): void {
  if (task.state === 'handed') {
    const w = task.owner as PoolWorker;
    const seq = w.stuckOn();
    if (seq !== 0) w.drop(seq);
  } else if (task.state === 'queued' || task.state === 'waiting') {
    if (workers.some((w) => w.outstanding > 0 && w.stuckOn() === 0)) return;
    for (const w of workers) {
      const seq = w.stuckOn();
      if (seq !== 0) w.drop(seq);
    }
  }
}
