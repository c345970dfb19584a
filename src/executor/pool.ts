/**
 * ThreadPoolExecutor: Python's concurrent.futures.ThreadPoolExecutor over worker threads. Tasks
 * wait in one FIFO queue and are handed to workers through shared-memory rings, a few at a time
 * (more when tasks are short, so that a burst of tiny tasks costs no message each); results come
 * back the same way. Neither side sends a message unless the other said it sleeps.
 * Scheduling is in dispatch.ts, the blocking wait of resultSync in block.ts, the never-settled
 * watch in stuck-watch.ts, the submit methods in caller.ts, the options in options.ts.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { defaultTsRunner, withTsRunner } from '../modules.js';
import { decodeValue } from '../codec/decode.js';
import type { Reader } from '../codec/writer.js';
import { CancelKind, Status } from '../call/run.js';
import { ClosedError, QueueFullError } from '../errors.js';
import { stoppedUnexpectedly } from '../stopped.js';
import { Future } from '../future.js';
import { graceEnd, graceOf, type CloseOptions } from '../lifecycle.js';
import { blockOn } from './block.js';
import { ExecutorCaller, type Callable } from './caller.js';
import { Dispatch } from './dispatch.js';
import { AWAKE, MainWaits } from './layout.js';
import { stage, staged } from './staging.js';
import { StuckWatch } from './stuck-watch.js';
import { targetOf } from './targets.js';
import { Task, type TaskOptions } from './task-queue.js';
import {
  asCompleted,
  wait,
  type AsCompletedOptions,
  type Completable,
  type Completed,
  type WaitResult,
  type FuturesWaitOptions,
} from './wait.js';
import { Mode } from './wire.js';
import type { ExecutorOptions, ShutdownOptions } from './options.js';
import { PoolWorker, type Ending, type ThreadOptions } from './worker.js';
import { workerEntry } from '../worker-entry.js';
import { threadCrash, threadEvent, threadStart, threadStop } from '../observe/events.js';
import { PoolCounter, type PoolStats } from '../observe/pool-stats.js';

export type { TaskOptions } from './task-queue.js';

const CORES = availableParallelism();
/** Workers that die before their first task, in a row, before the pool gives up on the queue. */
const MAX_BOOT_FAILURES = 3;

/** Two words for the whole process: how many pool workers are awake, and the BELL (see layout.ts). */
const awake = new SharedArrayBuffer(8);
const awakeWords = new Int32Array(awake);

