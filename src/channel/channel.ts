/**
 * Channel: a queue shared by threads, with blocking ends (putSync, getSync, iterateSync) for worker
 * threads and sync code, and async ends (put, get, for await) that never block a loop. Any number
 * of threads put and get. The queue lives in one SharedArrayBuffer (see layout.ts and ring.ts);
 * values cross by copy through the codec, or as raw bytes in bytes mode (item-codec.ts). Each
 * Channel object is a connection, counted so that a waiter learns when nobody is left on the other
 * side (connections.ts). Its parts: options.ts (the options and their checks), putter.ts (putting),
 * taker.ts (getting, and the batches iterations take ahead), waiting.ts (blocking and async waits,
 * close's grace, join), channel-errors.ts.
 */
import type { MessagePort } from 'node:worker_threads';
import { ClosedError } from '../errors.js';
import { changed } from '../shm/wait.js';
import { cannotError, closedError, endedError, goneError } from './channel-errors.js';
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
} from './connections.js';
import { BYTES, CAPACITY, GET_WAITERS, HEADER_WORDS, MODE, OPEN, PUT_WAITERS, STATE, UNFINISHED } from './layout.js';
import type { ChannelStats } from '../observe/wait-stats.js';
import {
  type ChannelCloseOptions,
  type ChannelConnectOptions,
  type ChannelHandle,
  type ChannelOptions,
  type ChannelPutOptions,
  type ChannelSyncOptions,
  type ChannelWaitOptions,
  type TryGetResult,
  channelBuffer,
  checkBlocking,
  closeGrace,
} from './options.js';
import { EMPTY, ENDED, Ring } from './ring.js';
import { Putter } from './putter.js';
import { GONE, Taker } from './taker.js';
import { Waiter } from './waiting.js';

export type {
  ChannelCloseOptions,
  ChannelConnectOptions,
  ChannelHandle,
  ChannelOptions,
  ChannelPutOptions,
  ChannelSyncOptions,
  ChannelWaitOptions,
  TryGetResult,
} from './options.js';

/** Channel.connect() passes this to the constructor. */
class Attach {
  constructor(
    readonly handle: ChannelHandle,
    readonly options: ChannelConnectOptions,
  ) {}
}

/**
 * A queue shared by threads, with a blocking end (`putSync`, `getSync`, `iterateSync`) for worker
 * threads and sync code and an awaited end (`put`, `get`, `for await`) that never blocks an event
 * loop: Python's `queue.Queue` and `asyncio.Queue` in one. Each Channel object is one connection;
 * other threads connect with a handle from {@link Channel.createHandle}.
 *
 * @typeParam T - The items.
 * @example
 * ```ts
 * const jobs = new Channel<Job>({ capacity: 64, role: 'put' });
 * const handle = jobs.createHandle({ role: 'get' });
 * new Worker('./worker.js', { workerData: handle, transferList: [handle.port] });
 * await jobs.put({ id: 1 }); // waits while full
 * await jobs.close(); // the worker drains what is left, then its iteration ends
 *
 * // worker.js
 * for (const job of Channel.connect<Job>(workerData).iterateSync()) run(job); // blocks this worker only
 * ```
 */
export class Channel<T = unknown> implements AsyncIterable<T> {
  readonly #ring: Ring;
  readonly #words: Int32Array;
  readonly #putter: Putter;
  /** Takes this connection's items out of the ring, and holds what an iteration took ahead. */
  readonly #taker: Taker<T>;
  readonly #waiter: Waiter;
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
  #closed: Promise<void> | undefined;

