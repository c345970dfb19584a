import { copyBytes, LARGE_COPY } from './copy.js';
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
 * In place of a length word: the bytes (or a string's characters, whose own length word follows)
 * are in a buffer of their own beside the message, whose index follows (see Writer.parts).
 */
const IN_PART = 0xffffffff;
/**
 * In place of a string's length word: its characters are in the writer's spare shared memory (see
 * Writer.spare); its length word follows.
 */
const IN_SPARE = 0xfffffffe;

/**
 * The unsigned little-endian 32-bit word at `p`, and writing one. Byte by byte rather than by
 * Buffer's methods: reached through buffers of several kinds (shared memory, the heap), the methods
 * were a generic property lookup on every call in V8's optimized code.
 */
function getU32(b: Uint8Array, p: number): number {
  return (
    ((b[p] as number) | ((b[p + 1] as number) << 8) | ((b[p + 2] as number) << 16)) + (b[p + 3] as number) * 0x1000000
  );
}
function setU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
}

/**
 * Shared memory a writer may reuse for the characters of one large string per message: the pages
 * are already the process's, where a new buffer's are each a fault on first write (most of the cost
 * of copying a string of hundreds of MiB). The owner knows when the reader is done with it.
 */
export interface Spare {
  /** `n` bytes of spare memory for this message, or undefined (taken by this message already). */
  take(n: number): Buffer | undefined;
}
/**
 * Bytes below this size always go in the message: a buffer of their own costs a transfer (listed
 * on the port message, detached, wrapped again), which beats copying them twice only from here.
 */
const PART_MIN_BYTES = 64 * 1024;

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
  setU32(buf, pos, (n | ONE_BYTE) >>> 0);
  return start + n;
}

/** Reads the string a Writer wrote at `pos`; the bytes it took are 4 plus `stringBytes(buf, pos)`. */
export function readString(buf: Buffer, pos: number): string {
  return stringAfter(buf, pos + 4, getU32(buf, pos));
}

/** The string whose characters start at `start`, after its length word `header`. */
function stringAfter(buf: Buffer, start: number, header: number): string {
  const n = (header & ~ONE_BYTE) >>> 0;
  if ((header & ONE_BYTE) === 0) return buf.toString('utf16le', start, start + n);
  return n > 8 ? buf.toString('latin1', start, start + n) : shortLatin1(buf, start, n);
}

/**
 * A one-byte string of at most 8 characters, made in one step: appending characters one by one
 * made a string per character (three times slower for 8), and toString pays for its checks.
 */
function shortLatin1(b: Buffer, s: number, n: number): string {
  const c = String.fromCharCode;
  switch (n) {
    case 0:
      return '';
    case 1:
      return c(at(b, s));
    case 2:
      return c(at(b, s), at(b, s + 1));
    case 3:
      return c(at(b, s), at(b, s + 1), at(b, s + 2));
    case 4:
      return c(at(b, s), at(b, s + 1), at(b, s + 2), at(b, s + 3));
    case 5:
      return c(at(b, s), at(b, s + 1), at(b, s + 2), at(b, s + 3), at(b, s + 4));
    case 6:
      return c(at(b, s), at(b, s + 1), at(b, s + 2), at(b, s + 3), at(b, s + 4), at(b, s + 5));
    case 7:
      return c(at(b, s), at(b, s + 1), at(b, s + 2), at(b, s + 3), at(b, s + 4), at(b, s + 5), at(b, s + 6));
    default:
      return c(
        at(b, s),
        at(b, s + 1),
        at(b, s + 2),
        at(b, s + 3),
        at(b, s + 4),
        at(b, s + 5),
        at(b, s + 6),
        at(b, s + 7),
      );
  }
}

/** The byte at `i` (callers stay within the string they read). */
const at = (b: Buffer, i: number): number => b[i] as number;

