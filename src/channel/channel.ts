/**
 * Channel: a queue shared by threads, with blocking ends (putSync, getSync, iterateSync) for worker
 * threads and sync code, and async ends (put, get, for await) that never block a loop. Any number
 * of threads put and get. The queue lives in one SharedArrayBuffer (see layout.ts and ring.ts);
 * values cross by copy through the codec, or as raw bytes in bytes mode. Each Channel object is a
 * connection, counted so that a waiter learns when nobody is left on the other side
 * (connections.ts).
 */
import { isMainThread, type MessagePort } from 'node:worker_threads';
import { decodeValue } from '../codec/decode.js';
import { encodeOrExplain, encodeValue } from '../codec/encode.js';
import { Tag } from '../codec/tags.js';
import { Reader, Writer, readString, stringBytes, writeShortString } from '../codec/writer.js';
import { CancelledError, ClosedError, DeadlockError, DisconnectedError, TimeoutError } from '../errors.js';
import { graceOf, type CloseOptions } from '../lifecycle.js';
import {
  BOTH,
  type ChannelRole,
  type Connection,
  GET,
  PUT,
  type Reservation,
  claim,
  endConnection,
  makeReservation,
  open,
  pin,
  roleBits,
  roleName,
} from './connections.js';
import { holdLoop, releaseLoop } from '../shm/keep-alive.js';
import { sleepOn, sleepOnAsync } from '../shm/wait.js';
import { now as sharedNow, observeWake, SpinPolicy } from '../shm/spin-policy.js';
import {
  BYTES,
  BYTES_OUT,
  CAPACITY,
  CLOSED_NOW,
  DONE_SEQ,
  GETTERS,
  GET_WAITERS,
  HEADER_WORDS,
  MODE,
  OPEN,
  PUTTERS,
  PUT_SEQ,
  PUT_WAITERS,
  RING_BYTES,
  SLEEPER,
  STATE,
  UNFINISHED,
  VALUES,
} from './layout.js';
import { EMPTY, ENDED, PutResult, Ring, recordBytes } from './ring.js';

export interface ChannelOptions {
  /** The most items the channel holds; a put waits while it is full. Default: no limit but bufferSize. */
  capacity?: number;
  /** Bytes of shared memory for the items (encoded, 4 bytes of header each). Default 1 MiB. */
  bufferSize?: number;
  /** Bytes mode: items are Uint8Arrays, copied as they are (no encoding). */
  bytes?: boolean;
  /** Allow the blocking methods on the main thread of this process (they freeze its event loop). */
  allowBlockingMainThread?: boolean;
  /**
   * What this connection does: 'put', 'get' or 'both' (default). Getters of an empty channel fail
   * with DisconnectedError once no connection that may put is left, and putters of a full one once
   * none that may get is left: give a connection that never puts the role 'get' (and one that never
   * gets 'put').
   */
  role?: ChannelRole;
}

export interface ChannelConnectOptions {
  /** Allow the blocking methods on the main thread of this process (they freeze its event loop). */
  allowBlockingMainThread?: boolean;
}

/**
 * What a thread needs to connect to a channel; send it with postMessage or workerData. A handle from
 * createHandle() has a `port`, to list in the transferList, and serves one connection.
 */
export interface ChannelHandle {
  readonly kind: 'loopthread.channel';
  readonly buffer: SharedArrayBuffer;
  /** On handles from createHandle(): list it in the transferList. */
  readonly port?: MessagePort;
  /** @internal */
  readonly slot?: SharedArrayBuffer;
  /** @internal */
  readonly maker?: SharedArrayBuffer;
}

export interface ChannelWaitOptions {
  /** Aborting it rejects the wait with CancelledError (whose cause is the signal's reason). */
  signal?: AbortSignal | undefined;
  /** Milliseconds to wait at most; then a TimeoutError. 0 means do not wait. */
  timeout?: number | undefined;
}

export interface ChannelSyncOptions {
  /** Milliseconds to block at most; then a TimeoutError. 0 means do not wait. */
  timeout?: number | undefined;
  /** Allow this call to block the main thread (see ChannelOptions.allowBlockingMainThread). */
  allowBlockingMainThread?: boolean | undefined;
  /** @deprecated The name of allowBlockingMainThread for one call in 0.1. */
  allowMainThread?: boolean | undefined;
}

export interface ChannelPutOptions {
  /**
   * ArrayBuffers to hand over as postMessage does: after the put they are detached here. Their
   * bytes are still copied once into shared memory (nothing else can cross it).
   */
  transfer?: readonly ArrayBuffer[] | undefined;
}

export type TryGetResult<T> = { ok: true; value: T } | { ok: false };

/**
 * `grace`: ms that getters may go on draining the items left before they are dropped (0: drop
 * them now); none by default: the items stay for the getters. `signal`: aborting it drops them.
 */
export interface ChannelCloseOptions extends CloseOptions {
  /** Allow closeSync() with a grace period to block the main thread. */
  allowBlockingMainThread?: boolean | undefined;
  /** @deprecated 0.1's way to drop the items left: `{ grace: 0 }`. */
  immediate?: boolean | undefined;
}