  /**
   * A new channel, and this thread's connection to it.
   *
   * @param options - Sizes (`capacity`, `bufferSize`), `bytes` mode, this connection's `role`,
   *   `allowBlockingMainThread`.
   * @throws RangeError if `capacity` or `bufferSize` is out of range; TypeError for an unknown `role`.
   */
  constructor(options: ChannelOptions = {}) {
    const attach = options instanceof Attach ? options : undefined;
    // A new channel's options are checked before anything is made: the role, then the sizes.
    const role = attach === undefined ? roleBits(options.role ?? 'both') : BOTH;
    const buffer = attach === undefined ? channelBuffer(options) : attach.handle.buffer;
    this.#handle = Object.freeze({ kind: 'loopthread.channel', buffer });
    this.#ring = new Ring(buffer);
    this.#words = this.#ring.words;
    const bytes = Atomics.load(this.#words, MODE) === BYTES;
    this.#waiter = new Waiter(this.#ring);
    this.#putter = new Putter(this.#ring, bytes, this.#waiter);
    this.#taker = new Taker<T>(this.#ring, bytes, this.#waiter);
    this.#allowMain = (attach?.options ?? options).allowBlockingMainThread === true;
    const handle = attach?.handle;
    if (handle === undefined || (handle.port === undefined && handle.slot === undefined)) {
      // A new channel, or the handle of 0.1 (`handle`): counted from now (that handle's connection
      // as one that may do both).
      this.#role = role;
      this.#conn = open(this, this.#words, role);
    } else {
      const claimed = claim(this, this.#words, handle as ChannelHandle & Reservation);
      this.#role = claimed.role;
      this.#conn = claimed.c;
    }
    this.#mayPut = (this.#role & PUT) !== 0;
    this.#mayGet = (this.#role & GET) !== 0;
  }

  /**
   * Connects to a channel from a handle made by createHandle() in any thread (this one too), which
   * serves one connection; or from `handle`.
   *
   * @param handle - From `channel.createHandle()`, received by this thread.
   * @param options - `allowBlockingMainThread`.
   * @throws TypeError if `handle` is not a Channel's handle.
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
   *
   * @param options - `role`: 'put', 'get' or 'both'.
   * @throws {@link ClosedError} once this connection has ended.
   */
  createHandle(options: { role?: ChannelRole } = {}): ChannelHandle & {
    /** List it in the transferList. */
    readonly port: MessagePort;
  } {
    if (this.#ended) throw endedError();
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
    this.#taker.giveBack();
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
      const waited = changed(this.#words, STATE, OPEN);
      if (waited !== undefined) await waited;
    }
  }

  /** The channel now (size, sleepers), and how this connection's waits ended so far. */
  stats(): ChannelStats {
    const waits = this.#waiter.stats;
    return {
      size: this.size,
      capacity: this.capacity,
      unfinished: this.unfinished,
      sleepingGetters: Atomics.load(this.#words, GET_WAITERS),
      sleepingPutters: Atomics.load(this.#words, PUT_WAITERS),
      spins: waits.spins,
      sleeps: waits.sleeps,
      asyncWaits: waits.asyncWaits,
      waitTime: waits.time.summary(),
    };
  }

  /** Items put and not yet marked done with taskDone(). */
  get unfinished(): number {
    return Atomics.load(this.#words, UNFINISHED);
  }

  // ---- non-waiting ----

  /**
   * Puts `value` if there is room now.
   *
   * @returns Whether it did (false: full).
   * @throws {@link ClosedError} after close; {@link DisconnectedError} if full with nobody left to get.
   */
  tryPut(value: T, options?: ChannelPutOptions): boolean {
    if (!this.#mayPut) throw this.#cannot('put');
    return this.#putter.tryPut(value, options);
  }

  /**
   * Takes an item if there is one now: `{ ok: true, value }`, or `{ ok: false }` if empty.
   * ClosedError once closed and drained, DisconnectedError if empty with nobody left to put.
   */
  tryGet(): TryGetResult<T> {
    if (!this.#mayGet) throw this.#cannot('get');
    const got = this.#taker.get(false);
    if (got === EMPTY) return { ok: false };
    if (got === ENDED) throw closedError(this.#words, 'get');
    if (got === GONE) throw goneError('get');
    return { ok: true, value: this.#taker.value() };
  }

  // ---- blocking ----

  /**
   * Puts `value`, blocking this thread while the channel is full.
   *
   * @param options - `timeout` (ms), `transfer`, `allowBlockingMainThread`.
   * @throws {@link ClosedError} after close; {@link DisconnectedError} if full with nobody left to
   *   get; {@link TimeoutError}; {@link DeadlockError} on the main thread without allowBlockingMainThread;
   *   {@link DataCloneError} for a value that cannot be copied.
   */
  putSync(value: T, options?: ChannelSyncOptions & ChannelPutOptions): void {
    if (!this.#mayPut) throw this.#cannot('put');
    checkBlocking(this.#allowMain, options, 'putSync');
    this.#putter.putSync(value, options);
  }

  /**
   * Takes an item, blocking this thread while the channel is empty.
   *
   * @param options - `timeout` (ms), `allowBlockingMainThread`.
   * @throws {@link ClosedError} once closed and drained; {@link DisconnectedError} if empty with
   *   nobody left to put; {@link TimeoutError}; {@link DeadlockError} on the main thread without
   *   allowBlockingMainThread.
   */
  getSync(options?: ChannelSyncOptions): T {
    if (!this.#mayGet) throw this.#cannot('get');
    checkBlocking(this.#allowMain, options, 'getSync');
    return this.#taker.getSync(options, false);
  }

  /**
   * Blocking iteration: each item until the channel is closed and drained, or empty with nobody
   * left to put. `timeout` applies to each item.
   */
  iterateSync(options?: ChannelSyncOptions): Generator<T, void, undefined> {
    if (!this.#mayGet) throw this.#cannot('get');
    checkBlocking(this.#allowMain, options, 'iterateSync');
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
          value = this.#taker.getSync(options, true);
        } catch (error) {
          if (error instanceof ClosedError) return;
          throw error;
        }
        yield value;
      }
    } finally {
      this.#taker.giveBack();
    }
  }

  // ---- async ----

  /**
   * Puts `value`, waiting (without blocking) while the channel is full.
   *
   * @param options - `timeout` (ms), `signal`, `transfer`.
   * @returns A promise that rejects with {@link ClosedError}, {@link DisconnectedError},
   *   {@link TimeoutError} or {@link CancelledError} (the signal) as `putSync` throws.
   */
  put(value: T, options?: ChannelWaitOptions & ChannelPutOptions): Promise<void> {
    if (!this.#mayPut) return Promise.reject(this.#cannot('put'));
    return this.#putter.put(value, options);
  }

  /**
   * Takes an item, waiting (without blocking) while the channel is empty.
   *
   * @param options - `timeout` (ms), `signal`.
   * @returns A promise of the item; it rejects with {@link ClosedError} once closed and drained,
   *   {@link DisconnectedError}, {@link TimeoutError} or {@link CancelledError} (the signal).
   */
  get(options?: ChannelWaitOptions): Promise<T> {
    if (!this.#mayGet) return Promise.reject(this.#cannot('get'));
    if (options?.signal === undefined && options?.timeout === undefined) {
      // Fast path: an item already there costs no async function.
      const got = this.#taker.take();
      if (got === ENDED) return Promise.reject(closedError(this.#words, 'get'));
      if (got !== EMPTY) return Promise.resolve(this.#taker.value());
    }
    return this.#taker.getAsync(options);
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
        const got = this.#taker.takeMany();
        if (got >= 0) return Promise.resolve({ done: false, value: this.#taker.value() });
        if (got === ENDED) return Promise.resolve(done);
        return this.#taker.getAsync(undefined).then(
          (value) => ({ done: false, value }),
          (error: unknown) => {
            if (error instanceof ClosedError) return done;
            throw error;
          },
        );
      },
      return: (): Promise<IteratorResult<T>> => {
        this.#taker.giveBack();
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
    if (!(await this.#waiter.drained(performance.now() + grace, options.signal))) this.#ring.close(true);
  }

  /**
   * close() that blocks: with a `grace` period this thread waits for getters to drain the channel
   * for up to `grace` ms (a blocking wait: on the main thread only with allowBlockingMainThread),
   * then drops what is left.
   */
  closeSync(options: Omit<ChannelCloseOptions, 'signal'> = {}): void {
    const grace = closeGrace(options);
    if (grace !== undefined && grace !== 0) checkBlocking(this.#allowMain, options, 'closeSync');
    this.#ring.close(grace === 0);
    if (grace === undefined || grace === 0) return;
    if (!this.#waiter.drainedSync(performance.now() + grace)) this.#ring.close(true);
  }

  /** closeSync(): closes the channel for every thread (not only this connection: see disconnect()). */
  [Symbol.dispose](): void {
    this.closeSync();
  }

  /** close(), for `await using`. */
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
    await this.#waiter.join(options);
  }

  /** Blocks until every item put has been marked done with taskDone(). */
  joinSync(options?: ChannelSyncOptions): void {
    checkBlocking(this.#allowMain, options, 'joinSync');
    this.#waiter.joinSync(options);
  }

  #cannot(what: 'put' | 'get'): Error {
    return cannotError(this.#ended, this.#role, what);
  }
}
