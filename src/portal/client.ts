/**
 * The calling side of a connection: blocking calls through the shared-memory mailboxes, async
 * calls through the MessagePort, both answered by call id. Every wait checks that the serving
 * side is still alive, so no caller blocks forever.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { receiveMessageOnPort, threadId, type MessagePort } from 'node:worker_threads';
import { Writer } from '../codec/writer.js';
import {
  CancelledError,
  ClosedError,
  DeadlockError,
  NeverSettledError,
  TimeoutError,
  WorkerCrashedError,
} from '../errors.js';
import { Future, type FutureControl } from '../future.js';
import { ASYNC_SEQ, HostState, STATE, type Line } from '../protocol/line.js';
import { BulkInbox, isBulk, sendBulk, type BulkPacket } from '../protocol/bulk.js';
import { now } from '../protocol/mailbox.js';
import { changed, waitForChange, Waited } from '../shm/wait.js';
import { observeWake, SpinPolicy } from '../shm/spin-policy.js';
import { beginWait } from '../shm/wait-for.js';
import type { ExportShape } from './exports.js';
import {
  Kind,
  portWriter,
  releaseWriter,
  WAKE,
  packet,
  readMessage,
  readPacket,
  writeCall,
  writeCancel,
  writeClose,
  writeImport,
  type CancelReason,
  type DiedNotice,
  type PortPacket,
  type Reply,
  type Request,
  type Target,
  writeReply,
  writeRelease,
} from './messages.js';
import { buildProxy, stubInfo } from './proxy.js';
import { Lender, performRefOp } from './lender.js';
import { Remotes, type Peer } from './remote.js';
import type { Revive } from '../codec/decode.js';

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds before the call fails with TimeoutError and its signal on the other side aborts. */
  timeout?: number | undefined;
  /** Aborting it cancels the call (CancelledError here, its signal aborted there). */
  signal?: AbortSignal | undefined;
}

export interface ClientHooks {
  /**
   * Throws when the serving thread is known to be gone; returns how long a blocked caller may
   * sleep before asking again (checked between sleep slices).
   */
  probe?: () => number;
  /** Async work started (true) or all of it ended (false): the owner keeps the process alive meanwhile. */
  onBusy?: (busy: boolean) => void;
  /** Pending async calls were just rejected with NeverSettledError. */
  onNeverSettled?: () => void;
  /**
   * The port closed from the other end: the serving thread closed the connection or is gone.
   * Without this hook the client fails its calls with what the line says; an owner that knows
   * more (the worker's exit event) decides instead.
   */
  onPortClosed?: () => void;
}

interface PendingCall {
  control: FutureControl<unknown>;
  cleanup: () => void;
}

type Write = (w: Writer, id: number) => void;

/** Lines connected on this thread: a handle is one connection, and two clients on one line would mix their replies. */
const claimed = new WeakSet<SharedArrayBuffer>();

/** How long a blocked caller sleeps between checks that the serving thread is still there. */
const DEFAULT_SLICE_MS = 20;

const sendTo = (name: string): string => `to the thread of ${name}`;

type CallMessage = Extract<Request, { kind: Kind.Call }>;

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null &&
  (typeof v === 'object' || typeof v === 'function') &&
  typeof (v as { then?: unknown }).then === 'function';

