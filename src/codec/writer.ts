import { LoopThreadError } from '../errors.js';

/** Top bit of a string's length: one byte per character (Latin-1, which includes ASCII). */
const ONE_BYTE = 0x80000000;
/**
 * Matches a character that needs two bytes. On a string V8 stores one byte per character it
 * answers at once without reading the string (no such character can be there), so this test costs
 * nothing where a scan (`Buffer.byteLength`) cost more than the copy itself (8 us for 64 KiB).
 */
const TWO_BYTE_CHAR = /[\u0100-\uffff]/;
/** Strings up to this long are written and read by a loop, which beats a native call. */
const SHORT = 48;

/**
 * Writes `s` whole at `pos` (the codec's string: a length word, then the characters) if it is at
 * most SHORT characters of one byte each and `buf` has the room. Returns the end, or -1 (then part
 * of `buf` after `pos` may have been written). For callers that keep their own buffers (Channel).
 */
export function writeShortString(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  if (n > SHORT || pos + 4 + n > buf.length) return -1;
  const start = pos + 4;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) return -1;
    buf[start + i] = c;
  }
  buf.writeUInt32LE((n | ONE_BYTE) >>> 0, pos);
  return start + n;
}

/** Reads the string a Writer wrote at `pos`; the bytes it took are 4 plus `stringBytes(buf, pos)`. */
export function readString(buf: Buffer, pos: number): string {
  return stringAfter(buf, pos + 4, buf.readUInt32LE(pos));
}

/** The string whose characters start at `start`, after its length word `header`. */
function stringAfter(buf: Buffer, start: number, header: number): string {
  const n = (header & ~ONE_BYTE) >>> 0;
  if ((header & ONE_BYTE) === 0) return buf.toString('utf16le', start, start + n);
  if (n > 16) return buf.toString('latin1', start, start + n);
  let s = '';
  for (let i = start; i < start + n; i++) s += String.fromCharCode(buf[i] as number);
  return s;
}

/** How many bytes follow the length word of the string at `pos`. */
export function stringBytes(buf: Buffer, pos: number): number {
  return (buf.readUInt32LE(pos) & ~ONE_BYTE) >>> 0;
}

/**
 * A byte writer that writes straight into a target buffer (usually a window of shared memory, so
 * a small message is copied once) and moves to a growing heap buffer when the target is full.
 */
/**
 * The most bytes one message (a call's arguments, a result, a channel item) may take encoded. A
 * reader refuses a larger one as corrupt, so a peer cannot make it hold more.
 */
export const MAX_MESSAGE_BYTES = 2 * 1024 * 1024 * 1024;

export class Writer {
  buf: Buffer;
  pos: number;
  /** True once the message no longer fits the target and lives in a heap buffer. */
  spilled = false;
  /**
   * Objects that travel beside the bytes, by postMessage (MessagePorts, SharedArrayBuffers).
   * Undefined when the message goes through shared memory, where they cannot.
   */
  readonly beside: unknown[] | undefined;

  constructor(target: Buffer, start = 0, beside?: unknown[]) {
    this.buf = target;
    this.pos = start;
    this.beside = beside;
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (need > MAX_MESSAGE_BYTES) {
      throw new RangeError(
        `loopthread: a message may take at most 2 GiB encoded; this one takes more (pass such data in a SharedArrayBuffer)`,
      );
    }
    const grown = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2, 256));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
    this.spilled = true;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }

  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.pos);
    this.pos += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /**
   * A length-prefixed string: one byte per character when every character fits in one (flagged in
   * the length's top bit), copied straight from V8's one-byte representation; otherwise UTF-16,
   * which keeps every string exactly (lone surrogates included, which UTF-8 would replace).
   */
  string(s: string): void {
    const n = s.length;
    if (n <= SHORT) {
      this.ensure(4 + n);
      const end = writeShortString(this.buf, this.pos, s);
      if (end >= 0) {
        this.pos = end;
        return;
      }
    }
    const oneByte = !TWO_BYTE_CHAR.test(s);
    const length = oneByte ? n : 2 * n;
    this.ensure(4 + length);
    this.buf.write(s, this.pos + 4, length, oneByte ? 'latin1' : 'utf16le');
    this.buf.writeUInt32LE(oneByte ? (n | ONE_BYTE) >>> 0 : length, this.pos);
    this.pos += 4 + length;
  }

  bytes(src: Uint8Array): void {
    this.u32(src.byteLength);
    this.ensure(src.byteLength);
    this.buf.set(src, this.pos);
    this.pos += src.byteLength;
  }
}

/** Reads what a Writer wrote. */
export class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  readonly beside: readonly unknown[];

  constructor(buf: Buffer, start: number, end: number, beside: readonly unknown[] = []) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.beside = beside;
  }

  /** Fails unless `n` more bytes are in the message: a length read from memory is never trusted. */
  private need(n: number): void {
    if (n > this.end - this.pos) throw corrupt(`${String(n)} bytes announced, ${String(this.end - this.pos)} left`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A count of entries that follow, each at least one byte: more than the bytes left is corrupt. */
  count(): number {
    const n = this.u32();
    this.need(n);
    return n;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  string(): string {
    this.need(4);
    const header = this.buf.readUInt32LE(this.pos);
    const n = (header & ~ONE_BYTE) >>> 0;
    this.need(4 + n);
    const s = stringAfter(this.buf, this.pos + 4, header);
    this.pos += 4 + n;
    return s;
  }

  /** A copy of the next length-prefixed bytes, in a fresh ArrayBuffer of its own. */
  bytes(): ArrayBuffer {
    const n = this.u32();
    this.need(n);
    const out = new ArrayBuffer(n);
    new Uint8Array(out).set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
}

/** The error for bytes that cannot be a message (memory overwritten, or a bug): never trusted further. */
export function corrupt(what: string): LoopThreadError {
  return new LoopThreadError(`loopthread: corrupt message (${what})`);
}
