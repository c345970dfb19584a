/**
 * How one connection waits for a counter of the channel's header to move: blocking (a short spin,
 * then sleeps in slices) or without blocking (Atomics.waitAsync, holding the event loop open), both
 * through the one waiting layer (shm/wait.ts). A waiter counts itself among its side's sleepers and
 * flags its sleep (layout.ts), so that the other side notifies only when someone sleeps. Also the
 * waits of close's grace (the channel drained) and of join (every item done).
 */
import { holdLoop, releaseLoop } from '../shm/keep-alive.js';
import { now as sharedNow, observeWake, SpinPolicy } from '../shm/spin-policy.js';
import { sleepOn, sleepOnAsync } from '../shm/wait.js';
import { cancelled, goneError, timeoutError } from './channel-errors.js';
import { BYTES_OUT, DONE_SEQ, GETTERS, PUT_WAITERS, SLEEPER, UNFINISHED } from './layout.js';
import { type ChannelSyncOptions, type ChannelWaitOptions, checkTimeout } from './options.js';
import type { Ring } from './ring.js';
import { WaitCounter } from '../observe/wait-stats.js';

/** No waiter count to keep and no sleep flag (join: taskDone and close always notify). */
export const NONE = -1;
/** Blocking sleeps are cut in slices this long (a wake-up is never needed, but costs nothing). */
const SLICE_MS = 1000;
/**
 * While spinning, a waiter looks at the other side's counter once a microsecond, not in a tight
 * loop: each look pulls the cache line that the other side writes on every item away from it, and
 * looking less often lets items gather into batches.
 */
const POLL_MS = 0.001;

export class Waiter {
  readonly #ring: Ring;
  readonly #words: Int32Array;
  /** How long this connection's blocking waits spin before they sleep. */
  readonly #spin = new SpinPolicy();
  /** How this connection's waits ended (Channel.stats()). */
  readonly stats = new WaitCounter();

  constructor(ring: Ring) {
    this.#ring = ring;
    this.#words = ring.words;
  }

