/**
 * The ring of records in shared memory, and every change to it. A put takes the put lock, a get
 * the get lock (layout.ts); each copies bytes, updates its side's words and moves its side's
 * counter last, which publishes the change to the other side. A side notifies the other's sleepers
 * only when some sleep (the sleep flags: layout.ts).
 *
 * Each Ring keeps a view of the other side's counters as this thread last read them: a putter
 * reads the get side only when its view says full, a getter the put side only when its view says
 * empty, so that with one putting and one getting thread each touches the other's cache line once
 * per batch of items rather than once per item. An old view is safe: the other side's counters
 * only go up, so it under-counts the room (or the items). It would not be safe after 2^31 moves of
 * another thread of the same side (32-bit counters wrap), so a view counts only while the lock's
 * release counter shows that no other thread took that lock since this thread released it.
 */
import { copyBytes, LARGE_COPY } from '../codec/copy.js';
import { LoopThreadError } from '../errors.js';
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
  HEAD,
  HEADER_WORDS,
  ITEM,
  ITEMS_OUT,
  OPEN,
  PUT_LOCK,
  PUT_SEQ,
  RECORD_HEADER,
  RING_BYTES,
  SLEEPER,
  STATE,
  TAIL,
  UNFINISHED,
  WOKEN_AT_BYTE,
  pad4,
} from './layout.js';
import { now } from '../shm/spin-policy.js';

/** What a put did. */
export const enum PutResult {
  Done,
  Full,
  Closed,
  /** Full, and no connection that may get is left (Channel's, not the ring's). */
  Gone,
}

/** What a get found when it took nothing. */
export const EMPTY = -1;
export const ENDED = -2;

/** The room one record of `n` bytes takes in the ring. */
export const recordBytes = (n: number): number => RECORD_HEADER + pad4(n);

/** Records up to this many bytes are copied by a loop, which beats a native call for so few. */
const SMALL = 64;

/** From this many bytes on, bytes-mode items are not zeroed first (they are overwritten whole). */
const LARGE = LARGE_COPY;

