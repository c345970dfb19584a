/**
 * ThreadPoolExecutor: Python's concurrent.futures.ThreadPoolExecutor over worker threads. Tasks
 * wait in one FIFO queue and are handed to workers through shared-memory rings, a few at a time
 * (more when tasks are short, so that a burst of tiny tasks costs no message each); results come
 * back the same way. Neither side sends a message unless the other said it sleeps.
 */
import { availableParallelism } from 'node:os';
import type { ResourceLimits, SHARE_ENV, Worker } from 'node:worker_threads';
import { defaultTsRunner, withTsRunner, type TsRunner } from '../modules.js';
import { decodeValue } from '../codec/decode.js';
import type { Reader } from '../codec/writer.js';
import { CancelledError, ClosedError, QueueFullError, TimeoutError, WorkerCrashedError } from '../errors.js';
import { Future } from '../future.js';
import { graceEnd, graceOf, type CloseOptions } from '../lifecycle.js';
import { KeepAlive } from '../shm/keep-alive.js';
import { sleepOn } from '../shm/wait.js';
import { now as sharedNow, observeWake } from '../shm/spin-policy.js';
import { AWAKE, BELL, CancelKind, MainWaits, MAX_WINDOW } from './layout.js';
import { mapChunks, type MapOptions } from './map.js';
import { stage, staged } from './staging.js';
import { moduleProxy, normalizeSpecifier, targetOf, type Offloaded } from './targets.js';
import { Deque, Task, type TaskOptions } from './task-queue.js';
import {
  asCompleted,
  wait,
  type AsCompletedOptions,
  type Completable,
  type Completed,
  type WaitResult,
  type FuturesWaitOptions,
} from './wait.js';
import { Mode, Status } from './wire.js';
import { PoolWorker, type Ending, type ThreadOptions } from './worker.js';
import { workerEntry } from '../worker-entry.js';
import { threadCrash, threadEvent, threadStart, threadStop } from '../observe/events.js';
import { PoolCounter, type PoolStats } from '../observe/pool-stats.js';

export type { TaskOptions } from './task-queue.js';

/** Options of `new ThreadPoolExecutor()`. */
export interface ExecutorOptions {
  /** The most worker threads. Default `os.availableParallelism()`. */
  maxWorkers?: number;
  /** Workers kept even when idle. Default 0. */
  minWorkers?: number;
  /** Milliseconds an idle worker above minWorkers lives on. Default 30 000; Infinity: for ever. */
  idleTimeout?: number;
  /**
   * The most tasks waiting for a worker. When the queue is full, `submit` and `map` wait their
   * turn (strict FIFO) and `trySubmit` returns undefined. Default Infinity.
   */
  maxQueue?: number;
  /** Shown in errors and as the workers' thread names. */
  name?: string;
  /** Limits of each worker's heap and stack; exceeding them is a WorkerCrashedError for its task. */
  resourceLimits?: ResourceLimits;
  /** Node options of each worker (for example `--import` of a loader). Default: inherited. */
  execArgv?: string[];
  /** Each worker's environment (a copy of process.env by default; worker_threads.SHARE_ENV to share it). */
  env?: NodeJS.ProcessEnv | typeof SHARE_ENV;
  /** What loads TypeScript modules where Node does not strip types, as for LoopThread. */
  tsRunner?: TsRunner | undefined;
  /** A copy of loopthread's dist/src folder, for an app that bundles loopthread, as for LoopThread. */
  workerDir?: string | URL | undefined;
  /**
   * A value each worker finds as `require('node:worker_threads').workerData`, in its tasks and
   * its `execArgv` preloads: a copy per worker (structured clone; a SharedArrayBuffer is shared).
   */
  workerData?: unknown;
}

/** Python's options of `shutdown`, an alias of `close`. */
export interface ShutdownOptions {
  /** Resolve only once every task has finished and every worker has exited. Default true. */
  wait?: boolean;
  /** Cancel the tasks that have not started (they never will); running ones finish. Default false. */
  cancelFutures?: boolean;
}

/** A function that may be sent: a stub from `executor.import()`, or an inline function (sent as source). */
type Callable<A extends unknown[], R> = (...args: A) => R;