/** How many bytes follow the length word of the string at `pos`. */
export function stringBytes(buf: Buffer, pos: number): number {
  return (getU32(buf, pos) & ~ONE_BYTE) >>> 0;
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
  /**
   * Buffers of their own that travel beside the bytes, transferred (undefined where the message
   * cannot be posted). Bytes or a string too large for the room left go into one: copied once,
   * never moved again, and the receiver keeps that very buffer (see `outOfLine`).
   */
  readonly parts: ArrayBuffer[] | undefined;
  /** Where a large string's characters go first, if the message can carry it (see Spare). */
  private readonly spare: Spare | undefined;
  /** Bytes of the message outside `buf`: in its parts and its spare. */
  private aside = 0;

  constructor(target: Buffer, start = 0, beside?: unknown[], parts?: ArrayBuffer[], spare?: Spare) {
    this.buf = target;
    this.pos = start;
    this.beside = beside;
    this.parts = parts;
    this.spare = spare;
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    this.limit(need);
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
    setU32(this.buf, this.pos, v);
    this.pos += 4;
  }

  i32(v: number): void {
    this.ensure(4);
    setU32(this.buf, this.pos, v);
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
    const header = oneByte ? (n | ONE_BYTE) >>> 0 : length;
    if (this.outOfLine(length)) {
      const spare = this.spare?.take(length);
      if (spare !== undefined) {
        spare.write(s, 0, length, oneByte ? 'latin1' : 'utf16le');
        this.u32(IN_SPARE);
        this.u32(header);
        return;
      }
      const part = Buffer.allocUnsafeSlow(length);
      part.write(s, 0, length, oneByte ? 'latin1' : 'utf16le');
      this.putPart(part.buffer, header);
      return;
    }
    this.ensure(4 + length);
    this.buf.write(s, this.pos + 4, length, oneByte ? 'latin1' : 'utf16le');
    setU32(this.buf, this.pos, header);
    this.pos += 4 + length;
  }

  /** Length-prefixed bytes; the reader gets them in an ArrayBuffer of their own (see Reader.bytes). */
  bytes(src: Uint8Array): void {
    if (this.outOfLine(src.byteLength)) {
      this.putPart(src.slice().buffer);
      return;
    }
    this.u32(src.byteLength);
    this.ensure(src.byteLength);
    copyBytes(this.buf, this.pos, src);
    this.pos += src.byteLength;
  }

  /**
   * Whether `n` bytes go into a part of their own: when the message can carry parts, they are
   * large, and they do not fit in the room left. In the message they would cost a larger buffer
   * (a copy of all written so far, and room to spare when it doubles), then a copy out on the
   * other side; in a part they are copied once, into a buffer of exactly their size.
   */
  private outOfLine(n: number): boolean {
    if (this.parts === undefined || n < PART_MIN_BYTES || n <= this.buf.length - this.pos - 4) return false;
    this.aside += n;
    this.limit(this.pos);
    return true;
  }

  /** Refuses a message that takes more than MAX_MESSAGE_BYTES with `bytes` in it and its parts beside. */
  private limit(bytes: number): void {
    if (bytes + this.aside > MAX_MESSAGE_BYTES) {
      throw new RangeError(
        `loopthread: a message may take at most 2 GiB encoded; this one takes more (pass such data in a SharedArrayBuffer)`,
      );
    }
  }

  /** Writes the marker of `part` (after a string's `header`, if one) and adds it to the parts. */
  private putPart(part: ArrayBuffer, header?: number): void {
    const parts = this.parts as ArrayBuffer[];
    this.u32(IN_PART);
    if (header !== undefined) this.u32(header);
    this.u32(parts.push(part) - 1);
  }
}

/** The parts of a message that has none: never written to (`Reader.part` finds nothing in it). */
const NO_PARTS: (ArrayBuffer | undefined)[] = [];

/** Reads what a Writer wrote. */
export class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  readonly beside: readonly unknown[];
  /** The parts that came with the message (see Writer.parts), each taken once. */
  private readonly parts: (ArrayBuffer | undefined)[];
  /** The writer's spare as it was when the message was written (see Writer.spare). */
  private readonly spare: Buffer | undefined;

  constructor(
    buf: Buffer,
    start: number,
    end: number,
    beside: readonly unknown[] = [],
    parts: readonly ArrayBuffer[] = [],
    spare?: SharedArrayBuffer,
  ) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.beside = beside;
    this.parts = parts.length === 0 ? NO_PARTS : [...parts];
    this.spare = spare === undefined ? undefined : Buffer.from(spare);
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
    const v = getU32(this.buf, this.pos);
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
    const v = getU32(this.buf, this.pos) | 0;
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
    const header = getU32(this.buf, this.pos);
    if (header === IN_PART || header === IN_SPARE) {
      this.pos += 4;
      const real = this.u32();
      const bytes = (real & ONE_BYTE) === 0 ? real : (real & ~ONE_BYTE) >>> 0;
      if (header === IN_SPARE) {
        if (this.spare === undefined || bytes > this.spare.length) throw corrupt('a string larger than its spare');
        return stringAfter(this.spare, 0, real);
      }
      const part = Buffer.from(this.part());
      if (part.length !== bytes) throw corrupt('a string whose part is not its length');
      return stringAfter(part, 0, real);
    }
    const n = (header & ~ONE_BYTE) >>> 0;
    this.need(4 + n);
    const s = stringAfter(this.buf, this.pos + 4, header);
    this.pos += 4 + n;
    return s;
  }

  /**
   * The next length-prefixed bytes, in an ArrayBuffer of their own that nothing else uses: a copy,
   * or the part they came in (exactly their bytes, transferred to this thread).
   */
  bytes(): ArrayBuffer {
    const n = this.u32();
    if (n === IN_PART) return this.part();
    this.need(n);
    // (A large one in memory not zeroed first: it is overwritten whole, see copyBytes.)
    const out = n < LARGE_COPY ? new Uint8Array(n) : Buffer.allocUnsafeSlow(n);
    copyBytes(out, 0, this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out.buffer;
  }

  /** The part whose index is next; a part named twice (or not there) is corrupt. */
  private part(): ArrayBuffer {
    const i = this.u32();
    const part = this.parts[i];
    if (part === undefined) throw corrupt('a part beside the message that is not there');
    this.parts[i] = undefined;
    return part;
  }
}

/** The error for bytes that cannot be a message (memory overwritten, or a bug): never trusted further. */
export function corrupt(what: string): LoopThreadError {
  return new LoopThreadError(`loopthread: corrupt message (${what})`);
}