const DEFAULT_BUFFER = 1 << 20;
const MAX_BUFFER = 1 << 30;
const NO_LIMIT = 0x7fffffff;
/** No waiter count to keep and no sleep flag (join: taskDone and close always notify). */
const NONE = -1;
/** Blocking sleeps are cut in slices this long (a wake-up is never needed, but costs nothing). */
const SLICE_MS = 1000;
/**
 * While spinning, a waiter looks at the other side's counter once a microsecond, not in a tight
 * loop: each look pulls the cache line that the other side writes on every item away from it, and
 * looking less often lets items gather into batches.
 */
const POLL_MS = 0.001;

/** Buffers reused for encoding, one per thread (a nested put, from a getter on a value, takes a new one). */
let scratch: Buffer | undefined = Buffer.allocUnsafeSlow(4096);
/** Where the fast path encodes a short string or a number (no user code runs meanwhile). */
const small = Buffer.allocUnsafeSlow(64);
const RESOLVED = Promise.resolve();
/** What #get() returns, beside a length, EMPTY and ENDED, when nobody is left to put. */
const GONE = -3;
/** The length of what the last #encode() wrote (the array it returns may be longer). */
let encodedLength = 0;

/** Channel.connect() passes this to the constructor. */
class Attach {
  constructor(
    readonly handle: ChannelHandle,
    readonly options: ChannelConnectOptions,
  ) {}
}

/**
 * Iterations take up to this many items at a time, in one lock, and hand them out one by one.
 * Those items have left the ring (no other getter can take them), but their room has not: `size`,
 * the capacity and the buffer count each of them until it is handed out, as if it were still in
 * the channel (ring.ts, getBatch and release). So an iteration stopped early (break, throw: the
 * iterator's return()) can always put the ones it did not hand out back in front of the ring, in
 * order (#giveBack): producers cannot have filled their room meanwhile. An item's room is freed as
 * it is handed out, as a get frees it, so that back-pressure is exactly that of getting one by one.
 * A thread that dies mid-iteration takes the items it had not handed out with it, as a consumer
 * that dies holding one item takes that one, and their room stays taken: at most this batch, a
 * quarter of the capacity and a quarter of the buffer (getBatch), and nothing else is affected.
 */
const BATCH = 32;
/**
 * With a small capacity an iteration takes fewer ahead (none below 8), so that back-pressure stays
 * tight; in bytes mode none (an item would be copied twice, and a lock is little beside a big copy).
 */
const batchFor = (capacity: number): number => Math.min(BATCH, capacity >> 2);

/** Decodes the value whose `n` bytes start at `pos` in `buf`. */
function decodeAt(buf: Buffer, pos: number, n: number): unknown {
  const tag = buf[pos];
  if (tag === Tag.String && n === 5 + stringBytes(buf, pos + 1)) return readString(buf, pos + 1);
  if (tag === Tag.Int32 && n === 5) return buf.readInt32LE(pos + 1);
  return decodeValue(new Reader(buf, pos, pos + n));
}

function checkTimeout(timeout: number | undefined): number {
  if (timeout === undefined) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
    throw new TypeError(`timeout must be a number of milliseconds >= 0, got ${String(timeout)}`);
  }
  return performance.now() + timeout;
}

/** The grace of a channel's close: undefined (the items stay), 0 (dropped now) or ms of draining. */
function closeGrace(options: ChannelCloseOptions & { signal?: AbortSignal | undefined }): number | undefined {
  /* eslint-disable @typescript-eslint/no-deprecated -- the 0.1 aliases still work */
  if (options.immediate === true) return 0;
  if (options.grace === undefined && options.timeout === undefined && options.signal === undefined) return undefined;
  /* eslint-enable @typescript-eslint/no-deprecated */
  return graceOf(options, Infinity);
}

function cancelled(signal: AbortSignal): CancelledError {
  return new CancelledError('the channel operation was cancelled', { cause: signal.reason });
}

export class Channel<T = unknown> implements AsyncIterable<T> {
  readonly #ring: Ring;
  readonly #words: Int32Array;
  /** How long this connection's blocking waits spin before they sleep. */
  readonly #spin = new SpinPolicy();
  readonly #bytes: boolean;
  readonly #allowMain: boolean;
  readonly #handle: ChannelHandle;
  /** This object's connection (connections.ts), its role (PUT, GET or BOTH) and what it may still do. */
  readonly #conn: Connection;
  readonly #role: number;
  #mayPut: boolean;
  #mayGet: boolean;
  #ended = false;
  /** True once `handle`, which connects without being counted, was read (connections.ts, pin). */
  #pinned = false;
  /** The item the last #take() took. */
  #got: T | undefined;
  /** Iterations take up to this many items in one lock (see #takeMany). */
  readonly #batchMax: number;
  /** The lengths of the batch's records, whose bytes lie one after another in the ring's `out`. */
  readonly #batchLens = new Int32Array(BATCH);
  #batchAt = 0;
  #batchEnd = 0;
  #batchPos = 0;
  #closed: Promise<void> | undefined;