const CORES = availableParallelism();
/** Tasks are handed out ahead so that each worker has about this much work queued (microseconds). */
const PREFETCH_US = 2_000;
/** Tasks longer than this on average are handed out one at a time (see #window). */
const LONG_TASK_US = 20_000;
/** How often a thread blocked in resultSync looks whether the workers still live (ms). */
const BLOCK_SLICE_MS = 10;
/** Workers that die before their first task, in a row, before the pool gives up on the queue. */
const MAX_BOOT_FAILURES = 3;

/** Two words for the whole process: how many pool workers are awake, and the BELL (see layout.ts). */
const awake = new SharedArrayBuffer(8);
const awakeWords = new Int32Array(awake);

let count = 0;

/** The submit methods, bound to a set of task options (see `ThreadPoolExecutor.with`). */
export class ExecutorCaller {
  readonly #target: ThreadPoolExecutor | undefined;
  readonly #options: TaskOptions;

  /** @internal */
  constructor(target: ThreadPoolExecutor | undefined, options: TaskOptions) {
    this.#target = target;
    this.#options = options;
  }

  /** @internal The executor (a ThreadPoolExecutor is its own). */
  protected get pool(): ThreadPoolExecutor {
    return this.#target ?? (this as unknown as ThreadPoolExecutor);
  }

  /** @internal */
  protected get options(): TaskOptions {
    return this.#options;
  }

  /**
   * Runs `fn(...args)` on a worker. Returns at once; when the queue is full the task waits its
   * turn (FIFO) to enter it, still cancellable.
   *
   * @param fn - A function from `pool.import()`, or an inline function (sent as source: it may use
   *   only its arguments and globals).
   * @param args - Its arguments, copied to the worker.
   * @returns A Future of its result. It fails with what `fn` throws; {@link ClosedError} if the pool
   *   is closed; {@link WorkerCrashedError} if the worker dies; {@link TimeoutError} or
   *   {@link CancelledError} per the task options; {@link NeverSettledError} if its promise can
   *   never settle; {@link DataCloneError} for an argument that cannot be copied.
   * @example
   * ```ts
   * const future = pool.submit((a: number, b: number) => a * b, 6, 7);
   * console.log(await future); // 42
   * ```
   */
  submit<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<Awaited<R>> {
    return this.pool.submitWith(this.options, fn, ...args);
  }

  /**
   * As submit if the queue has room now; undefined (nothing submitted) when it is full.
   *
   * @param fn - As for `submit`.
   * @param args - As for `submit`.
   */
  trySubmit<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<Awaited<R>> | undefined {
    try {
      return this.pool.submitWith({ ...this.options, nowait: true }, fn, ...args);
    } catch (error) {
      if (error instanceof QueueFullError) return undefined;
      throw error;
    }
  }

  /** @deprecated Python's `submit_nowait`: as trySubmit, but throws QueueFullError when the queue is full. */
  submitNowait<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<Awaited<R>> {
    return this.pool.submitWith({ ...this.options, nowait: true }, fn, ...args);
  }

  /**
   * `fn(item)` for each item, in input order. The input is read lazily and at most
   * `concurrency` chunks of `chunkSize` items are in flight, so it may be endless.
   *
   * @param fn - As for `submit`, called with one item.
   * @param input - A sync or async iterable.
   * @param options - `chunkSize` (default 1), `concurrency` (default twice maxWorkers).
   * @returns The results in input order; the iteration throws the first error, in order.
   * @example
   * ```ts
   * for await (const size of pool.map(sizeOf, paths, { chunkSize: 16 })) total += size;
   * ```
   */
  map<T, R>(
    fn: (item: T) => R,
    input: Iterable<T> | AsyncIterable<T>,
    options: MapOptions = {},
  ): AsyncGenerator<Awaited<R>, void, undefined> {
    const id = targetOf(fn);
    return mapChunks<T, Awaited<R>>(
      (items) => this.pool.submitTarget(id, Mode.Chunk, items, this.options) as Future<[Awaited<R>[], number, unknown]>,
      input,
      { concurrency: this.pool.maxWorkers * 2, ...options },
    );
  }

  /**
   * A module loaded in the workers: each of its functions runs there and returns a Future.
   *
   * @param specifier - An absolute path, a file URL or a package name (resolved from the working directory).
   * @example
   * ```ts
   * const images = pool.import<typeof import('./images.js')>(new URL('./images.js', import.meta.url));
   * const thumb = await images.resize(buffer, 128);
   * ```
   */
  import<T = Record<string, unknown>>(specifier: string | URL): Offloaded<T> {
    const spec = normalizeSpecifier(specifier);
    return moduleProxy(spec, (id, args) => this.pool.submitTarget(id, Mode.Call, args, this.options)) as Offloaded<T>;
  }
}

