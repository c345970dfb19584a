/**
 * Whether a worker thread has stopped, from facts only: the one liveness probe, for owners whose
 * event loop may be blocked (a caller in runSync or resultSync cannot receive the 'exit' event).
 *
 * Node's native handle answers synchronously: its loopIdleTime() is -1 both before the thread's
 * event loop exists and after it is gone. Which of the two is decided by a fact the thread itself
 * writes first thing (`ran`), or by having seen its loop running once; never by how long a start
 * usually takes, which is one machine's timing. Runtimes without that handle (Bun, Deno) are
 * probed through the OS thread id the thread wrote, where the OS shows its threads (os-thread.ts).
 */
import type { NativeWorker } from './native-worker.js';
import { osThreadExists } from './os-thread.js';

export class ThreadLiveness {
  readonly #native: NativeWorker | undefined;
  readonly #ran: () => number;
  #seenRunning = false;

  /**
   * `native`: the worker's native handle (nativeHandle(worker); undefined where the runtime hides
   * it). `ran`: reads the word the thread writes when it starts running JavaScript.
   */
  constructor(native: NativeWorker | undefined, ran: () => number) {
    this.#native = native;
    this.#ran = ran;
  }

  /**
   * False where neither the native handle nor the OS shows whether the thread runs: then only
   * 'exit' tells (see warnBlind). Known once the thread ran (it writes its OS thread id then).
   */
  get canProbe(): boolean {
    return this.#native !== undefined || process.platform === 'linux';
  }

  /** Whether the thread has stopped. Before it ran, a missing event loop means "not started yet". */
  stopped(): boolean {
    const ran = this.#ran();
    if (this.#native === undefined) return ran === 0 ? false : osThreadExists(ran) === false;
    if (this.#native.loopIdleTime() >= 0) {
      this.#seenRunning = true;
      return false;
    }
    return this.#seenRunning || ran !== 0;
  }
}
