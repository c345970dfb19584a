/**
 * Waiting for a word of shared memory to move past a value: blocking (spin for the budget the
 * spin policy gives, then Atomics.wait in slices, checking after each slice that the other side is
 * still alive) and asynchronous (Atomics.waitAsync).
 */
/** How a wait ended: its word moved while it spun (or before), after it slept, or not by the deadline. */
export const enum Waited {
  TimedOut = 0,
  Spun = 1,
  Slept = 2,
}

/** Whether the last spinFor() was descheduled for a good part of its budget (see spinFor). */
let preempted = false;

/**
 * Spins up to `ms` milliseconds for words[index] to differ from `seen`. True if it did.
 *
 * It also tells whether the cores were oversubscribed meanwhile (spinWasPreempted): the loop
 * reads the clock every few dozen loads, so one gap between two reads longer than half the budget
 * means this thread was descheduled in the middle of it. Spinning then takes a core from the
 * thread it waits for; the spin policy stops spinning. The budget is the measured wake-up cost, so
 * nothing here assumes a speed.
 */
export function spinFor(words: Int32Array, index: number, seen: number, ms: number): boolean {
  preempted = false;
  if (ms <= 0) return Atomics.load(words, index) !== seen;
  const end = performance.now() + ms;
  const gapLimit = ms / 2;
  let last = end - ms;
  for (;;) {
    for (let i = 0; i < 64; i++) if (Atomics.load(words, index) !== seen) return true;
    const t = performance.now();
    if (t - last > gapLimit) preempted = true;
    last = t;
    if (t > end) return false;
  }
}

/**
 * Whether the last spinFor() of this thread was descheduled in the middle (the cores are
 * oversubscribed). Reading it clears it, so that a wait that did not spin through spinFor (the
 * Channel's and the pool's own loops) never reads an older spin's answer.
 */
export function spinWasPreempted(): boolean {
  const was = preempted;
  preempted = false;
  return was;
}

/**
 * Blocks until words[index] differs from `seen`, or until `deadline` (a performance.now() time).
 * `checkAlive` runs before every sleep slice: it throws when waiting is pointless (the other side
 * died or closed) and returns how many milliseconds to sleep before it should run again. What the
 * other side published before it went comes first: a change seen together with its end is
 * returned, and the end is found by the next wait.
 * `sleepFlag`, if given, is the index of a word set to 1 while this thread sleeps, so that the
 * writer notifies only then (see Mailbox.notify). Says how the wait ended (TimedOut is falsy).
 */
export function waitForChange(
  words: Int32Array,
  index: number,
  seen: number,
  deadline: number,
  checkAlive: () => number,
  spinMs = 0,
  sleepFlag?: number,
): Waited {
  if (spinFor(words, index, seen, spinMs)) return Waited.Spun;
  for (let slept = false; ; slept = true) {
    if (Atomics.load(words, index) !== seen) return slept ? Waited.Slept : Waited.Spun;
    const left = deadline === Infinity ? Infinity : deadline - performance.now();
    if (left <= 0) return Waited.TimedOut;
    let slice: number;
    try {
      slice = checkAlive();
    } catch (error) {
      // The word may have moved between the look above and the check: the last answer is read.
      if (Atomics.load(words, index) !== seen) return slept ? Waited.Slept : Waited.Spun;
      throw error;
    }
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

/**
 * Sleeps while words[index] is `value`, until a notify or `ms` pass: the one place a thread of
 * loopthread parks in Atomics.wait (callers that keep their own counters and flags use it
 * directly; waitForChange adds the spin and the liveness checks).
 */
export function sleepOn(words: Int32Array, index: number, value: number, ms: number): void {
  Atomics.wait(words, index, value, ms);
}

/** Sleeps for `ms` without a word to watch (a write retried after EAGAIN). */
export function pause(ms: number): void {
  Atomics.wait(idle, 0, 0, ms);
}
const idle = new Int32Array(new SharedArrayBuffer(4));

/** Atomics.waitAsync, the one place it is called: `undefined` if words[index] is no longer `value`. */
export function sleepOnAsync(
  words: Int32Array,
  index: number,
  value: number,
  ms: number,
): Promise<'ok' | 'timed-out'> | undefined {
  const result = Atomics.waitAsync(words, index, value, ms);
  return result.async ? result.value : undefined;
}
