/**
 * What code running inside a call can ask about it: its AbortSignal. A call's context is kept by
 * AsyncLocalStorage, so the signal is found after any number of awaits.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** One call's cancellation state. The AbortController is made only if someone asks for the signal. */
export class CallContext {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  /**
   * Asked for a cancellation that another thread wrote to shared memory (a pool worker's cancel
   * flag): returns the abort reason, or undefined. A CPU loop that never yields sees a cancel only
   * this way, since no message can reach its thread while it runs.
   */
  readonly #poll: (() => unknown) | undefined;

  constructor(poll?: () => unknown) {
    this.#poll = poll;
  }

  #check(): void {
    if (this.#aborted || this.#poll === undefined) return;
    const reason = this.#poll();
    if (reason !== undefined) this.abort(reason);
  }

  get signal(): AbortSignal {
    this.#check();
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    this.#check();
    return this.#aborted;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }

  throwIfAborted(): void {
    this.#check();
    if (this.#aborted) throw this.#reason;
  }
}

const storage = new AsyncLocalStorage<CallContext>();
const never = new AbortController().signal;

/**
 * The AbortSignal of the call that is running this code: it aborts when the caller's timeout
 * elapses, the caller cancels or aborts, or the LoopThread closes. Outside any call it is a signal
 * that never aborts. Call it on the loop thread, a pool worker or a spawned thread.
 *
 * @example
 * ```ts
 * // in a module the loop thread imports
 * export async function download(url: string): Promise<string> {
 *   const response = await fetch(url, { signal: currentSignal() });
 *   return response.text();
 * }
 * ```
 */
export function currentSignal(): AbortSignal {
  return storage.getStore()?.signal ?? never;
}

/**
 * Throws the current call's abort reason if it was cancelled. Cheap enough to call in a hot loop:
 * it reads a flag in shared memory, so it sees a cancel even while the thread never yields.
 *
 * @throws The abort reason (a {@link CancelledError} or {@link TimeoutError}) once the call was cancelled.
 * @example
 * ```ts
 * export function crunch(data: number[]): number {
 *   let sum = 0;
 *   for (const x of data) {
 *     throwIfCancelled();
 *     sum += heavy(x);
 *   }
 *   return sum;
 * }
 * ```
 */
export function throwIfCancelled(): void {
  storage.getStore()?.throwIfAborted();
}

export function runInContext<R>(context: CallContext, fn: () => R): R {
  return storage.run(context, fn);
}
