/**
 * The ring of records in shared memory, and every change to it. Each method takes the lock,
 * copies bytes, updates the header and bumps the sequence counter that the other side's waiters
 * sleep on, then releases the lock and notifies (only when some wait).
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

/** What putBack() did. */
export const enum Back {
  Done,
  NoRoom,
  /** The channel was closed at once meanwhile: the items are dropped. */
  Dropped,
}

/** What a get found when it took nothing. */
export const EMPTY = -1;
export const ENDED = -2;

/** Records up to this many bytes are copied by a loop, which beats a native call for so few. */
const SMALL = 64;

export class Ring {
  readonly words: Int32Array;
  /** The ring's bytes. */
  readonly data: Uint8Array;
  /** The ring as words, to read and write record lengths (records start aligned to 4). */
  private readonly lengths: Int32Array;
  readonly size: number;
  /**
   * After a put that found the ring full, the GET_SEQ it saw under the lock; after a get that found
   * it empty, the PUT_SEQ. A waiter sleeps on that value: the counters are bumped under the lock,
   * so any change after the check moves them past it.
   */
  seen = 0;
  /** Where get() copies a record in values mode (grown as needed, reused). */
  out: Buffer = Buffer.allocUnsafeSlow(4096);
  /** In bytes mode, the fresh array get() copied the record into. */
  outBytes: Uint8Array | undefined;

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

  /** Writes a record at `at`: its length, then the first `n` bytes of `src`, wrapping at the ring's end. */
  private writeRecord(at: number, src: Uint8Array, n: number): void {
    const size = this.size;
    this.lengths[at >> 2] = n;
    let dst = at + RECORD_HEADER;
    if (dst === size) dst = 0;
    const first = size - dst;
    const data = this.data;
    if (n <= first) {
      if (n <= SMALL) for (let i = 0; i < n; i++) data[dst + i] = src[i] as number;
      else data.set(n === src.byteLength ? src : src.subarray(0, n), dst);
    } else {
      data.set(src.subarray(0, first), dst);
      data.set(src.subarray(first, n), 0);
    }
  }

  /** Puts the first `n` bytes of `src`. */
  put(src: Uint8Array, n: number): PutResult {
    const w = this.words;
    const size = this.size;
    const need = RECORD_HEADER + pad4(n);
    lock(w);
    try {
      if (w[STATE] !== OPEN) return PutResult.Closed;
      if ((w[COUNT] as number) >= (w[CAPACITY] as number) || (w[USED] as number) + need > size) {
        this.seen = w[GET_SEQ] as number;
        return PutResult.Full;
      }
      const tail = w[TAIL] as number;
      this.writeRecord(tail, src, n);
      w[TAIL] = (tail + need) % size;
      w[USED] = (w[USED] as number) + need;
      w[UNFINISHED] = (w[UNFINISHED] as number) + 1;
      w[COUNT] = (w[COUNT] as number) + 1;
      Atomics.add(w, PUT_SEQ, 1);
    } finally {
      unlock(w);
    }
    if (Atomics.load(w, GET_WAITERS) !== 0) Atomics.notify(w, PUT_SEQ);
    return PutResult.Done;
  }

  /**
   * Takes the oldest record: in values mode its bytes go to `out` (grown if need be), in bytes
   * mode to a new array in `outBytes`. Returns the record's length, EMPTY, or ENDED (closed and
   * drained).
   */
  get(bytesMode: boolean): number {
    const w = this.words;
    const size = this.size;
    let n: number;
    lock(w);
    try {
      if (w[COUNT] === 0) {
        this.seen = w[PUT_SEQ] as number;
        return w[STATE] === OPEN ? EMPTY : ENDED;
      }
      const head = w[HEAD] as number;
      n = this.lengths[head >> 2] as number;
      let at = head + RECORD_HEADER;
      if (at === size) at = 0;
      let out: Uint8Array;
      if (bytesMode) out = this.outBytes = new Uint8Array(n);
      else {
        if (this.out.length < n) this.out = Buffer.allocUnsafeSlow(Math.max(n, this.out.length * 2));
        out = this.out;
      }
      const first = size - at;
      const data = this.data;
      if (n <= first) {
        if (n <= SMALL) for (let i = 0; i < n; i++) out[i] = data[at + i] as number;
        else out.set(data.subarray(at, at + n));
      } else {
        out.set(data.subarray(at, size));
        out.set(data.subarray(0, n - first), first);
      }
      const need = RECORD_HEADER + pad4(n);
      w[HEAD] = (head + need) % size;
      w[USED] = (w[USED] as number) - need;
      w[COUNT] = (w[COUNT] as number) - 1;
      Atomics.add(w, GET_SEQ, 1);
    } finally {
      unlock(w);
    }
    if (Atomics.load(w, PUT_WAITERS) !== 0) Atomics.notify(w, GET_SEQ);
    return n;
  }