  constructor(options: ChannelOptions = {}) {
    if (options instanceof Attach) {
      const handle = options.handle;
      this.#handle = Object.freeze({ kind: 'loopthread.channel', buffer: handle.buffer });
      this.#ring = new Ring(handle.buffer);
      this.#words = this.#ring.words;
      this.#bytes = Atomics.load(this.#words, MODE) === BYTES;
      this.#allowMain = options.options.allowBlockingMainThread === true;
      this.#batchMax = this.#bytes ? 1 : batchFor(Atomics.load(this.#words, CAPACITY));
      if (handle.port === undefined && handle.slot === undefined) {
        // The handle of 0.1 (`handle`): counted from now, as a connection that may do both.
        this.#role = BOTH;
        this.#conn = open(this, this.#words, BOTH);
      } else {
        const { c, role } = claim(this, this.#words, handle as ChannelHandle & Reservation);
        this.#role = role;
        this.#conn = c;
      }
      this.#mayPut = (this.#role & PUT) !== 0;
      this.#mayGet = (this.#role & GET) !== 0;
      return;
    }
    const role = roleBits(options.role ?? 'both');
    const capacity = options.capacity ?? NO_LIMIT;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > NO_LIMIT) {
      throw new RangeError(`capacity must be an integer from 1 to ${NO_LIMIT}, got ${String(capacity)}`);
    }
    const requested = options.bufferSize ?? DEFAULT_BUFFER;
    if (!Number.isInteger(requested) || requested < 16 || requested > MAX_BUFFER) {
      throw new RangeError(`bufferSize must be an integer from 16 to ${MAX_BUFFER}, got ${String(requested)}`);
    }
    const size = (requested + 3) & ~3;
    const buffer = new SharedArrayBuffer(HEADER_WORDS * 4 + size);
    const words = new Int32Array(buffer, 0, HEADER_WORDS);
    words[CAPACITY] = capacity;
    words[RING_BYTES] = size;
    words[MODE] = options.bytes === true ? BYTES : VALUES;
    this.#handle = Object.freeze({ kind: 'loopthread.channel', buffer });
    this.#ring = new Ring(buffer);
    this.#words = this.#ring.words;
    this.#bytes = options.bytes === true;
    this.#allowMain = options.allowBlockingMainThread === true;
    this.#batchMax = this.#bytes ? 1 : batchFor(capacity);
    this.#role = role;
    this.#mayPut = (role & PUT) !== 0;
    this.#mayGet = (role & GET) !== 0;
    this.#conn = open(this, words, role);
  }

  /**
   * Connects to a channel from a handle made by createHandle() in any thread (this one too), which
   * serves one connection; or from `handle`.
   */
  static connect<T = unknown>(handle: ChannelHandle, options: ChannelConnectOptions = {}): Channel<T> {
    const buffer = (handle as Partial<ChannelHandle> | null)?.buffer;
    if (
      handle?.kind !== 'loopthread.channel' ||
      !(buffer instanceof SharedArrayBuffer) ||
      buffer.byteLength < HEADER_WORDS * 4
    ) {
      throw new TypeError('Channel.connect() needs the handle of a Channel (channel.createHandle())');
    }
    return new Channel<T>(new Attach(handle, options) as ChannelOptions);
  }

