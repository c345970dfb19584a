/**
 * The calling side of a connection: blocking calls through the shared-memory mailboxes
 * (BlockingCalls), async calls through the MessagePort (AsyncCalls), both answered by call id.
 * Every wait checks that the serving side is still alive (ClientCore), so no caller blocks forever.
 */
import type { MessagePort } from 'node:worker_threads';
import { TargetKind, normalizeSpecifier, type Target } from '../call/target.js';
import { ProtocolError } from '../errors.js';
import { Future } from '../future.js';
import { isBulk, type BulkPacket } from '../protocol/bulk.js';
import { Line } from '../protocol/line.js';
import { AsyncCalls } from './client-async.js';
import { BlockingCalls, type CallOptions } from './client-blocking.js';
import { Channel, ClientCore, type ClientHooks } from './client-core.js';
import type { ExportShape } from './exports.js';
import { writeClose, writeImport, type LineMessage, type PortPacket } from './messages.js';
import { buildProxy } from './proxy.js';
import type { CallCounter } from '../observe/call-stats.js';
import type { Peer } from './remote.js';

export type { CallOptions } from './client-blocking.js';
export type { ClientHooks } from './client-core.js';

type Api = (...args: never[]) => unknown;

/** Ports connected on this thread: a handle is one connection, and two clients on one port would mix their replies. */
const claimed = new WeakSet<MessagePort>();

/**
 * The line of a connection made from a handle: made by the connecting thread and sent first on
 * the handle's port, so that a handle never connected costs its serving side no line.
 */
export function openLine(port: MessagePort, capacity?: number): Line {
  refuseClaimed(port);
  const line = Line.create(capacity);
  const first: LineMessage = { line: line.sab };
  port.postMessage(first);
  return line;
}

function refuseClaimed(port: MessagePort): void {
  if (claimed.has(port)) {
    throw new TypeError('this handle is already connected: make one handle per thread (createHandle())');
  }
}

export class PortalClient implements Peer {
  private readonly core: ClientCore;
  private readonly blocking: BlockingCalls;
  private readonly async: AsyncCalls;

  constructor(line: Line, port: MessagePort, name: string, hostThreadId: number, hooks: ClientHooks = {}) {
    refuseClaimed(port);
    claimed.add(port);
    this.core = new ClientCore(line, port, name, hostThreadId, hooks, this);
    this.blocking = new BlockingCalls(this.core);
    this.async = new AsyncCalls(this.core);
    const receive = (p: PortPacket | BulkPacket): void => {
      try {
        if (isBulk(p)) this.core.bulk.add(p);
        else this.async.onPortMessage(p);
      } catch (error) {
        // Not loopthread's protocol: this connection can no longer be trusted to mean anything.
        this.core.portClosed = true;
        const why = error instanceof Error ? error.message : String(error);
        this.disconnect(new ProtocolError(`${name} sent a malformed message: ${why}`));
      }
    };
    this.core.receive = receive;
    port.on('message', receive);
    // The serving side closed this connection or its thread is gone: nothing will answer now.
    port.on('close', () => {
      this.core.portClosed = true;
      if (hooks.onPortClosed !== undefined) hooks.onPortClosed();
      else this.fail(this.core.goneError());
    });
    port.unref();
  }

  get name(): string {
    return this.core.name;
  }

  /** This side's count of its calls. */
  get stats(): CallCounter {
    return this.core.stats;
  }

  /** Why calls fail now, if they do. */
  get closedError(): Error | undefined {
    return this.core.failure;
  }

  /** From now on every call fails with `error`; every async call still waiting is rejected with it. */
  fail(error: Error): void {
    const core = this.core;
    core.failure ??= error;
    core.lender.clear();
    core.pump();
    this.async.failAll(core.failure);
    core.hooks.onBusy?.(false);
  }

  /** Ends this connection from this side: calls fail with `error`, and the port closes. */
  disconnect(error: Error): void {
    this.fail(error);
    this.core.portClosed = true;
    this.core.port.close();
  }

