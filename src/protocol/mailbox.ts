/**
 * A single-slot mailbox in shared memory with one writer thread and one reader thread.
 *
 * SEQ and ACK are counters that only go up. The writer may fill the slot only when ACK equals
 * SEQ (the reader has consumed the last message), then bumps SEQ. The reader waits for SEQ to
 * move past what it last saw, reads, then sets ACK to SEQ. A stale or spurious wake-up therefore
 * never shows a torn or repeated message. A message larger than the slot crosses in chunks, each
 * flagged MORE but the last.
 */
import { now } from '../shm/spin-policy.js';

export { now };

export const SEQ = 0;
export const ACK = 1;
const LEN = 2;
const FLAGS = 3;
/** 1 while the reader sleeps on SEQ: only then must the writer pay for a notify. */
export const READER_SLEEPS = 4;
/** 1 while the writer sleeps on ACK (waiting for room). */
export const WRITER_SLEEPS = 5;
/** Words of shared memory one mailbox takes. */
export const MAILBOX_WORDS = 6;
const MORE = 1;

export interface Chunk {
  length: number;
  more: boolean;
}

export class Mailbox {
  constructor(
    readonly words: Int32Array,
    readonly base: number,
    /** The slot's bytes: a view of shared memory. */
    readonly data: Buffer,
    private readonly stamps: Float64Array,
    private readonly stampIndex: number,
  ) {}

  /** When the last chunk was published, in ms on the clock all threads share (see `now`). */
  publishedAt(): number {
    return this.stamps[this.stampIndex] as number;
  }

  /** When the reader took the last chunk (see `markTaken`). */
  takenAt(): number {
    return this.stamps[this.stampIndex + 1] as number;
  }

  /** Reader: note when it began to take what was published, so the writer can tell its wake-up time. */
  markTaken(): void {
    this.stamps[this.stampIndex + 1] = now();
  }

  get seqIndex(): number {
    return this.base + SEQ;
  }

  get ackIndex(): number {
    return this.base + ACK;
  }

  seq(): number {
    return Atomics.load(this.words, this.base + SEQ);
  }

  /** True when the reader has consumed everything written: the writer may fill the slot. */
  isFree(): boolean {
    return Atomics.load(this.words, this.base + ACK) === Atomics.load(this.words, this.base + SEQ);
  }

  /** Writer: the slot holds `length` bytes of a message; publish them (the caller then wakes the reader). */
  publish(length: number, more: boolean): void {
    const w = this.words;
    w[this.base + LEN] = length;
    w[this.base + FLAGS] = more ? MORE : 0;
    this.stamps[this.stampIndex] = now();
    Atomics.add(w, this.base + SEQ, 1);
  }

  /**
   * Wakes the reader if it sleeps. A sleeper sets its flag and then checks SEQ once more before
   * sleeping; the writer bumps SEQ and then reads the flag. Both are sequentially consistent, so
   * either the writer sees the flag or the sleeper sees the new SEQ: no wake-up is lost.
   */
  notify(): void {
    if (Atomics.load(this.words, this.base + READER_SLEEPS) !== 0) Atomics.notify(this.words, this.base + SEQ);
  }

  get readerSleepsIndex(): number {
    return this.base + READER_SLEEPS;
  }

  get writerSleepsIndex(): number {
    return this.base + WRITER_SLEEPS;
  }

  /** Reader: what the last published chunk holds (call after seeing SEQ move). */
  peek(): Chunk {
    const w = this.words;
    return { length: w[this.base + LEN] as number, more: ((w[this.base + FLAGS] as number) & MORE) !== 0 };
  }

  /** Reader: the slot is consumed; the writer may fill it again. */
  consume(): void {
    Atomics.store(this.words, this.base + ACK, Atomics.load(this.words, this.base + SEQ));
    if (Atomics.load(this.words, this.base + WRITER_SLEEPS) !== 0) Atomics.notify(this.words, this.base + ACK);
  }
}

/** Reassembles a message that may arrive in several chunks. */
export class Assembler {
  private parts: Buffer[] = [];

  /**
   * Takes the chunk just published. Returns the whole message, or undefined when more chunks
   * follow (that chunk is then copied and consumed). The returned bytes may be the slot itself:
   * decode them before calling consume().
   */
  take(mailbox: Mailbox): Buffer | undefined {
    const { length, more } = mailbox.peek();
    const chunk = mailbox.data.subarray(0, length);
    if (more) {
      this.parts.push(Buffer.from(chunk));
      mailbox.consume();
      return undefined;
    }
    if (this.parts.length === 0) return chunk;
    this.parts.push(chunk);
    const whole = Buffer.concat(this.parts);
    this.parts = [];
    return whole;
  }
}

/** The bytes of `message` from `offset`, cut to what one slot holds. */
export function nextChunk(mailbox: Mailbox, message: Buffer, offset: number, total: number): number {
  const n = Math.min(mailbox.data.length, total - offset);
  message.copy(mailbox.data, 0, offset, offset + n);
  mailbox.publish(n, offset + n < total);
  return offset + n;
}
