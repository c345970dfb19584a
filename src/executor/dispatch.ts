/**
 * The pool's scheduling: the FIFO queue of accepted tasks, the submissions waiting for room in a
 * bounded queue, and handing tasks to workers, a few at a time (more when tasks are short).
 */
import { CancelledError } from '../errors.js';
import { MAX_WINDOW } from './layout.js';
import { Deque, type Task } from './task-queue.js';
import type { PoolWorker } from './worker.js';

/** Tasks are handed out ahead so that each worker has about this much work queued (microseconds). */
const PREFETCH_US = 2_000;
/** Tasks longer than this on average are handed out one at a time (see window). */
const LONG_TASK_US = 20_000;

/** What scheduling needs of its pool. */
export interface DispatchOwner {
  readonly maxWorkers: number;
  readonly maxQueue: number;
  /** The pool's workers (the pool adds and removes them). */
  readonly workers: readonly PoolWorker[];
  /** Starts one more worker. */
  spawn(): PoolWorker;
  /** The task was handed to `worker` (for the pool's stats). */
  started(task: Task, worker: PoolWorker): void;
  /** The task is done (rejected or dropped): its bookkeeping ends. */
  settle(task: Task): void;
  /** Tasks were handed to workers: results will come. */
  handed(): void;
}

export class Dispatch {
  /** Accepted, not yet handed to a worker. */
  readonly #queue = new Deque<Task>();
  #queued = 0;
  /** Submitted while the queue was full: waiting (FIFO) to enter it. */
  readonly #waiting = new Deque<Task>();
  #waitingCount = 0;
  readonly #readyWaiters: (() => void)[] = [];
  /** Average run time of recent tasks (us), or -1 before the first. */
  averageMicros = -1;

  constructor(private readonly pool: DispatchOwner) {}

  /** Tasks waiting for a worker (those waiting to enter a full queue not included). */
  get queued(): number {
    return this.#queued;
  }

  /** Submitted while the queue was full, waiting to enter it. */
  get waiting(): number {
    return this.#waitingCount;
  }

  /** Whether a submit now would have to wait for room (trySubmit's test). */
  get full(): boolean {
    return this.#waitingCount > 0 || (this.#queued >= this.pool.maxQueue && !this.#hasRoom());
  }

  /** See ThreadPoolExecutor.ready. */
  ready(): Promise<void> {
    if (this.#waitingCount === 0 && this.#queued < this.pool.maxQueue) return Promise.resolve();
    return new Promise((resolve) => {
      this.#readyWaiters.push(resolve);
    });
  }

  /** Nothing will make room any more: ready() resolves (a submit after it fails with ClosedError). */
  releaseReady(): void {
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
  }

  /** A task's run time, for the window. */
  observe(micros: number): void {
    this.averageMicros = this.averageMicros < 0 ? micros : this.averageMicros * 0.9 + micros * 0.1;
  }

  /** A new task: queued, or waiting for room; handed out at once if nothing is ahead of it. */
  add(t: Task): void {
    // After a pump, either nothing waits or no worker can take more; only a result or a worker
    // coming or going changes that (and each pumps). So a task behind others needs no pump.
    const behindOthers = this.#queued > 0 || this.#waitingCount > 0;
    if (this.#waitingCount > 0 || this.#queued >= this.pool.maxQueue) {
      this.#waiting.push(t);
      this.#waitingCount++;
    } else {
      t.state = 'queued';
      this.#queue.push(t);
      this.#queued++;
    }
    if (!behindOthers) this.pump();
  }

  /** The task's future is done before a worker took it: it leaves its queue. */
  remove(t: Task): void {
    if (t.state === 'waiting') this.#waitingCount--;
    else this.#queued--;
  }

  /** Tasks a dead worker never began go back to the front of the queue, in their order. */
  requeue(tasks: readonly Task[]): void {
    for (let i = tasks.length - 1; i >= 0; i--) {
      const t = tasks[i] as Task;
      if (t.abandoned) {
        this.pool.settle(t);
        continue;
      }
      t.state = 'queued';
      t.owner = undefined;
      this.#queue.unshift(t);
      this.#queued++;
    }
  }

  /** Every task not yet handed out fails with `error`. */
  fail(error: Error): void {
    for (const t of [...this.#waiting, ...this.#queue]) {
      if (t.state !== 'waiting' && t.state !== 'queued') continue;
      this.remove(t);
      t.control.reject(error);
      this.pool.settle(t);
    }
  }

  /** Cancels the tasks not begun: those queued, and those handed out (flagged, so the worker skips them). */
  cancelUnstarted(reason: unknown = new CancelledError('shutdown(cancelFutures)')): void {
    for (const t of [...this.#waiting, ...this.#queue]) {
      if (t.state === 'waiting' || t.state === 'queued') t.future.cancel(reason);
    }
    for (const w of this.pool.workers) {
      for (const t of w.unstarted()) t.future.cancel(reason);
    }
  }

  /**
   * How many tasks a worker may hold: one while the queue is bounded; else enough for PREFETCH_US
   * of work, and at least two for tasks shorter than LONG_TASK_US, so that a worker never waits
   * for the main thread between two of them. Longer ones are handed out one at a time, so that
   * none waits behind a long task on one worker while another is free.
   */
  #window(): number {
    if (this.pool.maxQueue !== Infinity) return 1;
    const average = this.averageMicros;
    if (average < 0) return 2;
    if (average >= LONG_TASK_US) return 1;
    return Math.max(2, Math.min(MAX_WINDOW, Math.floor(PREFETCH_US / Math.max(1, average))));
  }

  /** Whether a task could be handed to a worker right now. */
  #hasRoom(): boolean {
    if (this.pool.workers.length < this.pool.maxWorkers) return true;
    const window = this.#window();
    return this.pool.workers.some((w) => !w.stopping && w.outstanding < window);
  }

  /** The worker to hand the next task to: the least loaded (awake ones first), spawning if none is idle. */
  #pick(): PoolWorker | undefined {
    const window = this.#window();
    let best: PoolWorker | undefined;
    let idle = false;
    for (const w of this.pool.workers) {
      if (w.stopping || w.full) continue;
      if (w.outstanding === 0) idle = true;
      if (w.outstanding >= window) continue;
      if (
        best === undefined ||
        w.outstanding < best.outstanding ||
        (w.outstanding === best.outstanding && best.sleeping && !w.sleeping)
      ) {
        best = w;
      }
    }
    if (!idle && this.liveWorkers() < this.pool.maxWorkers) return this.pool.spawn();
    return best;
  }

