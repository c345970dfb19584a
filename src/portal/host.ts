/**
 * The serving side of a portal: it reads calls from its connections (blocking callers through
 * shared memory, async callers through a MessagePort), runs them on this thread's event loop,
 * each with its own AbortSignal, and answers every one of them.
 */
import { AsyncResource } from 'node:async_hooks';
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Revive } from '../codec/decode.js';
import { byRef } from '../codec/marks.js';
import { endIteration, Lender, performRefOp } from './lender.js';
import { Remotes, type Peer } from './remote.js';
import { ClosedError, NeverSettledError, TimeoutError, CancelledError } from '../errors.js';
import { HostState, Line, ASYNC_SEQ } from '../protocol/line.js';
import { BulkInbox, isBulk, type BulkPacket } from '../protocol/bulk.js';
import { now } from '../protocol/mailbox.js';
import { spinFor } from '../shm/wait.js';
import { observeWake, SpinPolicy } from '../shm/spin-policy.js';
import { KeepAlive } from '../shm/keep-alive.js';
import { Outbox } from './outbox.js';
import { compileInline, explainCapture, type Fn } from './compile.js';
import type { Writer } from '../codec/writer.js';
import { CallContext, runInContext } from './call-context.js';
import { describeExports } from './exports.js';
import {
  Kind,
  portWriter,
  packet,
  readMessage,
  readPacket,
  releaseWriter,
  writeCall,
  writeDied,
  writeIdle,
  writeRelease,
  writeReply,
  WAKE,
  type CancelReason,
  type Message,
  type PortPacket,
  type Target,
} from './messages.js';

export interface HostOptions {
  /** Loads a module for `import` requests; without it they are refused. */
  load?(specifier: string): Promise<object>;
  /**
   * Keep this thread's event loop alive while waiting for calls (a LoopThread's own thread). A
   * portal opened on a thread that has other work does not hold that thread's loop open.
   */
  keepAlive?: boolean;
  /** Called for a close request from a connection allowed to close the host. */
  onCloseRequest?(timeout: number): Promise<void>;
}

/** Sent by the owner of the host: serve one more connection (see LoopThread.createHandle). */
export interface ConnectRequest {
  connect: { line: SharedArrayBuffer; port: MessagePort };
}

interface InFlight {
  readonly context: CallContext;
  /** The caller gave up (timeout or cancel): a blocking caller no longer reads a reply. */
  abandoned: boolean;
  readonly viaPort: boolean;
}

/** A call this thread made on a function the caller lent it (a callback), waiting for its answer. */
interface Callback {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** The caller's blocking call it was sent through, or 0 (sent by the port). */
  readonly outer: number;
}

/** A resource entered by enterSync: it is exited by its own frame when `exit` is called. */
interface Entered {
  readonly value: object;
  /** Resolves to what the exit method returned (true suppresses the body's error, as __aexit__). */
  exit(error: unknown): Promise<unknown>;
}

/** After this many requests taken in a row without yielding, the host lets timers and I/O run. */
const MAX_CHAINED_REQUESTS = 256;

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null &&
  (typeof v === 'object' || typeof v === 'function') &&
  typeof (v as { then?: unknown }).then === 'function';

export class HostConnection implements Peer {
  readonly inflight = new Map<number, InFlight>();
  /** Objects lent to the caller: results and arguments that are not plain data. */
  readonly lender = new Lender();
  readonly remotes: Remotes = new Remotes(this, this.lender);
  readonly revive: Revive = (d) => this.remotes.revive(d, 'async', this.lender);
  readonly callbacks = new Map<number, Callback>();
  private nextCallbackId = 0;
  private released: number[] = [];
  readonly name = 'the calling thread';
  /** Calls cancelled before their request was read (the cancel came first, by the port). */
  readonly precancelled = new Map<number, CancelReason>();
  /** Inline functions compiled for this connection, per channel (the two channels are not ordered). */
  readonly sources: [Map<number, Fn | Error>, Map<number, Fn | Error>] = [
    new Map<number, Fn | Error>(),
    new Map<number, Fn | Error>(),
  ];
  readonly outbox: Outbox;
  readonly bulk = new BulkInbox();
  seenRequest = 0;
  chained = 0;
  readonly spin = new SpinPolicy();
  /** A blocking reply went out since the last request was taken. */
  replied = false;
  /** How long this thread spun for the next request after that reply (ms). */
  spun = 0;
  /** When this connection's last blocking request was taken (performance.now()). */
  lastRequestAt = -Infinity;
  /** The id of the last request read from this connection, by either channel (told in idle notices). */
  lastRequest = 0;