export class PortalClient implements Peer {
  private nextId = 0;
  private seenReply: number;
  private readonly bulk = new BulkInbox();
  private readonly spin = new SpinPolicy();
  private readonly pending = new Map<number, PendingCall>();
  private readonly sourceIds = new Map<string, number>();
  /** Which inline sources each channel has already sent (0: blocking, 1: port). */
  private readonly sentSources: [Set<number>, Set<number>] = [new Set(), new Set()];
  private failure: Error | undefined;
  /** The host said its loop is idle with our async calls pending; cleared by our next request. */
  private hostIdle = false;
  /** The id of the last request sent (an idle notice from before the host read it is stale). */
  private lastSent = 0;
  private exitWatch = false;
  /** What this thread lent the other side (callbacks, objects passed by reference). */
  private readonly lender = new Lender();
  private readonly remotes: Remotes = new Remotes(this, this.lender);
  private readonly reviveSync: Revive = (d) => this.remotes.revive(d, 'sync', this.lender);
  private readonly reviveAsync: Revive = (d) => this.remotes.revive(d, 'async', this.lender);
  /** Ids of the blocking calls this thread is in, innermost last (a callback may call again). */
  private readonly active: number[] = [];
  /** Replies to outer blocking calls that arrived while an inner one waited. */
  private readonly early = new Map<number, Reply>();
  /** Pairs (id, count) of references dropped here, not yet told to the other side. */
  private released: number[] = [];
  /** The serving thread's last words, once they came. */
  private died: DiedNotice | undefined;
  /** Reading a closed port crashes some Node versions: once closed, it is not read again. */
  private portClosed = false;

  constructor(
    private readonly line: Line,
    private readonly port: MessagePort,
    readonly name: string,
    private readonly hostThreadId: number,
    private readonly hooks: ClientHooks = {},
  ) {
    if (claimed.has(line.sab)) {
      throw new TypeError('this handle is already connected: make one handle per thread (createHandle())');
    }
    claimed.add(line.sab);
    this.seenReply = line.reply.seq();
    port.on('message', (p: PortPacket | BulkPacket) => {
      this.onPortMessage(p);
    });
    // The serving side closed this connection or its thread is gone: nothing will answer now.
    port.on('close', () => {
      this.portClosed = true;
      if (this.hooks.onPortClosed !== undefined) this.hooks.onPortClosed();
      else this.fail(this.goneError());
    });
    port.unref();
  }

  /** Why the serving side is gone, from what it left: its state, exit code and last words. */
  private goneError(): Error {
    const state = this.line.state;
    if (state === HostState.Closed) return new ClosedError(`${this.name} is closed`);
    if (state !== HostState.Crashed) {
      return new WorkerCrashedError(
        `${this.name} stopped unexpectedly: its thread ended without a word (terminated, or out of memory)`,
      );
    }
    if (this.died === undefined) this.pump();
    const exitCode = this.died?.exitCode ?? this.line.exitCode;
    const cause = this.died?.error;
    const how = cause instanceof Error ? `: ${cause.name}: ${cause.message}` : ` (exit code ${String(exitCode)})`;
    return new WorkerCrashedError(`${this.name} stopped unexpectedly${how}`, { cause, exitCode });
  }

  /** Why calls fail now, if they do. */
  get closedError(): Error | undefined {
    return this.failure;
  }

