/**
 * The channel's two locks (layout.ts): each is three words from `at`: the tag of the thread that
 * holds it (0 when free), a counter bumped on every release, and the count of threads sleeping on
 * it.
 *
 * A lock is held only while a record's bytes are copied into or out of the ring and a few words
 * updated: no user code, no waiting, no allocation to speak of. So it is released within
 * microseconds unless its holder stopped inside: `worker.terminate()` or an out-of-memory death
 * can interrupt any JavaScript. The liveness rule, from facts: a thread's tag is its OS thread id
 * where the OS shows a process's threads (Linux: /proc/self/task/<tid> is gone once the thread has
 * ended, however it ended), and a lock whose holder's thread is gone is taken over. Where the OS
 * does not tell, a lock held by the same holder with no release anywhere for STALE_MS is. What
 * that guarantees is written in the README ("Channel", when a thread dies).
 */
import { threadId } from 'node:worker_threads';
import { osThreadExists, ownOsThreadId } from '../shm/os-thread.js';
import { sleepOn } from '../shm/wait.js';

/** The word after the holder's: bumped on every release. */
export const LOCK_SEQ = 1;
/** Then the count of threads sleeping on the lock (a release notifies only when some do). */
const LOCK_SLEEPERS = 2;

/**
 * This thread's mark in the lock word: its OS thread id where known (every thread of the process
 * then uses one). Read at the first lock, not when the module loads: most threads never take one.
 */
export function ownTag(): number {
  const tid = ownOsThreadId();
  return tid > 0 ? tid : threadId + 1;
}
/** Attempts before sleeping. */
const SPINS = 200;
/**
 * Where the OS does not show threads: a lock held this long without any release belongs to a
 * thread that died holding it.
 */
export const STALE_MS = 1000;

/** Whether the thread tagged `holder` has ended: a fact where the OS tells, else the STALE_MS rule. */
function holderEnded(holder: number, heldSince: number): boolean {
  const exists = ownOsThreadId() > 0 ? osThreadExists(holder) : undefined;
  return exists === undefined ? performance.now() - heldSince > STALE_MS : !exists;
}

export function lock(words: Int32Array, at: number): void {
  const tag = ownTag();
  if (Atomics.compareExchange(words, at, 0, tag) === 0) return;
  lockSlow(words, at, tag);
}

function lockSlow(words: Int32Array, at: number, tag: number): void {
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(words, at) === 0 && Atomics.compareExchange(words, at, 0, tag) === 0) return;
  }
  let holder = Atomics.load(words, at);
  let seq = Atomics.load(words, at + LOCK_SEQ);
  let since = performance.now();
  for (;;) {
    if (holder === 0) {
      if (Atomics.compareExchange(words, at, 0, tag) === 0) return;
    } else {
      Atomics.add(words, at + LOCK_SLEEPERS, 1);
      sleepOn(words, at, holder, 10);
      Atomics.sub(words, at + LOCK_SLEEPERS, 1);
    }
    const nextHolder = Atomics.load(words, at);
    const nextSeq = Atomics.load(words, at + LOCK_SEQ);
    if (nextHolder !== holder || nextSeq !== seq) {
      holder = nextHolder;
      seq = nextSeq;
      since = performance.now();
    } else if (holder !== 0 && holderEnded(holder, since)) {
      // The holder stopped inside (see above): take the lock over.
      if (Atomics.compareExchange(words, at, holder, tag) === holder) return;
    }
  }
}

/** Releases the lock; returns the release counter's new value (see Ring's cached views). */
export function unlock(words: Int32Array, at: number): number {
  // Only the holder writes the counter, so a plain increment will do; the release store below
  // publishes it with everything else written under the lock.
  const seq = ((words[at + LOCK_SEQ] as number) + 1) | 0;
  words[at + LOCK_SEQ] = seq;
  Atomics.store(words, at, 0);
  // A plain read (an Atomics call costs as much as the rest of a put): should it miss a sleeper
  // that has just counted itself, that sleeper's 10 ms wait in lockSlow() ends it anyway.
  if ((words[at + LOCK_SLEEPERS] as number) !== 0) Atomics.notify(words, at, 1);
  return seq;
}
