/**
 * Which thread waits for which, in shared memory all threads of a process can see, so that a
 * blocking call that would close a cycle of waiting threads fails at once instead of hanging.
 *
 * Entry t holds 1 + the id of the thread that thread t is blocked on, or 0. A thread records its
 * wait, then follows the chain from the thread it waits for; meeting itself means a cycle. Two
 * threads closing a cycle at the same moment both record before they look, so at least one of
 * them sees it (the operations are sequentially consistent).
 */
import { threadId } from 'node:worker_threads';
import { DeadlockError } from '../errors.js';

/** Threads with ids from here on are not tracked (ids only grow; this is far past most programs). */
const TRACKED_THREADS = 16_384;
const MAX_CHAIN = 64;

let table: Int32Array | undefined;

/** This thread's table, made on first use; it travels in handles so other threads share it. */
export function waitTable(): SharedArrayBuffer {
  table ??= new Int32Array(new SharedArrayBuffer(TRACKED_THREADS * 4));
  return table.buffer as SharedArrayBuffer;
}

/** Shares the table that came with a handle, unless this thread already has one. */
export function adoptWaitTable(sab: SharedArrayBuffer | undefined): void {
  if (table === undefined && sab instanceof SharedArrayBuffer && sab.byteLength === TRACKED_THREADS * 4) {
    table = new Int32Array(sab);
  }
}

/** What beginWait returns when it recorded nothing (an untracked thread): endWait leaves the table alone. */
const UNTRACKED = -1;

/**
 * Records that this thread is about to block on `host`; throws DeadlockError if that closes a
 * cycle. Returns what endWait() needs to erase the record when the wait is over (no allocation:
 * it runs on every blocking call).
 */
export function beginWait(host: number, describe: (thread: number) => string): number {
  const t = table;
  if (t === undefined || threadId >= TRACKED_THREADS || host >= TRACKED_THREADS || host < 0) return UNTRACKED;
  // A blocked thread may wait again inside a callback it serves: the outer wait is restored after.
  const previous = Atomics.load(t, threadId);
  Atomics.store(t, threadId, host + 1);
  for (let at = host, i = 0; i < MAX_CHAIN; i++) {
    const next = Atomics.load(t, at) - 1;
    if (next < 0) break;
    if (next === threadId) {
      Atomics.store(t, threadId, previous);
      throw new DeadlockError(
        `this blocking call would never return: ${cycleFrom(t, host).map(describe).join(' waits for ')} (a cycle of blocked threads)`,
      );
    }
    at = next;
  }
  return previous;
}

/** Erases the record of beginWait, given what it returned. */
export function endWait(previous: number): void {
  if (previous !== UNTRACKED) Atomics.store(table as Int32Array, threadId, previous);
}

/** The threads of the cycle this thread closes by waiting for `host`, this thread first and last. */
function cycleFrom(t: Int32Array, host: number): number[] {
  const chain = [threadId, host];
  for (let at = host, i = 0; i < MAX_CHAIN; i++) {
    const next = Atomics.load(t, at) - 1;
    if (next < 0) break;
    chain.push(next);
    if (next === threadId) break;
    at = next;
  }
  return chain;
}