  constructor(
    readonly line: Line,
    readonly port: MessagePort,
    readonly mayClose: boolean,
    onBusyChange: (busy: boolean) => void,
  ) {
    this.outbox = new Outbox(line.reply, port, onBusyChange);
  }

  refSync(): never {
    throw new TypeError(
      'a serving thread cannot block on its caller: call references to the caller without blocking (they return Promises)',
    );
  }

  /**
   * Calls a function the caller lent (a callback). While the caller is blocked in a call here, the
   * request goes through its blocking channel (it serves it and goes back to waiting); otherwise
   * by the port, to run on its event loop.
   */
  refAsync(target: Target, args: unknown[]): Promise<unknown> {
    const id = ++this.nextCallbackId;
    let outer = 0;
    for (const [callId, call] of this.inflight) if (!call.viaPort && !call.abandoned) outer = Math.max(outer, callId);
    return new Promise((resolve, reject) => {
      const write = (w: Writer): void => {
        writeCall(w, id, target, args, 'to the calling thread', this.remotes.lending, outer);
      };
      try {
        if (outer !== 0) this.outbox.send(write);
        else this.post(write);
      } catch (error) {
        reject(error);
        return;
      }
      this.callbacks.set(id, { resolve, reject, outer });
    });
  }

  /** Sends a message by the port, waking the caller if it waits for a Future. */
  post(write: (w: Writer) => void): void {
    const w = portWriter();
    try {
      write(w);
    } catch (error) {
      releaseWriter(w);
      throw error;
    }
    const [p, transfer] = packet(w);
    this.port.postMessage(p, transfer);
    Atomics.add(this.line.words, ASYNC_SEQ, 1);
    Atomics.notify(this.line.words, ASYNC_SEQ);
  }

  release(id: number, count: number): void {
    this.released.push(id, count);
    if (this.released.length === 2) {
      queueMicrotask(() => {
        const released = this.released;
        this.released = [];
        try {
          this.post((w) => {
            writeRelease(w, released);
          });
        } catch {
          // The caller is gone, and its table with it.
        }
      });
    }
  }

  /** Rejects the callbacks waiting for an answer (of one blocking call, or all when `outer` is undefined). */
  rejectCallbacks(error: Error, outer?: number): void {
    for (const [id, callback] of this.callbacks) {
      if (outer !== undefined && callback.outer !== outer) continue;
      this.callbacks.delete(id);
      callback.reject(error);
    }
  }
}

export class PortalHost {
  private readonly connections = new Set<HostConnection>();
  private readonly modules: object[] = [];
  private readonly moduleIds = new Map<string, number>();
  private state: 'running' | 'closing' | 'closed' = 'running';
  private pending = 0;
  private busyOutboxes = 0;
  private idleWaiters: (() => void)[] = [];
  /** Resources entered by enterSync, exited last-in first-out when the host closes. */
  private readonly entered: Entered[] = [];
  /** Keeps this thread's loop alive while it waits for calls, and only then (see onLoopIdle). */
  private readonly keepAlive = new KeepAlive();

  constructor(private readonly options: HostOptions) {
    // A loop thread's host holds its loop open from the start, waiting for calls.
    if (options.keepAlive === true) this.keepAlive.hold(true);
  }

  /** Hosts a module namespace or api object; its id is what targets name. */
  addModule(namespace: object): number {
    this.modules.push(namespace);
    return this.modules.length - 1;
  }