  /**
   * Counts this thread among the sleepers of `waiters` (GET_WAITERS or PUT_WAITERS; NONE: no
   * count, no flag) and flags its sleep on words[index] (layout.ts). Returns the value to wait on,
   * or NaN if words[index] moved past `seen` meanwhile (then the count is undone: do not sleep).
   */
  #willSleep(index: number, waiters: number, seen: number): number {
    if (waiters === NONE) return seen;
    Atomics.add(this.#words, waiters, 1);
    const value = this.#ring.flagSleep(index, seen);
    if (Number.isNaN(value)) Atomics.sub(this.#words, waiters, 1);
    return value;
  }

  /** Sleeps until words[index] moves past `seen` or the deadline; spins briefly first. */
  sleep(index: number, waiters: number, seen: number, deadline: number): void {
    const w = this.#words;
    // A sleep flag set by another sleeper is no move of the counter.
    const flag = waiters === NONE ? 0 : SLEEPER;
    const expected = seen | flag;
    // Spin for about a wake-up's cost (the one spin policy), then sleep.
    const budget = this.#spin.next();
    const began = performance.now();
    let now = began;
    const spinEnd = now + budget;
    while (now < spinEnd) {
      if ((Atomics.load(w, index) | flag) !== expected) {
        this.#spin.observe(now - began, budget);
        this.stats.spins++;
        this.stats.time.record(now - began);
        return;
      }
      const next = now + POLL_MS;
      do now = performance.now();
      while (now < next);
    }
    const left = deadline - performance.now();
    const value = left <= 0 ? NaN : this.#willSleep(index, waiters, seen);
    if (Number.isNaN(value)) {
      // Out of time, or the counter moved: the wait ends without a sleep.
      this.stats.spins++;
      this.stats.time.record(performance.now() - began);
      return;
    }
    const asleepAt = sharedNow();
    try {
      sleepOn(w, index, value, Math.min(left, SLICE_MS));
    } finally {
      if (waiters !== NONE) Atomics.sub(w, waiters, 1);
    }
    const wokenAt = this.#ring.wokenAt[0] as number;
    if (wokenAt >= asleepAt) observeWake(sharedNow() - wokenAt);
    const end = performance.now();
    this.#spin.observe(end - began, budget);
    this.stats.sleeps++;
    this.stats.time.record(end - began);
  }

  /** Waits without blocking until words[index] moves past `seen`, the deadline, or the signal aborts. */
  async wait(index: number, waiters: number, seen: number, deadline: number, signal: AbortSignal | undefined) {
    const w = this.#words;
    const left = deadline - performance.now();
    if (left <= 0) return;
    // Flagged before the wait starts, so that a move between the two cannot skip its notify.
    const value = this.#willSleep(index, waiters, seen);
    if (Number.isNaN(value)) return;
    const woken = sleepOnAsync(w, index, value, Math.min(left, SLICE_MS));
    if (woken === undefined) {
      if (waiters !== NONE) Atomics.sub(w, waiters, 1);
      return;
    }
    holdLoop();
    this.stats.asyncWaits++;
    let onAbort: (() => void) | undefined;
    try {
      if (signal === undefined) await woken;
      else {
        await Promise.race([
          woken,
          new Promise<void>((resolve) => {
            onAbort = () => {
              resolve();
            };
            signal.addEventListener('abort', onAbort, { once: true });
          }),
        ]);
      }
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      if (waiters !== NONE) Atomics.sub(w, waiters, 1);
      releaseLoop();
    }
  }

  /**
   * Close's grace: waits (without blocking) until the ring is empty (true), or the deadline passes
   * or the signal aborts (false).
   */
  async drained(deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    for (;;) {
      const seen = Atomics.load(this.#words, BYTES_OUT) & ~SLEEPER;
      if (this.#ring.count === 0) return true;
      if (signal?.aborted === true || performance.now() >= deadline) return false;
      await this.wait(BYTES_OUT, PUT_WAITERS, seen, deadline, signal);
    }
  }

  /** drained(), blocking. */
  drainedSync(deadline: number): boolean {
    for (;;) {
      const seen = Atomics.load(this.#words, BYTES_OUT) & ~SLEEPER;
      if (this.#ring.count === 0) return true;
      if (performance.now() >= deadline) return false;
      this.sleep(BYTES_OUT, PUT_WAITERS, seen, deadline);
    }
  }

  /** Channel.join(). */
  async join(options: ChannelWaitOptions | undefined): Promise<void> {
    const signal = options?.signal;
    const deadline = checkTimeout(options?.timeout);
    const w = this.#words;
    for (;;) {
      if (signal?.aborted === true) throw cancelled(signal);
      const seen = Atomics.load(w, DONE_SEQ);
      if (this.#joined()) return;
      if (performance.now() >= deadline) throw timeoutError('join', options?.timeout);
      await this.wait(DONE_SEQ, NONE, seen, deadline, signal);
    }
  }

  /** Channel.joinSync(), once its caller may block. */
  joinSync(options: ChannelSyncOptions | undefined): void {
    const deadline = checkTimeout(options?.timeout);
    const w = this.#words;
    for (;;) {
      const seen = Atomics.load(w, DONE_SEQ);
      if (this.#joined()) return;
      if (performance.now() >= deadline) throw timeoutError('joinSync', options?.timeout);
      this.sleep(DONE_SEQ, NONE, seen, deadline);
    }
  }

  /** True once every item is done; DisconnectedError if some never can be (the count read first, as a put does). */
  #joined(): boolean {
    const getters = Atomics.load(this.#words, GETTERS);
    if (Atomics.load(this.#words, UNFINISHED) === 0) return true;
    if (getters === 0) throw goneError('join');
    return false;
  }
}
