/**
 * What one connection's caller side counts of its calls (LoopThread.stats()), and the call
 * events it publishes. Counting costs a few increments and a histogram record per call; the
 * events cost one check each unless someone subscribed.
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
  /** Durations of the settled calls, from the caller's call to its return (waiting and running). */
  readonly time: TimeSummary;
}

let nextId = 0;

export class CallCounter {
  calls = 0;
  inFlight = 0;
  errors = 0;
  spins = 0;
  sleeps = 0;
  readonly time = new Histogram();

  constructor(
    readonly target: string,
    readonly threadId: number,
  ) {}

  /** A call begins: its message, if anyone listens. */
  start(blocking: boolean): CallMessage | undefined {
    this.calls++;
    this.inFlight++;
    if (!callStart.hasSubscribers && !callEnd.hasSubscribers && !callError.hasSubscribers) return undefined;
    const message: CallMessage = { target: this.target, threadId: this.threadId, id: ++nextId, blocking };
    if (callStart.hasSubscribers) callStart.publish(message);
    return message;
  }

  /** The call that began at `began` (performance.now()) returned. */
  end(began: number, message: CallMessage | undefined): void {
    const duration = performance.now() - began;
    this.inFlight--;
    this.time.record(duration);
    if (message === undefined || !callEnd.hasSubscribers) return;
    message.duration = duration;
    callEnd.publish(message);
  }

  /** It failed with `error`. */
  fail(began: number, message: CallMessage | undefined, error: unknown): void {
    const duration = performance.now() - began;
    this.inFlight--;
    this.errors++;
    this.time.record(duration);
    if (message === undefined || !callError.hasSubscribers) return;
    message.duration = duration;
    message.error = error;
    callError.publish(message);
  }

  snapshot(): CallStats {
    return {
      calls: this.calls,
      inFlight: this.inFlight,
      errors: this.errors,
      spins: this.spins,
      sleeps: this.sleeps,
      time: this.time.summary(),
    };
  }
}
