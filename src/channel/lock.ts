/**
 * The channel's lock: a word in shared memory holding the tag of the thread that holds it.
 *
 * It is held only while a record's bytes are copied into or out of the ring and a few words
 * updated: no user code, no waiting, no allocation to speak of. So it is released within
 * microseconds unless its holder stopped inside: `worker.terminate()` or an out-of-memory death
 * can interrupt any JavaScript. The liveness rule: a thread that finds the lock held by the same
 * holder, with no release anywhere (LOCK_SEQ unchanged), for STALE_MS takes it over. What that
 * guarantees is written in the README ("Channel", crash rule).
 */
import { threadId } from 'node:worker_threads';
import { LOCK, LOCK_SEQ, LOCK_SLEEPERS } from './layout.js';

/** This thread's mark in the lock word. */
const TAG = threadId + 1;
/** Attempts before sleeping. */
const SPINS = 200;
/** A lock held this long without any release belongs to a thread that died holding it. */
export const STALE_MS = 1000;

export function lock(words: Int32Array): void {
  if (Atomics.compareExchange(words, LOCK, 0, TAG) === 0) return;
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(words, LOCK) === 0 && Atomics.compareExchange(words, LOCK, 0, TAG) === 0) return;
  }
  let holder = Atomics.load(words, LOCK);
  let seq = Atomics.load(words, LOCK_SEQ);
  let since = performance.now();
  for (;;) {
    if (holder === 0) {
      if (Atomics.compareExchange(words, LOCK, 0, TAG) === 0) return;
    } else {
      Atomics.add(words, LOCK_SLEEPERS, 1);
      Atomics.wait(words, LOCK, holder, 10);
      Atomics.sub(words, LOCK_SLEEPERS, 1);
    }
    const nextHolder = Atomics.load(words, LOCK);
    const nextSeq = Atomics.load(words, LOCK_SEQ);
    if (nextHolder !== holder || nextSeq !== seq) {
      holder = nextHolder;
      seq = nextSeq;
      since = performance.now();
    } else if (holder !== 0 && performance.now() - since > STALE_MS) {
      // The holder stopped inside (see above): take the lock over.
      if (Atomics.compareExchange(words, LOCK, holder, TAG) === holder) return;
    }
  }
}

export function unlock(words: Int32Array): void {
  // Only the holder writes LOCK_SEQ, so a plain increment will do; the release store below
  // publishes it with everything else written under the lock.
  words[LOCK_SEQ] = ((words[LOCK_SEQ] as number) + 1) | 0;
  Atomics.store(words, LOCK, 0);
  if (Atomics.load(words, LOCK_SLEEPERS) !== 0) Atomics.notify(words, LOCK, 1);
}