  // ---- blocking calls -------------------------------------------------------------------------

  callSync(fn: unknown, args: unknown[], options: CallOptions, api: Api): unknown {
    return this.invokeSync(this.core.target(fn, Channel.Blocking), args, options, api);
  }

  /** Enters the resource `fn(...args)` resolves to on the other side (see LoopThread.enterSync). */
  enterSync(fn: unknown, args: unknown[], exit: string | null, options: CallOptions, api: Api): unknown {
    return this.invokeSync([TargetKind.Enter, this.core.target(fn, Channel.Blocking), exit], args, options, api);
  }

  /** A blocking call of a target (its inline source, if any, is sent once); `marker` starts the caller's stack. */
  invokeSync(target: Target, args: unknown[], options: CallOptions, marker: Api): unknown {
    const began = this.core.stats.clock();
    const traced = this.core.stats.start(true);
    try {
      const value = this.blocking.roundTrip(
        (w, id) => {
          this.core.writeCall(Channel.Blocking, w, id, target, args);
        },
        options,
        marker,
      );
      this.core.stats.end(began, traced);
      return value;
    } catch (error) {
      this.core.stats.fail(began, traced, error);
      throw error;
    }
  }

  importSync(specifier: string | URL, options: CallOptions, api: Api): object {
    // `api` marks the caller's frames for an error of the import itself; calls use their stubs.
    const spec = normalizeSpecifier(specifier);
    const [moduleId, shape] = this.blocking.roundTrip(
      (w, id) => {
        writeImport(w, id, spec);
      },
      options,
      api,
    ) as [number, Record<string, ExportShape>];
    // The stub itself marks where the caller's frames start in a stitched error stack.
    return buildProxy(shape, moduleId, this.core, (target, args, stub) => this.invokeSync(target, args, options, stub));
  }

  /**
   * Asks the host to close; blocks until it has or the deadline passed. A failure is not thrown:
   * the owner stops the thread either way.
   */
  closeSync(timeout: number, deadline: number): void {
    try {
      this.blocking.roundTrip(
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

  call<T>(fn: unknown, args: unknown[], options: CallOptions): Future<T> {
    return this.sendCall<T>(() => this.core.target(fn, Channel.Port), args, options);
  }

  /** Enters a resource without blocking (see LoopThread.enter). */
  enter<T>(fn: unknown, args: unknown[], exit: string | null, options: CallOptions): Future<T> {
    return this.sendCall<T>(() => [TargetKind.Enter, this.core.target(fn, Channel.Port), exit], args, options);
  }

  /** A non-blocking call of a known target. */
  invoke<T>(target: Target, args: unknown[], options: CallOptions): Future<T> {
    const began = this.core.stats.clock();
    const traced = this.core.stats.start(false);
    const future = this.async.send<T>((w, id) => {
      this.core.writeCall(Channel.Port, w, id, target, args);
    }, options);
    future.addDoneCallback(() => {
      const error = errorOf(future);
      if (error === undefined) this.core.stats.end(began, traced);
      else this.core.stats.fail(began, traced, error);
    });
    return future;
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
    return this.invoke<T>(target, args, options);
  }

  async import(specifier: string | URL, options: CallOptions): Promise<object> {
    const spec = normalizeSpecifier(specifier);
    const [moduleId, shape] = await this.async.send<[number, Record<string, ExportShape>]>((w, id) => {
      writeImport(w, id, spec);
    }, options);
    return buildProxy(shape, moduleId, this.core, (target, args) => this.invoke(target, args, options));
  }

  closeAsync(timeout: number): Future<unknown> {
    return this.async.send((w, id) => {
      writeClose(w, id, timeout);
    }, {});
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
    this.core.release(id, count);
  }
}

/** A done future's error (a cancelled one's CancelledError, which exceptionSync throws), or undefined. */
function errorOf<T>(future: Future<T>): unknown {
  try {
    return future.exceptionSync();
  } catch (error) {
    return error;
  }
}
