/**
 * One connection a host serves: the calls it has in flight, the callbacks this thread made into
 * the calling thread, what it lent that thread, and the state of its blocking channel.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Revive } from '../codec/decode.js';
import type { Lending } from '../codec/encode.js';
import type { Writer } from '../codec/writer.js';
import type { CallContext } from '../call/context.js';
import type { CancelKind } from '../call/run.js';
import type { Fn, Target } from '../call/target.js';
import { ASYNC_SEQ, type Line } from '../protocol/line.js';
import { BulkInbox } from '../protocol/bulk.js';
import { SpinPolicy } from '../shm/spin-policy.js';
import type { Lender } from './lender.js';
import { postOn, writeCall, writeRelease } from './messages.js';
import { Outbox } from './outbox.js';
import type { Peer, Remotes } from './remote.js';

/* eslint-disable @typescript-eslint/no-require-imports -- loaded on first use, not at start-up (see ARCHITECTURE.md) */
const lender = () => require('./lender.js') as typeof import('./lender.js');
const remote = () => require('./remote.js') as typeof import('./remote.js');
/* eslint-enable @typescript-eslint/no-require-imports */

export interface InFlight {
  readonly context: CallContext;
  /** The caller gave up (timeout or cancel): a blocking caller no longer reads a reply. */
  abandoned: boolean;
  readonly viaPort: boolean;
}

/** A call this thread made on a function the caller lent it (a callback), waiting for its answer. */
export interface Callback {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** The caller's blocking call it was sent through, or 0 (sent by the port). */
  readonly outer: number;
}

export class HostConnection implements Peer {
  readonly inflight = new Map<number, InFlight>();
  private lent: Lender | undefined;
  private proxies: Remotes | undefined;
  /**
   * What replies and callbacks are encoded with. The lending code (lender.ts, remote.ts) is
   * loaded when the first object is lent or received, not when the thread starts: most calls
   * send only data, and a LoopThread's start-up is mostly loading its files.
   */
  readonly lending: Lending = { lend: (value) => this.remotes.lending.lend(value) };
  readonly revive: Revive = (d) => this.remotes.revive(d, 'async', this.lender);
  readonly callbacks = new Map<number, Callback>();
  private nextCallbackId = 0;
  private released: number[] = [];
  readonly name = 'the calling thread';
  /** Calls cancelled before their request was read (the cancel came first, by the port). */
  readonly precancelled = new Map<number, CancelKind>();
  /** Inline functions compiled for this connection, per channel (the two channels are not ordered). */
  readonly sources: [Map<number, Fn | Error>, Map<number, Fn | Error>] = [
    new Map<number, Fn | Error>(),
    new Map<number, Fn | Error>(),
  ];
  readonly outbox: Outbox;
  /** Blocking requests too large for the slot, come by the port ahead of their markers (see bulk.ts). */
  readonly bulk = new BulkInbox();
  seenRequest = 0;
  chained = 0;
  readonly spin = new SpinPolicy();
  /** A blocking reply went out since the last request was taken. */
  replied = false;
  /** How long this thread spun for the next request after that reply (ms). */
  spun = 0;
  /** When its caller last posted to this thread (performance.now()): see PortalHost.othersCalling. */
  heardAt = -Infinity;
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

  /** Objects lent to the caller: results and arguments that are not plain data. */
  get lender(): Lender {
    return (this.lent ??= new (lender().Lender)());
  }

  /** The proxies of what the caller lent this thread. */
  get remotes(): Remotes {
    return (this.proxies ??= new (remote().Remotes)(this, this.lender));
  }

  /** Whether anything was ever lent to the caller (without loading the lending code). */
  get hasLent(): boolean {
    return this.lent !== undefined;
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
    const outer = this.blockedIn();
    return new Promise((resolve, reject) => {
      const write = (w: Writer): void => {
        writeCall(w, id, target, args, 'to the calling thread', this.lending, outer);
      };
      try {
        if (outer !== 0) this.outbox.send(write, outer);
        else this.post(write);
      } catch (error) {
        reject(error);
        return;
      }
      this.callbacks.set(id, { resolve, reject, outer });
    });
  }

  /** The blocking call the caller waits in (the innermost, if a callback of it called again), or 0. */
  blockedIn(): number {
    let outer = 0;
    for (const [callId, call] of this.inflight) if (!call.viaPort && !call.abandoned) outer = Math.max(outer, callId);
    return outer;
  }

  /** Sends a message by the port, waking the caller if it waits for a Future. */
  post(write: (w: Writer) => void): void {
    postOn(this.port, write);
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
