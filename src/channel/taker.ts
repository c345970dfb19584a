/**
 * The getting side of one connection: takes items out of the ring one at a time, or, for
 * iterations, a batch of them ahead in one lock, and hands them out one by one; waits (blocking or
 * not) for an item.
 */
import { cancelled, closedError, goneError, timeoutError } from './channel-errors.js';
import { decodeAt } from './item-codec.js';
import { CLOSED_NOW, GET_WAITERS, PUTTERS, PUT_SEQ, STATE } from './layout.js';
import { type ChannelSyncOptions, type ChannelWaitOptions, checkTimeout } from './options.js';
import { EMPTY, ENDED, type Ring, recordBytes } from './ring.js';
import type { Waiter } from './waiting.js';

/** What get() returns, beside a length, EMPTY and ENDED, when nobody is left to put. */
export const GONE = -3;

/**
 * Iterations take up to this many items at a time, in one lock, and hand them out one by one.
 * Those items have left the ring (no other getter can take them), but their room has not: `size`,
 * the capacity and the buffer count each of them until it is handed out, as if it were still in
 * the channel (ring.ts, getBatch and release). So an iteration stopped early (break, throw: the
 * iterator's return()) can always put the ones it did not hand out back in front of the ring, in
 * order (giveBack): producers cannot have filled their room meanwhile. An item's room is freed as
 * it is handed out, as a get frees it, so that back-pressure is exactly that of getting one by one.
 * A thread that dies mid-iteration takes the items it had not handed out with it, as a consumer
 * that dies holding one item takes that one, and their room stays taken: at most this batch, a
 * quarter of the capacity and a quarter of the buffer (getBatch), and nothing else is affected.
 */
const BATCH = 32;

export class Taker<T> {
  readonly #ring: Ring;
  readonly #words: Int32Array;
  readonly #bytes: boolean;
  readonly #waiter: Waiter;
  /** The item the last take() took. */
  #got: T | undefined;
  /** Iterations take up to this many items in one lock (see takeMany). */
  readonly #batchMax: number;
  /** The lengths of the batch's records, whose bytes lie one after another in the ring's `out`. */
  readonly #batchLens = new Int32Array(BATCH);
  #batchAt = 0;
  #batchEnd = 0;
  #batchPos = 0;

  constructor(ring: Ring, bytes: boolean, waiter: Waiter) {
    this.#ring = ring;
    this.#words = ring.words;
    this.#bytes = bytes;
    this.#waiter = waiter;
    const capacity = ring.capacity;
    // With a small capacity an iteration takes fewer ahead (none below 8), so that back-pressure
    // stays tight; in bytes mode none (an item would be copied twice, and a lock is little beside a
    // big copy).
    this.#batchMax = bytes ? 1 : Math.min(BATCH, capacity >> 2);
  }

  /** Takes one item now (the batch's next first, if any): its length (and the item for value()), EMPTY or ENDED. */
  take(): number {
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
   * #batchMax items in one lock (one item when the capacity is small). As take().
   */
  takeMany(): number {
    if (this.#batchAt < this.#batchEnd) return this.#fromBatch();
    if (this.#batchMax < 2) return this.take();
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
      return this.take();
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
   * Takes an item as take() (or takeMany()), or GONE if the channel is empty and no connection
   * that may put is left (looking once more: a putter puts before it ends).
   */
  get(many: boolean): number {
    const got = many ? this.takeMany() : this.take();
    if (got !== EMPTY || Atomics.load(this.#words, PUTTERS) !== 0) return got;
    const again = many ? this.takeMany() : this.take();
    return again === EMPTY ? GONE : again;
  }

  /** The item take() took. */
  value(): T {
    const value = this.#got as T;
    this.#got = undefined;
    return value;
  }

  /**
   * An iteration stopped early: the items of the batch not handed out go back in front of the
   * channel, where they always fit (BATCH), unless an immediate close dropped them meanwhile.
   */
  giveBack(): void {
    if (this.#batchAt >= this.#batchEnd) return;
    const from = this.#batchAt;
    const to = this.#batchEnd;
    this.#batchAt = this.#batchEnd = 0;
    if (!this.#ring.putBack(this.#batchLens, from, to, this.#batchPos)) this.#ring.dropped(to - from);
  }

  /** Channel.getSync() (one item; `many`: for iterateSync(), from batches), once its caller may block. */
  getSync(options: ChannelSyncOptions | undefined, many: boolean): T {
    let deadline = Infinity;
    if (options?.timeout !== undefined) deadline = checkTimeout(options.timeout);
    for (;;) {
      const got = this.get(many);
      if (got === ENDED) throw closedError(this.#words, 'get');
      if (got === GONE) throw goneError('get');
      if (got !== EMPTY) return this.value();
      if (performance.now() >= deadline) throw timeoutError('getSync', options?.timeout);
      this.#waiter.sleep(PUT_SEQ, GET_WAITERS, this.#ring.seen, deadline);
    }
  }

  /** Channel.get(), waiting for an item. */
  async getAsync(options: ChannelWaitOptions | undefined): Promise<T> {
    const signal = options?.signal;
    const deadline = checkTimeout(options?.timeout);
    for (;;) {
      if (signal?.aborted === true) throw cancelled(signal);
      const got = this.get(false);
      if (got === ENDED) throw closedError(this.#words, 'get');
      if (got === GONE) throw goneError('get');
      if (got !== EMPTY) return this.value();
      if (performance.now() >= deadline) throw timeoutError('get', options?.timeout);
      await this.#waiter.wait(PUT_SEQ, GET_WAITERS, this.#ring.seen, deadline, signal);
    }
  }
}
