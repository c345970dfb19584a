/**
 * Whether a worker thread has stopped, from facts only: the one liveness probe, for owners whose
 * event loop may be blocked (a caller in runSync or resultSync cannot receive the 'exit' event).
 *
 * The native handle answers synchronously: its loopIdleTime() is -1 both before the thread's event
 * loop exists and after it is gone. Which of the two is decided by a fact the thread itself writes
 * first thing (`ran`), or by having seen its loop running once; never by how long a start usually
 * takes, which is one machine's timing.
 */
import type { Worker } from 'node:worker_threads';
import { nativeHandle, type NativeWorker } from './native-worker.js';

export class ThreadLiveness {
  readonly #native: NativeWorker | undefined;
  readonly #ran: () => boolean;
  #seenRunning = false;
  #exited = false;

  /** `ran`: reads the fact the thread writes when it starts running JavaScript. */
  constructor(worker: Worker, ran: () => boolean) {
    this.#native = nativeHandle(worker);
    this.#ran = ran;
  }

  /** False where this Node version hides the native handle: then only 'exit' tells (see warnBlind). */
  get canProbe(): boolean {
    return this.#native !== undefined;
  }

  /** The 'exit' event was seen (or the thread is otherwise known gone). */
  exited(): void {
    this.#exited = true;
  }

  /** Whether the thread has stopped. Before it ran, a missing event loop means "not started yet". */
  stopped(): boolean {
    if (this.#exited) return true;
    if (this.#native === undefined) return false;
    if (this.#native.loopIdleTime() >= 0) {
      this.#seenRunning = true;
      return false;
    }
    return this.#seenRunning || this.#ran();
  }
}
