/**
 * What a pool counts of its tasks (ThreadPoolExecutor.stats()), and the task events it publishes.
 * Per task: a few increments and a histogram record of the run time its worker measured; the
 * wait in the queue is timed (two clock reads) once stats() has been asked for, or while someone
 * subscribes; a message is made only then.
 */
import { taskDone, taskQueued, taskStarted, type TaskMessage } from './events.js';
import { Histogram, type TimeSummary } from './histogram.js';

/** A ThreadPoolExecutor's tasks so far. */
export interface PoolStats {
  /** Tasks submitted. */
  readonly submitted: number;
  /** Tasks that returned a value. */
  readonly completed: number;
  /** Tasks that threw, timed out, or whose worker died. */
  readonly failed: number;
  /** Tasks cancelled (by their signal, `future.cancel()`, or shutdown's cancelFutures). */
  readonly cancelled: number;
  /** Tasks waiting for a worker now (queued, or waiting to enter a full queue). */
  readonly queued: number;
  /** Tasks handed to a worker and not yet settled. */
  readonly running: number;
  /** Worker threads now. */
  readonly workers: number;
  /** How long tasks waited from submit until handed to a worker (timed from the first stats() call on). */
  readonly waitTime: TimeSummary;
  /** How long tasks ran on their worker (measured there). */
  readonly runTime: TimeSummary;
}

/** The fields a task carries for this (on the pool's Task). */
export interface Traced {
  traceId: number;
  queuedAt: number;
  runMicros: number;
  message: TaskMessage | undefined;
  readonly future: { done(): boolean; cancelled(): boolean; exceptionSync(): unknown };
}

export class PoolCounter {
  submitted = 0;
  completed = 0;
  failed = 0;
  cancelled = 0;
  readonly waitTime = new Histogram();
  readonly runTime = new Histogram();
  /** Set by the first stats(): waits are timed from then on. */
  timed = false;

  constructor(readonly pool: string) {}

  queued(t: Traced): void {
    t.traceId = ++this.submitted;
    if (!taskQueued.hasSubscribers && !taskStarted.hasSubscribers && !taskDone.hasSubscribers) {
      t.queuedAt = this.timed ? performance.now() : -1;
      return;
    }
    t.queuedAt = performance.now();
    t.message = { pool: this.pool, id: t.traceId };
    if (taskQueued.hasSubscribers) taskQueued.publish(t.message);
  }

  /** Handed to the worker with this thread id. */
  started(t: Traced, threadId: number): void {
    if (t.queuedAt < 0) return;
    const waited = performance.now() - t.queuedAt;
    if (this.timed) this.waitTime.record(waited);
    if (t.message === undefined || !taskStarted.hasSubscribers) return;
    t.message.threadId = threadId;
    t.message.waitTime = waited;
    taskStarted.publish(t.message);
  }

  /** Its worker answered after running it `micros` microseconds. */
  ran(t: Traced, micros: number): void {
    t.runMicros = micros;
    this.runTime.record(micros / 1000);
  }

  snapshot(queued: number, running: number, workers: number): PoolStats {
    this.timed = true;
    return {
      submitted: this.submitted,
      completed: this.completed,
      failed: this.failed,
      cancelled: this.cancelled,
      queued,
      running,
      workers,
      waitTime: this.waitTime.summary(),
      runTime: this.runTime.summary(),
    };
  }

  /** Settled, whatever became of it. */
  done(t: Traced): void {
    let error: unknown;
    let status: 'ok' | 'error' | 'cancelled';
    if (!t.future.done()) {
      // (Every path settles the future before the task; never block here if one did not.)
      status = 'error';
      this.failed++;
    } else if (t.future.cancelled()) {
      status = 'cancelled';
      this.cancelled++;
    } else {
      error = t.future.exceptionSync();
      status = error === undefined ? 'ok' : 'error';
      if (error === undefined) this.completed++;
      else this.failed++;
    }
    if (t.message === undefined || !taskDone.hasSubscribers) return;
    if (status === 'cancelled') {
      try {
        t.future.exceptionSync();
      } catch (cancelled) {
        error = cancelled;
      }
    }
    t.message.status = status;
    if (error !== undefined) t.message.error = error;
    if (t.runMicros >= 0) t.message.runTime = t.runMicros / 1000;
    taskDone.publish(t.message);
  }
}
