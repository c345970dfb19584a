/**
 * LoopThread: an event loop in a worker thread of its own, which synchronous code calls into and
 * blocks on. The worker hosts a portal (src/portal) and loads modules; this side owns its life.
 */
import { MessageChannel, type Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { decodeStandalone } from './codec/standalone.js';
import { ClosedError, WorkerCrashedError } from './errors.js';
import { outOfMemory, stoppedUnexpectedly } from './stopped.js';
import { graceEnd, graceOf, type CloseOptions } from './lifecycle.js';
import type { Future } from './future.js';
import { CLOSE_ANSWER_GRACE_MS, DEFAULT_CLOSE_TIMEOUT_MS } from './protocol/close.js';
import { EndWord, HostState, Line, STATE, THREAD_RAN } from './protocol/line.js';
import { nativeHandle } from './shm/native-worker.js';
import { ThreadLiveness } from './shm/thread-liveness.js';
import { waitTable } from './shm/wait-for.js';
import { sleepOn } from './shm/wait.js';
import { atThreadEnd } from './shm/thread-end.js';
import { PortalClient, type CallOptions } from './portal/client.js';
import type { Asyncified, AsyncValue, Syncified, SyncValue } from './portal/proxy.js';
import type { ConnectRequest } from './portal/host.js';
import type { LoopThreadData } from './loop-thread-main.js';
import type { DeathNote } from './loop-thread-boot.js';
import { LoopThreadCaller, type Callable, type CallerOptions } from './loop-thread-caller.js';
import { connectTo, type LoopThreadConnection, type LoopThreadHandle } from './loop-thread-connection.js';
import { warnBlind, type LoopThreadOptions } from './loop-thread-start.js';
import { defaultTsRunner, startThread, withTsRunner } from './modules.js';
import { startWorker, workerEntry } from './worker-entry.js';
import type { CallStats } from './observe/call-stats.js';
import { threadCrash, threadEvent, threadStart, threadStop } from './observe/events.js';

export type { CallOptions } from './portal/client.js';
export type { CloseOptions } from './lifecycle.js';

let count = 0;
/** How long a blocked caller sleeps between liveness checks (deaths that leave words wake it at once). */
const SLICE_MS = 20;
/** Asking the native handle takes a lock: a blocked caller asks at most this often. */
const NATIVE_CHECK_MS = 10;

/**
 * An event loop on a thread of its own, which synchronous code calls and blocks on (`runSync`,
 * `importSync`) or awaits (`run`, `import`). A call that cannot be answered fails with a typed
 * error, never hangs: a crash, a timeout, a deadlock, a promise that can never settle.
 *
 * @example
 * ```ts
 * using loop = new LoopThread({ timeout: 10_000 });
 * const { format } = loop.importSync<typeof import('prettier')>('prettier');
 * const output = format(source, { parser: 'babel' }); // blocks until formatted
 * const sum = loop.runSync(async (a: number, b: number) => a + b, 1, 2); // 3
 * const later = loop.run(() => fetch(url).then((r) => r.status)); // a Future
 * ```
 */
export class LoopThread implements Disposable, AsyncDisposable {
  /** Shown in errors and as the worker's name: `options.name`, or "LoopThread #n". */
  readonly name: string;
  /** Settles once the loop thread has stopped, for whatever reason (close, crash, exit). */
  readonly closed: Promise<void>;
  readonly #worker: Worker;
  readonly #line: Line;
  /** Told when the thread ends, for the connections made from handles (it holds none of their lines). */
  readonly #end = new EndWord();
  readonly #calls: MessagePort;
  readonly #notes: MessagePort;
  readonly #client: PortalClient;
  readonly #caller: LoopThreadCaller;
  readonly #defaults: CallOptions;
  readonly #startedAt = performance.now();
  readonly #startupTimeout: number;
  #state: 'running' | 'closing' | 'closed' = 'running';
  #exitError: Error | undefined;
  #crashCause: unknown;
  #exitCode: number | undefined;
  #doneCallbacks: ((loop: LoopThread) => void)[] = [];
  #markClosed!: () => void;
  #liveness!: ThreadLiveness;
  #nextNativeCheck = 0;
  /** The worker's thread id, kept for events after its exit (when Worker.threadId is -1). */
  #tid = -1;

  /**
   * Starts the loop thread. Calls may be made at once: they wait for it to start.
   *
   * @param options - Name, default call timeout, the worker's options.
   * @throws TypeError for an unknown `tsRunner`; Node's error for an `execArgv` a worker refuses.
   */
  constructor(options: LoopThreadOptions = {}) {
    const files = {
      main: workerEntry('loop-thread-main.bundle.js', options.workerDir),
      boot: workerEntry('loop-thread-boot.js', options.workerDir),
    };
    this.name = options.name ?? `LoopThread #${String(++count)}`;
    this.#defaults = { timeout: options.timeout };
    this.#startupTimeout = options.startupTimeout ?? 30_000;
    this.closed = new Promise((resolve) => {
      this.#markClosed = resolve;
    });
    this.#line = Line.create(options.bufferSize);
    const calls = new MessageChannel();
    const notes = new MessageChannel();
    const data: LoopThreadData = {
      line: this.#line.sab,
      port: calls.port2,
      notes: notes.port2,
      name: this.name,
      waits: waitTable(),
      ranIndex: THREAD_RAN,
    };
    const argv = withTsRunner(options.tsRunner ?? defaultTsRunner(), options.execArgv);
    this.#worker = startThread(argv, (execArgv) =>
      startWorker(files, execArgv, {
        name: this.name,
        workerData: data,
        transferList: [calls.port2, notes.port2],
        resourceLimits: options.resourceLimits,
        env: options.env,
        stdout: false,
        stderr: false,
      }),
    );
    this.#notes = notes.port1;
    this.#calls = calls.port1;
    this.#notes.unref();
    this.#worker.unref();
    // Async callers never reach the blocking probe: the startup deadline holds for them too.
    const startup = setTimeout(() => {
      if (this.#line.state === HostState.Starting && this.#state !== 'closed') {
        this.#crash(new Error(`it did not start within ${String(this.#startupTimeout)} ms`));
      }
    }, this.#startupTimeout);
    startup.unref();
    void this.closed.then(() => {
      clearTimeout(startup);
    });
    this.#liveness = new ThreadLiveness(nativeHandle(this.#worker), () => this.#line.threadRanAs);
    if (!this.#liveness.canProbe) warnBlind();
    this.#client = new PortalClient(this.#line, calls.port1, `LoopThread "${this.name}"`, this.#worker.threadId, {
      probe: () => this.#probe(),
      onNeverSettled: () => {
        // The thread's calls can never settle and nothing else runs there: close, as for a blocked caller.
        this.closeSync({ grace: 0 });
      },
      onBusy: (busy) => {
        if (busy) this.#worker.ref();
        else this.#worker.unref();
      },
      // The worker's exit event tells more (its code, its error) and follows at once.
      onPortClosed: () => undefined,
    });
    this.#client.refOptions = this.#defaults;
    this.#caller = new LoopThreadCaller(this.#client, this.#defaults);
    this.#worker.on('error', (error) => {
      this.#crashCause ??= error;
    });
    this.#worker.on('exit', (code) => {
      this.#exitCode = code;
      this.#onExit(code);
      threadEvent(threadStop, { kind: 'loopthread', name: this.name, threadId: this.#tid, exitCode: code });
    });
    this.#tid = this.#worker.threadId;
    threadEvent(threadStart, { kind: 'loopthread', name: this.name, threadId: this.#tid });
    // Should this (owning) thread end first, Node stops the worker, which then runs no exit hook
    // of its own: its connections on other threads must hear of it from here.
    // (Terminated, or out of memory, this thread runs no code: its connections are then not told.)
    const forget = atThreadEnd(() => {
      this.#end.tell(HostState.Closed);
    });
    void this.closed.then(forget);
  }

  /**
   * A new connection for another thread: send it there (with `[handle.port]` as transfer list)
   * and call `LoopThread.connect(handle)` on that thread.
   *
   * @throws {@link ClosedError} once the LoopThread is closed.
   * @example
   * ```ts
   * const handle = loop.createHandle();
   * new Worker('./worker.js', { workerData: handle, transferList: [handle.port] });
   * // worker.js
   * using loop = LoopThread.connect(workerData as LoopThreadHandle);
   * ```
   */
  createHandle(): LoopThreadHandle {
    if (this.#state !== 'running') throw new ClosedError(`LoopThread "${this.name}" is closed`);
    // The connecting thread makes the connection's line (see LoopThread.connect): until then a
    // handle costs the loop thread one port.
    const channel = new MessageChannel();
    const request: ConnectRequest = { connect: { port: channel.port2 } };
    this.#calls.postMessage(request, [channel.port2]);
    return {
      kind: 'loopthread.handle',
      name: this.name,
      threadId: this.threadId,
      bufferSize: this.#line.request.data.length,
      port: channel.port1,
      waits: waitTable(),
      end: this.#end.sab,
    };
  }

  /**
   * Connects to a LoopThread from the thread that received its handle.
   *
   * @param handle - From `loop.createHandle()`, received by this thread.
   * @param options - `timeout` (ms) and `signal` of every call made through the connection.
   * @throws TypeError if `handle` is not a LoopThread's handle.
   */
  static connect(handle: LoopThreadHandle, options: CallOptions = {}): LoopThreadConnection {
    return connectTo(handle, options);
  }

  /** The worker's thread id. */
  get threadId(): number {
    return this.#worker.threadId;
  }

  /**
   * The calls made through this LoopThread (and its `with()` callers) on this thread so far:
   * counts, their durations' percentiles, and how blocking waits ended (spinning or sleeping).
   */
  stats(): CallStats {
    return this.#client.stats.snapshot();
  }

  /** True once closing has begun (close, closeSync, terminate, or the thread stopped): calls then fail with ClosedError. */
  get isClosed(): boolean {
    return this.#state !== 'running';
  }

  /** Why the loop thread stopped, once it has: undefined after a clean close. */
  get exitError(): Error | undefined {
    return this.#exitError;
  }

  /** The call methods with these options (timeout, signal, exit) for every call made through them. */
  with(options: CallerOptions): LoopThreadCaller {
    return new LoopThreadCaller(this.#client, { ...this.#defaults, ...options });
  }

  /**
   * Runs `fn(...args)` on the loop thread and blocks until it settles: returns its value or throws its error.
   *
   * @param fn - A function from `importSync`/`import`, or an inline function (sent as source: it may
   *   use only its arguments and globals).
   * @param args - Its arguments: data is copied, objects with methods are lent.
   * @throws What `fn` throws (copied from the loop thread); {@link TimeoutError} after the call's
   *   timeout; {@link CancelledError} when its signal aborts; {@link ClosedError} once closed;
   *   {@link WorkerCrashedError} if the thread dies; {@link NeverSettledError} if its promise can
   *   never settle; {@link DeadlockError} if called on the loop thread itself;
   *   {@link DataCloneError} for an argument that cannot cross.
   * @example
   * ```ts
   * const size = loop.runSync(async (path: string) => (await fs.promises.stat(path)).size, file);
   * ```
   */
  runSync<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): SyncValue<Awaited<R>> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    return this.#client.callSync(fn, args, this.#defaults, this.runSync) as SyncValue<Awaited<R>>;
  }

  /**
   * Runs `fn(...args)` on the loop thread without blocking.
   *
   * @param fn - As for `runSync`.
   * @param args - As for `runSync`.
   * @returns A Future that fails as `runSync` throws.
   */
  run<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<AsyncValue<Awaited<R>>> {
    return this.#caller.run(fn, ...args);
  }

  /**
   * Imports a module on the loop thread; its functions block and return their awaited values.
   *
   * @param specifier - An absolute path, a file URL or a package name (resolved from the working directory).
   * @throws The error that loading the module threw (copied from the loop thread); the loopthread
   *   errors of `runSync`.
   */
  importSync<T = Record<string, unknown>>(specifier: string | URL): Syncified<T> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    return this.#client.importSync(specifier, this.#defaults, this.importSync) as Syncified<T>;
  }

  /**
   * Imports a module on the loop thread; its functions return Futures.
   *
   * @param specifier - As for `importSync`.
   */
  import<T = Record<string, unknown>>(specifier: string | URL): Promise<Asyncified<T>> {
    return this.#caller.import<T>(specifier);
  }

  /** See LoopThreadCaller.enterSync. */
  enterSync<A extends unknown[], R extends object>(
    fn: Callable<A, R | Promise<R>>,
    ...args: A
  ): Syncified<R> & Disposable {
    return this.#caller.enterSync(fn, ...args);
  }

  /** See LoopThreadCaller.usingSync. */
  usingSync<A extends unknown[], R extends object>(
    fn: Callable<A, R | Promise<R>>,
    ...args: A
  ): Syncified<R> & Disposable {
    return this.#caller.enterSync(fn, ...args);
  }

  /** See LoopThreadCaller.withSync. */
  withSync<A extends unknown[], R extends object, T>(
    fn: Callable<A, R | Promise<R>>,
    args: A,
    body: (resource: Syncified<R>) => T,
  ): T | undefined {
    return this.#caller.withSync(fn, args, body);
  }

  /** See LoopThreadCaller.enter. */
  enter<A extends unknown[], R extends object>(
    fn: Callable<A, R | Promise<R>>,
    ...args: A
  ): Promise<Asyncified<R> & AsyncDisposable> {
    return this.#caller.enter(fn, ...args);
  }

  /** Runs `callback(this)` once the loop thread has stopped; at once if it already has. */
  addDoneCallback(callback: (loop: LoopThread) => void): void {
    if (this.#state === 'closed' && this.#doneCallbacks.length === 0 && this.#exitSeen) this.#invoke(callback);
    else this.#doneCallbacks.push(callback);
  }

  #exitSeen = false;

  /**
   * Closes and blocks until done: new calls fail with ClosedError, calls in flight see their
   * signals abort and get `grace` ms (default 5000) to finish, then the thread stops (terminated
   * if need be). A signal is only looked at once: already aborted means no grace. Idempotent.
   */
  closeSync(options: CloseOptions = {}): void {
    if (this.#state === 'closed') return;
    const timeout = graceOf(options, DEFAULT_CLOSE_TIMEOUT_MS);
    const deadline = performance.now() + timeout + CLOSE_ANSWER_GRACE_MS;
    this.#state = 'closing';
    if (this.#client.closedError === undefined) this.#client.closeSync(timeout, deadline);
    // Answered, the thread exits at once: wait for that fact (it writes Closed first, then its
    // loop is seen gone). Not answered by the deadline, or unseen, it is terminated.
    const words = this.#line.words;
    const exiting = (): boolean => this.#line.state === HostState.Closed && !this.#liveness.canProbe;
    while (!this.#threadStopped() && !exiting() && performance.now() < deadline) {
      const left = deadline - performance.now();
      sleepOn(words, STATE, Atomics.load(words, STATE), Math.max(0, Math.min(left, NATIVE_CHECK_MS)));
    }
    if (!this.#threadStopped()) void this.#worker.terminate();
    // A connection whose line the thread never served hears it from here (its exit event may come late).
    this.#end.tell(HostState.Closed);
    this.#finish(new ClosedError(`LoopThread "${this.name}" is closed`));
  }

  /**
   * Closes without blocking, as closeSync does; resolves once the thread has stopped. Aborting
   * `signal` ends the grace period at once: the thread is terminated. Idempotent.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#state === 'running') {
      const timeout = graceOf(options, DEFAULT_CLOSE_TIMEOUT_MS);
      this.#state = 'closing';
      const signal = options.signal;
      const aborted = signal?.aborted === true;
      // One bound for the answer and the exit that follows it at once (the 'exit' event).
      const end = graceEnd(aborted ? 0 : timeout + CLOSE_ANSWER_GRACE_MS, signal);
      if (this.#client.closedError === undefined && !aborted) {
        const done = this.#client.closeAsync(timeout);
        this.#worker.ref();
        await Promise.race([
          done.then(
            () => undefined,
            () => undefined,
          ),
          end.ended,
          this.closed,
        ]);
      }
      const stopped = await Promise.race([this.closed.then(() => true), end.ended.then(() => false)]);
      end.cancel();
      if (!stopped) await this.#worker.terminate();
      this.#finish(new ClosedError(`LoopThread "${this.name}" is closed`));
    }
    await this.closed;
  }

  /**
   * Stops the thread at once, without letting calls finish: every waiting caller gets a
   * ClosedError. For a thread stuck in code that ignores its signal; prefer close().
   */
  async terminate(): Promise<void> {
    if (this.#state !== 'closed') {
      this.#state = 'closing';
      this.#line.announce(HostState.Closed);
      this.#end.tell(HostState.Closed);
      this.#finish(new ClosedError(`LoopThread "${this.name}" was terminated`));
    }
    if (!this.#exitSeen) await this.#worker.terminate();
    await this.closed;
  }

  /** closeSync(), for `using`. */
  [Symbol.dispose](): void {
    this.closeSync();
  }

  /** close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- life and death ------------------------------------------------------------------------

  /**
   * Whether the thread has stopped, from facts only: its exit event, or (for a caller whose event
   * loop is blocked) a thread that ran JavaScript (THREAD_RAN, written first thing) and now has no
   * event loop. Before THREAD_RAN a missing loop means "not started yet", however long that takes.
   */
  #threadStopped(): boolean {
    return this.#exitSeen || this.#liveness.stopped();
  }

  /** Between sleep slices of a blocked caller: is the worker still there, or still allowed to start? */
  #probe(): number {
    if (this.#line.state === HostState.Crashed) throw this.#crash(undefined);
    const now = performance.now();
    if (now >= this.#nextNativeCheck) {
      this.#nextNativeCheck = now + NATIVE_CHECK_MS;
      if (this.#threadStopped()) throw this.#crash(undefined);
    }
    if (this.#line.state === HostState.Starting && now - this.#startedAt > this.#startupTimeout) {
      throw this.#crash(new Error(`it did not start within ${String(this.#startupTimeout)} ms`));
    }
    return SLICE_MS;
  }

  /** The error for a thread that died: with its last words (uncaught error, exit code) when it left any. */
  #crash(fallbackCause: unknown): WorkerCrashedError {
    if (this.#exitError instanceof WorkerCrashedError) return this.#exitError;
    let cause = this.#crashCause;
    let exitCode = this.#exitCode;
    let said = false;
    for (let m = receiveMessageOnPort(this.#notes); m !== undefined; m = receiveMessageOnPort(this.#notes)) {
      const note = m.message as DeathNote;
      if (note.error !== undefined) cause ??= decodeStandalone(note.error);
      exitCode ??= note.exitCode;
      said = true;
    }
    cause ??= fallbackCause;
    if (cause === undefined && !said && !this.#exitSeen && this.#threadStopped()) {
      // Stopped without a word and not by us: only the heap limit stops a worker so (terminate()
      // is ours, and a native crash ends the process). The same error and code its exit event gives.
      cause = outOfMemory();
      exitCode ??= 1;
    }
    this.#crashCause = cause;
    const error = stoppedUnexpectedly(`LoopThread "${this.name}"`, cause, exitCode);
    this.#exitError = error;
    this.#finish(error);
    threadEvent(threadCrash, { kind: 'loopthread', name: this.name, threadId: this.#tid, error });
    // A thread that did not start in time, or that is dying, must not linger.
    if (!this.#threadStopped()) void this.#worker.terminate();
    this.#end.tell(HostState.Crashed, exitCode ?? 1);
    if (this.#line.state !== HostState.Crashed) this.#line.announce(HostState.Crashed, exitCode ?? 1);
    return error;
  }

  #onExit(code: number): void {
    this.#exitSeen = true;
    const expected =
      this.#exitError === undefined && (this.#state !== 'running' || this.#line.state === HostState.Closed);
    if (expected) {
      if (this.#line.state !== HostState.Closed) this.#line.announce(HostState.Closed, code);
      this.#end.tell(HostState.Closed, code);
      this.#finish(this.#client.closedError ?? new ClosedError(`LoopThread "${this.name}" is closed`));
    } else {
      this.#crash(undefined);
    }
    this.#markClosed();
    for (const callback of this.#doneCallbacks.splice(0)) this.#invoke(callback);
  }

  #finish(error: Error): void {
    this.#state = 'closed';
    this.#client.fail(error);
    // The thread is ending: hold the process until its exit is seen, so that `await loop.closed`
    // settles rather than the process leaving with that promise pending.
    if (!this.#exitSeen) this.#worker.ref();
  }

  #invoke(callback: (loop: LoopThread) => void): void {
    try {
      callback(this);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }
}
