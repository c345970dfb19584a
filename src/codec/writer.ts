/** Top bit of a string's length: its bytes are ASCII. */
const ASCII = 0x80000000;

/**
 * A byte writer that writes straight into a target buffer (usually a window of shared memory, so
 * a small message is copied once) and moves to a growing heap buffer when the target is full.
 */
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
   * A length-prefixed string: ASCII (flagged in the length's top bit) byte for byte, short ones in
   * a JS loop, which beats a native call; any other string as UTF-16.
   */
  string(s: string): void {
    const n = s.length;
    if (n <= 48) {
      this.ensure(4 + n);
      const buf = this.buf;
      const start = this.pos + 4;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[start + i] = c;
      }
      if (i === n) {
        buf.writeUInt32LE((n | ASCII) >>> 0, this.pos);
        this.pos = start + n;
        return;
      }
    }
    // UTF-8 length equals the string's length only for ASCII. Anything else goes as UTF-16,
    // which keeps every string exactly (lone surrogates included, which UTF-8 would replace).
    const ascii = Buffer.byteLength(s, 'utf8') === n;
    const length = ascii ? n : 2 * n;
    this.ensure(4 + length);
    this.buf.write(s, this.pos + 4, length, ascii ? 'latin1' : 'utf16le');
    this.buf.writeUInt32LE(ascii ? (n | ASCII) >>> 0 : length, this.pos);
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

  u8(): number {
    return this.buf[this.pos++] as number;
  }

  u32(): number {
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  i32(): number {
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  string(): string {
    const header = this.u32();
    const n = (header & ~ASCII) >>> 0;
    const start = this.pos;
    this.pos += n;
    if ((header & ASCII) === 0) return this.buf.toString('utf16le', start, start + n);
    if (n > 16) return this.buf.toString('latin1', start, start + n);
    const buf = this.buf;
    let s = '';
    for (let i = start; i < start + n; i++) s += String.fromCharCode(buf[i] as number);
    return s;
  }

  /** A copy of the next length-prefixed bytes, in a fresh ArrayBuffer of its own. */
  bytes(): ArrayBuffer {
    const n = this.u32();
    const out = new ArrayBuffer(n);
    new Uint8Array(out).set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
}
