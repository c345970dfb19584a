/**
 * The shared-memory layout of a Channel: a header of 32-bit words, then a ring of variable-length
 * records.
 *
 * Putters and getters have a lock each (a two-lock queue): a put and a get never wait for each
 * other, and in the common case of one putting thread and one getting thread each lock stays in
 * its own core's cache. The header is cut in 64-byte cache lines so that each side writes only its
 * own line: settings and the state (line 0, written only by close), the put side (line 1, under
 * the put lock), the get side (line 2), and the waiter counts, join's counter and the connection
 * counts (line 3, written only when a thread goes to sleep, a task is done or a connection comes
 * or goes).
 *
 * The two sides meet in counters that only go up (modulo 2^32). Putters write PUT_SEQ (items put)
 * and BYTES_IN (bytes put); getters write ITEMS_OUT and BYTES_OUT: the items and bytes whose room
 * is free again. Items in the channel = PUT_SEQ - ITEMS_OUT, bytes in use = BYTES_IN - BYTES_OUT.
 * GET_SEQ (items taken out of the ring) is the getters' own: PUT_SEQ - GET_SEQ items wait to be
 * taken. The two differ by the items that iterations took ahead and have not handed out yet: they
 * have left the ring for other getters, but their room stays taken until each is handed out, so
 * that an iteration stopped early can always give them back (taker.ts, BATCH).
 *
 * Item counters move by 2 per item: their bit 0 is free, and PUT_SEQ's says "a getter sleeps on
 * me". Byte counters move by multiples of 4, and BYTES_OUT's bit 0 says "a putter sleeps on me".
 * A sleeper sets the bit (compareExchange on the value it saw) and waits on the flagged value; the
 * other side's next move of that counter returns the old value (exchange or add) and so sees the
 * bit in the same atomic step, then clears it and notifies: one notify per sleep, none while
 * nobody sleeps, and no separate flag for a put to read (each Atomics call costs about 15 ns, as
 * much as the rest of a small put). Close moves every counter (keeping their differences) to wake
 * everyone, and so does the end of the last connection that may put (or get). Whatever changes both sides at once (close, giving items back in front) takes both
 * locks, the put lock first.
 */

// Line 0: settings (written once by the constructor) and the state (written by close, under both locks).
/** The most items the channel holds. */
export const CAPACITY = 0;
/** Bytes in the ring. */
export const RING_BYTES = 1;
/** VALUES or BYTES. */
export const MODE = 2;
/** OPEN, CLOSED (drain, then end) or CLOSED_NOW (dropped what was left). */
export const STATE = 3;

// Line 1: the put side. A lock is three words: the holder, its release counter, its sleepers (lock.ts).
export const PUT_LOCK = 16;
/** Byte offset where the next record goes. */
export const TAIL = 19;
/** Bytes put (records with their headers). */
export const BYTES_IN = 20;
/** Items put and not yet marked done by taskDone() (under the put lock). */
export const UNFINISHED = 21;
/** Items put, times 2, bit 0 set while a getter sleeps: exchanged last by a put, it publishes the record. */
export const PUT_SEQ = 22;

// Line 2: the get side.
export const GET_LOCK = 32;
/** Byte offset of the oldest record in the ring. */
export const HEAD = 35;
/**
 * Bytes whose room is free again (the record's bytes are copied out and the item handed out), bit
 * 0 set while a putter sleeps. Added to (an atomic add: an iteration hands out items without the
 * lock); putters wait on it.
 */
export const BYTES_OUT = 36;
/** Items taken out of the ring, times 2 (under the get lock). */
export const GET_SEQ = 37;
/** Items whose slot is free again, times 2 (an atomic add, as BYTES_OUT, and before it). */
export const ITEMS_OUT = 38;

// Line 3: rarely written.
/** Getters sleeping now (for tests and debugging: the hot paths read only the flag bits). */
export const GET_WAITERS = 48;
/** Putters sleeping now. */
export const PUT_WAITERS = 49;
/** Bumped when UNFINISHED reaches 0 and on close: join() waits on it. */
export const DONE_SEQ = 50;
/** Connections that may put, live or reserved by a handle not yet connected (connections.ts). */
export const PUTTERS = 51;
/** Connections that may get, likewise. */
export const GETTERS = 52;

/**
 * Words 54-55: a float64, when a sleeper was last notified (on the clock threads share): the woken
 * thread's wake-up sample for the spin policy (shm/spin-policy).
 */
export const WOKEN_AT_BYTE = 54 * 4;

/** Words in the header (four cache lines); the ring follows, aligned as they are. */
export const HEADER_WORDS = 64;

/** What one item adds to the item counters (bit 0 is the sleep flag). */
export const ITEM = 2;
/** The sleep flag of PUT_SEQ and BYTES_OUT. */
export const SLEEPER = 1;

export const OPEN = 0;
export const CLOSED = 1;
export const CLOSED_NOW = 2;

export const VALUES = 0;
export const BYTES = 1;

/** Every record: a 4-byte length, then its bytes padded to 4, so that a length never wraps. */
export const RECORD_HEADER = 4;
export const pad4 = (n: number): number => (n + 3) & ~3;
