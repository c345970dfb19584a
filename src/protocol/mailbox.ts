/**
 * A single-slot mailbox in shared memory with one writer thread and one reader thread.
 *
 * SEQ and ACK are counters that only go up. The writer may fill the slot only when ACK equals
 * SEQ (the reader has consumed the last message), then bumps SEQ. The reader waits for SEQ to
 * move past what it last saw, reads, then sets ACK to SEQ. A stale or spurious wake-up therefore
 * never shows a torn or repeated message. A message larger than the slot goes by the connection's
 * port instead, and the slot holds only a marker flagged ON_PORT (see bulk.ts).
 */
import { now } from '../shm/spin-policy.js';

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
/** FLAGS: the message is the next bulk packet on the connection's port (see bulk.ts). */
const ON_PORT = 1;

export interface Slot {
  /** Bytes of the message in the slot (0 for a marker). */
  length: number;
  onPort: boolean;
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

  /** When the last message was published, in ms on the clock all threads share (see `now`). */
  publishedAt(): number {
    return this.stamps[this.stampIndex] as number;
  }

  /** When the reader took the last message (see `markTaken`). */
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

  /**
   * Writer: the slot holds `length` bytes of a message, or (`onPort`) a marker for one posted on the
   * port just before; publish it (the caller then wakes the reader).
   */
  publish(length: number, onPort = false): void {
    const w = this.words;
    w[this.base + LEN] = length;
    w[this.base + FLAGS] = onPort ? ON_PORT : 0;
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

  /** Reader: what the last published message is (call after seeing SEQ move). */
  peek(): Slot {
    const w = this.words;
    return { length: w[this.base + LEN] as number, onPort: ((w[this.base + FLAGS] as number) & ON_PORT) !== 0 };
  }

  /** Reader: the slot is consumed; the writer may fill it again. */
  consume(): void {
    Atomics.store(this.words, this.base + ACK, Atomics.load(this.words, this.base + SEQ));
    if (Atomics.load(this.words, this.base + WRITER_SLEEPS) !== 0) Atomics.notify(this.words, this.base + ACK);
  }
}
