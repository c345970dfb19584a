/**
 * Waiting for a word of shared memory to move past a value: blocking (adaptive spin, then
 * Atomics.wait in slices, checking after each slice that the other side is still alive) and
 * asynchronous (Atomics.waitAsync).
 */
import { availableParallelism } from 'node:os';

const hrtime = (): bigint => process.hrtime.bigint();

/** Spinning helps only when the other thread runs at the same time as this one. */
const CAN_SPIN = availableParallelism() > 1;
/** The longest spin: a few wake-ups' worth (a futex wake costs some 50 us here). */
const MAX_SPIN_NS = 100_000;
/** A wait that ended within this time (sleep included) counts as fast: next time, spin. */
const FAST_WAIT_NS = 250_000n;
/** Even after slow answers, spin this long: it costs little and catches a quick answer. */
const PROBE_SPIN_NS = 2_000;

/**
 * How long to spin before sleeping: the whole window while answers have recently been coming
 * back quickly, and only a short probe after a slow one, so slow calls cost no CPU.
 */
export class SpinBudget {
  private fast = true;
  private started = 0n;

  /** Call when the wait begins; returns the spin budget in nanoseconds. */
  begin(): number {
    if (!CAN_SPIN) return 0;
    this.started = hrtime();
    return this.fast ? MAX_SPIN_NS : PROBE_SPIN_NS;
  }

  /** Call when the wait is over: remembers whether it was quick. */
  end(): void {
    if (CAN_SPIN) this.fast = hrtime() - this.started < FAST_WAIT_NS;
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
    const hit = spinFor(words, index, seen, spin.begin());
    if (hit) {
      spin.end();
      return true;
    }
  }
  for (;;) {
    if (Atomics.load(words, index) !== seen) {
      spin?.end();
      return true;
    }
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
