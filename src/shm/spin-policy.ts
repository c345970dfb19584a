/**
 * How long a thread spins for the other side before it sleeps: the one spin policy.
 *
 * Spin-then-park: spinning for as long as a wake-up from sleep costs is never worse than about
 * twice the better of the two pure strategies (an answer that comes within the spin costs no
 * wake-up; one that comes later costs the spin plus the wake-up it would have paid anyway). So the
 * budget is this machine's wake-up cost, and that is measured, not assumed: the same kind of VM
 * has shown 50 us one week and 370 us the next. Every wait that slept and was woken reports how
 * long the wake-up took (from the other side's publish stamp to this thread running again), and
 * the thread keeps a running estimate. Until it has seen one, it does not spin: it sleeps, as the
 * peers do.
 *
 * Spinning costs the other side time when the cores are oversubscribed (a busy neighbour, more
 * threads than cores): answers then come later than the budget, or the spin itself is
 * descheduled in the middle (spinWasPreempted). Two late answers in a row, or one such spin, turn spinning off
 * for a number of waits that doubles each time, up to a limit; an answer within the budget resets
 * that. Each call site has its own SpinPolicy and reports every wait to it (also
 * those it did not spin for: they count down the time off); the wake-up estimate is the thread's.
 */
import { spinWasPreempted } from './wait.js';

/**
 * How many threads can run at once. Spinning helps only when the other thread runs at the same
 * time as this one. Asked at the first spin, not when a thread starts (it loads node:os, which a
 * start need not wait for).
 */
let cores: number | undefined;
export function coreCount(): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cores ??= (require('node:os') as typeof import('node:os')).availableParallelism();
  return cores;
}
const coresToSpin = (): boolean => coreCount() > 1;
/** Waits with spinning off after the first pair of late answers; doubled after each probe that fails. */
const FIRST_BACKOFF = 16;
const MAX_BACKOFF = 1024;
/** Weight of a new wake-up sample in the running estimate. */
const WEIGHT = 1 / 8;
/**
 * A wake-up sample this many times the estimate is taken at this multiple: one descheduling of
 * tens of milliseconds says nothing about the next wake-up, and must not make every later wait
 * spin for that long. On a crowded machine the samples stay long (the woken thread waits for a
 * core) and the estimate grows with them; what stops the spinning there is the spin found
 * descheduled (spinWasPreempted) and the late answers, not the estimate. (Following the low
 * envelope of the samples instead was tried: a wait that slept just as its answer came gives a
 * near-zero sample, which then held spinning off on an idle machine.)
 */
const OUTLIER = 2;

/**
 * Milliseconds on a clock that all threads of the process share (performance.now() does not): the
 * monotonic clock. Not `performance.timeOrigin + performance.now()`: a thread's first use of
 * `performance` loads perf_hooks, a tenth of a LoopThread's start-up beyond a plain Worker's.
 */
export const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** This thread's wake-up cost in ms (NaN until a wait has slept and been woken). */
let wakeMs = Number.NaN;

/** A wait of this thread slept and was woken `ms` after the other side published what it waited for. */
export function observeWake(ms: number): void {
  if (!(ms >= 0)) return;
  if (Number.isNaN(wakeMs)) wakeMs = ms;
  else wakeMs += (Math.min(ms, wakeMs * OUTLIER) - wakeMs) * WEIGHT;
}

/** This thread's measured wake-up cost in ms, NaN while unknown. */
export function wakeCost(): number {
  return wakeMs;
}

export class SpinPolicy {
  #late = 0;
  #off = 0;
  #backoff = FIRST_BACKOFF;

  /** How long (ms) to spin in the next wait before sleeping (asking twice gives the same answer). */
  next(): number {
    if (Number.isNaN(wakeMs) || this.#off > 0 || !coresToSpin()) return 0;
    return wakeMs;
  }

  /** Stops spinning now, as after two late answers (a caller saw the cores short some other way). */
  backOff(): void {
    if (this.#off > 0) return;
    this.#late = 0;
    this.#off = this.#backoff;
    this.#backoff = Math.min(MAX_BACKOFF, this.#backoff * 2);
  }

  /** A wait that was given `budget` ms of spin (maybe 0) saw its answer `answerMs` after it began. */
  observe(answerMs: number, budget: number): void {
    if (this.#off > 0) {
      this.#off--;
      return;
    }
    if (budget <= 0) return;
    // A spin descheduled in the middle took a core from the side it waits for: stop at once.
    const preempted = spinWasPreempted();
    if (answerMs <= budget && !preempted) {
      this.#late = 0;
      this.#backoff = FIRST_BACKOFF;
    } else if (preempted || ++this.#late >= 2) {
      this.backOff();
    }
  }
}
