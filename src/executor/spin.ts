/**
 * (The pool's own spin policy, still apart from shm/spin-policy.ts: folding it in is open work.)
 * When a pool's threads spin for each other (the worker for its next task, the main thread for
 * results) rather than sleep until woken by a message. Spinning wins whenever the other side
 * answers within the window and has a core of its own: a wake-up by message costs 10-100 us here,
 * a spin that catches the answer about 1 us. It loses when the answer comes later, or when the
 * machine is busy (the spinner takes the time the other thread needs, and answers come late).
 *
 * So: spin while answers come within the window; after two late ones in a row, stop, and probe
 * again after a while (longer after each failed probe), since the machine's load changes. Unlike
 * the LoopThread's SpinBudget, a cheap wake-up does not keep spinning off: a pool's hand-offs come
 * in streams, where even a cheap wake-up per task costs more than a spin.
 */
import { availableParallelism } from 'node:os';

const CAN_SPIN = availableParallelism() > 1;
/** The spin window (ms): more than a message takes to wake a dozing core here. */
const WINDOW_MS = 0.1;
const FIRST_PROBE = 32;
const MAX_PROBE = 512;

export class SpinPolicy {
  #spinning = true;
  #late = 0;
  /** Hand-offs until the next probe while not spinning. */
  #until = 0;
  #interval = FIRST_PROBE;

  /** How long to spin before sleeping (ms). */
  next(): number {
    return CAN_SPIN && this.#spinning ? WINDOW_MS : 0;
  }

  /** The other side answered `ms` after this side was ready for it (this side's wake-up included). */
  observe(ms: number): void {
    if (this.#spinning) {
      if (ms < WINDOW_MS) {
        this.#late = 0;
        this.#interval = FIRST_PROBE;
      } else if (++this.#late >= 2) {
        this.#spinning = false;
        this.#late = 0;
        this.#until = this.#interval;
        this.#interval = Math.min(MAX_PROBE, this.#interval * 2);
      }
    } else if (--this.#until <= 0) {
      // A probe, late answers or not: while neither side spins, every answer is late.
      this.#spinning = true;
    }
  }
}