/**
 * A pool of worker threads for CPU-bound functions, after Python's `ThreadPoolExecutor`: each
 * worker runs one task at a time; a task's Future can be awaited or blocked on. A crashing task
 * fails with WorkerCrashedError and the pool serves on; idle workers never hold the process open.
 *
 * @example
 * ```ts
 * await using pool = new ThreadPoolExecutor({ maxWorkers: 4 });
 * const hash = pool.import<typeof import('./hash.js')>(new URL('./hash.js', import.meta.url));
 * const digests = await Promise.all(files.map((f) => hash.sha256(f)));
 * const quick = pool.with({ timeout: 1_000 }).submit((n: number) => n ** 2, 12);
 * ```
 */
export class ThreadPoolExecutor extends ExecutorCaller implements AsyncDisposable {
  /** Shown in errors and as the workers' thread names. */
  readonly name: string;
  /** The most worker threads. */
  readonly maxWorkers: number;
  /** Workers kept even when idle. */
  readonly minWorkers: number;
  /** Milliseconds an idle worker above minWorkers lives on. */
  readonly idleTimeout: number;
  /** The most tasks waiting for a worker. */
  readonly maxQueue: number;
  readonly #threadOptions: ThreadOptions;
  readonly #workers: PoolWorker[] = [];
  /** Threads started and not yet exited (retiring and killed ones too). */
  #threads = 0;
  /** Accepted, not yet handed to a worker. */
  readonly #queue = new Deque<Task>();
  #queued = 0;
  /** Submitted while the queue was full: waiting (FIFO) to enter it. */
  readonly #waiting = new Deque<Task>();
  #waitingCount = 0;
  /** Tasks not yet settled: while there are any, the pool keeps the process alive. */
  #unsettled = 0;
  #state: 'open' | 'shutdown' | 'closed' = 'open';
  readonly #closed: Promise<void>;
  #markClosed!: () => void;
  /** Average run time of recent tasks (us), or -1 before the first. */
  #averageMicros = -1;
  #pollScheduled = false;
  #lastProgress = 0;
  #bootFailures = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #keepAlive = new KeepAlive();
  readonly #stats: PoolCounter;
  readonly #events = {
    result: (task: Task, status: Status, micros: number, r: Reader): void => {
      this.#onResult(task, status, micros, r);
    },
    wake: (): void => {
      this.#poll();
    },
    exit: (worker: PoolWorker, started: Task[], unstarted: Task[], ending: Ending): void => {
      this.#onExit(worker, started, unstarted, ending);
    },
  };

  /**
   * A new pool; workers start as tasks arrive (`minWorkers` at once).
   *
   * @param options - Size, queue bound, name and the workers' thread options.
   * @throws RangeError for a negative `maxQueue`; TypeError for an unknown `tsRunner`.
   */
  constructor(options: ExecutorOptions = {}) {
    super(undefined, {});
    this.name = options.name ?? `ThreadPoolExecutor #${String(++count)}`;
    this.#stats = new PoolCounter(this.name);
    this.maxWorkers = Math.max(1, Math.floor(options.maxWorkers ?? CORES));
    this.minWorkers = Math.min(this.maxWorkers, Math.max(0, Math.floor(options.minWorkers ?? 0)));
    this.idleTimeout = options.idleTimeout ?? 30_000;
    this.maxQueue = options.maxQueue ?? Infinity;
    if (!(this.maxQueue >= 0)) throw new RangeError('maxQueue must be a number >= 0');
    this.#threadOptions = {
      main: workerEntry('executor/worker-main.js', options.workerDir),
      resourceLimits: options.resourceLimits,
      argv: withTsRunner(options.tsRunner ?? defaultTsRunner(), options.execArgv),
      env: options.env,
      workerData: options.workerData,
    };
    this.#closed = new Promise((resolve) => {
      this.#markClosed = resolve;
    });
    for (let i = 0; i < this.minWorkers; i++) this.#spawn();
  }

  /** The submit methods with these options (signal, timeout, terminateAfter) for every task. */
  with(options: TaskOptions): ExecutorCaller {
    return new ExecutorCaller(this, options);
  }

  /** The worker threads running now (for inspection; terminating one is a crash its tasks see). */
  get threads(): readonly Worker[] {
    return this.#workers.map((w) => w.thread);
  }

  /** Tasks waiting for a worker (those waiting to enter a full queue not included). */
  get queueSize(): number {
    return this.#queued;
  }

  /** The pool's tasks so far: counts, the queue and the running, wait and run time percentiles. */
  stats(): PoolStats {
    const queued = this.#queued + this.#waitingCount;
    return this.#stats.snapshot(queued, this.#unsettled - queued, this.#workers.length);
  }

  /** True once closing has begun (close, shutdown, terminate): submit then fails with ClosedError. */
  get isClosed(): boolean {
    return this.#state !== 'open';
  }

  /** Python's name of isClosed (a documented alias). */
  get isShutdown(): boolean {
    return this.isClosed;
  }

  /** Resolves once the pool is closed: every task settled and every worker exited. Never rejects. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** As concurrent.futures.as_completed: the futures, each as soon as it is done. */
  asCompleted<F extends Completable>(
    futures: Iterable<F>,
    options?: AsCompletedOptions,
  ): AsyncIterableIterator<Completed<F>> {
    return asCompleted(futures, options);
  }

  /** As concurrent.futures.wait: resolves when `returnWhen` holds or the timeout passes. */
  wait<F extends Completable>(futures: Iterable<F>, options?: FuturesWaitOptions): Promise<WaitResult<F>> {
    return wait(futures, options);
  }

  /**
   * Resolves once there is room in the queue (at once if there is), after the submissions already
   * waiting for room: a producer that awaits it before each submit never runs ahead of the pool.
   */
  ready(): Promise<void> {
    if (this.#waitingCount === 0 && this.#queued < this.maxQueue) return Promise.resolve();
    return new Promise((resolve) => {
      this.#readyWaiters.push(resolve);
    });
  }

  readonly #readyWaiters: (() => void)[] = [];

  /**
   * Takes no new tasks (submit then fails with ClosedError); the tasks queued and running go on
   * for `grace` ms (default Infinity), or until `signal` aborts: then those not begun are
   * cancelled, running ones are cancelled and their workers terminated. Resolves once every task
   * has settled and every worker has exited (`closed`). Idempotent.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const grace = graceOf(options, Infinity);
    if (this.#state === 'open') this.#state = 'shutdown';
    this.#maybeClose();
    if (grace !== 0) {
      const end = graceEnd(grace, options.signal);
      const ended = await Promise.race([this.#closed.then(() => false), end.ended.then(() => true)]);
      end.cancel();
      if (!ended) return;
    }
    this.#stopAll(new ClosedError(`${this.name} was closed before this task finished`));
    await this.#closed;
  }

  /** Stops at once: every task not settled is cancelled and every worker terminated. Resolves once closed. */
  async terminate(): Promise<void> {
    if (this.#state === 'open') this.#state = 'shutdown';
    this.#stopAll(new ClosedError(`${this.name} was terminated`));
    await this.#closed;
  }

  /**
   * Python's Executor.shutdown, an alias of close: with `wait` (the default) it resolves once
   * all is done; `cancelFutures` cancels the tasks not begun. Idempotent.
   */
  async shutdown(options: ShutdownOptions = {}): Promise<void> {
    const { wait: waitForIt = true, cancelFutures = false } = options;
    if (this.#state === 'open') this.#state = 'shutdown';
    if (cancelFutures) this.#cancelUnstarted();
    this.#maybeClose();
    if (waitForIt) await this.#closed;
  }

  /** close(), for `await using`: tasks finish. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- submitting ------------------------------------------------------------------------------

  /** @internal */
  submitWith<A extends unknown[], R>(
    options: TaskOptions & { nowait?: boolean },
    fn: Callable<A, R>,
    ...args: A
  ): Future<Awaited<R>> {
    let id: number;
    try {
      id = targetOf(fn);
    } catch (error) {
      return failed(error);
    }
    return this.submitTarget(id, Mode.Call, args, options) as Future<Awaited<R>>;
  }

  /** @internal */
  submitTarget(id: number, mode: Mode, args: unknown[], options: TaskOptions & { nowait?: boolean }): Future<unknown> {
    if (this.#state !== 'open') return failed(new ClosedError(`${this.name} is shut down: it takes no new tasks`));
    if (options.nowait === true && (this.#waitingCount > 0 || (this.#queued >= this.maxQueue && !this.#hasRoom()))) {
      throw new QueueFullError(`the queue of ${this.name} is full (maxQueue ${this.maxQueue})`);
    }
    const { signal, timeout } = options;
    if (signal?.aborted === true) {
      const [future, control] = Future.create<unknown>();
      future.cancel(signal.reason);
      control.settle();
      return future;
    }
    try {
      stage(mode, id, args);
    } catch (error) {
      return failed(error);
    }
    // The task is the future's hooks (its onCancel), which spares a closure per task.
    const t = new Task(this.#owner, mode, id, staged.buf, staged.start, staged.end, staged.beside, options);
    const [future, control] = Future.create<unknown>(t);
    t.future = future;
    t.control = control;
    this.#stats.queued(t);
    let timer: NodeJS.Timeout | undefined;
    if (timeout !== undefined) {
      t.expire = () => {
        if (control.reject(new TimeoutError(`the task timed out after ${String(timeout)} ms`))) {
          this.#abandon(t, CancelKind.Timeout);
        }
      };
      t.expiresAt = performance.now() + timeout;
      timer = setTimeout(t.expire, timeout);
    }
    const onAbort = (): void => {
      future.cancel(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timer !== undefined || signal !== undefined) {
      t.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
    }
    if (this.#unsettled++ === 0) this.#keepAlive.hold(true);
    // After a pump, either nothing waits or no worker can take more; only a result or a worker
    // coming or going changes that (and each pumps). So a task behind others needs no pump.
    const behindOthers = this.#queued > 0 || this.#waitingCount > 0;
    if (this.#waitingCount > 0 || this.#queued >= this.maxQueue) {
      this.#waiting.push(t);
      this.#waitingCount++;
    } else {
      t.state = 'queued';
      this.#queue.push(t);
      this.#queued++;
    }
    if (!behindOthers) this.#pump();
    return future;
  }

  // ---- handing tasks to workers ----------------------------------------------------------------

  /**
   * How many tasks a worker may hold: one while the queue is bounded; else enough for PREFETCH_US
   * of work, and at least two for tasks shorter than LONG_TASK_US, so that a worker never waits
   * for the main thread between two of them. Longer ones are handed out one at a time, so that
   * none waits behind a long task on one worker while another is free.
   */
  #window(): number {
    if (this.maxQueue !== Infinity) return 1;
    const average = this.#averageMicros;
    if (average < 0) return 2;
    if (average >= LONG_TASK_US) return 1;
    return Math.max(2, Math.min(MAX_WINDOW, Math.floor(PREFETCH_US / Math.max(1, average))));
  }

  /** Whether a task could be handed to a worker right now. */
  #hasRoom(): boolean {
    if (this.#workers.length < this.maxWorkers) return true;
    const window = this.#window();
    return this.#workers.some((w) => !w.stopping && w.outstanding < window);
  }

  /** The worker to hand the next task to: the least loaded (awake ones first), spawning if none is idle. */
  #pick(): PoolWorker | undefined {
    const window = this.#window();
    let best: PoolWorker | undefined;
    let idle = false;
    for (const w of this.#workers) {
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
    if (!idle && this.#liveWorkers() < this.maxWorkers) return this.#spawn();
    return best;
  }

  #liveWorkers(): number {
    let n = 0;
    for (const w of this.#workers) if (!w.stopping) n++;
    return n;
  }

  #pump(): void {
    // A pump runs on every submit: no allocation here (`full` and `touched` are marks on the workers).
    for (const w of this.#workers) w.full = false;
    let touched = false;
    for (let progressed = true; progressed;) {
      progressed = false;
      // Waiting submissions enter the queue in order as room appears.
      while (this.#waitingCount > 0 && this.#queued < this.maxQueue) {
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
          this.#settle(t);
          continue;
        }
        if (!taken) {
          w.full = true;
          continue;
        }
        touched = true;
        this.#stats.started(t, w.thread.threadId);
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
    if (this.#readyWaiters.length > 0 && this.#waitingCount === 0 && this.#queued < this.maxQueue) {
      for (const resolve of this.#readyWaiters.splice(0)) resolve();
    }
    for (const w of this.#workers) w.flush();
    if (touched) {
      this.#lastProgress = performance.now();
      this.#schedulePoll();
    }
  }

  #admit(t: Task): void {
    this.#waitingCount--;
    t.state = 'queued';
    this.#queue.push(t);
    this.#queued++;
  }

  #spawn(): PoolWorker {
    const w = new PoolWorker(this.name, this.#threadOptions, awake, this.#events);
    this.#workers.push(w);
    this.#threads++;
    // Counted until the thread is really gone (its tasks may have been settled before, by a
    // blocked caller that saw it end).
    const threadId = w.threadId;
    threadEvent(threadStart, { kind: 'pool-worker', name: this.name, threadId });
    w.thread.once('exit', (exitCode: number) => {
      threadEvent(threadStop, { kind: 'pool-worker', name: this.name, threadId, exitCode });
      this.#threads--;
      this.#maybeClose();
    });
    return w;
  }

  // ---- results ---------------------------------------------------------------------------------

  #schedulePoll(): void {
    if (this.#pollScheduled) return;
    this.#pollScheduled = true;
    setImmediate(this.#poll);
  }

  /**
   * Takes the results there are and refills the rings. While tasks are out it looks again on the
   * next turn of the loop (never blocking it), for a short while after the last progress and only
   * if there is a core to spare; then it sleeps, and the first worker with a result wakes it.
   */
  readonly #poll = (): void => {
    this.#pollScheduled = false;
    let got = 0;
    for (const w of this.#workers) {
      if (w.outstanding === 0) continue;
      w.mainWaits = MainWaits.No;
      got += w.collect();
    }
    const now = performance.now();
    if (got > 0) this.#lastProgress = now;
    this.#pump();
    let spin = -1;
    for (const w of this.#workers) if (w.outstanding > 0) spin = Math.max(spin, w.spinMs);
    if (spin < 0) return;
    // Spinning for a task that runs longer than the spin would be wasted.
    const short = this.#averageMicros < spin * 1000;
    if (spin > 0 && short && Atomics.load(awakeWords, AWAKE) < CORES && now - this.#lastProgress < spin) {
      this.#schedulePoll();
      return;
    }
    let late = 0;
    for (const w of this.#workers) {
      if (w.outstanding === 0) continue;
      w.mainWaits = MainWaits.Loop;
      late += w.collect();
    }
    if (late > 0) {
      this.#lastProgress = performance.now();
      this.#pump();
      this.#schedulePoll();
    }
    // After the workers were told to wake this thread: a worker that went idle on a task tells it so.
    this.#updateKeepAlive();
  };

  #onResult(task: Task, status: Status, micros: number, r: Reader): void {
    if (status !== Status.Skipped) {
      this.#stats.ran(task, micros);
      this.#averageMicros = this.#averageMicros < 0 ? micros : this.#averageMicros * 0.9 + micros * 0.1;
    }
    if (!task.abandoned) {
      if (status === Status.Ok) task.control.resolve(decodeValue(r));
      else if (status === Status.Thrown) task.control.reject(decodeValue(r));
    }
    this.#settle(task);
    if (this.#idleTimer === undefined && this.idleTimeout !== Infinity && this.#workers.length > this.minWorkers) {
      this.#armIdleTimer();
    }
  }

  #settle(task: Task): void {
    this.#stats.done(task);
    task.state = 'done';
    task.cleanup?.();
    task.cleanup = undefined;
    task.control.settle();
    if (--this.#unsettled === 0) {
      this.#keepAlive.hold(false);
      this.#maybeClose();
    } else if (this.#stuck) {
      this.#updateKeepAlive();
    }
  }

  /** Some busy worker was stuck at the last look (see #updateKeepAlive). */
  #stuck = false;
  /** Listening for this thread's 'beforeExit' (see #onIdle). */
  #watchingIdle = false;

  /**
   * While tasks are unsettled the pool keeps the process alive, unless every busy worker is stuck
   * on a task that only this thread could still settle, by cancelling it (PoolWorker.stuckOn):
   * then it waits for this thread to have nothing left to do either, as a LoopThread's caller does.
   */
  #updateKeepAlive(): void {
    let stuck = false;
    let going = false;
    for (const w of this.#workers) {
      if (w.outstanding === 0) continue;
      if (w.stuckOn() !== 0) stuck = true;
      else going = true;
    }
    this.#stuck = stuck;
    this.#keepAlive.hold(this.#unsettled > 0 && (going || !stuck));
    if (stuck && !this.#watchingIdle) {
      this.#watchingIdle = true;
      process.once('beforeExit', this.#onIdle);
    }
  }

  /** This thread has nothing left to do: it will cancel nothing, so stuck tasks can never settle. */
  readonly #onIdle = (): void => {
    this.#watchingIdle = false;
    for (const w of this.#workers) {
      const seq = w.stuckOn();
      if (seq !== 0) w.drop(seq);
    }
    // Alive again until the workers' answers are in.
    this.#updateKeepAlive();
  };

  // ---- cancelling ------------------------------------------------------------------------------

  /** What tasks ask of their pool (their futures' hooks call these). */
  readonly #owner = {
    abandon: (task: Task, kind: CancelKind): void => {
      this.#abandon(task, kind);
    },
    block: (task: Task, isDone: () => boolean, deadline: number): void => {
      this.#block(task, isDone, deadline);
    },
  };

  /**
   * resultSync of a pool future: this thread blocks, and meanwhile does what its event loop would
   * have done (take results, hand out tasks); workers ring the BELL for it instead of posting a
   * message. A worker that dies meanwhile is noticed through its last words or its native handle,
   * since the 'exit' event cannot arrive while this thread is blocked.
   */
  #block(task: Task, isDone: () => boolean, deadline: number): void {
    try {
      for (;;) {
        const seen = Atomics.load(awakeWords, BELL);
        for (const w of this.#workers) {
          w.mainWaits = MainWaits.Blocked;
          w.collect();
        }
        this.#pump();
        // Its own timeout: the timer cannot fire while this thread is blocked.
        if (performance.now() >= task.expiresAt) task.expire?.();
        if (isDone()) return;
        this.#dropWhatBlocks(task);
        const now = performance.now();
        const left = deadline - now;
        if (left <= 0) return;
        const asleepAt = sharedNow();
        sleepOn(awakeWords, BELL, seen, Math.min(left, task.expiresAt - now, BLOCK_SLICE_MS));
        // Woken by a worker's BELL: a wake-up sample for the spin policy.
        let rang = 0;
        for (const w of this.#workers) rang = Math.max(rang, w.mainWokenAt);
        if (rang >= asleepAt) observeWake(sharedNow() - rang);
        for (const w of [...this.#workers]) w.checkAlive();
      }
    } finally {
      for (const w of this.#workers) w.mainWaits = MainWaits.No;
      this.#schedulePoll();
    }
  }

  /**
   * Blocked, this thread can cancel nothing: a stuck task (see PoolWorker.stuckOn) that `task` waits
   * for can never settle. That is the one its worker is stuck on (`task` itself or one ahead of
   * it); for a task still waiting for a worker, every stuck one if no other worker will make room.
   */
  #dropWhatBlocks(task: Task): void {
    if (task.state === 'handed') {
      const w = task.owner as PoolWorker;
      const seq = w.stuckOn();
      if (seq !== 0) w.drop(seq);
    } else if (task.state === 'queued' || task.state === 'waiting') {
      if (this.#workers.some((w) => w.outstanding > 0 && w.stuckOn() === 0)) return;
      for (const w of this.#workers) {
        const seq = w.stuckOn();
        if (seq !== 0) w.drop(seq);
      }
    }
  }

  /** The task's future is done (cancelled or timed out): drop it if it has not started, else stop it. */
  readonly #abandon = (task: Task, kind: CancelKind): void => {
    if (task.abandoned) return;
    task.abandoned = true;
    switch (task.state) {
      case 'waiting':
        this.#waitingCount--;
        this.#settle(task);
        this.#pump();
        return;
      case 'queued':
        this.#queued--;
        this.#settle(task);
        this.#pump();
        return;
      case 'handed': {
        const worker = task.owner as PoolWorker;
        worker.cancel(task, kind);
        // A stuck worker is no longer: the cancel may settle its task.
        if (this.#stuck) this.#updateKeepAlive();
        const grace = task.options.terminateAfter;
        if (grace !== undefined && grace !== Infinity) {
          let timer: NodeJS.Timeout | undefined;
          const check = (): void => {
            if (task.state !== 'handed' || task.owner !== worker || worker.exited) return;
            // Only the task itself is stopped: not yet begun, it will be skipped when its turn comes
            // (looked at again after another grace period, in case it began meanwhile).
            if (worker.started === task.seq) worker.kill();
            else timer = setTimeout(check, grace);
          };
          timer = setTimeout(check, grace);
          const previous = task.cleanup;
          task.cleanup = () => {
            previous?.();
            clearTimeout(timer);
          };
        }
        return;
      }
      case 'done':
        return;
    }
  };

  #cancelUnstarted(reason: unknown = new CancelledError('shutdown(cancelFutures)')): void {
    for (const t of [...this.#waiting, ...this.#queue]) {
      if (t.state === 'waiting' || t.state === 'queued') t.future.cancel(reason);
    }
    // Handed to a worker but not begun: flagged, so the worker skips them.
    for (const w of this.#workers) {
      for (const t of w.unstarted()) t.future.cancel(reason);
    }
  }

  /** The grace period is over: nothing more starts, running tasks are cancelled and their workers terminated. */
  #stopAll(reason: Error): void {
    this.#cancelUnstarted(reason);
    for (const w of this.#workers) {
      const running = w.running();
      if (running === undefined) continue;
      running.future.cancel(reason);
      w.kill();
    }
    this.#maybeClose();
  }

  // ---- workers coming and going ----------------------------------------------------------------

  #onExit(worker: PoolWorker, started: Task[], unstarted: Task[], ending: Ending): void {
    const at = this.#workers.indexOf(worker);
    if (at >= 0) this.#workers.splice(at, 1);
    const error = new WorkerCrashedError(`a worker of ${this.name} stopped unexpectedly${ending.why}`, {
      cause: ending.cause,
      exitCode: ending.exitCode,
    });
    if (!worker.stopping)
      threadEvent(threadCrash, { kind: 'pool-worker', name: this.name, threadId: worker.threadId, error });
    // The tasks it was running went down with it; a task it was told to stop is only settled.
    for (const t of started) {
      if (!t.abandoned) t.control.reject(error);
      this.#settle(t);
    }
    // Tasks it never began go back to the front of the queue, in their order.
    for (let i = unstarted.length - 1; i >= 0; i--) {
      const t = unstarted[i] as Task;
      if (t.abandoned) {
        this.#settle(t);
        continue;
      }
      t.state = 'queued';
      t.owner = undefined;
      this.#queue.unshift(t);
      this.#queued++;
    }
    if (!worker.ready && !worker.stopping) {
      // It died before running anything: respawning for ever would spin. After a few in a row, the
      // queue fails with the error instead.
      if (++this.#bootFailures >= MAX_BOOT_FAILURES) this.#failQueue(error);
    } else {
      this.#bootFailures = 0;
    }
    const booting = this.#bootFailures < MAX_BOOT_FAILURES;
    if (this.#state === 'open' && booting) while (this.#liveWorkers() < this.minWorkers) this.#spawn();
    this.#pump();
    this.#maybeClose();
  }

  #failQueue(error: Error): void {
    for (const t of [...this.#waiting, ...this.#queue]) {
      if (t.state !== 'waiting' && t.state !== 'queued') continue;
      if (t.state === 'waiting') this.#waitingCount--;
      else this.#queued--;
      t.control.reject(error);
      this.#settle(t);
    }
  }

  #armIdleTimer(): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const now = performance.now();
      for (const w of [...this.#workers]) {
        if (this.#liveWorkers() <= this.minWorkers) break;
        if (!w.stopping && w.outstanding === 0 && now - w.idleSince >= this.idleTimeout) {
          this.#workers.splice(this.#workers.indexOf(w), 1);
          w.retire();
        }
      }
      if (this.#liveWorkers() > this.minWorkers) this.#armIdleTimer();
    }, this.idleTimeout);
    this.#idleTimer.unref();
  }

  /** After shutdown, once nothing is left to run: the workers leave, then the pool is closed. */
  #maybeClose(): void {
    if (this.#state === 'open' || this.#unsettled > 0) return;
    for (const w of this.#workers.splice(0)) w.retire();
    clearTimeout(this.#idleTimer);
    if (this.#threads === 0 && this.#state !== 'closed') {
      this.#state = 'closed';
      // Nothing will make room any more; a submit after ready() now fails with ClosedError.
      for (const resolve of this.#readyWaiters.splice(0)) resolve();
      this.#keepAlive.dispose();
      process.removeListener('beforeExit', this.#onIdle);
      this.#markClosed();
    }
  }
}

function failed<T>(error: unknown): Future<T> {
  const [future, control] = Future.create<T>();
  control.reject(error);
  control.settle();
  return future;
}