let count = 0;

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
  /** Tasks not yet settled: while there are any, the pool keeps the process alive. */
  #unsettled = 0;
  #state: 'open' | 'shutdown' | 'closed' = 'open';
  readonly #closed: Promise<void>;
  #markClosed!: () => void;
  #pollScheduled = false;
  #lastProgress = 0;
  #bootFailures = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #dispatch: Dispatch;
  readonly #watch = new StuckWatch(this.#workers, () => this.#unsettled);
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
      main: workerEntry('executor/worker-main.bundle.js', options.workerDir),
      boot: workerEntry('executor/worker-boot.js', options.workerDir),
      resourceLimits: options.resourceLimits,
      argv: withTsRunner(options.tsRunner ?? defaultTsRunner(), options.execArgv),
      env: options.env,
      workerData: options.workerData,
    };
    this.#dispatch = new Dispatch({
      maxWorkers: this.maxWorkers,
      maxQueue: this.maxQueue,
      workers: this.#workers,
      spawn: () => this.#spawn(),
      started: (task, worker) => {
        this.#stats.started(task, worker.thread.threadId);
      },
      settle: (task) => {
        this.#settle(task);
      },
      handed: () => {
        this.#lastProgress = performance.now();
        this.#schedulePoll();
      },
    });
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
    return this.#dispatch.queued;
  }

  /** The pool's tasks so far: counts, the queue and the running, wait and run time percentiles. */
  stats(): PoolStats {
    const queued = this.#dispatch.queued + this.#dispatch.waiting;
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
    return this.#dispatch.ready();
  }

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
    if (cancelFutures) this.#dispatch.cancelUnstarted();
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
    if (options.nowait === true && this.#dispatch.full) {
      throw new QueueFullError(`the queue of ${this.name} is full (maxQueue ${this.maxQueue})`);
    }
    const signal = options.signal;
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
    t.arm();
    if (this.#unsettled++ === 0) this.#watch.hold(true);
    this.#dispatch.add(t);
    return future;
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
    this.#dispatch.pump();
    let spin = -1;
    for (const w of this.#workers) if (w.outstanding > 0) spin = Math.max(spin, w.spinMs);
    if (spin < 0) return;
    // Spinning for a task that runs longer than the spin would be wasted.
    const short = this.#dispatch.averageMicros < spin * 1000;
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
      this.#dispatch.pump();
      this.#schedulePoll();
    }
    // After the workers were told to wake this thread: a worker that went idle on a task tells it so.
    this.#watch.update();
  };

  #onResult(task: Task, status: Status, micros: number, r: Reader): void {
    if (status !== Status.Skipped) {
      this.#stats.ran(task, micros);
      this.#dispatch.observe(micros);
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
      this.#watch.hold(false);
      this.#maybeClose();
    } else if (this.#watch.stuck) {
      this.#watch.update();
    }
  }

  // ---- cancelling ------------------------------------------------------------------------------

  /** What tasks ask of their pool (their futures' hooks call these). */
  readonly #owner = {
    abandon: (task: Task, kind: CancelKind): void => {
      this.#abandon(task, kind);
    },
    block: (task: Task, isDone: () => boolean, deadline: number): void => {
      this.#block(task, isDone, deadline);
    },
    // A worker does not wake this thread to say it started a task: the state is read when asked for.
    poll: (task: Task): void => {
      if (task.state === 'handed') (task.owner as PoolWorker).markStarted();
    },
  };

  /** resultSync of one of this pool's futures (see block.ts). */
  #block(task: Task, isDone: () => boolean, deadline: number): void {
    try {
      blockOn(this.#blocking, awakeWords, task, isDone, deadline);
    } finally {
      this.#schedulePoll();
    }
  }

  readonly #blocking = {
    workers: this.#workers,
    pump: (): void => {
      this.#dispatch.pump();
    },
  };

  /** The task's future is done (cancelled or timed out): drop it if it has not started, else stop it. */
  readonly #abandon = (task: Task, kind: CancelKind): void => {
    if (task.abandoned) return;
    task.abandoned = true;
    switch (task.state) {
      case 'waiting':
      case 'queued':
        this.#dispatch.remove(task);
        this.#settle(task);
        this.#dispatch.pump();
        return;
      case 'handed': {
        const worker = task.owner as PoolWorker;
        worker.cancel(task, kind);
        // A stuck worker is no longer: the cancel may settle its task.
        if (this.#watch.stuck) this.#watch.update();
        const grace = task.options.terminateAfter;
        if (grace !== undefined && grace !== Infinity) worker.killAfter(task, grace);
        return;
      }
      case 'done':
        return;
    }
  };

  /** The grace period is over: nothing more starts, running tasks are cancelled and their workers terminated. */
  #stopAll(reason: Error): void {
    this.#dispatch.cancelUnstarted(reason);
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
    const error = stoppedUnexpectedly(`a worker of ${this.name}`, ending.cause, ending.exitCode, ending.why);
    if (!worker.stopping)
      threadEvent(threadCrash, { kind: 'pool-worker', name: this.name, threadId: worker.threadId, error });
    // The tasks it was running went down with it; a task it was told to stop is only settled.
    for (const t of started) {
      if (!t.abandoned) t.control.reject(error);
      this.#settle(t);
    }
    this.#dispatch.requeue(unstarted);
    if (!worker.ready && !worker.stopping) {
      // It died before running anything: respawning for ever would spin. After a few in a row, the
      // queue fails with the error instead.
      if (++this.#bootFailures >= MAX_BOOT_FAILURES) this.#dispatch.fail(error);
    } else {
      this.#bootFailures = 0;
    }
    const booting = this.#bootFailures < MAX_BOOT_FAILURES;
    if (this.#state === 'open' && booting) while (this.#dispatch.liveWorkers() < this.minWorkers) this.#spawn();
    this.#dispatch.pump();
    this.#maybeClose();
  }

  #armIdleTimer(): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const now = performance.now();
      for (const w of [...this.#workers]) {
        if (this.#dispatch.liveWorkers() <= this.minWorkers) break;
        if (!w.stopping && w.outstanding === 0 && now - w.idleSince >= this.idleTimeout) {
          this.#workers.splice(this.#workers.indexOf(w), 1);
          w.retire();
        }
      }
      if (this.#dispatch.liveWorkers() > this.minWorkers) this.#armIdleTimer();
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
      this.#dispatch.releaseReady();
      this.#watch.dispose();
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