  /** From now on every call fails with `error`; every async call still waiting is rejected with it. */
  fail(error: Error): void {
    this.failure ??= error;
    this.lender.clear();
    this.pump();
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.cleanup();
      call.control.reject(this.failure);
      call.control.settle();
    }
    this.hooks.onBusy?.(false);
  }

  /** Ends this connection from this side: calls fail with `error`, and the port closes. */
  disconnect(error: Error): void {
    this.fail(error);
    this.portClosed = true;
    this.port.close();
  }

  // ---- targets ----------------------------------------------------------------------------

  private target(fn: unknown, channel: 0 | 1): Target {
    const stub = stubInfo(fn);
    if (stub !== undefined) {
      if (stub.owner !== this) throw new TypeError('this function belongs to another LoopThread or connection');
      return stub.target;
    }
    if (typeof fn !== 'function') throw new TypeError(`expected a function, got ${typeof fn}`);
    const source = Function.prototype.toString.call(fn);
    if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
      throw new TypeError(
        'a native or bound function cannot be sent as source; pass an inline function, or a function from importSync()/import()',
      );
    }
    let id = this.sourceIds.get(source);
    if (id === undefined) {
      id = this.sourceIds.size;
      this.sourceIds.set(source, id);
    }
    return this.sentSources[channel].has(id) ? [1, id, undefined] : [1, id, source];
  }

  /** Writes a call; once written, its inline source (if any) is known on the other side. */
  private writeCallTo(channel: 0 | 1, w: Writer, id: number, target: Target, args: unknown[]): void {
    writeCall(w, id, target, args, sendTo(this.name), this.remotes.lending);
    const inner = target[0] === 3 ? target[1] : target;
    if (inner[0] === 1 && inner[2] !== undefined) this.sentSources[channel].add(inner[1]);
  }

  // ---- blocking calls -------------------------------------------------------------------------

  private checkAlive = (): number => {
    if (this.failure !== undefined) throw this.failure;
    const state = this.line.state;
    if (state === HostState.Crashed) {
      this.hooks.probe?.();
      throw this.failure ?? this.goneError();
    }
    if (state === HostState.Closed) throw new ClosedError(`${this.name} is closed`);
    return this.hooks.probe?.() ?? DEFAULT_SLICE_MS;
  };

  private guard(): void {
    if (this.failure !== undefined) throw this.failure;
    if (threadId === this.hostThreadId) {
      throw new DeadlockError(
        `a blocking call into ${this.name} was made from the thread that serves it: it could never be answered`,
      );
    }
  }

  /** Sends one request through the blocking mailbox, waiting for room (never forever). */
  private sendBlocking(write: Write, id: number, deadline: number): void {
    const words = this.line.words;
    const mailbox = this.line.request;
    while (!mailbox.isFree()) {
      const ack = Atomics.load(words, mailbox.ackIndex);
      if (mailbox.isFree()) break;
      if (!waitForChange(words, mailbox.ackIndex, ack, deadline, this.checkAlive, 0, mailbox.writerSleepsIndex)) {
        throw new TimeoutError(`${this.name} did not take the request in time (it is busy)`);
      }
    }
    const w = new Writer(mailbox.data);
    write(w, id);
    // Too large for the slot: the encoded bytes go by the port, uncopied (see bulk.ts).
    if (w.spilled) sendBulk(this.port, mailbox, w.buf, w.pos);
    else mailbox.publish(w.pos);
    if (Atomics.load(words, mailbox.readerSleepsIndex) !== 0) this.port.postMessage(WAKE);
  }

  /** Sends a request and blocks until its own reply: returns the value or throws the error. */
  private roundTrip(write: Write, options: CallOptions, api: (...args: never[]) => unknown): unknown {
    this.guard();
    if (options.signal?.aborted === true) {
      throw new CancelledError('the call was cancelled before it started', { cause: options.signal.reason });
    }
    const endWait = beginWait(this.hostThreadId, this.describeThread);
    try {
      return this.exchange(write, options, api);
    } finally {
      endWait();
    }
  }

  private describeThread = (t: number): string =>
    t === this.hostThreadId
      ? `thread ${t} (${this.name})`
      : t === threadId
        ? `thread ${t} (this thread)`
        : `thread ${t}`;

  private exchange(write: Write, options: CallOptions, api: (...args: never[]) => unknown): unknown {
    const id = ++this.nextId;
    // The call's timeout is its own: waiting for the thread to start is the owner's startupTimeout.
    this.awaitStart();
    const timeout = options.timeout;
    const deadline = timeout === undefined ? Infinity : performance.now() + timeout;
    this.flushReleases();
    this.sendBlocking(write, id, deadline);
    this.lastSent = id;
    this.active.push(id);
    try {
      return this.awaitReply(id, deadline, timeout, api);
    } finally {
      this.active.pop();
      this.early.delete(id);
    }
  }

  private awaitReply(
    id: number,
    deadline: number,
    timeout: number | undefined,
    api: (...args: never[]) => unknown,
  ): unknown {
    const words = this.line.words;
    const mailbox = this.line.reply;
    // What the spin policy learns from this call: only from a plain one (one wait, no callbacks).
    const began = now();
    const budget = this.spin.next();
    let waits = 0;
    let waited: Waited = Waited.Spun;
    for (;;) {
      const early = this.early.get(id);
      if (early !== undefined) {
        this.early.delete(id);
        if (early.ok) return early.value;
        throw stitch(early.value, this.name, api);
      }
      waited =
        mailbox.seq() !== this.seenReply
          ? Waited.Spun
          : waitForChange(
              words,
              mailbox.seqIndex,
              this.seenReply,
              deadline,
              this.checkAlive,
              waits++ === 0 ? budget : 0,
              mailbox.readerSleepsIndex,
            );
      if (waited === Waited.TimedOut) {
        this.cancelRemote(id, 'timeout');
        throw new TimeoutError(`the call to ${this.name} timed out after ${String(timeout)} ms`);
      }
      this.seenReply = mailbox.seq();
      mailbox.markTaken();
      const slot = mailbox.peek();
      const bytes = slot.onPort
        ? this.bulk.take(this.port, (p) => {
            this.onPortMessage(p as PortPacket);
          })
        : mailbox.data.subarray(0, slot.length);
      let reply: Reply | CallMessage;
      try {
        reply = readMessage(bytes, 0, bytes.length, undefined, this.reviveSync) as Reply | CallMessage;
      } finally {
        mailbox.consume();
      }
      if (reply.kind === Kind.Call) {
        this.serveWhileBlocked(reply);
        waits = 2;
        continue;
      }
      if (reply.id !== id) {
        // An outer call's reply (its callback, running here, did not wait for it), or a late
        // reply to a call that timed out: that one is dropped.
        if (this.active.includes(reply.id)) this.early.set(reply.id, reply);
        continue;
      }
      if (waits <= 1) {
        const answeredAt = mailbox.publishedAt();
        if (waited === Waited.Slept) observeWake(now() - answeredAt);
        this.spin.observe(answeredAt - began, budget);
      }
      if (reply.ok) return reply.value;
      throw stitch(reply.value, this.name, api);
    }
  }

  /** Blocks while the serving thread is starting; its probe ends the wait if it never starts. */
  private awaitStart(): void {
    const words = this.line.words;
    while (Atomics.load(words, STATE) === (HostState.Starting as number)) {
      waitForChange(words, STATE, HostState.Starting, Infinity, this.checkAlive);
    }
  }

  callSync(fn: unknown, args: unknown[], options: CallOptions, api: (...args: never[]) => unknown): unknown {
    return this.sendCallSync(this.target(fn, 0), args, options, api);
  }

  /** A blocking call of a target made by this.target() (maybe wrapped): its source is sent once. */
  private sendCallSync(
    target: Target,
    args: unknown[],
    options: CallOptions,
    api: (...args: never[]) => unknown,
  ): unknown {
    return this.roundTrip(
      (w, id) => {
        this.writeCallTo(0, w, id, target, args);
      },
      options,
      api,
    );
  }

  /** Enters the resource `fn(...args)` resolves to on the other side (see LoopThread.enterSync). */
  enterSync(
    fn: unknown,
    args: unknown[],
    exit: string | null,
    options: CallOptions,
    api: (...args: never[]) => unknown,
  ): unknown {
    return this.sendCallSync([3, this.target(fn, 0), exit], args, options, api);
  }

  /** Enters a resource without blocking (see LoopThread.enter). */
  enter<T>(fn: unknown, args: unknown[], exit: string | null, options: CallOptions): Future<T> {
    return this.sendCall<T>(() => [3, this.target(fn, 1), exit], args, options);
  }

  /** A blocking call of a known target (a portal's function); `marker` starts the caller's stack. */
  invokeSync(target: Target, args: unknown[], options: CallOptions, marker: (...args: never[]) => unknown): unknown {
    return this.roundTrip(
      (w, id) => {
        writeCall(w, id, target, args, sendTo(this.name), this.remotes.lending);
      },
      options,
      marker,
    );
  }

  /** A non-blocking call of a known target. */
  invoke<T>(target: Target, args: unknown[], options: CallOptions): Future<T> {
    return this.sendAsync<T>((w, id) => {
      writeCall(w, id, target, args, sendTo(this.name), this.remotes.lending);
    }, options);
  }

  // ---- references ------------------------------------------------------------------------------

  /** Options of calls made through references (the owner's defaults: its timeout). */
  refOptions: CallOptions = {};

  /** Peer: an operation on an object the other side lent, blocking. */
  refSync = (target: Target, args: unknown[]): unknown => this.invokeSync(target, args, this.refOptions, this.refSync);

  /** Peer: an operation on an object the other side lent, as a Future. */
  refAsync(target: Target, args: unknown[]): Future<unknown> {
    return this.invoke(target, args, this.refOptions);
  }

  /** Peer: proxies of ours were dropped; told to the other side with the next message, or soon. */
  release(id: number, count: number): void {
    if (this.failure !== undefined) return;
    this.released.push(id, count);
    if (this.released.length === 2) queueMicrotask(this.flushReleases);
  }

  private flushReleases = (): void => {
    if (this.released.length === 0 || this.failure !== undefined) return;
    const w = portWriter();
    writeRelease(w, this.released);
    this.released = [];
    const [p, transfer] = packet(w);
    try {
      this.port.postMessage(p, transfer);
    } catch {
      // The other side is gone, and its table with it.
    }
  };

  /** Runs a call the other side made on an object this thread lent it (a callback). */
  private perform(m: CallMessage): unknown {
    const t = m.target;
    if (t[0] !== 2) throw new TypeError('only objects this thread lent can be called from the other side');
    return performRefOp(this.lender, t[1], t[2], t[3], t[4], m.args);
  }

  /**
   * A callback called while this thread is blocked in a call: it runs here and now, and its
   * result goes back through the blocking channel. It must not return a promise (this thread's
   * event loop cannot run until the blocking call returns).
   */
  private serveWhileBlocked(m: CallMessage): void {
    let ok = false;
    let value: unknown;
    if (!this.active.includes(m.outer)) {
      value = new CancelledError(
        'the blocking call during which this callback was called is over (it timed out or was cancelled)',
      );
    } else {
      try {
        value = this.perform(m);
        ok = true;
        if (isThenable(value)) {
          ok = false;
          value = new TypeError(
            'a callback called while its thread is blocked in a call must return synchronously, and this one ' +
              'returned a promise (that thread cannot run its event loop until the call returns); ' +
              'use run() instead of runSync() to keep the calling thread free',
          );
        }
      } catch (error) {
        value = error;
      }
    }
    this.sendBlocking(
      (w) => {
        writeReply(w, m.id, ok, value, this.remotes.lending);
      },
      m.id,
      Infinity,
    );
  }

  /** A callback called while this thread's event loop runs: its result, awaited, goes back by the port. */
  private serveFromPort(m: CallMessage): void {
    const answer = (ok: boolean, value: unknown): void => {
      const w = portWriter();
      writeReply(w, m.id, ok, value, this.remotes.lending);
      const [p, transfer] = packet(w);
      try {
        this.port.postMessage(p, transfer);
      } catch {
        // The other side is gone: nobody waits for this answer.
      }
    };
    let result: unknown;
    try {
      result = this.perform(m);
    } catch (error) {
      answer(false, error);
      return;
    }
    // A plain result is answered at once: this thread may be blocked waiting for a Future.
    if (!isThenable(result)) {
      answer(true, result);
      return;
    }
    result.then(
      (v) => {
        answer(true, v);
      },
      (e: unknown) => {
        answer(false, e);
      },
    );
  }

  importSync(specifier: string | URL, options: CallOptions, api: (...args: never[]) => unknown): object {
    // `api` marks the caller's frames for an error of the import itself; calls use their stubs.
    const spec = normalizeSpecifier(specifier);
    const [moduleId, shape] = this.roundTrip(
      (w, id) => {
        writeImport(w, id, spec);
      },
      options,
      api,
    ) as [number, Record<string, ExportShape>];
    // The stub itself marks where the caller's frames start in a stitched error stack.
    return buildProxy(shape, moduleId, this, (target, args, stub) => this.invokeSync(target, args, options, stub));
  }

  /**
   * Asks the host to close; blocks until it has or the deadline passed. A failure is not thrown:
   * the owner stops the thread either way.
   */
  closeSync(timeout: number, deadline: number): void {
    try {
      this.roundTrip(
        (w, id) => {
          writeClose(w, id, timeout);
        },
        { timeout: Math.max(0, deadline - performance.now()) },
        // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
        this.closeSync,
      );
    } catch {
      // Timed out, or the thread is already gone: the owner terminates it if it still runs.
    }
  }

  // ---- async calls ----------------------------------------------------------------------------

  private pump(): void {
    if (this.portClosed) return;
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      this.onPortMessage(m.message as PortPacket | BulkPacket);
    }
  }

  private onPortMessage(p: PortPacket | BulkPacket): void {
    if (p === WAKE) return;
    if (isBulk(p)) {
      this.bulk.add(p);
      return;
    }
    const reply = readPacket(p, this.reviveAsync);
    if (reply.kind === Kind.Idle) {
      if (reply.id >= this.lastSent) this.onHostIdle();
      return;
    }
    if (reply.kind === Kind.Died) {
      this.died = reply;
      return;
    }
    if (reply.kind === Kind.Call) {
      this.serveFromPort(reply);
      return;
    }
    if (reply.kind === Kind.Release) {
      for (let i = 0; i + 1 < reply.released.length; i += 2) {
        this.lender.release(reply.released[i] as number, reply.released[i + 1] as number);
      }
      return;
    }
    if (reply.kind !== Kind.Reply) return;
    const call = this.pending.get(reply.id);
    if (call === undefined) return;
    this.pending.delete(reply.id);
    call.cleanup();
    if (reply.ok) call.control.resolve(reply.value);
    else call.control.reject(reply.value);
    call.control.settle();
    if (this.pending.size === 0) this.hooks.onBusy?.(false);
  }

  /**
   * The host's loop is idle while our async calls wait: only a request from some thread can
   * settle them now. Stop keeping this process alive for them; if this thread then has nothing
   * left to do either (its loop is about to exit), nothing can settle them: NeverSettledError.
   */
  private onHostIdle(): void {
    if (this.pending.size === 0) return;
    this.hostIdle = true;
    this.hooks.onBusy?.(false);
    if (this.exitWatch) return;
    this.exitWatch = true;
    process.once('beforeExit', () => {
      this.exitWatch = false;
      if (this.hostIdle) this.neverSettled();
    });
  }

  private neverSettled(): void {
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.cleanup();
      call.control.reject(
        new NeverSettledError(
          'the call can never settle: the loop thread went idle with its promise still pending, and the calling thread has nothing left to do',
        ),
      );
      call.control.settle();
      this.cancelRemote(id, 'cancel');
    }
    this.hooks.onNeverSettled?.();
  }

  /** Blocks until `isDone()`, receiving port replies meanwhile: the blocking wait of a Future. */
  private blockForPort = (isDone: () => boolean, deadline: number): void => {
    this.guard();
    const endWait = beginWait(this.hostThreadId, this.describeThread);
    try {
      this.waitForPort(isDone, deadline);
    } finally {
      endWait();
    }
  };

  private waitForPort(isDone: () => boolean, deadline: number): void {
    const words = this.line.words;
    for (;;) {
      const seen = Atomics.load(words, ASYNC_SEQ);
      this.pump();
      if (isDone()) return;
      // Blocked here, this thread cannot send what would settle it: if the host is idle, nothing will.
      if (this.hostIdle) {
        this.neverSettled();
        return;
      }
      if (!waitForChange(words, ASYNC_SEQ, seen, deadline, this.checkAlive)) return;
    }
  }

  private cancelRemote(id: number, reason: CancelReason): void {
    const w = portWriter();
    writeCancel(w, id, reason);
    const [p, transfer] = packet(w);
    try {
      this.port.postMessage(p, transfer);
    } catch {
      // The port is closed: the other side is gone and has nothing left to cancel.
    }
  }

  private sendAsync<T>(write: Write, options: CallOptions): Future<T> {
    const id = ++this.nextId;
    const [future, control] = Future.create<T>({
      block: this.blockForPort,
      onCancel: () => {
        this.cancelRemote(id, 'cancel');
      },
    });
    if (this.failure !== undefined) {
      control.reject(this.failure);
      control.settle();
      return future;
    }
    const { signal, timeout } = options;
    if (signal?.aborted === true) {
      future.cancel(signal.reason);
      control.settle();
      return future;
    }
    this.flushReleases();
    const w = portWriter();
    try {
      write(w, id);
    } catch (error) {
      releaseWriter(w);
      control.reject(error);
      control.settle();
      return future;
    }
    const [p, transfer] = packet(w);
    this.port.postMessage(p, transfer);
    this.lastSent = id;
    control.running();
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const startTimer = (): void => {
      if (settled || timeout === undefined) return;
      timer = setTimeout(() => {
        if (control.reject(new TimeoutError(`the call to ${this.name} timed out after ${String(timeout)} ms`))) {
          this.cancelRemote(id, 'timeout');
        }
      }, timeout);
      timer.unref();
    };
    if (timeout !== undefined) {
      // The call's timeout is its own: it starts once the serving thread has started.
      const started = changed(this.line.words, STATE, HostState.Starting);
      if (started === undefined) startTimer();
      else void started.then(startTimer);
    }
    const onAbort = (): void => {
      future.cancel(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (this.pending.size === 0 || this.hostIdle) this.hooks.onBusy?.(true);
    this.hostIdle = false;
    this.pending.set(id, {
      control,
      cleanup: () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      },
    });
    return future;
  }

  call<T>(fn: unknown, args: unknown[], options: CallOptions): Future<T> {
    return this.sendCall<T>(() => this.target(fn, 1), args, options);
  }

  /** A non-blocking call; a target that cannot be made (a bad function) fails the Future, not the caller. */
  private sendCall<T>(makeTarget: () => Target, args: unknown[], options: CallOptions): Future<T> {
    let target: Target;
    try {
      target = makeTarget();
    } catch (error) {
      const [future, control] = Future.create<T>();
      control.reject(error);
      control.settle();
      return future;
    }
    return this.sendAsync<T>((w, id) => {
      this.writeCallTo(1, w, id, target, args);
    }, options);
  }

  async import(specifier: string | URL, options: CallOptions): Promise<object> {
    const spec = normalizeSpecifier(specifier);
    const [moduleId, shape] = await this.sendAsync<[number, Record<string, ExportShape>]>((w, id) => {
      writeImport(w, id, spec);
    }, options);
    return buildProxy(shape, moduleId, this, (target, args) => this.invoke(target, args, options));
  }

  closeAsync(timeout: number): Future<unknown> {
    return this.sendAsync((w, id) => {
      writeClose(w, id, timeout);
    }, {});
  }
}

/** Relative paths resolve against the working directory; bare names and URLs go as they are. */
function normalizeSpecifier(specifier: string | URL): string {
  if (specifier instanceof URL) return specifier.href;
  if (typeof specifier !== 'string') throw new TypeError('the module specifier must be a string or a URL');
  if (specifier.startsWith('./') || specifier.startsWith('../')) return pathToFileURL(resolvePath(specifier)).href;
  if (isAbsolute(specifier)) return pathToFileURL(specifier).href;
  return specifier;
}

/** Appends the caller's own frames to an error from the other thread, so both halves show. */
function stitch(error: unknown, name: string, api: (...args: never[]) => unknown): unknown {
  if (!(error instanceof Error) || typeof error.stack !== 'string') return error;
  const here: { stack?: string } = {};
  Error.captureStackTrace(here, api);
  const frames = (here.stack ?? '').split('\n').slice(1).join('\n');
  Object.defineProperty(error, 'stack', {
    value: `${error.stack}\n    --- above: on ${name}; below: the blocking call ---\n${frames}`,
    writable: true,
    configurable: true,
  });
  return error;
}
