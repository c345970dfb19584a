/**
 * LoopThread: an event loop in a worker thread of its own, which synchronous code calls into and
 * blocks on. The worker hosts a portal (src/portal) and loads modules; this side owns its life.
 */
import {
  MessageChannel,
  type Worker,
  type SHARE_ENV,
  receiveMessageOnPort,
  type MessagePort,
  type ResourceLimits,
} from 'node:worker_threads';
import { decodeStandalone } from './codec/standalone.js';
import { ClosedError, WorkerCrashedError } from './errors.js';
import { graceEnd, graceOf, type CloseOptions } from './lifecycle.js';
import type { Future } from './future.js';
import { CLOSE_ANSWER_GRACE_MS, DEFAULT_CLOSE_TIMEOUT_MS } from './protocol/close.js';
import { HostState, Line, STATE } from './protocol/line.js';
import { nativeHandle } from './shm/native-worker.js';
import { ThreadLiveness } from './shm/thread-liveness.js';
import { waitTable } from './shm/wait-for.js';
import { atThreadEnd } from './shm/thread-end.js';
import { PortalClient, type CallOptions } from './portal/client.js';
import type { Asyncified, AsyncValue, Syncified, SyncValue } from './portal/proxy.js';
import type { ConnectRequest } from './portal/host.js';
import type { LoopThreadData } from './loop-thread-main.js';
import type { DeathNote } from './loop-thread-boot.js';
import { LoopThreadCaller, type Callable, type CallerOptions } from './loop-thread-caller.js';
import { connectTo, type LoopThreadConnection, type LoopThreadHandle } from './loop-thread-connection.js';
import { startWorker, warnBlind } from './loop-thread-start.js';
import { defaultTsRunner, startThread, withTsRunner, type TsRunner } from './modules.js';

export type { CallOptions } from './portal/client.js';

export interface LoopThreadOptions {
  /** Shown in errors and as the worker's name. Default "LoopThread #n". */
  name?: string;
  /** Default timeout of every call, in milliseconds (none by default). */
  timeout?: number;
  /** Limits of the worker's heap and stack; exceeding them is a WorkerCrashedError, never a hang. */
  resourceLimits?: ResourceLimits;
  /** Node options of the worker (for example `--import` of a loader). */
  execArgv?: string[];
  /** The worker's environment (process.env by default; worker_threads.SHARE_ENV to share it). */
  env?: NodeJS.ProcessEnv | typeof SHARE_ENV;
  /**
   * What loads TypeScript modules where Node does not strip types (before 22.18): `'tsx'`,
   * `'ts-node'`, `'swc'`... (synckit's names), preloaded in the worker. Default: the environment
   * variable LOOPTHREAD_TS_RUNNER, else none.
   */
  tsRunner?: TsRunner | undefined;
  /** Bytes of the shared buffer in each direction; larger messages go by the port (see protocol/bulk.ts). Default 256 KiB. */
  bufferSize?: number;
  /** How long the thread may take to start before calls fail with WorkerCrashedError. Default 30 s. */
  startupTimeout?: number;
}

export type { CloseOptions } from './lifecycle.js';

let count = 0;
/** How long a blocked caller sleeps between liveness checks (deaths that leave words wake it at once). */
const SLICE_MS = 20;
/** Asking the native handle takes a lock: a blocked caller asks at most this often. */
const NATIVE_CHECK_MS = 10;

export class LoopThread implements Disposable, AsyncDisposable {
  readonly name: string;
  /** Settles once the loop thread has stopped, for whatever reason (close, crash, exit). */
  readonly closed: Promise<void>;
  readonly #worker: Worker;
  readonly #line: Line;
  /** Lines of the connections made by handles: told too when the thread dies. */
  readonly #handleLines: Line[] = [];
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

