/**
 * The shared-memory layout of a Channel: a header of 32-bit words, then a ring of variable-length
 * records.
 *
 * Putters and getters have a lock each (a two-lock queue): a put and a get never wait for each
 * other, and in the common case of one putting thread and one getting thread each lock stays in
 * its own core's cache. The header is cut in 64-byte cache lines so that each side writes only its
 * own line: settings and the state (line 0, written only by close), the put side (line 1, under
 * the put lock), the get side (line 2, under the get lock), and the waiter counts and join's
 * counter (line 3, written only when a thread goes to sleep or a task is done).
 *
 * The two sides meet in two pairs of counters that only go up (modulo 2^32): items and bytes put
 * (PUT_SEQ, BYTES_IN: written by putters) and items and bytes got (GET_SEQ, BYTES_OUT: written by
 * getters). Items in the channel = PUT_SEQ - GET_SEQ; bytes in use = BYTES_IN - BYTES_OUT. A getter
 * that finds the channel empty sleeps on the PUT_SEQ it saw, a putter that finds it full on the
 * GET_SEQ it saw, so no wake-up is lost; close moves both (without changing their difference) to
 * wake everyone. Whatever changes both sides at once (close, giving items back in front) takes
 * both locks, the put lock first.
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
/** Items put: stored last by a put, it publishes the record. Getters wait on it. */
export const PUT_SEQ = 22;

// Line 2: the get side.
export const GET_LOCK = 32;
/** Byte offset of the oldest record. */
export const HEAD = 35;
/** Bytes got: stored once the record's bytes are copied out, it frees their room. */
export const BYTES_OUT = 36;
/** Items got. Putters wait on it. */
export const GET_SEQ = 37;

// Line 3: rarely written.
/** Getters sleeping now (for tests and debugging: the hot paths read only the flags below). */
export const GET_WAITERS = 48;
/** Putters sleeping now. */
export const PUT_WAITERS = 49;
/** Bumped when UNFINISHED reaches 0 and on close: join() waits on it. */
export const DONE_SEQ = 50;
/**
 * Set by a getter before it sleeps, cleared by the first put after that, which then notifies: so
 * a put notifies once per sleep, not once per item until the sleeper has woken up and gone (a
 * futex wake costs microseconds, a sleeper takes tens of them to wake). A dead thread's flag
 * only costs one spare notify.
 */
export const GET_SLEEP = 51;
/** The same for putters: set before sleeping on a full channel, cleared by the get that notifies. */
export const PUT_SLEEP = 52;

/** Words in the header (four cache lines); the ring follows, aligned as they are. */
export const HEADER_WORDS = 64;

export const OPEN = 0;
export const CLOSED = 1;
export const CLOSED_NOW = 2;

export const VALUES = 0;
export const BYTES = 1;

/** Every record: a 4-byte length, then its bytes padded to 4, so that a length never wraps. */
export const RECORD_HEADER = 4;
export const pad4 = (n: number): number => (n + 3) & ~3;
