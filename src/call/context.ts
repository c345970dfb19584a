/**
 * What code running inside a call can ask about it: its AbortSignal. A call's context is kept by
 * AsyncLocalStorage, so the signal is found after any number of awaits.
 *
 * Where AsyncLocalStorage rides on async_hooks (Node 20 and 22), entering one context turns on
 * promise hooks for the whole thread: every promise of every call, the user's own included, then
 * pays a hook (an await costs about four times as much), and a trivial blocking call about half
 * a microsecond. So there, calls run in a context only once code on the thread may ask for it:
 * it loaded loopthread's public entry (index.ts says so when it loads: a module that imports
 * currentSignal has), an inline function's source names it, or someone asked. A call whose
 * synchronous part asks first is put in its context on the spot. Only a call that began before
 * any of that, and first asks after an await, finds no context (it gets the never-aborting
 * signal): code that loads loopthread lazily, inside a call of a module that did not import it.
 * Where AsyncLocalStorage is built on async context frames (Node 24 by default), contexts cost
 * next to nothing and every call runs in one.
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

const storage = new AsyncLocalStorage<CallContext | undefined>();
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
  return ask()?.signal ?? never;
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
  ask()?.throwIfAborted();
}

/**
 * Whether AsyncLocalStorage runs on async_hooks here. `_propagate` is the hook-based
 * implementation's own method (Node 20, 22, and 24 with --no-async-context-frame); the
 * frame-based one has none. Should that name ever go, contexts are simply always used.
 */
const hooked = '_propagate' in AsyncLocalStorage.prototype;
/** Whether calls on this thread run in a context (see the top of this file). */
let wanted = !hooked;
/** The call whose synchronous part is running, while contexts are not used yet. */
let running: CallContext | undefined;
/** Whether that call was put in its context on the spot (undone when its synchronous part ends). */
let entered = false;

/**
 * From now on every call on this thread runs in its context (so its signal is found after any
 * await). Called when this thread loads loopthread's public entry, and for an inline function
 * whose source names it. A call whose synchronous part is running is put in its context now.
 */
export function wantCallContexts(): void {
  wanted = true;
  if (running !== undefined && !entered) {
    entered = true;
    storage.enterWith(running);
  }
}

/** The running call's context, if any. Asking turns contexts on (see wantCallContexts). */
function ask(): CallContext | undefined {
  const store = storage.getStore();
  if (store !== undefined) return store;
  wantCallContexts();
  return running;
}

export function runInContext<R>(context: CallContext, fn: () => R): R {
  if (wanted) return storage.run(context, fn);
  const outer = running;
  const outerEntered = entered;
  running = context;
  entered = false;
  try {
    return fn();
  } finally {
    // The store was set on the event loop's current resource: code after this call in the same
    // turn is in no call. Promises made meanwhile keep it (that is the point).
    if (entered) storage.enterWith(outerEntered ? outer : undefined);
    running = outer;
    entered = outerEntered;
  }
}
