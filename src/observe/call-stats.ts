/**
 * What one connection's caller side counts of its calls (LoopThread.stats()), and the call
 * events it publishes. Unobserved, a call costs a few increments and boolean checks: its
 * duration is timed (two clock reads, which cost more than the rest) only once stats() has been
 * asked for, or while someone subscribes to the call channels.
 */
import { callEnd, callError, callStart, type CallMessage } from './events.js';
import { Histogram, type TimeSummary } from './histogram.js';

/** A LoopThread's (or connection's) calls, as its callers on this thread saw them. */
export interface CallStats {
  /** Calls made (blocking and async). */
  readonly calls: number;
  /** Calls made and not yet settled. */
  readonly inFlight: number;
  /** Calls that failed (threw, timed out, were cancelled, or their thread died). */
  readonly errors: number;
  /** Blocking waits for a reply that ended while spinning (no sleep, no wake-up). */
  readonly spins: number;
  /** Blocking waits for a reply that slept (and paid a wake-up). */
  readonly sleeps: number;
  /**
   * Blocking requests that had to wake the serving thread by a message (it was not looking for
   * them: idle in its event loop, not spinning or watching for this caller's next request).
   */
  readonly wakes: number;
  /**
   * Blocking replies sent while the serving thread had more blocking callers (waiting for their
   * answers, or between calls) than the cores can run beside it: after each, this caller does not
   * spin for its answers for a while (it would take a core from a thread its answer waits for).
   */
  readonly crowded: number;
  /**
   * Durations of the calls settled since the first stats() call (timing starts then: unobserved,
   * calls are not timed), from the caller's call to its return (waiting and running).
   */
  readonly time: TimeSummary;
}

let nextId = 0;

export class CallCounter {
  calls = 0;
  inFlight = 0;
  errors = 0;
  spins = 0;
  sleeps = 0;
  wakes = 0;
  crowded = 0;
  readonly time = new Histogram();
  /** Set by the first stats(): calls are timed from then on. */
  timed = false;

  constructor(
    readonly target: string,
    readonly threadId: number,
  ) {}

  /** The clock at a call's start, if its duration is wanted (else -1). */
  clock(): number {
    return this.timed || callStart.hasSubscribers || callEnd.hasSubscribers || callError.hasSubscribers
      ? performance.now()
      : -1;
  }

  /** A call begins: its message, if anyone listens. */
  start(blocking: boolean): CallMessage | undefined {
    this.calls++;
    this.inFlight++;
    if (!callStart.hasSubscribers && !callEnd.hasSubscribers && !callError.hasSubscribers) return undefined;
    const message: CallMessage = { target: this.target, threadId: this.threadId, id: ++nextId, blocking };
    if (callStart.hasSubscribers) callStart.publish(message);
    return message;
  }

  /** The call that began at `began` (clock()) returned. */
  end(began: number, message: CallMessage | undefined): void {
    this.inFlight--;
    if (began < 0) return;
    const duration = performance.now() - began;
    if (this.timed) this.time.record(duration);
    if (message === undefined || !callEnd.hasSubscribers) return;
    message.duration = duration;
    callEnd.publish(message);
  }

  /** It failed with `error`. */
  fail(began: number, message: CallMessage | undefined, error: unknown): void {
    this.inFlight--;
    this.errors++;
    if (began < 0) return;
    const duration = performance.now() - began;
    if (this.timed) this.time.record(duration);
    if (message === undefined || !callError.hasSubscribers) return;
    message.duration = duration;
    message.error = error;
    callError.publish(message);
  }

  snapshot(): CallStats {
    this.timed = true;
    return {
      calls: this.calls,
      inFlight: this.inFlight,
      errors: this.errors,
      spins: this.spins,
      sleeps: this.sleeps,
      wakes: this.wakes,
      crowded: this.crowded,
      time: this.time.summary(),
    };
  }
}
