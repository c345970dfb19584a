/**
 * What both halves of a client share (see BlockingCalls and AsyncCalls): the connection's line and
 * port, call ids, why calls fail once they do, the serving thread's liveness, the references each
 * side lent the other, and the inline sources already sent on each channel.
 */
import { threadId, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Revive } from '../codec/decode.js';
import type { Writer } from '../codec/writer.js';
import type { CancelKind } from '../call/run.js';
import { SourceIds, TargetKind, type Target } from '../call/target.js';
import { ClosedError, DeadlockError, ProtocolError } from '../errors.js';
import { stoppedUnexpectedly } from '../stopped.js';
import { BulkInbox, type BulkPacket } from '../protocol/bulk.js';
import { HostState, type Line } from '../protocol/line.js';
import { CallCounter } from '../observe/call-stats.js';
import { beginWait, endWait } from '../shm/wait-for.js';
import { Lender, performRefOp } from './lender.js';
import {
  postOn,
  writeCall,
  writeCancel,
  writeRelease,
  type DiedNotice,
  type MessageKind,
  type PortPacket,
  type Request,
} from './messages.js';
import { stubInfo } from './proxy.js';
import { Remotes, type Peer } from './remote.js';

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
  /**
   * Runs before the line's state is read to judge the serving side (a LoopThread's connection
   * copies there the end its owner told: see EndWord).
   */
  beforeCheck?: () => void;
}

/** Which way a request goes: through the blocking mailbox, or by the port. */
export const enum Channel {
  Blocking = 0,
  Port = 1,
}

export type CallMessage = Extract<Request, { kind: MessageKind.Call }>;

/** How long a blocked caller sleeps between checks that the serving thread is still there. */
const DEFAULT_SLICE_MS = 20;

export class ClientCore {
  /** The last call id taken; both channels take theirs from here, so a reply's id is never ambiguous. */
  nextId = 0;
  /** The id of the last request sent (an idle notice from before the host read it is stale). */
  lastSent = 0;
  failure: Error | undefined;
  /** The serving thread's last words, once they came. */
  died: DiedNotice | undefined;
  /** Reading a closed port crashes some Node versions: once closed, it is not read again. */
  portClosed = false;
  /** What this thread lent the other side (callbacks, objects passed by reference). */
  readonly lender = new Lender();
  readonly remotes: Remotes;
  readonly reviveSync: Revive;
  readonly reviveAsync: Revive;
  /** Handles what comes by the port (set by the client: the async half reads it). */
  receive: (p: PortPacket | BulkPacket) => void = () => undefined;
  /** Blocking replies too large for the slot, come by the port ahead of their markers (see bulk.ts). */
  readonly bulk = new BulkInbox();
  private readonly sourceIds = new SourceIds();
  /** Which inline sources each channel has already sent. */
  private readonly sentSources: [Set<number>, Set<number>] = [new Set(), new Set()];
  /** Pairs (id, count) of references dropped here, not yet told to the other side. */
  private released: number[] = [];
  /** This side's count of its calls (LoopThread.stats()). */
  readonly stats: CallCounter;
  /** Where arguments go, as a DataCloneError says it (made once, not per call). */
  private readonly toThread: string;

  constructor(
    readonly line: Line,
    readonly port: MessagePort,
    readonly name: string,
    readonly hostThreadId: number,
    readonly hooks: ClientHooks,
    peer: Peer,
  ) {
    this.remotes = new Remotes(peer, this.lender);
    this.stats = new CallCounter(name, hostThreadId);
    this.toThread = `to the thread of ${name}`;
    this.reviveSync = (d) => this.remotes.revive(d, 'sync', this.lender);
    this.reviveAsync = (d) => this.remotes.revive(d, 'async', this.lender);
  }

  /** Why the serving side is gone, from what it left: its state, exit code and last words. */
  goneError(): Error {
    this.hooks.beforeCheck?.();
    const state = this.line.state;
    if (state === HostState.Closed) return new ClosedError(`${this.name} is closed`);
    // Last words on a line never served: its serving side refused the line itself (see PortalHost.accept).
    if (state === HostState.Refused || (state === HostState.Starting && this.died !== undefined)) {
      return this.refusedError();
    }
    if (state !== HostState.Crashed) {
      return stoppedUnexpectedly(
        this.name,
        undefined,
        undefined,
        ': its thread ended without a word (terminated, or out of memory)',
      );
    }
    if (this.died === undefined) this.pump();
    const exitCode = this.died?.exitCode ?? this.line.exitCode;
    const cause = this.died?.error;
    // Without last words the line's exit code is all there is; it need not come from process.exit.
    const how = cause === undefined ? ` (exit code ${String(exitCode)})` : undefined;
    return stoppedUnexpectedly(this.name, cause, exitCode, how);
  }

