/**
 * Waiting for a word of shared memory to move past a value: blocking (adaptive spin, then
 * Atomics.wait in slices, checking after each slice that the other side is still alive) and
 * asynchronous (Atomics.waitAsync).
 */
import { availableParallelism } from 'node:os';

/** Spinning helps only when the other thread runs at the same time as this one. */
const CAN_SPIN = availableParallelism() > 1;
/** The longest spin: more than a wake-up from sleep costs on an idle machine (up to ~100 us here). */
const MAX_SPIN_MS = 0.1;
/** A spin short enough to cost nothing much, long enough to catch an answer already on its way. */
const PROBE_SPIN_MS = 0.002;
/** Answers slower than this, while sleeping, mean waking up is dear here (idle cores): spin. */
const DEAR_WAKE_MS = 0.03;

/**
 * How long to spin before sleeping, from how long the other thread took to answer lately (its
 * time to publish, stamped in shared memory, so this thread's own sleep does not count).
 *
 * Spinning pays when both threads run at once and a wake-up from sleep is dear, as on an idle
 * machine whose cores doze (some 50-100 us here). It is harmful when they share a core with
 * other work, since the spinner then takes the time the other thread needs. So: while spinning,
 * two answers in a row slower than the window end it. While sleeping, answers that come quickly
 * show wake-ups are cheap (cores are busy anyway) and keep it so; two in a row that would have
 * been caught by a spin but took more than a cheap wake-up start it again.
 */
export class SpinBudget {
  private spinning = true;
  private streak = 0;

  /** The spin budget in milliseconds for the next wait. */
  next(): number {
    if (!CAN_SPIN) return 0;
    return this.spinning ? MAX_SPIN_MS : PROBE_SPIN_MS;
  }

  /** The other thread answered `ms` after it was asked. */
  observe(ms: number): void {
    const flip = this.spinning ? ms >= MAX_SPIN_MS : ms >= DEAR_WAKE_MS && ms < MAX_SPIN_MS;
    this.streak = flip ? this.streak + 1 : 0;
    if (this.streak >= 2) {
      this.spinning = !this.spinning;
      this.streak = 0;
    }
  }
}

/** Spins up to `ms` milliseconds for words[index] to differ from `seen`. True if it did. */
export function spinFor(words: Int32Array, index: number, seen: number, ms: number): boolean {
  if (ms <= 0) return Atomics.load(words, index) !== seen;
  const end = performance.now() + ms;
  for (;;) {
    for (let i = 0; i < 64; i++) if (Atomics.load(words, index) !== seen) return true;
    if (performance.now() > end) return false;
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
  spinMs = 0,
  sleepFlag?: number,
): boolean {
  if (spinFor(words, index, seen, spinMs)) return true;
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