  liveWorkers(): number {
    let n = 0;
    for (const w of this.pool.workers) if (!w.stopping) n++;
    return n;
  }

  /** Hands out what the workers can take, admitting waiting submissions as room appears. */
  pump(): void {
    // A pump runs on every submit: no allocation here (`full` and `touched` are marks on the workers).
    const workers = this.pool.workers;
    for (const w of workers) w.full = false;
    let touched = false;
    for (let progressed = true; progressed;) {
      progressed = false;
      // Waiting submissions enter the queue in order as room appears.
      while (this.#waitingCount > 0 && this.#queued < this.pool.maxQueue) {
        const t = this.#waiting.shift();
        if (t === undefined) break;
        if (t.state !== 'waiting') continue;
        this.#admit(t);
        progressed = true;
      }
      while (this.#queued > 0) {
        const t = this.#queue.peek();
        if (t === undefined) break;
        if (t.state !== 'queued') {
          this.#queue.shift();
          continue;
        }
        const w = this.#pick();
        if (w === undefined) break;
        let taken: boolean;
        try {
          taken = w.hand(t);
        } catch (error) {
          // Its body cannot be sent again (a MessagePort already transferred by a first attempt).
          this.#queue.shift();
          this.#queued--;
          t.control.reject(error);
          this.pool.settle(t);
          continue;
        }
        if (!taken) {
          w.full = true;
          continue;
        }
        touched = true;
        this.pool.started(t, w);
        this.#queue.shift();
        this.#queued--;
        progressed = true;
      }
      // A full (or zero-length) queue: the first waiting task may still go straight to a free worker.
      if (this.#queued === 0 && this.#waitingCount > 0) {
        let t = this.#waiting.peek();
        while (t !== undefined && t.state !== 'waiting') {
          this.#waiting.shift();
          t = this.#waiting.peek();
        }
        if (t !== undefined && this.#hasRoom()) {
          this.#waiting.shift();
          this.#admit(t);
          progressed = true;
        }
      }
    }
    if (this.#readyWaiters.length > 0 && this.#waitingCount === 0 && this.#queued < this.pool.maxQueue) {
      this.releaseReady();
    }
    for (const w of workers) w.flush();
    if (touched) this.pool.handed();
  }

  #admit(t: Task): void {
    this.#waitingCount--;
    t.state = 'queued';
    this.#queue.push(t);
    this.#queued++;
  }
}
