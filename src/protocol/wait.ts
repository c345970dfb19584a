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
/** No spin at all once spinning does not pay. */
const PROBE_SPIN_MS = 0;
/** Answers slower than this, while sleeping, mean waking up is dear here (idle cores): spin. */
const DEAR_WAKE_MS = 0.03;

/**
 * How long to spin before sleeping, learnt from the other thread's last answers: how long it took
 * to wake up and take the request, and how long its work took then (both stamped in shared
 * memory, so this thread's own sleep does not count).
 *
 * Spinning pays when both threads run at once and waking from sleep is dear, as on an idle
 * machine whose cores doze (some 50-100 us here). It is harmful when they share a core with other
 * work, since the spinner takes the time the other thread needs. So: while spinning, two answers
 * in a row that take longer than the window end it. While not, two answers in a row whose
 * wake-up was dear and whose work fits the window start it again; cheap wake-ups (cores busy
 * anyway) or long work keep it off.
 */
export class SpinBudget {
  private spinning = true;
  private streak = 0;

  /** The spin budget in milliseconds for the next wait. */
  next(): number {
    if (!CAN_SPIN) return 0;
    return this.spinning ? MAX_SPIN_MS : PROBE_SPIN_MS;
  }

  /** The other thread took `wakeMs` to take the request and `workMs` more to answer it. */
  observe(wakeMs: number, workMs: number): void {
    const flip = this.spinning ? wakeMs + workMs >= MAX_SPIN_MS : wakeMs >= DEAR_WAKE_MS && workMs < MAX_SPIN_MS;
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