export class Ring {
  readonly words: Int32Array;
  /** When a sleeper was last notified (layout.ts, WOKEN_AT_BYTE). */
  readonly wokenAt: Float64Array;
  /** The ring's bytes (a Buffer: see copyBytes). */
  readonly data: Buffer;
  /** The ring as words, to read and write record lengths (records start aligned to 4). */
  private readonly lengths: Int32Array;
  readonly size: number;
  readonly capacity: number;
  /** The capacity in the item counters' units. */
  readonly #maxItems: number;
  /**
   * After a put that found the ring full, the BYTES_OUT it saw; after a get that found it empty,
   * the PUT_SEQ. A waiter sleeps on that value (flagged: flagSleep()): the other side moves its
   * counter after any change that could matter, so no change is missed.
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
    this.wokenAt = new Float64Array(buffer, WOKEN_AT_BYTE, 1);
    this.size = this.words[RING_BYTES] as number;
    this.capacity = this.words[CAPACITY] as number;
    this.#maxItems = this.capacity * ITEM;
    this.data = Buffer.from(buffer, HEADER_WORDS * 4, this.size);
    this.lengths = new Int32Array(buffer, HEADER_WORDS * 4, this.size >> 2);
  }

  /**
   * The length of the record at `at`, which no record can exceed the ring's room for: memory
   * overwritten by someone else fails the get with a clear error instead of a huge allocation.
   */
  #length(at: number): number {
    const n = this.lengths[at >> 2] as number;
    if (n < 0 || n > this.maxItemBytes) {
      throw new LoopThreadError(
        `loopthread: corrupt channel record (length ${String(n)}, but an item has at most ${String(this.maxItemBytes)} bytes): its shared memory was overwritten`,
      );
    }
    return n;
  }

  /** Wakes the threads sleeping on `index`, stamping when (their wake-up sample). */
  #wake(index: number): void {
    this.wokenAt[0] = now();
    Atomics.notify(this.words, index);
  }

  /** The most bytes one item may have. */
  get maxItemBytes(): number {
    return this.size - RECORD_HEADER;
  }

  /**
   * Items in the channel now: in the ring, or taken ahead by an iteration and not handed out yet (a
   * snapshot: the two counters are read one after the other).
   */
  get count(): number {
    const out = Atomics.load(this.words, ITEMS_OUT);
    const n = (((Atomics.load(this.words, PUT_SEQ) & ~SLEEPER) - out) | 0) >> 1;
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
      else copyBytes(data, dst, n === src.byteLength ? src : src.subarray(0, n));
    } else {
      copyBytes(data, dst, src.subarray(0, first));
      copyBytes(data, 0, src.subarray(first, n));
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
      else copyBytes(out, pos, data.subarray(at, at + n));
    } else {
      copyBytes(out, pos, data.subarray(at, size));
      copyBytes(out, pos + first, data.subarray(0, n - first));
    }
    const next = head + RECORD_HEADER + pad4(n);
    return next >= size ? next - size : next;
  }

  /** Puts the first `n` bytes of `src`. */
  put(src: Uint8Array, n: number): PutResult {
    const w = this.words;
    const size = this.size;
    const need = recordBytes(n);
    let result = PutResult.Done;
    let before = 0;
    lock(w, PUT_LOCK);
    try {
      if (w[STATE] !== OPEN) result = PutResult.Closed;
      else {
        // Only this side moves the count under this lock; a getter may set the flag bit meanwhile.
        const items = (w[PUT_SEQ] as number) & ~SLEEPER;
        const bytes = w[BYTES_IN] as number;
        if (
          w[PUT_LOCK + LOCK_SEQ] !== this.#putMine ||
          ((items - this.#outItems) | 0) >= this.#maxItems ||
          ((bytes - this.#outBytes) | 0) + need > size
        ) {
          // BYTES_OUT first, the word a full put sleeps on: room freed after this read moves it
          // past `seen` (a release adds to ITEMS_OUT before BYTES_OUT).
          const seen = Atomics.load(w, BYTES_OUT);
          this.#outBytes = seen & ~SLEEPER;
          this.#outItems = Atomics.load(w, ITEMS_OUT);
          if (((items - this.#outItems) | 0) >= this.#maxItems || ((bytes - this.#outBytes) | 0) + need > size) {
            this.seen = seen;
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
          // Publishes the record and, in the same step, learns whether a getter sleeps (layout.ts).
          before = Atomics.exchange(w, PUT_SEQ, (items + ITEM) | 0);
        }
      }
    } finally {
      this.#putMine = unlock(w, PUT_LOCK);
    }
    if ((before & SLEEPER) !== 0) this.#wake(PUT_SEQ);
    return result;
  }

  /**
   * Under the get lock: items (times ITEM) there for this thread to take, reading the put side
   * only if its view has none.
   */
  #available(got: number): number {
    const w = this.words;
    let avail = (this.#inItems - got) | 0;
    if (avail <= 0 || w[GET_LOCK + LOCK_SEQ] !== this.#getMine) {
      const seen = Atomics.load(w, PUT_SEQ);
      this.#inItems = seen & ~SLEEPER;
      avail = (this.#inItems - got) | 0;
      if (avail <= 0) this.seen = seen;
    }
    return avail;
  }

  /**
   * Takes the oldest record: in values mode its bytes go to `out` (grown if need be), in bytes
   * mode to a new array in `outBytes`. Returns the record's length, EMPTY, or ENDED (closed and
   * drained). Its room is freed at once.
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
        n = this.#length(head);
        let out: Uint8Array;
        // A large item is copied into memory that is not zeroed first (it is overwritten whole).
        if (bytesMode) out = n < LARGE ? new Uint8Array(n) : Buffer.allocUnsafeSlow(n);
        else {
          if (this.out.length < n) this.out = Buffer.allocUnsafeSlow(Math.max(n, this.out.length * 2));
          out = this.out;
        }
        w[HEAD] = this.readRecord(head, n, out, 0);
        w[GET_SEQ] = (got + ITEM) | 0;
        // The item is a plain Uint8Array, over the Buffer's own memory.
        if (bytesMode) this.outBytes = out instanceof Buffer ? new Uint8Array(out.buffer, 0, n) : out;
      }
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
    }
    // The bytes are copied out: the room is free (no need to hold the lock for that).
    if (n >= 0) this.release(recordBytes(n));
    return n;
  }

  /**
   * Takes up to `max` of the oldest records in one lock: their bytes go one after another into
   * `out` (values mode), their lengths into `lens`. Returns how many, EMPTY or ENDED. Their room
   * stays taken: the caller frees each record's with release() as it hands the item out, so that
   * those not handed out can always go back (putBack). The batch is kept to a quarter of the ring,
   * which is what a thread that dies holding one leaves taken for good.
   */
  getBatch(max: number, lens: Int32Array): number {
    const w = this.words;
    let k = 0;
    lock(w, GET_LOCK);
    try {
      const got = w[GET_SEQ] as number;
      const avail = this.#available(got) >> 1;
      if (avail <= 0) k = w[STATE] === OPEN ? EMPTY : ENDED;
      else {
        let head = w[HEAD] as number;
        let pos = 0;
        let held = 0;
        const most = this.size >> 2;
        for (; k < max && k < avail; k++) {
          const n = this.#length(head);
          const room = recordBytes(n);
          if (k > 0 && (pos + n > this.out.length || held + room > most)) break;
          if (this.out.length < n) this.out = Buffer.allocUnsafeSlow(Math.max(n, this.out.length * 2));
          head = this.readRecord(head, n, this.out, pos);
          lens[k] = n;
          pos += n;
          held += room;
        }
        w[HEAD] = head;
        w[GET_SEQ] = (got + k * ITEM) | 0;
      }
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
    }
    return k;
  }

  /**
   * Frees the room of `items` records of `bytes` in all, got earlier (an iteration frees each as
   * it hands it out; no lock: other getters add too, atomically). Wakes sleeping putters.
   */
  release(bytes: number, items = 1): void {
    const w = this.words;
    Atomics.add(w, ITEMS_OUT, items * ITEM);
    if ((Atomics.add(w, BYTES_OUT, bytes) & SLEEPER) !== 0) {
      // Clearing after the add: a putter that flagged meanwhile waits on a value the clear
      // changes, or is already asleep for the notify below.
      Atomics.and(w, BYTES_OUT, ~SLEEPER);
      this.#wake(BYTES_OUT);
    }
  }

  /**
   * Before sleeping on words[index] (PUT_SEQ or BYTES_OUT) having seen `seen` there: flags the
   * sleep. Returns the value to wait on, or NaN if the counter has moved on (do not sleep).
   */
  flagSleep(index: number, seen: number): number {
    const flagged = seen | SLEEPER;
    if (seen === flagged) return flagged;
    const now = Atomics.compareExchange(this.words, index, seen, flagged);
    return now === seen || now === flagged ? flagged : NaN;
  }

  /**
   * Gives back records taken by getBatch() and not handed out (`lens[from..to)`, whose bytes
   * start at `start` in `out`), in front of the oldest. They always fit: their room was never
   * freed, and it lies right before HEAD (the free bytes come first after TAIL, the room that
   * batches hold after them, up to HEAD). False if the channel was closed at once meanwhile: they
   * are dropped then. Takes both locks: it moves the get side's HEAD and the put side's counts,
   * which getters wait on.
   */
  putBack(lens: Int32Array, from: number, to: number, start: number): boolean {
    const w = this.words;
    const size = this.size;
    let total = 0;
    for (let k = from; k < to; k++) total += recordBytes(lens[k] as number);
    let back = true;
    let before = 0;
    lock(w, PUT_LOCK);
    lock(w, GET_LOCK);
    try {
      if (w[STATE] === CLOSED_NOW) back = false;
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
          at = (at + recordBytes(n)) % size;
        }
        // The records count as put again (PUT_SEQ wakes getters) and their held room as freed:
        // the bytes and items in use stay as they were.
        w[HEAD] = head;
        w[BYTES_IN] = ((w[BYTES_IN] as number) + total) | 0;
        this.release(total, to - from);
        const items = (w[PUT_SEQ] as number) & ~SLEEPER;
        before = Atomics.exchange(w, PUT_SEQ, (items + (to - from) * ITEM) | 0);
      }
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
      this.#putMine = unlock(w, PUT_LOCK);
    }
    if ((before & SLEEPER) !== 0) this.#wake(PUT_SEQ);
    return back;
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
   * Closes: no more puts; gets drain what is left, or (immediate) find nothing left. Wakes every
   * waiter (wake()).
   */
  close(immediate: boolean): void {
    this.#moveAll(immediate ? CLOSED_NOW : CLOSED);
  }

  /**
   * Wakes every waiter of either side, join()'s too, so that each looks again: moves every counter,
   * leaving their differences (the counts) as they were and clearing the sleep flags. For the end
   * of the last connection that may put (or get): nothing else changes.
   */
  wake(): void {
    this.#moveAll(OPEN);
  }

  /** close() (`state` CLOSED or CLOSED_NOW) or wake() (OPEN). */
  #moveAll(state: number): void {
    const w = this.words;
    lock(w, PUT_LOCK);
    lock(w, GET_LOCK);
    try {
      if (state !== OPEN && w[STATE] === OPEN) Atomics.store(w, STATE, CLOSED);
      const items = (((w[PUT_SEQ] as number) & ~SLEEPER) + ITEM) | 0;
      const bytes = ((w[BYTES_IN] as number) + RECORD_HEADER) | 0;
      w[BYTES_IN] = bytes;
      if (state === CLOSED_NOW && w[STATE] === CLOSED) {
        Atomics.store(w, STATE, CLOSED_NOW);
        // The ring's items: those that iterations took ahead are theirs to drop (dropped()).
        const count = ((items - ITEM - (w[GET_SEQ] as number)) | 0) >> 1;
        w[UNFINISHED] = Math.max(0, (w[UNFINISHED] as number) - count);
        w[HEAD] = w[TAIL] as number;
        w[GET_SEQ] = items;
        Atomics.store(w, ITEMS_OUT, items);
        Atomics.store(w, BYTES_OUT, bytes);
      } else {
        w[GET_SEQ] = ((w[GET_SEQ] as number) + ITEM) | 0;
        Atomics.add(w, ITEMS_OUT, ITEM);
        Atomics.add(w, BYTES_OUT, RECORD_HEADER);
        Atomics.and(w, BYTES_OUT, ~SLEEPER);
      }
      Atomics.store(w, PUT_SEQ, items);
    } finally {
      this.#getMine = unlock(w, GET_LOCK);
      this.#putMine = unlock(w, PUT_LOCK);
    }
    Atomics.notify(w, PUT_SEQ);
    Atomics.notify(w, BYTES_OUT);
    Atomics.add(w, DONE_SEQ, 1);
    Atomics.notify(w, DONE_SEQ);
    // For `channel.closed`, which waits on the state word.
    if (state !== OPEN) Atomics.notify(w, STATE);
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