  serve(line: Line, port: MessagePort, mayClose: boolean): HostConnection {
    const conn = new HostConnection(line, port, mayClose, (busy) => {
      this.busyOutboxes += busy ? 1 : -1;
      this.updateKeepAlive();
    });
    this.connections.add(conn);
    conn.seenRequest = Atomics.load(line.words, line.request.ackIndex);
    port.on('message', (p: PortPacket | BulkPacket | ConnectRequest) => {
      this.onPortMessage(conn, p);
    });
    // The calling thread is gone (exited or crashed): its calls have no one to answer to.
    port.on('close', () => {
      this.drop(conn);
    });
    port.unref();
    line.announce(this.state === 'running' ? HostState.Running : HostState.Closing);
    this.idle(conn);
    return conn;
  }

  private drop(conn: HostConnection): void {
    if (!this.connections.delete(conn)) return;
    for (const call of conn.inflight.values()) {
      call.abandoned = true;
      call.context.abort(new ClosedError('the calling thread is gone'));
    }
    conn.rejectCallbacks(new ClosedError('the calling thread is gone'));
    conn.lender.clear();
    // The loop may be waiting idle for this caller to act: with one caller fewer, decide again.
    if (this.waitingWhileIdle) {
      this.waitingWhileIdle = false;
      this.updateKeepAlive();
    }
  }

  private onPortMessage(conn: HostConnection, p: PortPacket | BulkPacket | ConnectRequest): void {
    if (p === WAKE) {
      conn.chained = 0;
      this.takeRequest(conn, true);
      return;
    }
    if (isBulk(p)) {
      conn.bulk.add(p);
      return;
    }
    if (typeof p !== 'string' && 'connect' in p) this.serve(new Line(p.connect.line), p.connect.port, false);
    else this.dispatch(conn, readPacket(p, conn.revive), true);
  }

