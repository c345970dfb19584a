/**
 * An item's bytes in the ring: a value encoded by the codec (with fast paths for short strings and
 * 32-bit integers, the most common items), or a Uint8Array as it is in bytes mode.
 */
import { decodeValue } from '../codec/decode.js';
import { encodeOrExplain, encodeValue } from '../codec/encode.js';
import { Tag } from '../codec/tags.js';
import { Reader, Writer, readString, stringBytes, writeShortString } from '../codec/writer.js';
import type { Ring } from './ring.js';

/** Buffers reused for encoding, one per thread (a nested put, from a getter on a value, takes a new one). */
let scratch: Buffer | undefined = Buffer.allocUnsafeSlow(4096);
/** Where the fast path encodes a short string or a number (no user code runs meanwhile). */
const small = Buffer.allocUnsafeSlow(64);

/** Encodes the items of one connection. */
export class ItemEncoder {
  /**
   * The length of what the last encode() wrote (the array it returns may be longer): a field
   * rather than a returned pair, so that an item costs no allocation.
   */
  length = 0;
  readonly #ring: Ring;
  readonly #bytes: boolean;

  constructor(ring: Ring, bytes: boolean) {
    this.#ring = ring;
    this.#bytes = bytes;
  }

  /**
   * Encodes `value`: the bytes are the first `length` of the array returned, which may be this
   * thread's scratch buffer (valid until its next encode) or, in bytes mode, `value` itself.
   */
  encode(value: unknown): Uint8Array {
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
    this.length = n;
    return bytes;
  }
}

/** Decodes the value whose `n` bytes start at `pos` in `buf`. */
export function decodeAt(buf: Buffer, pos: number, n: number): unknown {
  const tag = buf[pos];
  if (tag === Tag.String && n === 5 + stringBytes(buf, pos + 1)) return readString(buf, pos + 1);
  if (tag === Tag.Int32 && n === 5) return buf.readInt32LE(pos + 1);
  return decodeValue(new Reader(buf, pos, pos + n));
}