  /** The host ended this connection for a malformed message of ours: what it said (a ProtocolError). */
  private refusedError(): Error {
    if (this.died === undefined) this.pump();
    const said = this.died?.error;
    return said instanceof ProtocolError
      ? new ProtocolError(`${this.name}: ${said.message}`)
      : new ProtocolError(`${this.name} closed this connection for a malformed message`);
  }

  /** Reads what waits on the port (a blocked thread receives nothing otherwise). */
  pump(): void {
    if (this.portClosed) return;
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      this.receive(m.message as PortPacket | BulkPacket);
      if (this.portClosed) return;
    }
  }

  /**
   * Checked between the sleep slices of every blocking wait: throws once the serving side is gone
   * (this is where a blocked caller wakes on a crash); returns how long to sleep next.
   */
  checkAlive = (): number => {
    if (this.failure !== undefined) throw this.failure;
    this.hooks.beforeCheck?.();
    const state = this.line.state;
    if (state === HostState.Crashed) {
      this.hooks.probe?.();
      throw this.failure ?? this.goneError();
    }
    if (state === HostState.Closed) throw new ClosedError(`${this.name} is closed`);
    if (state === HostState.Refused) throw this.refusedError();
    return this.hooks.probe?.() ?? DEFAULT_SLICE_MS;
  };

  /** Refuses to block when blocking could never end: failed, or on the very thread that serves. */
  guard(): void {
    if (this.failure !== undefined) throw this.failure;
    if (threadId === this.hostThreadId) {
      throw new DeadlockError(
        `a blocking call into ${this.name} was made from the thread that serves it: it could never be answered`,
      );
    }
  }

  /** Runs a blocking wait, registered in the wait-for table (deadlock detection) meanwhile. */
  blocked<T>(wait: () => T): T {
    const previous = beginWait(this.hostThreadId, this.describeThread);
    try {
      return wait();
    } finally {
      endWait(previous);
    }
  }

  private describeThread = (t: number): string =>
    t === this.hostThreadId
      ? `thread ${t} (${this.name})`
      : t === threadId
        ? `thread ${t} (this thread)`
        : `thread ${t}`;

  /** Posts a message; false if it could not go (the other side is gone and waits for nothing). */
  post(write: (w: Writer) => void): boolean {
    try {
      postOn(this.port, write);
      return true;
    } catch {
      return false;
    }
  }

  cancelRemote(id: number, reason: CancelKind): void {
    this.post((w) => {
      writeCancel(w, id, reason);
    });
  }

  /** Proxies of ours were dropped; told to the other side with the next message, or soon. */
  release(id: number, count: number): void {
    if (this.failure !== undefined) return;
    this.released.push(id, count);
    if (this.released.length === 2) queueMicrotask(this.flushReleases);
  }

  flushReleases = (): void => {
    if (this.released.length === 0 || this.failure !== undefined) return;
    const released = this.released;
    this.released = [];
    this.post((w) => {
      writeRelease(w, released);
    });
  };

  /** The target of `fn`: a stub's own, or its inline source (sent once per channel). */
  target(fn: unknown, channel: Channel): Target {
    const stub = stubInfo(fn);
    if (stub !== undefined) {
      if (stub.owner !== this) throw new TypeError('this function belongs to another LoopThread or connection');
      return stub.target;
    }
    const { id, source } = this.sourceIds.inline(fn, 'importSync()/import()');
    return this.sentSources[channel].has(id) ? [TargetKind.Inline, id, undefined] : [TargetKind.Inline, id, source];
  }

  /** Writes a call; once written, its inline source (if any) is known on the other side. */
  writeCall(channel: Channel, w: Writer, id: number, target: Target, args: unknown[]): void {
    writeCall(w, id, target, args, this.toThread, this.remotes.lending);
    const inner = target[0] === TargetKind.Enter ? target[1] : target;
    if (inner[0] === TargetKind.Inline && inner[2] !== undefined) this.sentSources[channel].add(inner[1]);
  }

  /** Runs a call the other side made on an object this thread lent it (a callback). */
  perform(m: CallMessage): unknown {
    const t = m.target;
    if (t[0] !== TargetKind.Lent)
      throw new TypeError('only objects this thread lent can be called from the other side');
    const [, refId, op, key, n] = t;
    return performRefOp(this.lender, refId, op, key, n, m.args);
  }
}