  /**
   * Takes up to `max` of the oldest records in one lock: their bytes go one after another into
   * `out` (values mode), their lengths into `lens`. Returns how many, EMPTY or ENDED.
   */
  getBatch(max: number, lens: Int32Array): number {
    const w = this.words;
    const size = this.size;
    let k = 0;
    lock(w);
    try {
      const count = w[COUNT] as number;
      if (count === 0) {
        this.seen = w[PUT_SEQ] as number;
        return w[STATE] === OPEN ? EMPTY : ENDED;
      }
      const data = this.data;
      let head = w[HEAD] as number;
      let pos = 0;
      let freed = 0;
      for (; k < max && k < count; k++) {
        const n = this.lengths[head >> 2] as number;
        if (k > 0 && pos + n > this.out.length) break;
        if (this.out.length < n) this.out = Buffer.allocUnsafeSlow(Math.max(n, this.out.length * 2));
        const out = this.out;
        let at = head + RECORD_HEADER;
        if (at === size) at = 0;
        const first = size - at;
        if (n <= first) {
          if (n <= SMALL) for (let i = 0; i < n; i++) out[pos + i] = data[at + i] as number;
          else out.set(data.subarray(at, at + n), pos);
        } else {
          out.set(data.subarray(at, size), pos);
          out.set(data.subarray(0, n - first), pos + first);
        }
        lens[k] = n;
        pos += n;
        const need = RECORD_HEADER + pad4(n);
        freed += need;
        head = (head + need) % size;
      }
      w[HEAD] = head;
      w[USED] = (w[USED] as number) - freed;
      w[COUNT] = count - k;
      Atomics.add(w, GET_SEQ, k);
    } finally {
      unlock(w);
    }
    if (Atomics.load(w, PUT_WAITERS) !== 0) Atomics.notify(w, GET_SEQ);
    return k;
  }

  /**
   * Gives back records taken by getBatch() and not handed out (`lens[from..to)`, whose bytes
   * start at `start` in `out`), in front of the oldest, if the ring has the room: the free bytes
   * always end right before HEAD. NoRoom if it had not (nothing changed then).
   */
  putBack(lens: Int32Array, from: number, to: number, start: number): Back {
    const w = this.words;
    const size = this.size;
    let total = 0;
    for (let k = from; k < to; k++) total += RECORD_HEADER + pad4(lens[k] as number);
    lock(w);
    try {
      if (w[STATE] === CLOSED_NOW) return Back.Dropped;
      if ((w[USED] as number) + total > size) return Back.NoRoom;
      const head = ((((w[HEAD] as number) - total) % size) + size) % size;
      let at = head;
      let pos = start;
      const out = this.out;
      for (let k = from; k < to; k++) {
        const n = lens[k] as number;
        this.writeRecord(at, out.subarray(pos, pos + n), n);
        pos += n;
        at = (at + RECORD_HEADER + pad4(n)) % size;
      }
      w[HEAD] = head;
      w[USED] = (w[USED] as number) + total;
      w[COUNT] = (w[COUNT] as number) + (to - from);
      Atomics.add(w, PUT_SEQ, 1);
    } finally {
      unlock(w);
    }
    if (Atomics.load(w, GET_WAITERS) !== 0) Atomics.notify(w, PUT_SEQ);
    return Back.Done;
  }

  /** Items taken by getBatch() were dropped by an immediate close: they count as done. */
  dropped(k: number): void {
    const w = this.words;
    let left: number;
    lock(w);
    try {
      left = Math.max(0, (w[UNFINISHED] as number) - k);
      w[UNFINISHED] = left;
    } finally {
      unlock(w);
    }
    if (left === 0) {
      Atomics.add(w, DONE_SEQ, 1);
      Atomics.notify(w, DONE_SEQ);
    }
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
