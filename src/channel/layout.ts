/**
 * The shared-memory layout of a Channel: a header of 32-bit words, then a ring of variable-length
 * records. The header is cut in 64-byte cache lines: the lock and the words changed under it (line
 * 0), words that hardly change (line 1), the put counter (line 2, written by putters) and the get
 * counter (line 3, written by getters), so that a thread spinning on a counter does not pull the
 * lock's line away from the thread that holds it, and reads of the settings cost no miss. Every word but the sequence counters is read and written only under the lock; the
 * sequence counters only go up (modulo 2^32), so a waiter that waits on the value it last saw
 * can never miss a wake-up.
 */

/** 0 when free, else the tag (threadId + 1) of the thread that holds it. */
export const LOCK = 0;
/** Bumped on every release of the lock: shows progress to a thread deciding whether the holder died. */
export const LOCK_SEQ = 1;
/** Threads sleeping on LOCK (a release notifies only when some do). */
export const LOCK_SLEEPERS = 2;
/** Byte offset of the oldest record in the ring. */
export const HEAD = 3;
/** Byte offset where the next record goes. */
export const TAIL = 4;
/** Bytes of the ring in use. */
export const USED = 5;
/** Items in the channel. */
export const COUNT = 6;
/** The most items the channel holds. */
export const CAPACITY = 18;
/** OPEN, CLOSED (drain, then end) or CLOSED_NOW (dropped what was left). */
export const STATE = 19;
/** Bumped (under the lock) by every put, and on close: getters wait on it. */
export const PUT_SEQ = 32;
/** Bumped (under the lock) by every get, and on close: putters wait on it. */
export const GET_SEQ = 48;
/** Getters waiting (a hint so that a put notifies only when someone waits; a dead thread only costs a spare notify). */
export const GET_WAITERS = 11;
/** Putters waiting. */
export const PUT_WAITERS = 12;
/** Items put and not yet marked done by taskDone(). */
export const UNFINISHED = 13;
/** Bumped when UNFINISHED reaches 0 and on close: join() waits on it. */
export const DONE_SEQ = 14;
/** VALUES or BYTES. */
export const MODE = 20;
/** Bytes in the ring. Word 17 is left unused (0). */
export const RING_BYTES = 16;
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
