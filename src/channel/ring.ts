/**
 * The ring of records in shared memory, and every change to it. A put takes the put lock, a get
 * the get lock (layout.ts); each copies bytes, updates its side's words and stores its side's
 * counter last, which publishes the change to the other side. A side notifies the other's sleepers
 * only when some sleep.
 *
 * Each Ring keeps a view of the other side's counters as this thread last read them: a putter
 * reads the get side only when its view says full, a getter the put side only when its view says
 * empty, so that with one putting and one getting thread each touches the other's cache line once
 * per batch of items rather than once per item. An old view is safe: the other side's counters
 * only go up, so it under-counts the room (or the items). It would not be safe after 2^31 moves of
 * another thread of the same side (32-bit counters wrap), so a view counts only while the lock's
 * release counter shows that no other thread took that lock since this thread released it.
 */
import { LOCK_SEQ, lock, unlock } from './lock.js';
import {
  BYTES_IN,
  BYTES_OUT,
  CAPACITY,
  CLOSED,
  CLOSED_NOW,
  DONE_SEQ,
  GET_LOCK,
  GET_SEQ,
  GET_SLEEP,
  HEAD,
  HEADER_WORDS,
  OPEN,
  PUT_LOCK,
  PUT_SEQ,
  PUT_SLEEP,
  RECORD_HEADER,
  RING_BYTES,
  STATE,
  TAIL,
  UNFINISHED,
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

/**
 * Wakes the threads sleeping on `seq` once per sleep (see GET_SLEEP). The caller stored `seq`
 * before it read the flag, and a sleeper sets the flag before it checks `seq` in Atomics.wait:
 * so either the caller sees the flag, or the sleeper sees the new `seq` and does not sleep.
 */
function wake(w: Int32Array, flag: number, seq: number): void {
  if (Atomics.exchange(w, flag, 0) !== 0) Atomics.notify(w, seq);
}

/** Records up to this many bytes are copied by a loop, which beats a native call for so few. */
const SMALL = 64;

export class Ring {
  readonly words: Int32Array;
  /** The ring's bytes. */
  readonly data: Uint8Array;
  /** The ring as words, to read and write record lengths (records start aligned to 4). */
  private readonly lengths: Int32Array;
  readonly size: number;
  readonly capacity: number;
  /**
   * After a put that found the ring full, the GET_SEQ it saw; after a get that found it empty, the
   * PUT_SEQ. A waiter sleeps on that value: the other side moves its counter after any change
   * that could matter, so no change is missed.
   */
  seen = 0;
  /** Where get() copies a record in values mode (grown as needed, reused). */
  out: Buffer = Buffer.allocUnsafeSlow(4096);
  /** In bytes mode, the fresh array get() copied the record into. */
  outBytes: Uint8Array | undefined;

  // This thread's views of the other side (see above). NaN: no view yet.
  #outItems = 0;
  #outBytes = 0;
  #putMine = NaN;
  #inItems = 0;
  #getMine = NaN;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, HEADER_WORDS);
    this.size = this.words[RING_BYTES] as number;
    this.capacity = this.words[CAPACITY] as number;
    this.data = new Uint8Array(buffer, HEADER_WORDS * 4, this.size);
    this.lengths = new Int32Array(buffer, HEADER_WORDS * 4, this.size >> 2);
  }

  /** The most bytes one item may have. */
  get maxItemBytes(): number {
    return this.size - RECORD_HEADER;
  }

  /** Items in the ring now (a snapshot: the two counters are read one after the other). */
  get count(): number {
    const out = Atomics.load(this.words, GET_SEQ);
    const n = (Atomics.load(this.words, PUT_SEQ) - out) | 0;
    return Math.max(0, Math.min(n, this.capacity));
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

  /** Copies the record at `head` (`n` bytes) to `out` at `pos`; returns the offset after the record. */
  private readRecord(head: number, n: number, out: Uint8Array, pos: number): number {
    const size = this.size;
    const data = this.data;
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
    const next = head + RECORD_HEADER + pad4(n);
    return next >= size ? next - size : next;
  }

  /** Puts the first `n` bytes of `src`. */
  put(src: Uint8Array, n: number): PutResult {
    const w = this.words;
    const size = this.size;
    const need = RECORD_HEADER + pad4(n);
    let result = PutResult.Done;
    lock(w, PUT_LOCK);
    try {
      if (w[STATE] !== OPEN) result = PutResult.Closed;
      else {
        const items = w[PUT_SEQ] as number;
        const bytes = w[BYTES_IN] as number;
        if (
          w[PUT_LOCK + LOCK_SEQ] !== this.#putMine ||
          ((items - this.#outItems) | 0) >= this.capacity ||
          ((bytes - this.#outBytes) | 0) + need > size
        ) {
          // GET_SEQ first: a get that frees room after this read moves it past `seen`.
          this.#outItems = Atomics.load(w, GET_SEQ);
          this.#outBytes = Atomics.load(w, BYTES_OUT);
          if (((items - this.#outItems) | 0) >= this.capacity || ((bytes - this.#outBytes) | 0) + need > size) {
            this.seen = this.#outItems;
            result = PutResult.Full;
          }
        }
        if (result === PutResult.Done) {
          const tail = w[TAIL] as number;
          this.writeRecord(tail, src, n);
          // Straight-line stores, no call or loop between them: a terminate() cannot land in between.
          const next = tail + need;
          w[TAIL] = next >= size ? next - size : next;
          w[BYTES_IN] = (bytes + need) | 0;
          w[UNFINISHED] = (w[UNFINISHED] as number) + 1;
          Atomics.store(w, PUT_SEQ, (items + 1) | 0);
        }
      }
    } finally {
      this.#putMine = unlock(w, PUT_LOCK);
    }
    if (result === PutResult.Done && Atomics.load(w, GET_SLEEP) !== 0) wake(w, GET_SLEEP, PUT_SEQ);
    return result;
  }

  /** Under the get lock: items there for this thread (reading the put side only if its view has none). */
  #available(out: number): number {
    const w = this.words;
    let avail = (this.#inItems - out) | 0;
    if (avail <= 0 || w[GET_LOCK + LOCK_SEQ] !== this.#getMine) {
      this.#inItems = Atomics.load(w, PUT_SEQ);
      avail = (this.#inItems - out) | 0;
      if (avail <= 0) this.seen = this.#inItems;
    }
    return avail;
  }

  /**
   * Takes the oldest record: in values mode its bytes go to `out` (grown if need be), in bytes
   * mode to a new array in `outBytes`. Returns the record's length, EMPTY, or ENDED (closed and
   * drained).
   */
  get(bytesMode: boolean): number {
    const w = this.words;
    let n: number;
    lock(w, GET_LOCK);
    try {
      const got = w[GET_SEQ] as number;
      if (this.#available(got) <= 0) n = w[STATE] === OPEN ? EMPTY : ENDED;
      else {
        const head = w[HEAD] as number;
        n = this.lengths[head >> 2] as number;
        let out: Uint8Array;
        if (bytesMode) out = this.outBytes = new Uint8Array(n);
        else {
          if (this.out.length < n) this.out = Buffer.allocUnsafeSlow(Math.max(n, this.out.length * 2));
          out = this.out;
        }
        w[HEAD] = this.readRecord(head, n, out, 0);
        // The room is freed only now that the bytes are copied out; GET_SEQ last (see put()).
        Atomics.store(w, BYTES_OUT, ((w[BYTES_OUT] as number) + RECORD_HEADER + pad4(n)) | 0);
        Atomics.store(w, GET_SEQ, (got + 1) | 0);
      }
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
    }
    if (n >= 0 && Atomics.load(w, PUT_SLEEP) !== 0) wake(w, PUT_SLEEP, GET_SEQ);
    return n;
  }

  /**
   * Takes up to `max` of the oldest records in one lock: their bytes go one after another into
   * `out` (values mode), their lengths into `lens`. Returns how many, EMPTY or ENDED.
   */
  getBatch(max: number, lens: Int32Array): number {
    const w = this.words;
    let k = 0;
    lock(w, GET_LOCK);
    try {
      const got = w[GET_SEQ] as number;
      const avail = this.#available(got);
      if (avail <= 0) k = w[STATE] === OPEN ? EMPTY : ENDED;
      else {
        let head = w[HEAD] as number;
        let pos = 0;
        let freed = 0;
        for (; k < max && k < avail; k++) {
          const n = this.lengths[head >> 2] as number;
          if (k > 0 && pos + n > this.out.length) break;
          if (this.out.length < n) this.out = Buffer.allocUnsafeSlow(Math.max(n, this.out.length * 2));
          head = this.readRecord(head, n, this.out, pos);
          lens[k] = n;
          pos += n;
          freed += RECORD_HEADER + pad4(n);
        }
        w[HEAD] = head;
        Atomics.store(w, BYTES_OUT, ((w[BYTES_OUT] as number) + freed) | 0);
        Atomics.store(w, GET_SEQ, (got + k) | 0);
      }
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
    }
    if (k > 0 && Atomics.load(w, PUT_SLEEP) !== 0) wake(w, PUT_SLEEP, GET_SEQ);
    return k;
  }

  /**
   * Gives back records taken by getBatch() and not handed out (`lens[from..to)`, whose bytes
   * start at `start` in `out`), in front of the oldest, if the ring has the room: the free bytes
   * always end right before HEAD. NoRoom if it had not (nothing changed then). Takes both locks:
   * it moves the get side's HEAD and the put side's counts, which getters wait on.
   */
  putBack(lens: Int32Array, from: number, to: number, start: number): Back {
    const w = this.words;
    const size = this.size;
    let total = 0;
    for (let k = from; k < to; k++) total += RECORD_HEADER + pad4(lens[k] as number);
    let result = Back.Done;
    lock(w, PUT_LOCK);
    lock(w, GET_LOCK);
    try {
      const bytes = w[BYTES_IN] as number;
      if (w[STATE] === CLOSED_NOW) result = Back.Dropped;
      else if (((bytes - (w[BYTES_OUT] as number)) | 0) + total > size) result = Back.NoRoom;
      else {
        let head = (w[HEAD] as number) - total;
        if (head < 0) head += size;
        let at = head;
        let pos = start;
        const out = this.out;
        for (let k = from; k < to; k++) {
          const n = lens[k] as number;
          this.writeRecord(at, out.subarray(pos, pos + n), n);
          pos += n;
          at = (at + RECORD_HEADER + pad4(n)) % size;
        }
        // The records are counted as put again (the room they take, and PUT_SEQ, which wakes getters).
        w[HEAD] = head;
        w[BYTES_IN] = (bytes + total) | 0;
        Atomics.store(w, PUT_SEQ, ((w[PUT_SEQ] as number) + to - from) | 0);
      }
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
      this.#putMine = unlock(w, PUT_LOCK);
    }
    if (result === Back.Done && Atomics.load(w, GET_SLEEP) !== 0) wake(w, GET_SLEEP, PUT_SEQ);
    return result;
  }

  /** Items taken by getBatch() were dropped by an immediate close: they count as done. */
  dropped(k: number): void {
    const w = this.words;
    let left: number;
    lock(w, PUT_LOCK);
    try {
      left = Math.max(0, (w[UNFINISHED] as number) - k);
      w[UNFINISHED] = left;
    } finally {
      this.#putMine = unlock(w, PUT_LOCK);
    }
    if (left === 0) {
      Atomics.add(w, DONE_SEQ, 1);
      Atomics.notify(w, DONE_SEQ);
    }
  }

  /**
   * Closes: no more puts; gets drain what is left, or (immediate) find nothing left. Moves both
   * counters by one, leaving their difference (the item count) as it was, and so wakes every
   * waiter of either side; join()'s waiters too.
   */
  close(immediate: boolean): void {
    const w = this.words;
    lock(w, PUT_LOCK);
    lock(w, GET_LOCK);
    try {
      if (w[STATE] === OPEN) Atomics.store(w, STATE, CLOSED);
      const items = ((w[PUT_SEQ] as number) + 1) | 0;
      if (immediate && w[STATE] === CLOSED) {
        Atomics.store(w, STATE, CLOSED_NOW);
        const count = (w[PUT_SEQ] as number) - (w[GET_SEQ] as number);
        w[UNFINISHED] = Math.max(0, (w[UNFINISHED] as number) - count);
        w[HEAD] = w[TAIL] as number;
        Atomics.store(w, BYTES_OUT, w[BYTES_IN] as number);
        Atomics.store(w, GET_SEQ, items);
      } else Atomics.store(w, GET_SEQ, ((w[GET_SEQ] as number) + 1) | 0);
      Atomics.store(w, PUT_SEQ, items);
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
      this.#putMine = unlock(w, PUT_LOCK);
    }
    Atomics.notify(w, PUT_SEQ);
    Atomics.notify(w, GET_SEQ);
    Atomics.add(w, DONE_SEQ, 1);
    Atomics.notify(w, DONE_SEQ);
  }

  /** One item got earlier is done. False if there was none left to mark. */
  taskDone(): boolean {
    const w = this.words;
    let left: number;
    lock(w, PUT_LOCK);
    try {
      left = w[UNFINISHED] as number;
      if (left > 0) w[UNFINISHED] = --left;
      else left = -1;
    } finally {
      this.#putMine = unlock(w, PUT_LOCK);
    }
    if (left === 0) {
      Atomics.add(w, DONE_SEQ, 1);
      Atomics.notify(w, DONE_SEQ);
    }
    return left >= 0;
  }
}