  /**
   * A handle for one connection, in another thread or this one: send it with `transferList:
   * [handle.port]` and call Channel.connect() there. The connection counts from now on (so that a
   * waiter is not told that nobody is left before it has connected) until it ends; `role` says
   * what it does (default 'both').
   */
  createHandle(options: { role?: ChannelRole } = {}): ChannelHandle & { readonly port: MessagePort } {
    if (this.#ended) throw this.#endedError();
    const role = roleBits(options.role ?? 'both');
    return Object.freeze({
      kind: 'loopthread.channel',
      buffer: this.#handle.buffer,
      ...makeReservation(this.#conn, role),
    });
  }

  /**
   * @deprecated The handle of loopthread 0.1, for any number of threads: connections made with it
   * count only once connected, and any thread may connect with it at any time, so once it has been
   * read this channel never reports that nobody is left (DisconnectedError). Use createHandle().
   */
  get handle(): ChannelHandle {
    if (!this.#pinned) {
      this.#pinned = true;
      pin(this.#words);
    }
    return this.#handle;
  }

  /** @deprecated What to pass as transferList beside the deprecated `handle`: nothing. */
  get transferList(): [] {
    return [];
  }

  /**
   * Ends this connection only (the channel stays open for the others): it no longer counts as one
   * that may put or get, and its methods throw ClosedError. Items an iteration of it took ahead go
   * back first. Idempotent. A connection also ends when its thread exits, or when this object is
   * garbage-collected.
   */
  disconnect(): void {
    if (this.#ended) return;
    this.#giveBack();
    this.#ended = true;
    this.#mayPut = this.#mayGet = false;
    endConnection(this.#conn);
  }

  /**
   * Items in the channel now: put and not yet got. Items an iteration took ahead count until it
   * hands them out (as they count against the capacity and the buffer: BATCH).
   */
  get size(): number {
    return this.#ring.count;
  }

  /** The most items the channel holds. */
  get capacity(): number {
    return Atomics.load(this.#words, CAPACITY);
  }

  /** Bytes of shared memory for items; one item may take all but 4 of them. */
  get bufferSize(): number {
    return this.#ring.size;
  }

  /** True once the channel was closed, by any thread. */
  get isClosed(): boolean {
    return Atomics.load(this.#words, STATE) !== OPEN;
  }

  /**
   * Resolves once the channel is closed, by any thread (what is left in it may still be got).
   * Never rejects, and does not keep the event loop alive.
   */
  get closed(): Promise<void> {
    this.#closed ??= this.#whenClosed();
    return this.#closed;
  }

  async #whenClosed(): Promise<void> {
    // Close notifies the state word (ring.ts, #moveAll).
    while (Atomics.load(this.#words, STATE) === OPEN) {
      const waited = Atomics.waitAsync(this.#words, STATE, OPEN);
      if (waited.async) await waited.value;
    }
  }

  /** Items put and not yet marked done with taskDone(). */
  get unfinished(): number {
    return Atomics.load(this.#words, UNFINISHED);
  }

  // ---- encoding ----

  /** Encodes `value`: the bytes are the first `encodedLength` of the array returned. */
  #encode(value: T): Uint8Array {
    let bytes: Uint8Array;
    if (!this.#bytes) {
      // Fast paths for what most channels carry, without a Writer: short strings and numbers.
      if (typeof value === 'string') {
        small[0] = Tag.String;
        const end = writeShortString(small, 1, value);
        if (end >= 0) return this.#fits(small, end);
      } else if (typeof value === 'number') {
        if ((value | 0) === value && !Object.is(value, -0)) {
          small[0] = Tag.Int32;
          small.writeInt32LE(value, 1);
          return this.#fits(small, 5);
        }
        small[0] = Tag.Float64;
        small.writeDoubleLE(value, 1);
        return this.#fits(small, 9);
      }
    }
    if (this.#bytes) {
      if (!(value instanceof Uint8Array)) {
        throw new TypeError(`a channel in bytes mode takes Uint8Arrays, got ${typeof value}`);
      }
      bytes = value;
    } else {
      const target = scratch ?? Buffer.allocUnsafeSlow(256);
      scratch = undefined;
      const w = new Writer(target, 0);
      try {
        encodeOrExplain('the item', 'into a channel', () => {
          encodeValue(w, value);
        });
      } finally {
        scratch = w.buf.length <= this.#ring.size ? w.buf : target;
      }
      bytes = w.buf.subarray(0, w.pos);
    }
    return this.#fits(bytes, bytes.byteLength);
  }

  #fits(bytes: Uint8Array, n: number): Uint8Array {
    if (n > this.#ring.maxItemBytes) {
      throw new RangeError(
        `an item of ${n} bytes${this.#bytes ? '' : ' (encoded)'} does not fit this channel, ` +
          `whose buffer holds items of at most ${this.#ring.maxItemBytes} bytes: make bufferSize larger`,
      );
    }
    encodedLength = n;
    return bytes;
  }

  /** Takes one item now (the batch's next first, if any): its length (and the item in #got), EMPTY or ENDED. */
  #take(): number {
    if (this.#batchAt < this.#batchEnd) return this.#fromBatch();
    const ring = this.#ring;
    if (this.#bytes) {
      const n = ring.get(true);
      if (n >= 0) {
        this.#got = ring.outBytes as T;
        ring.outBytes = undefined;
      }
      return n;
    }
    const n = ring.get(false);
    if (n >= 0) this.#got = decodeAt(ring.out, 0, n) as T;
    return n;
  }

  /**
   * For iterations: hands out the next item of this thread's batch, or takes a new batch of up to
   * #batchMax items in one lock (one item when the capacity is small). As #take().
   */
  #takeMany(): number {
    if (this.#batchAt < this.#batchEnd) return this.#fromBatch();
    if (this.#batchMax < 2) return this.#take();
    const k = this.#ring.getBatch(this.#batchMax, this.#batchLens);
    if (k < 0) return k;
    this.#batchAt = 0;
    this.#batchEnd = k;
    this.#batchPos = 0;
    return this.#fromBatch();
  }

  #fromBatch(): number {
    // A plain read (an Atomics call costs as much as handing out the item): an immediate close
    // made by another thread is seen at the next item or the one after, which is soon enough.
    if ((this.#words[STATE] as number) === CLOSED_NOW) {
      // An immediate close drops what this thread took ahead, as it dropped the ring's items (and
      // freed all room).
      const k = this.#batchEnd - this.#batchAt;
      this.#batchAt = this.#batchEnd = 0;
      this.#ring.dropped(k);
      return this.#take();
    }
    const n = this.#batchLens[this.#batchAt++] as number;
    // Handed out: its room is free now, as a get's would be.
    this.#ring.release(recordBytes(n));
    const pos = this.#batchPos;
    this.#batchPos = pos + n;
    const buf = this.#ring.out;
    this.#got = (this.#bytes ? new Uint8Array(buf.subarray(pos, pos + n)) : decodeAt(buf, pos, n)) as T;
    return n;
  }

  /**
   * An iteration stopped early: the items of the batch not handed out go back in front of the
   * channel, where they always fit (BATCH), unless an immediate close dropped them meanwhile.
   */
  #giveBack(): void {
    if (this.#batchAt >= this.#batchEnd) return;
    const from = this.#batchAt;
    const to = this.#batchEnd;
    this.#batchAt = this.#batchEnd = 0;
    if (!this.#ring.putBack(this.#batchLens, from, to, this.#batchPos)) this.#ring.dropped(to - from);
  }

  /** The item #take() took. */
  #value(): T {
    const value = this.#got as T;
    this.#got = undefined;
    return value;
  }

  #putBytes(bytes: Uint8Array, options: ChannelPutOptions | undefined): PutResult {
    const result = this.#ring.put(bytes, encodedLength);
    if (result === PutResult.Done && options?.transfer !== undefined && options.transfer.length > 0) {
      structuredClone(options.transfer, { transfer: options.transfer as ArrayBuffer[] });
    }
    return result;
  }

  /**
   * Puts the bytes of the last #encode(): Done, Closed, Full, or Gone if the channel is full and no
   * connection that may get is left. A getter frees its room before it ends, so a put tried once
   * more after seeing the count at 0 finds any room that the last getter freed.
   */
  #put(bytes: Uint8Array, options: ChannelPutOptions | undefined): PutResult {
    const result = this.#putBytes(bytes, options);
    if (result !== PutResult.Full || Atomics.load(this.#words, GETTERS) !== 0) return result;
    const again = this.#putBytes(bytes, options);
    return again === PutResult.Full ? PutResult.Gone : again;
  }

  /**
   * Takes an item as #take() (or #takeMany()), or GONE if the channel is empty and no connection
   * that may put is left (looking once more, as #put does).
   */
  #get(many: boolean): number {
    const got = many ? this.#takeMany() : this.#take();
    if (got !== EMPTY || Atomics.load(this.#words, PUTTERS) !== 0) return got;
    const again = many ? this.#takeMany() : this.#take();
    return again === EMPTY ? GONE : again;
  }

  // ---- non-waiting ----

  /** Puts `value` if there is room now: true if it did, false if full. ClosedError after close. */
  tryPut(value: T, options?: ChannelPutOptions): boolean {
    if (!this.#mayPut) throw this.#cannot('put');
    const result = this.#put(this.#encode(value), options);
    if (result === PutResult.Closed) throw this.#closedError('put');
    if (result === PutResult.Gone) throw this.#goneError('put');
    return result === PutResult.Done;
  }

  /**
   * Takes an item if there is one now: `{ ok: true, value }`, or `{ ok: false }` if empty.
   * ClosedError once closed and drained, DisconnectedError if empty with nobody left to put.
   */
  tryGet(): TryGetResult<T> {
    if (!this.#mayGet) throw this.#cannot('get');
    const got = this.#get(false);
    if (got === EMPTY) return { ok: false };
    if (got === ENDED) throw this.#closedError('get');
    if (got === GONE) throw this.#goneError('get');
    return { ok: true, value: this.#value() };
  }

  // ---- blocking ----

  #checkBlocking(
    options: Pick<ChannelSyncOptions, 'allowBlockingMainThread' | 'allowMainThread'> | undefined,
    what: string,
  ): void {
    if (
      isMainThread &&
      !this.#allowMain &&
      options?.allowBlockingMainThread !== true &&
      // eslint-disable-next-line @typescript-eslint/no-deprecated -- the 0.1 alias still works
      options?.allowMainThread !== true
    ) {
      throw new DeadlockError(
        `channel.${what}() would block the main thread, freezing its event loop (and deadlocking if the ` +
          `async end it waits for runs there). Use the async ${what.replace('Sync', '')}(), or pass ` +
          '{ allowBlockingMainThread: true } (to this call or to the Channel) if you mean it.',
      );
    }
  }

  /**
   * Counts this thread among the sleepers of `waiters` (GET_WAITERS or PUT_WAITERS; NONE: no
   * count, no flag) and flags its sleep on words[index] (layout.ts). Returns the value to wait on,
   * or NaN if words[index] moved past `seen` meanwhile (then the count is undone: do not sleep).
   */
  #willSleep(index: number, waiters: number, seen: number): number {
    if (waiters === NONE) return seen;
    Atomics.add(this.#words, waiters, 1);
    const value = this.#ring.flagSleep(index, seen);
    if (Number.isNaN(value)) Atomics.sub(this.#words, waiters, 1);
    return value;
  }

  /** Sleeps until words[index] moves past `seen` or the deadline; spins briefly first. */
  #sleep(index: number, waiters: number, seen: number, deadline: number): void {
    const w = this.#words;
    // A sleep flag set by another sleeper is no move of the counter.
    const flag = waiters === NONE ? 0 : SLEEPER;
    const expected = seen | flag;
    // Spin for about a wake-up's cost (the one spin policy), then sleep.
    const budget = this.#spin.next();
    const began = performance.now();
    let now = began;
    const spinEnd = now + budget;
    while (now < spinEnd) {
      if ((Atomics.load(w, index) | flag) !== expected) {
        this.#spin.observe(now - began, budget);
        return;
      }
      const next = now + POLL_MS;
      do now = performance.now();
      while (now < next);
    }
    const left = deadline - performance.now();
    if (left <= 0) return;
    const value = this.#willSleep(index, waiters, seen);
    if (Number.isNaN(value)) return;
    const asleepAt = sharedNow();
    try {
      sleepOn(w, index, value, Math.min(left, SLICE_MS));
    } finally {
      if (waiters !== NONE) Atomics.sub(w, waiters, 1);
    }
    const wokenAt = this.#ring.wokenAt[0] as number;
    if (wokenAt >= asleepAt) observeWake(sharedNow() - wokenAt);
    this.#spin.observe(performance.now() - began, budget);
  }

  /** Puts `value`, blocking while the channel is full. ClosedError after close, TimeoutError on timeout. */
  putSync(value: T, options?: ChannelSyncOptions & ChannelPutOptions): void {
    if (!this.#mayPut) throw this.#cannot('put');
    this.#checkBlocking(options, 'putSync');
    const bytes = this.#encode(value);
    const n = encodedLength;
    let deadline = Infinity;
    if (options?.timeout !== undefined) deadline = checkTimeout(options.timeout);
    for (;;) {
      encodedLength = n;
      const result = this.#put(bytes, options);
      if (result === PutResult.Done) return;
      if (result === PutResult.Closed) throw this.#closedError('put');
      if (result === PutResult.Gone) throw this.#goneError('put');
      if (performance.now() >= deadline) throw this.#timeoutError('putSync', options?.timeout);
      this.#sleep(BYTES_OUT, PUT_WAITERS, this.#ring.seen, deadline);
    }
  }

  /** Takes an item, blocking while the channel is empty. ClosedError once closed and drained. */
  getSync(options?: ChannelSyncOptions): T {
    if (!this.#mayGet) throw this.#cannot('get');
    this.#checkBlocking(options, 'getSync');
    return this.#getSync(options, false);
  }

  #getSync(options: ChannelSyncOptions | undefined, many: boolean): T {
    let deadline = Infinity;
    if (options?.timeout !== undefined) deadline = checkTimeout(options.timeout);
    for (;;) {
      const got = this.#get(many);
      if (got === ENDED) throw this.#closedError('get');
      if (got === GONE) throw this.#goneError('get');
      if (got !== EMPTY) return this.#value();
      if (performance.now() >= deadline) throw this.#timeoutError('getSync', options?.timeout);
      this.#sleep(PUT_SEQ, GET_WAITERS, this.#ring.seen, deadline);
    }
  }

  /**
   * Blocking iteration: each item until the channel is closed and drained, or empty with nobody
   * left to put. `timeout` applies to each item.
   */
  iterateSync(options?: ChannelSyncOptions): Generator<T, void, undefined> {
    if (!this.#mayGet) throw this.#cannot('get');
    this.#checkBlocking(options, 'iterateSync');
    return this.#iterateSync(options);
  }

  /** @deprecated The name of iterateSync in 0.1. */
  iterSync(options?: ChannelSyncOptions): Generator<T, void, undefined> {
    return this.iterateSync(options);
  }

  *#iterateSync(options: ChannelSyncOptions | undefined): Generator<T, void, undefined> {
    try {
      for (;;) {
        let value: T;
        try {
          // Ended by disconnect() meanwhile: the iteration ends, as on close.
          if (!this.#mayGet) return;
          value = this.#getSync(options, true);
        } catch (error) {
          if (error instanceof ClosedError) return;
          throw error;
        }
        yield value;
      }
    } finally {
      this.#giveBack();
    }
  }

  // ---- async ----

  /** Waits without blocking until words[index] moves past `seen`, the deadline, or the signal aborts. */
  async #wait(index: number, waiters: number, seen: number, deadline: number, signal: AbortSignal | undefined) {
    const w = this.#words;
    const left = deadline - performance.now();
    if (left <= 0) return;
    // Flagged before the wait starts, so that a move between the two cannot skip its notify.
    const value = this.#willSleep(index, waiters, seen);
    if (Number.isNaN(value)) return;
    const woken = sleepOnAsync(w, index, value, Math.min(left, SLICE_MS));
    if (woken === undefined) {
      if (waiters !== NONE) Atomics.sub(w, waiters, 1);
      return;
    }
    holdLoop();
    let onAbort: (() => void) | undefined;
    try {
      if (signal === undefined) await woken;
      else {
        await Promise.race([
          woken,
          new Promise<void>((resolve) => {
            onAbort = () => {
              resolve();
            };
            signal.addEventListener('abort', onAbort, { once: true });
          }),
        ]);
      }
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      if (waiters !== NONE) Atomics.sub(w, waiters, 1);
      releaseLoop();
    }
  }

  /** Puts `value`, waiting (without blocking) while the channel is full. */
  put(value: T, options?: ChannelWaitOptions & ChannelPutOptions): Promise<void> {
    if (!this.#mayPut) return Promise.reject(this.#cannot('put'));
    if (options !== undefined) return this.#putAsync(value, options);
    // Fast path: with room there, a put costs no async function.
    let bytes: Uint8Array;
    try {
      bytes = this.#encode(value);
    } catch (error) {
      return Promise.reject(error);
    }
    const n = encodedLength;
    const result = this.#ring.put(bytes, n);
    if (result === PutResult.Done) return RESOLVED;
    if (result === PutResult.Closed) return Promise.reject(this.#closedError('put'));
    // Full: the bytes may sit in this thread's scratch buffer, which other puts reuse meanwhile, so
    // the waiting put keeps a copy (a Buffer's slice() would not copy).
    return this.#putAsync(new Uint8Array(bytes.subarray(0, n)), undefined, this.#ring.seen);
  }

  /** The waiting put: `value`, or the bytes of a put that found the ring full and the BYTES_OUT it saw. */
  async #putAsync(value: T | Uint8Array, options: ChannelWaitOptions & ChannelPutOptions = {}, seen?: number) {
    let bytes: Uint8Array;
    let n: number;
    // The encoded bytes sit in this thread's scratch buffer (or are the caller's array): a put that has to wait keeps a copy,
    // since other puts of this thread reuse the buffer meanwhile.
    let own = seen !== undefined;
    if (own) {
      bytes = value as Uint8Array;
      n = bytes.byteLength;
    } else {
      bytes = this.#encode(value as T);
      n = encodedLength;
    }
    const signal = options.signal;
    const deadline = checkTimeout(options.timeout);
    // The put that found the channel full did not look for getters: the loop's put does.
    if (seen !== undefined && Atomics.load(this.#words, GETTERS) === 0) seen = undefined;
    for (;;) {
      if (signal?.aborted === true) throw cancelled(signal);
      if (seen === undefined) {
        encodedLength = n;
        const result = this.#put(bytes, options);
        if (result === PutResult.Done) return;
        if (result === PutResult.Closed) throw this.#closedError('put');
        if (result === PutResult.Gone) throw this.#goneError('put');
        if (performance.now() >= deadline) throw this.#timeoutError('put', options.timeout);
        seen = this.#ring.seen;
      }
      if (!own) {
        bytes = new Uint8Array(bytes.subarray(0, n));
        own = true;
      }
      await this.#wait(BYTES_OUT, PUT_WAITERS, seen, deadline, signal);
      seen = undefined;
    }
  }

  /** Takes an item, waiting (without blocking) while the channel is empty. ClosedError once closed and drained. */
  get(options?: ChannelWaitOptions): Promise<T> {
    if (!this.#mayGet) return Promise.reject(this.#cannot('get'));
    if (options?.signal === undefined && options?.timeout === undefined) {
      // Fast path: an item already there costs no async function.
      const got = this.#take();
      if (got === ENDED) return Promise.reject(this.#closedError('get'));
      if (got !== EMPTY) return Promise.resolve(this.#value());
    }
    return this.#getAsync(options);
  }

  async #getAsync(options: ChannelWaitOptions | undefined): Promise<T> {
    const signal = options?.signal;
    const deadline = checkTimeout(options?.timeout);
    for (;;) {
      if (signal?.aborted === true) throw cancelled(signal);
      const got = this.#get(false);
      if (got === ENDED) throw this.#closedError('get');
      if (got === GONE) throw this.#goneError('get');
      if (got !== EMPTY) return this.#value();
      if (performance.now() >= deadline) throw this.#timeoutError('get', options?.timeout);
      await this.#wait(PUT_SEQ, GET_WAITERS, this.#ring.seen, deadline, signal);
    }
  }

  /** Each item until the channel is closed and drained, or empty with nobody left to put. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (!this.#mayGet) throw this.#cannot('get');
    const done: IteratorResult<T> = { done: true, value: undefined };
    return {
      next: (): Promise<IteratorResult<T>> => {
        // Ended by disconnect() meanwhile: the iteration ends, as on close.
        if (!this.#mayGet) return Promise.resolve(done);
        // Fast path: an item already there (or the end) costs one resolved promise.
        const got = this.#takeMany();
        if (got >= 0) return Promise.resolve({ done: false, value: this.#value() });
        if (got === ENDED) return Promise.resolve(done);
        return this.#getAsync(undefined).then(
          (value) => ({ done: false, value }),
          (error: unknown) => {
            if (error instanceof ClosedError) return done;
            throw error;
          },
        );
      },
      return: (): Promise<IteratorResult<T>> => {
        this.#giveBack();
        return Promise.resolve(done);
      },
    };
  }

  // ---- close and tasks ----

  /**
   * Closes the channel for every thread (Python 3.13 Queue.shutdown): puts fail with ClosedError;
   * getters drain what is left and then get ClosedError, iterations end. With a `grace` period,
   * what is still left after it (or when `signal` aborts) is dropped and every waiter wakes; the
   * promise resolves then, or once the channel is empty. Without one it resolves at once and the
   * items stay for the getters. Idempotent; a drop may follow a plain close.
   */
  async close(options: ChannelCloseOptions = {}): Promise<void> {
    const grace = closeGrace(options);
    this.#ring.close(grace === 0);
    if (grace === undefined || grace === 0) return;
    const signal = options.signal;
    const deadline = performance.now() + grace;
    for (;;) {
      const seen = Atomics.load(this.#words, BYTES_OUT) & ~SLEEPER;
      if (this.#ring.count === 0) return;
      if (signal?.aborted === true || performance.now() >= deadline) break;
      await this.#wait(BYTES_OUT, PUT_WAITERS, seen, deadline, signal);
    }
    this.#ring.close(true);
  }

  /**
   * close() that blocks: with a `grace` period this thread waits for getters to drain the channel
   * for up to `grace` ms (a blocking wait: on the main thread only with allowBlockingMainThread),
   * then drops what is left.
   */
  closeSync(options: Omit<ChannelCloseOptions, 'signal'> = {}): void {
    const grace = closeGrace(options);
    if (grace !== undefined && grace !== 0) this.#checkBlocking(options, 'closeSync');
    this.#ring.close(grace === 0);
    if (grace === undefined || grace === 0) return;
    const deadline = performance.now() + grace;
    for (;;) {
      const seen = Atomics.load(this.#words, BYTES_OUT) & ~SLEEPER;
      if (this.#ring.count === 0) return;
      if (performance.now() >= deadline) break;
      this.#sleep(BYTES_OUT, PUT_WAITERS, seen, deadline);
    }
    this.#ring.close(true);
  }

  /** closeSync(): closes the channel for every thread (not only this connection: see disconnect()). */
  [Symbol.dispose](): void {
    this.closeSync();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Marks one item got earlier as processed (Python's Queue.task_done). */
  taskDone(): void {
    if (!this.#mayGet) throw this.#cannot('get');
    if (!this.#ring.taskDone()) throw new RangeError('taskDone() was called more times than items were put');
  }

  /**
   * Resolves once every item put has been marked done with taskDone() (Python's Queue.join).
   * DisconnectedError if items are left undone and no connection that may get (and so mark them
   * done) is left.
   */
  async join(options?: ChannelWaitOptions): Promise<void> {
    const signal = options?.signal;
    const deadline = checkTimeout(options?.timeout);
    const w = this.#words;
    for (;;) {
      if (signal?.aborted === true) throw cancelled(signal);
      const seen = Atomics.load(w, DONE_SEQ);
      if (this.#joined()) return;
      if (performance.now() >= deadline) throw this.#timeoutError('join', options?.timeout);
      await this.#wait(DONE_SEQ, NONE, seen, deadline, signal);
    }
  }

  /** Blocks until every item put has been marked done with taskDone(). */
  joinSync(options?: ChannelSyncOptions): void {
    this.#checkBlocking(options, 'joinSync');
    const deadline = checkTimeout(options?.timeout);
    const w = this.#words;
    for (;;) {
      const seen = Atomics.load(w, DONE_SEQ);
      if (this.#joined()) return;
      if (performance.now() >= deadline) throw this.#timeoutError('joinSync', options?.timeout);
      this.#sleep(DONE_SEQ, NONE, seen, deadline);
    }
  }

  /** True once every item is done; DisconnectedError if some never can be (the count read first, as #put does). */
  #joined(): boolean {
    const getters = Atomics.load(this.#words, GETTERS);
    if (Atomics.load(this.#words, UNFINISHED) === 0) return true;
    if (getters === 0) throw this.#goneError('join');
    return false;
  }

  #cannot(what: 'put' | 'get'): Error {
    if (this.#ended) return this.#endedError();
    return new TypeError(`this connection's role is '${roleName(this.#role)}': it cannot ${what}`);
  }

  #endedError(): ClosedError {
    return new ClosedError('this connection was ended by disconnect()');
  }

  #goneError(what: 'put' | 'get' | 'join'): DisconnectedError {
    return new DisconnectedError(
      what === 'put'
        ? 'the channel is full and every connection that may get has ended'
        : what === 'get'
          ? 'the channel is empty and every connection that may put has ended'
          : 'items are not done and every connection that may get (and mark them done) has ended',
    );
  }

  #closedError(what: 'put' | 'get'): ClosedError {
    if (what === 'put') return new ClosedError('the channel is closed: it takes no more items');
    return new ClosedError(
      Atomics.load(this.#words, STATE) === CLOSED_NOW
        ? 'the channel was closed at once (immediate): its items were dropped'
        : 'the channel is closed and drained',
    );
  }

  #timeoutError(what: string, timeout: number | undefined): TimeoutError {
    return new TimeoutError(`channel.${what}() timed out after ${String(timeout)} ms`);
  }
}
