/**
 * The shared memory of one pool worker: control words, the cancel table, and two byte rings
 * (tasks from the main thread, results back). Both sides build their views with `views()`.
 */

/** Control words (Int32 indices). */
export const enum Word {
  TaskWrite = 0,
  TaskRead = 1,
  ResultWrite = 2,
  ResultRead = 3,
  /**
   * How the worker waits for tasks (ParkState, see shm/idle-park.ts): Awake, InLoop (idle in its
   * event loop: the main thread wakes it by message) or Parked (in Atomics.wait: by notify).
   */
  WorkerSleeps = 4,
  /**
   * How the main thread waits for results: MainWaits.Loop in its event loop (the worker wakes it
   * by message), MainWaits.Blocked in Atomics.wait (in resultSync; the worker rings the BELL).
   */
  MainSleeps = 5,
  /** The sequence number of the task the worker started last (tasks start in ring order). */
  Started = 6,
  /** 1 once the worker runs its loop: a worker that dies before is a failed start. */
  Ready = 7,
  /**
   * The seq of a running task whose promise this worker's loop went idle on, when only the main
   * thread (by cancelling it) could still settle it; 0 otherwise. See worker-main's onIdle.
   */
  Idle = 8,
  /** How many cancel messages the worker has handled: an Idle notice counts only once all have been. */
  Heard = 9,
  /**
   * 0 until the worker's thread runs JavaScript (worker-boot.ts writes it first thing), then -1 or,
   * once it runs its loop, its OS thread id: the fact its owner's liveness probe rests on.
   */
  Ran = 10,
}

const CONTROL_WORDS = 16;
/** Two float64 stamps at the end of the control words (words 12-15), on the clock threads share. */
const STAMP_OFFSET = 48;

/** When one side last woke the other: the spin policy's wake-up samples (shm/spin-policy). */
export const enum Stamp {
  /** The main thread posted WAKE to the idle worker. */
  WorkerWoken = 0,
  /** The worker posted WAKE to the main thread's loop, or rang the BELL for it. */
  MainWoken = 1,
}
/**
 * Cancel flags, indexed by `seq & CANCEL_MASK`: the slot holds the seq of a cancelled task, and
 * its reason word says why. Fewer tasks than this are ever in flight on one worker (the window
 * is at most MAX_WINDOW), so a live task never shares its slot.
 */
export const CANCEL_SLOTS = 1024;
export const CANCEL_MASK = CANCEL_SLOTS - 1;
/** The most tasks handed to one worker and not yet answered. */
export const MAX_WINDOW = 512;

export const TASK_RING_BYTES = 256 * 1024;
export const RESULT_RING_BYTES = 256 * 1024;

const CANCEL_OFFSET = CONTROL_WORDS * 4;
const REASON_OFFSET = CANCEL_OFFSET + CANCEL_SLOTS * 4;
const TASK_OFFSET = REASON_OFFSET + CANCEL_SLOTS * 4;
const RESULT_OFFSET = TASK_OFFSET + TASK_RING_BYTES;
const TOTAL = RESULT_OFFSET + RESULT_RING_BYTES;

export interface Views {
  readonly words: Int32Array;
  readonly stamps: Float64Array;
  readonly cancelled: Int32Array;
  readonly reasons: Int32Array;
  readonly tasks: Buffer;
  readonly results: Buffer;
}

export function createShared(): SharedArrayBuffer {
  return new SharedArrayBuffer(TOTAL);
}

export function views(sab: SharedArrayBuffer): Views {
  return {
    words: new Int32Array(sab, 0, CONTROL_WORDS),
    stamps: new Float64Array(sab, STAMP_OFFSET, 2),
    cancelled: new Int32Array(sab, CANCEL_OFFSET, CANCEL_SLOTS),
    reasons: new Int32Array(sab, REASON_OFFSET, CANCEL_SLOTS),
    tasks: Buffer.from(sab, TASK_OFFSET, TASK_RING_BYTES),
    results: Buffer.from(sab, RESULT_OFFSET, RESULT_RING_BYTES),
  };
}

/**
 * One word for the whole process: how many pool workers are awake (running tasks or spinning).
 * A thread spins for work only while awake threads do not outnumber the cores, or the spinning
 * would take the time of the threads doing the work.
 */
export const AWAKE = 0;
/** A second word of the process: bumped and notified by a worker with a result for a blocked main thread. */
export const BELL = 1;

export const enum MainWaits {
  No = 0,
  Loop = 1,
  Blocked = 2,
}
