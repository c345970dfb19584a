/**
 * A thread's identity in the operating system, as a fact for liveness checks where the runtime
 * hides the worker's native handle (Bun, Deno): on Linux a thread can name itself through
 * /proc/thread-self, and its entry under /proc/self/task disappears when it ends, however it ends
 * (out of memory, terminated, crashed). Elsewhere nothing is known (-1 / undefined).
 */
import { existsSync, readlinkSync } from 'node:fs';

/**
 * What a thread writes first thing (see thread-liveness.ts): 0 before, then its OS thread id
 * (ownOsThreadId()), or RAN_UNKNOWN_OS_THREAD where the OS does not tell.
 */
export const RAN_UNKNOWN_OS_THREAD = -1;

/** This thread's answer, once asked (0: not yet). */
let own = 0;

/** The calling thread's OS thread id, or -1 where it cannot be found (read once per thread). */
export function ownOsThreadId(): number {
  if (own === 0) own = readOwnOsThreadId();
  return own;
}

function readOwnOsThreadId(): number {
  if (process.platform !== 'linux') return -1;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : -1;
  } catch {
    return -1;
  }
}

/** Whether the OS thread `tid` of this process still exists; undefined where that cannot be told. */
export function osThreadExists(tid: number): boolean | undefined {
  if (tid <= 0 || process.platform !== 'linux') return undefined;
  return existsSync(`/proc/self/task/${String(tid)}`);
}
