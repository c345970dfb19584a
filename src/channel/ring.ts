/**
 * The ring of records in shared memory, and every change to it. Each method takes the lock,
 * copies bytes and updates the header, then releases the lock and bumps the sequence counter
 * that the other side's waiters sleep on (notifying only when some wait).
 */
import { lock, unlock } from './lock.js';
import {
  CAPACITY,
  CLOSED,
  CLOSED_NOW,
  COUNT,
  DONE_SEQ,
  GET_SEQ,
  GET_WAITERS,
  HEAD,
  HEADER_WORDS,
  OPEN,
  PUT_SEQ,
  PUT_WAITERS,
  RECORD_HEADER,
  RING_BYTES,
  STATE,
  TAIL,
  UNFINISHED,
  USED,
  pad4,
} from './layout.js';

/** What a put did. */
export const enum PutResult {
  Done,
  Full,
  Closed,
}

/** What a get found when it took nothing. */
export const EMPTY = -1;
export const ENDED = -2;

export class Ring {
  readonly words: Int32Array;
  /** The ring's bytes. */
  readonly data: Uint8Array;
  /** The ring as words, to read and write record lengths (records start aligned to 4). */
  private readonly lengths: Int32Array;
  readonly size: number;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, HEADER_WORDS);
    this.size = this.words[RING_BYTES] as number;
    this.data = new Uint8Array(buffer, HEADER_WORDS * 4, this.size);
    this.lengths = new Int32Array(buffer, HEADER_WORDS * 4, this.size >> 2);
  }

  /** The most bytes one item may have. */
  get maxItemBytes(): number {
    return this.size - RECORD_HEADER;
  }

  put(src: Uint8Array): PutResult {
    const w = this.words;
    const size = this.size;
    const n = src.byteLength;
    const need = RECORD_HEADER + pad4(n);
    lock(w);
    try {
      if (w[STATE] !== OPEN) return PutResult.Closed;
      if ((w[COUNT] as number) >= (w[CAPACITY] as number) || (w[USED] as number) + need > size) return PutResult.Full;
      const tail = w[TAIL] as number;
      this.lengths[tail >> 2] = n;
      let at = tail + RECORD_HEADER;
      if (at === size) at = 0;
      const first = size - at;
      if (n <= first) this.data.set(src, at);
      else {
        this.data.set(src.subarray(0, first), at);
        this.data.set(src.subarray(first), 0);
      }
      w[TAIL] = (tail + need) % size;
      w[USED] = (w[USED] as number) + need;
      w[UNFINISHED] = (w[UNFINISHED] as number) + 1;
      w[COUNT] = (w[COUNT] as number) + 1;
    } finally {
      unlock(w);
    }
    Atomics.add(w, PUT_SEQ, 1);
    if (Atomics.load(w, GET_WAITERS) !== 0) Atomics.notify(w, PUT_SEQ);
    return PutResult.Done;
  }

  /**
   * Takes the oldest record: `take(length)` gives the buffer to copy it into (called under the
   * lock). Returns the record's length, EMPTY, or ENDED (closed and drained).
   */
  get(take: (length: number) => Uint8Array): number {
    const w = this.words;
    const size = this.size;
    let n: number;
    lock(w);
    try {
      if (w[COUNT] === 0) return w[STATE] === OPEN ? EMPTY : ENDED;
      const head = w[HEAD] as number;
      n = this.lengths[head >> 2] as number;
      let at = head + RECORD_HEADER;
      if (at === size) at = 0;
      const out = take(n);
      const first = size - at;
      if (n <= first) out.set(this.data.subarray(at, at + n));
      else {
        out.set(this.data.subarray(at, size));
        out.set(this.data.subarray(0, n - first), first);
      }
      const need = RECORD_HEADER + pad4(n);
      w[HEAD] = (head + need) % size;
      w[USED] = (w[USED] as number) - need;
      w[COUNT] = (w[COUNT] as number) - 1;
    } finally {
      unlock(w);
    }
    Atomics.add(w, GET_SEQ, 1);
    if (Atomics.load(w, PUT_WAITERS) !== 0) Atomics.notify(w, GET_SEQ);
    return n;
  }

  /** Closes: no more puts; gets drain what is left, or (immediate) find nothing left. Wakes every waiter. */
  close(immediate: boolean): void {
    const w = this.words;
    lock(w);
    try {
      if (w[STATE] === OPEN) w[STATE] = CLOSED;
      if (immediate && w[STATE] === CLOSED) {
        w[STATE] = CLOSED_NOW;
        w[UNFINISHED] = Math.max(0, (w[UNFINISHED] as number) - (w[COUNT] as number));
        w[HEAD] = w[TAIL] as number;
        w[USED] = 0;
        w[COUNT] = 0;
      }
    } finally {
      unlock(w);
    }
    for (const seq of [PUT_SEQ, GET_SEQ, DONE_SEQ]) {
      Atomics.add(w, seq, 1);
      Atomics.notify(w, seq);
    }
  }

  /** One item got earlier is done. False if there was none left to mark. */
  taskDone(): boolean {
    const w = this.words;
    let left: number;
    lock(w);
    try {
      left = w[UNFINISHED] as number;
      if (left <= 0) return false;
      w[UNFINISHED] = --left;
    } finally {
      unlock(w);
    }
    if (left === 0) {
      Atomics.add(w, DONE_SEQ, 1);
      Atomics.notify(w, DONE_SEQ);
    }
    return true;
  }
}
