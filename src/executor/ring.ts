/**
 * A single-producer single-consumer ring of byte records in shared memory: no lock, since each
 * side writes only its own counter. Counters count bytes for ever (wrapping at 2^32); a record is
 * `[i32 length][bytes]`, 4-aligned, and never straddles the end: a length of -1 says "go on at
 * the start". The producer publishes a batch by storing its counter once.
 */
const WRAP = -1;

const pad4 = (n: number): number => (n + 3) & ~3;

export class RingWriter {
  #write: number;
  readonly #mask: number;
  readonly #lengths: Int32Array;

  constructor(
    private readonly words: Int32Array,
    private readonly writeIndex: number,
    private readonly readIndex: number,
    readonly data: Buffer,
  ) {
    this.#write = Atomics.load(words, writeIndex);
    this.#mask = data.length - 1;
    this.#lengths = new Int32Array(data.buffer, data.byteOffset, data.length >> 2);
  }

  /** The most bytes a record can have. */
  get maxRecord(): number {
    return (this.data.length >> 1) - 4;
  }

  /**
   * Makes room for a record of `length` bytes and returns where its bytes go, or -1 if the ring
   * has no room now. The record is visible to the reader only after `publish()`.
   */
  reserve(length: number): number {
    const need = 4 + pad4(length);
    const used = (this.#write - Atomics.load(this.words, this.readIndex)) | 0;
    const free = this.data.length - used;
    let pos = this.#write & this.#mask;
    const tail = this.data.length - pos;
    if (tail < need) {
      if (free < tail + need) return -1;
      this.#lengths[pos >> 2] = WRAP;
      this.#write = (this.#write + tail) | 0;
      pos = 0;
    } else if (free < need) {
      return -1;
    }
    this.#lengths[pos >> 2] = length;
    this.#write = (this.#write + need) | 0;
    return pos + 4;
  }

  /** Makes every record reserved so far visible to the reader. */
  publish(): void {
    Atomics.store(this.words, this.writeIndex, this.#write);
  }
}

export class RingReader {
  #read: number;
  readonly #mask: number;
  readonly #lengths: Int32Array;
  /** Where the record last returned by next() starts and ends. */
  start = 0;
  end = 0;

  constructor(
    private readonly words: Int32Array,
    private readonly writeIndex: number,
    private readonly readIndex: number,
    readonly data: Buffer,
  ) {
    this.#read = Atomics.load(words, readIndex);
    this.#mask = data.length - 1;
    this.#lengths = new Int32Array(data.buffer, data.byteOffset, data.length >> 2);
  }

  /** True if a record waits. */
  get ready(): boolean {
    return Atomics.load(this.words, this.writeIndex) !== this.#read;
  }

  /** Moves to the next record (its bytes are data[start, end)); false if there is none. */
  next(): boolean {
    const write = Atomics.load(this.words, this.writeIndex);
    for (;;) {
      if (write === this.#read) return false;
      const pos = this.#read & this.#mask;
      const length = this.#lengths[pos >> 2] as number;
      if (length === WRAP) {
        this.#read = (this.#read + this.data.length - pos) | 0;
        continue;
      }
      this.start = pos + 4;
      this.end = this.start + length;
      return true;
    }
  }

  /** Frees the record last returned by next(). */
  consume(): void {
    this.#read = (this.#read + 4 + pad4(this.end - this.start)) | 0;
    Atomics.store(this.words, this.readIndex, this.#read);
  }
}
