/**
 * Waiting for a word of shared memory to move past a value: blocking (adaptive spin, then
 * Atomics.wait in slices, checking after each slice that the other side is still alive) and
 * asynchronous (Atomics.waitAsync).
 */
import { availableParallelism } from 'node:os';

const hrtime = (): bigint => process.hrtime.bigint();

/** Spinning helps only when the other thread runs at the same time as this one. */
const CAN_SPIN = availableParallelism() > 1;
/** The longest spin: more than a wake-up from sleep costs on an idle machine (up to ~100 us here). */
const MAX_SPIN_NS = 100_000;
/** A spin short enough to cost nothing much, long enough to catch an answer already on its way. */
const PROBE_SPIN_NS = 2_000;
const FIRST_BACKOFF = 8;
const MAX_BACKOFF = 1024;

/**
 * How long to spin before sleeping, learnt from whether spinning paid off. While answers come
 * within the window (both threads hot), spin the whole window. After two misses in a row, only
 * probe briefly: spinning then only takes the CPU the other thread needs (a loaded machine, slow
 * calls). Every so often, with a back-off that doubles after each failed trial, spin the whole
 * window again to find out whether answers have become fast.
 */
export class SpinBudget {
  private spinning = true;
  private misses = 0;
  private skip = 0;
  private backoff = FIRST_BACKOFF;

  /** The spin budget in nanoseconds for the next wait. */
  next(): number {
    if (!CAN_SPIN) return 0;
    if (this.spinning) return MAX_SPIN_NS;
    if (this.skip > 0) {
      this.skip--;
      return PROBE_SPIN_NS;
    }
    return MAX_SPIN_NS;
  }

  /** The awaited word moved while spinning. */
  hit(): void {
    this.spinning = true;
    this.misses = 0;
    this.backoff = FIRST_BACKOFF;
  }

  /** The spin ran out: the thread had to sleep. */
  miss(): void {
    if (this.spinning) {
      if (++this.misses < 2) return;
      this.spinning = false;
    } else if (this.skip === 0) {
      this.backoff = Math.min(MAX_BACKOFF, this.backoff * 2);
    }
    this.skip = this.backoff;
  }
}

/** Spins up to `ns` nanoseconds for words[index] to differ from `seen`. True if it did. */
export function spinFor(words: Int32Array, index: number, seen: number, ns: number): boolean {
  if (ns <= 0) return Atomics.load(words, index) !== seen;
  const end = hrtime() + BigInt(ns);
  for (;;) {
    for (let i = 0; i < 64; i++) if (Atomics.load(words, index) !== seen) return true;
    if (hrtime() > end) return false;
  }
}

/**
 * Blocks until words[index] differs from `seen`, or until `deadline` (a performance.now() time).
 * `checkAlive` runs before every sleep slice: it throws when waiting is pointless (the other side
 * died or closed) and returns how many milliseconds to sleep before it should run again.
 * `sleepFlag`, if given, is the index of a word set to 1 while this thread sleeps, so that the
 * writer notifies only then (see Mailbox.notify). Returns false on timeout.
 */
export function waitForChange(
  words: Int32Array,
  index: number,
  seen: number,
  deadline: number,
  checkAlive: () => number,
  spin?: SpinBudget,
  sleepFlag?: number,
): boolean {
  if (spin !== undefined) {
    if (spinFor(words, index, seen, spin.next())) {
      spin.hit();
      return true;
    }
    spin.miss();
  }
  for (;;) {
    if (Atomics.load(words, index) !== seen) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    const slice = checkAlive();
    if (sleepFlag === undefined) {
      Atomics.wait(words, index, seen, Math.min(left, slice));
    } else {
      Atomics.store(words, sleepFlag, 1);
      Atomics.wait(words, index, seen, Math.min(left, slice));
      Atomics.store(words, sleepFlag, 0);
    }
  }
}

/** Resolves once words[index] differs from `seen` (at once if it already does). Never keeps a loop alive. */
export function changed(words: Int32Array, index: number, seen: number): Promise<unknown> | undefined {
  const result = Atomics.waitAsync(words, index, seen);
  return result.async ? result.value : undefined;
}
