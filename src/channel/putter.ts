/**
 * The putting side of one connection: encodes an item and puts it into the ring, now or after
 * waiting (blocking or not) for room.
 */
import { cancelled, closedError, goneError, timeoutError } from './channel-errors.js';
import { ItemEncoder } from './item-codec.js';
import { BYTES_OUT, GETTERS, PUT_WAITERS } from './layout.js';
import type { ChannelPutOptions, ChannelSyncOptions, ChannelWaitOptions } from './options.js';
import { checkTimeout } from './options.js';
import { PutResult, type Ring } from './ring.js';
import type { Waiter } from './waiting.js';

const RESOLVED = Promise.resolve();

export class Putter {
  readonly #ring: Ring;
  readonly #words: Int32Array;
  readonly #encoder: ItemEncoder;
  readonly #waiter: Waiter;

  constructor(ring: Ring, bytes: boolean, waiter: Waiter) {
    this.#ring = ring;
    this.#words = ring.words;
    this.#encoder = new ItemEncoder(ring, bytes);
    this.#waiter = waiter;
  }

  #putBytes(bytes: Uint8Array, n: number, options: ChannelPutOptions | undefined): PutResult {
    const result = this.#ring.put(bytes, n);
    if (result === PutResult.Done && options?.transfer !== undefined && options.transfer.length > 0) {
      structuredClone(options.transfer, { transfer: options.transfer as ArrayBuffer[] });
    }
    return result;
  }

  /**
   * Puts the first `n` bytes of `bytes`: Done, Closed, Full, or Gone if the channel is full and no
   * connection that may get is left. A getter frees its room before it ends, so a put tried once
   * more after seeing the count at 0 finds any room that the last getter freed.
   */
  #put(bytes: Uint8Array, n: number, options: ChannelPutOptions | undefined): PutResult {
    const result = this.#putBytes(bytes, n, options);
    if (result !== PutResult.Full || Atomics.load(this.#words, GETTERS) !== 0) return result;
    const again = this.#putBytes(bytes, n, options);
    return again === PutResult.Full ? PutResult.Gone : again;
  }

  /** Channel.tryPut(). */
  tryPut(value: unknown, options: ChannelPutOptions | undefined): boolean {
    const bytes = this.#encoder.encode(value);
    const result = this.#put(bytes, this.#encoder.length, options);
    if (result === PutResult.Closed) throw closedError(this.#words, 'put');
    if (result === PutResult.Gone) throw goneError('put');
    return result === PutResult.Done;
  }

  /** Channel.putSync(), once its caller may block. */
  putSync(value: unknown, options: (ChannelSyncOptions & ChannelPutOptions) | undefined): void {
    const bytes = this.#encoder.encode(value);
    const n = this.#encoder.length;
    let deadline = Infinity;
    if (options?.timeout !== undefined) deadline = checkTimeout(options.timeout);
    for (;;) {
      const result = this.#put(bytes, n, options);
      if (result === PutResult.Done) return;
      if (result === PutResult.Closed) throw closedError(this.#words, 'put');
      if (result === PutResult.Gone) throw goneError('put');
      if (performance.now() >= deadline) throw timeoutError('putSync', options?.timeout);
      this.#waiter.sleep(BYTES_OUT, PUT_WAITERS, this.#ring.seen, deadline);
    }
  }

  /** Channel.put(). */
  put(value: unknown, options: (ChannelWaitOptions & ChannelPutOptions) | undefined): Promise<void> {
    if (options !== undefined) return this.#putAsync(value, options);
    // Fast path: with room there, a put costs no async function.
    let bytes: Uint8Array;
    try {
      bytes = this.#encoder.encode(value);
    } catch (error) {
      return Promise.reject(error);
    }
    const n = this.#encoder.length;
    const result = this.#ring.put(bytes, n);
    if (result === PutResult.Done) return RESOLVED;
    if (result === PutResult.Closed) return Promise.reject(closedError(this.#words, 'put'));
    // Full: the bytes may sit in this thread's scratch buffer, which other puts reuse meanwhile, so
    // the waiting put keeps a copy (a Buffer's slice() would not copy).
    return this.#putAsync(new Uint8Array(bytes.subarray(0, n)), undefined, this.#ring.seen);
  }

  /** The waiting put: `value`, or the bytes of a put that found the ring full and the BYTES_OUT it saw. */
  async #putAsync(value: unknown, options: ChannelWaitOptions & ChannelPutOptions = {}, seen?: number) {
    let bytes: Uint8Array;
    let n: number;
    // The encoded bytes sit in this thread's scratch buffer (or are the caller's array): a put that has to wait keeps a copy,
    // since other puts of this thread reuse the buffer meanwhile.
    let own = seen !== undefined;
    if (own) {
      bytes = value as Uint8Array;
      n = bytes.byteLength;
    } else {
      bytes = this.#encoder.encode(value);
      n = this.#encoder.length;
    }
    const signal = options.signal;
    const deadline = checkTimeout(options.timeout);
    // The put that found the channel full did not look for getters: the loop's put does.
    if (seen !== undefined && Atomics.load(this.#words, GETTERS) === 0) seen = undefined;
    for (;;) {
      if (signal?.aborted === true) throw cancelled(signal);
      if (seen === undefined) {
        const result = this.#put(bytes, n, options);
        if (result === PutResult.Done) return;
        if (result === PutResult.Closed) throw closedError(this.#words, 'put');
        if (result === PutResult.Gone) throw goneError('put');
        if (performance.now() >= deadline) throw timeoutError('put', options.timeout);
        seen = this.#ring.seen;
      }
      if (!own) {
        bytes = new Uint8Array(bytes.subarray(0, n));
        own = true;
      }
      await this.#waiter.wait(BYTES_OUT, PUT_WAITERS, seen, deadline, signal);
      seen = undefined;
    }
  }
}
