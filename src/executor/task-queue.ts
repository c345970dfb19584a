/**
 * The executor's bookkeeping of one task, and the FIFO queues tasks wait in: a deque with O(1)
 * push, shift and (for tasks given back by a worker that died) unshift.
 */
import type { FutureControl, FutureHooks, Future } from '../future.js';
import { CancelKind } from '../call/run.js';
import { TimeoutError } from '../errors.js';
import type { Mode } from './wire.js';
import type { TaskMessage } from '../observe/events.js';
import type { Traced } from '../observe/pool-stats.js';

export type TaskState = 'waiting' | 'queued' | 'handed' | 'done';

/** Options of a pool's tasks, for `pool.with(options)` and `spawnThread.with(options)`. */
export interface TaskOptions {
  /** Aborting it cancels the task: removed if it has not started, its signal aborted if it has. */
  signal?: AbortSignal | undefined;
  /** Milliseconds from submit until the task fails with TimeoutError (and its signal aborts). */
  timeout?: number | undefined;
  /**
   * Once a running task is cancelled or timed out, how long it gets to stop by itself before its
   * worker is terminated (and replaced; the other tasks are unaffected). By default it is never
   * terminated.
   */
  terminateAfter?: number | undefined;
}

export class Task implements FutureHooks, Traced {
  state: TaskState = 'waiting';
  /** Its sequence number on the worker it was handed to. */
  seq = 0;
  /** The worker it was handed to (an opaque owner, see PoolWorker). */
  owner: object | undefined;
  /** The future is done (cancelled or timed out) but the task may still run on its worker. */
  abandoned = false;
  cleanup: (() => void) | undefined;
  /** With a timeout: when it expires (performance.now() time), and what then happens. */
  expiresAt = Infinity;
  expire: (() => void) | undefined;
  future!: Future<unknown>;
  control!: FutureControl<unknown>;
  /** For stats and events (observe/pool-stats.ts). */
  traceId = 0;
  queuedAt = 0;
  runMicros = -1;
  message: TaskMessage | undefined;
  constructor(
    /** What the future's hooks ask of the pool. */
    private readonly pool: {
      abandon(task: Task, kind: CancelKind): void;
      block(task: Task, isDone: () => boolean, deadline: number): void;
      poll(task: Task): void;
    },
    readonly mode: Mode,
    readonly target: number,
    /** The encoded body: bytes [start, end) of buf, and the objects that travel beside them. */
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
    readonly beside: unknown[] | undefined,
    readonly options: TaskOptions,
  ) {}

  /** Starts the task's timeout and listens to its signal (its future is made). */
  arm(): void {
    const { signal, timeout } = this.options;
    let timer: NodeJS.Timeout | undefined;
    if (timeout !== undefined) {
      this.expire = () => {
        if (this.control.reject(new TimeoutError(`the task timed out after ${String(timeout)} ms`))) {
          this.pool.abandon(this, CancelKind.Timeout);
        }
      };
      this.expiresAt = performance.now() + timeout;
      timer = setTimeout(this.expire, timeout);
    }
    const onAbort = (): void => {
      this.future.cancel(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timer !== undefined || signal !== undefined) {
      this.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
    }
  }

  /** The future's hook: it was cancelled. */
  onCancel(): void {
    this.pool.abandon(this, CancelKind.Cancel);
  }

  /** The future's hook: its state is read (called detached). */
  get poll(): () => void {
    return () => {
      this.pool.poll(this);
    };
  }

  /** The future's hook for resultSync (called detached). */
  get block(): (isDone: () => boolean, deadline: number) => void {
    return (isDone, deadline) => {
      this.pool.block(this, isDone, deadline);
    };
  }
}

/** A FIFO of tasks; entries may be skipped lazily (a cancelled task is left in place and dropped when reached). */
export class Deque<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Compact once the dead prefix is large, so memory follows the live length.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i];
      if (item !== undefined) yield item;
    }
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}