  constructor(options: LoopThreadOptions = {}) {
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
    };
    const argv = withTsRunner(options.tsRunner ?? defaultTsRunner(), options.execArgv);
    this.#worker = startThread(argv, (execArgv) =>
      startWorker(execArgv, {
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
    });
    // Should this (owning) thread end first, Node stops the worker, which then runs no exit hook
    // of its own: its connections on other threads must hear of it from here.
    const tell = (): void => {
      for (const line of this.#handleLines) {
        if (line.state !== HostState.Crashed && line.state !== HostState.Closed) line.announce(HostState.Closed);
      }
    };
    // (Terminated, or out of memory, this thread runs no code: its connections are then not told.)
    const forget = atThreadEnd(tell);
    void this.closed.then(forget);
  }

  /**
   * A new connection for another thread: send it there (with `[handle.port]` as transfer list)
   * and call `LoopThread.connect(handle)` on that thread.
   */
  createHandle(): LoopThreadHandle {
    if (this.#state !== 'running') throw new ClosedError(`LoopThread "${this.name}" is closed`);
    const line = Line.create(this.#line.request.data.length);
    const channel = new MessageChannel();
    const request: ConnectRequest = { connect: { line: line.sab, port: channel.port2 } };
    this.#calls.postMessage(request, [channel.port2]);
    this.#handleLines.push(line);
    return {
      kind: 'loopthread.handle',
      name: this.name,
      threadId: this.threadId,
      line: line.sab,
      port: channel.port1,
      waits: waitTable(),
    };
  }

  /** Connects to a LoopThread from the thread that received its handle. */
  static connect(handle: LoopThreadHandle, options: CallOptions = {}): LoopThreadConnection {
    return connectTo(handle, options);
  }

  /** The worker's thread id. */
  get threadId(): number {
    return this.#worker.threadId;
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

  runSync<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): SyncValue<Awaited<R>> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    return this.#client.callSync(fn, args, this.#defaults, this.runSync) as SyncValue<Awaited<R>>;
  }

  run<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<AsyncValue<Awaited<R>>> {
    return this.#caller.run(fn, ...args);
  }

  importSync<T = Record<string, unknown>>(specifier: string | URL): Syncified<T> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    return this.#client.importSync(specifier, this.#defaults, this.importSync) as Syncified<T>;
  }

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
      Atomics.wait(words, STATE, Atomics.load(words, STATE), Math.max(0, Math.min(left, NATIVE_CHECK_MS)));
    }
    if (!this.#threadStopped()) void this.#worker.terminate();
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
      for (const line of [this.#line, ...this.#handleLines]) line.announce(HostState.Closed);
      this.#finish(new ClosedError(`LoopThread "${this.name}" was terminated`));
    }
    if (!this.#exitSeen) await this.#worker.terminate();
    await this.closed;
  }

  [Symbol.dispose](): void {
    this.closeSync();
  }

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
      cause = Object.assign(new Error('Worker terminated due to reaching memory limit: JS heap out of memory'), {
        code: 'ERR_WORKER_OUT_OF_MEMORY',
      });
      exitCode ??= 1;
    }
    this.#crashCause = cause;
    const how =
      cause instanceof Error
        ? `: ${cause.name}: ${cause.message}`
        : exitCode !== undefined
          ? ` (process.exit(${String(exitCode)}))`
          : ' (terminated, or out of memory)';
    const error = new WorkerCrashedError(`LoopThread "${this.name}" stopped unexpectedly${how}`, { cause, exitCode });
    this.#exitError = error;
    this.#finish(error);
    // A thread that did not start in time, or that is dying, must not linger.
    if (!this.#threadStopped()) void this.#worker.terminate();
    for (const line of this.#handleLines) line.announce(HostState.Crashed, exitCode ?? 1);
    if (this.#line.state !== HostState.Crashed) this.#line.announce(HostState.Crashed, exitCode ?? 1);
    return error;
  }

  #onExit(code: number): void {
    this.#exitSeen = true;
    const expected =
      this.#exitError === undefined && (this.#state !== 'running' || this.#line.state === HostState.Closed);
    if (expected) {
      for (const line of [this.#line, ...this.#handleLines]) {
        if (line.state !== HostState.Closed) line.announce(HostState.Closed, code);
      }
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