  /** The connection is waiting for the next blocking request. */
  /**
   * The connection waits for its next blocking request. The flag tells the caller to wake this
   * thread with a WAKE message on the port (a posted message wakes an event loop sooner than
   * Atomics.waitAsync does); setting it and then looking once more means no request is missed.
   */
  private idle(conn: HostConnection): void {
    Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 1);
    if (conn.line.request.seq() !== conn.seenRequest) {
      setImmediate(() => {
        this.takeRequest(conn);
      });
    }
  }

  /** `woken`: this thread slept, and the caller's WAKE message woke it (a wake-up to learn from). */
  private takeRequest(conn: HostConnection, woken = false): void {
    const mailbox = conn.line.request;
    const seq = mailbox.seq();
    if (seq === conn.seenRequest || this.state === 'closed') {
      if (this.state !== 'closed') this.idle(conn);
      return;
    }
    conn.seenRequest = seq;
    conn.lastRequestAt = performance.now();
    Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 0);
    mailbox.markTaken();
    if (woken) observeWake(now() - mailbox.publishedAt());
    // How soon the caller called again after our last reply: worth spinning for next time, or not.
    if (conn.replied) conn.spin.observe(mailbox.publishedAt() - conn.line.reply.publishedAt(), conn.spun);
    conn.replied = false;
    const slot = mailbox.peek();
    // What the port holds before a request sent by it is handled first, as the loop would have; a
    // WAKE among it is for a request taken already (this one, or one before).
    const bytes = slot.onPort
      ? conn.bulk.take(conn.port, (p) => {
          if (p !== WAKE) this.onPortMessage(conn, p as PortPacket | ConnectRequest);
        })
      : mailbox.data.subarray(0, slot.length);
    let message: Message;
    try {
      message = readMessage(bytes, 0, bytes.length, undefined, conn.revive);
    } finally {
      mailbox.consume();
    }
    this.dispatch(conn, message, false);
    // Wait for the next request even while this one runs: after a timeout the caller sends more.
    this.idle(conn);
  }

  private dispatch(conn: HostConnection, m: Message, viaPort: boolean): void {
    if (this.waitingWhileIdle) {
      this.waitingWhileIdle = false;
      this.updateKeepAlive();
    }
    if (m.kind === Kind.Call || m.kind === Kind.Import || m.kind === Kind.Close) {
      conn.lastRequest = Math.max(conn.lastRequest, m.id);
    }
    switch (m.kind) {
      case Kind.Call:
        this.call(conn, m.id, m.target, m.args, viaPort);
        return;
      case Kind.Import:
        this.track(conn, m.id, viaPort, () => this.importModule(m.specifier));
        return;
      case Kind.Close:
        if (!conn.mayClose) {
          this.reply(conn, m.id, viaPort, false, new ClosedError('this connection may not close the loop thread'));
          return;
        }
        // What the caller posted before this blocking request comes first: its calls are taken
        // (and then aborted by the close), not refused.
        if (!viaPort) {
          for (let p = receiveMessageOnPort(conn.port); p !== undefined; p = receiveMessageOnPort(conn.port)) {
            this.onPortMessage(conn, p.message as PortPacket | BulkPacket | ConnectRequest);
          }
        }
        // Not tracked as a call: close waits for the calls in flight, and this is not one of them.
        void Promise.resolve(this.options.onCloseRequest?.(m.timeout)).then(
          () => {
            this.reply(conn, m.id, viaPort, true, undefined);
          },
          (error: unknown) => {
            this.reply(conn, m.id, viaPort, false, error);
          },
        );
        return;
      case Kind.Cancel:
        this.cancel(conn, m.id, m.reason);
        return;
      case Kind.Reply: {
        const callback = conn.callbacks.get(m.id);
        if (callback === undefined) return;
        conn.callbacks.delete(m.id);
        if (m.ok) callback.resolve(m.value);
        else callback.reject(m.value);
        return;
      }
      case Kind.Release:
        for (let i = 0; i + 1 < m.released.length; i += 2) {
          conn.lender.release(m.released[i] as number, m.released[i + 1] as number);
        }
        return;
      case Kind.Idle:
        return;
    }
  }

  private async importModule(specifier: string): Promise<unknown> {
    let id = this.moduleIds.get(specifier);
    if (id === undefined) {
      if (this.options.load === undefined) throw new TypeError('this portal does not load modules');
      const ns = await this.options.load(specifier);
      id = this.moduleIds.get(specifier) ?? this.addModule(ns);
      this.moduleIds.set(specifier, id);
    }
    return [id, describeExports(this.modules[id] as object)];
  }

  private resolve(conn: HostConnection, target: Target, viaPort: boolean): [Fn, unknown] {
    if (target[0] === 2) {
      const [, refId, op, key, n] = target;
      return [
        (...args: unknown[]) =>
          performRefOp(conn.lender, refId, op, key, n, args, (value, error) => this.exitEntered(value, error)),
        undefined,
      ];
    }
    if (target[0] === 3) {
      const [fn, self] = this.resolve(conn, target[1], viaPort);
      const exit = target[2];
      return [(...args: unknown[]) => this.enter(fn, self, args, exit), undefined];
    }
    if (target[0] === 0) {
      const [, moduleId, path] = target;
      let self: unknown;
      let value: unknown = this.modules[moduleId];
      if (value === undefined) throw new ReferenceError(`no module with id ${String(moduleId)} on this thread`);
      for (const key of path) {
        self = value;
        value = (value as Record<string, unknown>)[key];
      }
      if (typeof value !== 'function') throw new TypeError(`${path.join('.')} is not a function on the serving thread`);
      return [value as Fn, self];
    }
    const [, sourceId, source] = target;
    const table = conn.sources[viaPort ? 1 : 0];
    let fn = table.get(sourceId);
    if (source !== undefined) {
      fn = compileInline(source, 'on the serving thread');
      table.set(sourceId, fn);
    }
    if (fn === undefined)
      throw new ReferenceError(`inline function #${String(sourceId)} is unknown on this connection`);
    if (fn instanceof Error) throw fn;
    return [fn, undefined];
  }

  private call(conn: HostConnection, id: number, target: Target, args: unknown[], viaPort: boolean): void {
    let fn: Fn;
    let self: unknown;
    try {
      [fn, self] = this.resolve(conn, target, viaPort);
    } catch (error) {
      this.reply(conn, id, viaPort, false, error);
      return;
    }
    this.track(conn, id, viaPort, () => fn.apply(self, args));
  }

  /** Runs one call with its own signal and answers it exactly once. */
  private track(conn: HostConnection, id: number, viaPort: boolean, run: () => unknown): void {
    if (this.state !== 'running') {
      this.reply(conn, id, viaPort, false, new ClosedError('the loop thread is closing'));
      return;
    }
    const context = new CallContext();
    const call: InFlight = { context, abandoned: false, viaPort };
    const early = conn.precancelled.get(id);
    if (early !== undefined) {
      conn.precancelled.delete(id);
      call.abandoned = true;
      context.abort(abortReason(early));
    }
    conn.inflight.set(id, call);
    this.pending++;
    if (this.pending === 1) this.updateKeepAlive();
    const finish = (ok: boolean, value: unknown): void => {
      conn.inflight.delete(id);
      this.pending--;
      if (!(call.abandoned && !viaPort)) this.reply(conn, id, viaPort, ok, value);
      if (this.pending === 0) {
        this.updateKeepAlive();
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    };
    let result: unknown;
    try {
      result = runInContext(context, run);
    } catch (error) {
      finish(false, error);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (v) => {
          finish(true, v);
        },
        (e: unknown) => {
          finish(false, e);
        },
      );
    } else {
      finish(true, result);
    }
  }

  private reply(conn: HostConnection, id: number, viaPort: boolean, ok: boolean, value: unknown): void {
    if (!ok) value = explainCapture(value);
    if (viaPort) {
      const w = portWriter();
      writeReply(w, id, ok, value, conn.remotes.lending);
      const [p, transfer] = packet(w);
      conn.port.postMessage(p, transfer);
      Atomics.add(conn.line.words, ASYNC_SEQ, 1);
      Atomics.notify(conn.line.words, ASYNC_SEQ);
      return;
    }
    // A blocking caller is likely to call again at once: look for its next request before
    // sleeping, and tell it meanwhile that it need not wake this thread.
    const words = conn.line.words;
    const budget = conn.chained < MAX_CHAINED_REQUESTS && !this.othersCalling(conn) ? conn.spin.next() : 0;
    const spin = budget > 0;
    if (spin) Atomics.store(words, conn.line.request.readerSleepsIndex, 0);
    const published = conn.outbox.send((w) => {
      writeReply(w, id, ok, value, conn.remotes.lending);
    });
    conn.replied = published;
    conn.spun = budget;
    if (!spin) return;
    if (published && spinFor(words, conn.line.request.seqIndex, conn.seenRequest, budget)) {
      conn.chained++;
      this.takeRequest(conn);
      return;
    }
    this.idle(conn);
  }

  /**
   * Whether other connections made blocking calls just now: then this thread must not spin for
   * one caller while the others wait for it (nor take cores from their threads).
   */
  private othersCalling(conn: HostConnection): boolean {
    if (this.connections.size < 2) return false;
    const recently = performance.now() - 1;
    for (const other of this.connections) if (other !== conn && other.lastRequestAt > recently) return true;
    return false;
  }

  /**
   * Enters the resource `fn(...args)` resolves to, in an async frame of its own that stays open
   * until the resource is exited: the exit runs in the same frame, so AsyncLocalStorage state
   * set on entering is still there (anyio's rule). Resolves to the resource, lent, once entered.
   */
  private enter(fn: Fn, self: unknown, args: unknown[], exitMethod: string | null): Promise<object> {
    return new Promise((entered, failed) => {
      void new AsyncResource('loopthread.enter').runInAsyncScope(async () => {
        let value: unknown;
        try {
          value = await fn.apply(self, args);
          if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
            throw new TypeError(`enterSync: the function returned ${typeof value}, not a resource to enter`);
          }
          const close = exitMethod === null ? undefined : (value as Record<string, unknown>)[exitMethod];
          const v = value as { [Symbol.asyncDispose]?: unknown; [Symbol.dispose]?: unknown };
          if (
            exitMethod === null
              ? typeof v[Symbol.asyncDispose] !== 'function' && typeof v[Symbol.dispose] !== 'function'
              : typeof close !== 'function'
          ) {
            throw new TypeError(
              exitMethod === null
                ? 'enterSync: the resource has no Symbol.asyncDispose or Symbol.dispose method; name its exit method with the `exit` option (for example "close")'
                : `enterSync: the resource has no method '${exitMethod}'`,
            );
          }
        } catch (error) {
          failed(error);
          return;
        }
        const resource = value;
        let requestExit!: (error: unknown) => void;
        const exitRequested = new Promise<unknown>((resolve) => (requestExit = resolve));
        const entry: Entered = {
          value: resource,
          exit: (error) => {
            requestExit(error);
            return exited;
          },
        };
        const exited = (async (): Promise<unknown> => {
          const error = await exitRequested;
          const index = this.entered.indexOf(entry);
          if (index >= 0) this.entered.splice(index, 1);
          const r = resource as Record<string | symbol, unknown>;
          const method = (exitMethod === null ? (r[Symbol.asyncDispose] ?? r[Symbol.dispose]) : r[exitMethod]) as Fn;
          return await method.call(resource, error);
        })();
        this.entered.push(entry);
        entered(byRef(resource));
        await exited.catch(() => undefined);
      });
    });
  }

  /** Exits an entered resource (its exit method sees `error`, the body's error); resolves once it has. */
  private exitEntered(value: object, error: unknown): Promise<unknown> {
    const entry = this.entered.find((e) => e.value === value);
    if (entry === undefined)
      return Promise.reject(new TypeError('this resource is not entered (or was already exited)'));
    return entry.exit(error);
  }

  /** Exits every entered resource, last entered first; an exit that fails does not stop the others. */
  private async exitAll(): Promise<void> {
    for (let entry = this.entered.at(-1); entry !== undefined; entry = this.entered.at(-1)) {
      this.entered.pop();
      await entry.exit(undefined).catch((error: unknown) => {
        process.emitWarning(`loopthread: exiting an entered resource failed while closing: ${String(error)}`);
      });
    }
  }

  private cancel(conn: HostConnection, id: number, reason: CancelReason): void {
    conn.rejectCallbacks(
      new CancelledError('the blocking call this callback was called during is over (it timed out or was cancelled)'),
      id,
    );
    const call = conn.inflight.get(id);
    if (call === undefined) {
      // The request may still sit unread in the mailbox; remember the cancel for when it is read.
      if (conn.precancelled.size < 10_000) conn.precancelled.set(id, reason);
      return;
    }
    call.abandoned = true;
    call.context.abort(abortReason(reason));
  }

  private updateKeepAlive(): void {
    if (this.state === 'closed' || this.options.keepAlive !== true) return;
    this.keepAlive.hold(this.pending === 0 || this.busyOutboxes > 0 || this.waitingWhileIdle);
  }

  /** The loop went idle with calls pending, but a connected thread that is not blocked may still act. */
  private waitingWhileIdle = false;

  /**
   * The loop has nothing left to do while calls are pending. If every connected thread is blocked
   * in a call here, none of them can send what would settle the pending calls: answer them all
   * with NeverSettledError ('never-settled'). Otherwise a thread that is free may still do so:
   * tell the free threads with calls pending that the loop is idle (they know whether they
   * themselves have anything left to do; see PortalClient) and keep waiting ('waiting').
   */
  onLoopIdle(): 'never-settled' | 'waiting' | 'nothing-pending' {
    if (this.pending === 0) return 'nothing-pending';
    // A caller serving a callback of ours is working for us: its answer will come.
    for (const conn of this.connections) {
      if (conn.callbacks.size > 0) {
        this.waitingWhileIdle = true;
        this.updateKeepAlive();
        return 'waiting';
      }
    }
    const blocked = (conn: HostConnection): boolean => {
      for (const call of conn.inflight.values()) if (!call.viaPort && !call.abandoned) return true;
      return false;
    };
    const free = [...this.connections].filter((conn) => !blocked(conn));
    if (free.length === 0) {
      // Refuse calls first: answering lets a caller send its next call at once.
      this.refuseCalls();
      this.answerNeverSettled();
      return 'never-settled';
    }
    for (const conn of free) {
      if (conn.inflight.size === 0) continue;
      const w = portWriter();
      writeIdle(w, conn.lastRequest);
      const [p, transfer] = packet(w);
      conn.port.postMessage(p, transfer);
      Atomics.add(conn.line.words, ASYNC_SEQ, 1);
      Atomics.notify(conn.line.words, ASYNC_SEQ);
    }
    this.waitingWhileIdle = true;
    this.updateKeepAlive();
    return 'waiting';
  }

  /**
   * Stops taking calls, aborts the signals of the calls in flight and waits for them to settle,
   * up to `timeout` ms. Calls still running then are answered with ClosedError by the caller's side.
   */
  async close(timeout: number): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'closing';
    for (const conn of this.connections) {
      conn.line.announce(HostState.Closing);
      for (const call of conn.inflight.values()) call.context.abort(new ClosedError('the loop thread is closing'));
    }
    if (this.pending > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        timer = setTimeout(resolve, timeout);
      });
      clearTimeout(timer);
    }
    await this.exitAll();
    await this.endIterations(timeout);
  }

  /** Ends the iterations callers left open (their generators' finally blocks run), up to `timeout` ms. */
  private async endIterations(timeout: number): Promise<void> {
    const open = [...this.connections].flatMap((conn) => [...conn.lender.iterating]);
    if (open.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(open.map(endIteration)),
      new Promise((resolve) => (timer = setTimeout(resolve, timeout))),
    ]);
    clearTimeout(timer);
  }

  /** True once every reply is out of the outboxes (the callers consumed them). */
  get flushed(): boolean {
    return this.busyOutboxes === 0;
  }

  /**
   * The loop has nothing left to do but calls are pending: their promises can never settle.
   * Answers each with NeverSettledError. Returns whether any call was answered.
   */
  private answerNeverSettled(): boolean {
    let any = false;
    for (const conn of this.connections) {
      for (const [id, call] of conn.inflight) {
        if (call.abandoned && !call.viaPort) continue;
        call.abandoned = true;
        any = true;
        call.context.abort(new NeverSettledError('the loop thread went idle'));
        this.reply(
          conn,
          id,
          call.viaPort,
          false,
          new NeverSettledError(
            'the call can never settle: the loop thread went idle with its promise still pending ' +
              '(it awaits something that nothing will resolve)',
          ),
        );
      }
    }
    return any;
  }

  /** From now on every call is answered with ClosedError (the loop thread is about to end). */
  refuseCalls(): void {
    if (this.state === 'running') this.state = 'closing';
  }

  /**
   * Final: marks every connection with `state` and stops keeping the loop alive. A dying thread
   * first sends each connection its last words (exit code, uncaught error), which a caller reads
   * from its port whether it is blocked or awaiting.
   */
  shutDown(state: HostState.Closed | HostState.Crashed, exitCode = 0, error?: unknown): void {
    this.state = 'closed';
    this.keepAlive.dispose();
    for (const conn of this.connections) {
      if (state === HostState.Crashed) {
        const w = portWriter();
        writeDied(w, exitCode, error);
        const [p, transfer] = packet(w);
        conn.port.postMessage(p, transfer);
      }
      conn.line.announce(state, exitCode);
      conn.port.close();
    }
  }
}

function abortReason(reason: CancelReason): Error {
  return reason === 'timeout'
    ? new TimeoutError('the caller timed out waiting for this call')
    : new CancelledError('the caller cancelled this call');
}
