/**
 * A cross-thread Future, after Python's concurrent.futures.Future: pending -> running ->
 * finished or cancelled. It can be waited on by blocking (`resultSync`) or awaited.
 */
import { CancelledError, TimeoutError } from './errors.js';

/** Where a Future is: not started, running, finished (a value or an error), or cancelled. */
export type FutureState = 'pending' | 'running' | 'finished' | 'cancelled';

/** Options of a blocking wait for one future (`resultSync`, `exceptionSync`). */
export interface WaitOptions {
  /** Milliseconds to wait at most; a TimeoutError then (the future itself is left as it is). */
  timeout?: number | undefined;
}

/** What the creator of a Future supplies: how to block for it and what cancelling means. */
export interface FutureHooks {
  /** Blocks this thread until the future is done or `deadline` (performance.now() time) passes. */
  block?: (isDone: () => boolean, deadline: number) => void;
  /** Asks the other side to stop (the future is already marked cancelled). */
  onCancel?: (reason: unknown) => void;
  /**
   * Brings a pending future up to date when its state is read: the other side may have started
   * the call without telling (a pool worker does not wake a sleeping thread only to say so).
   */
  poll?: () => void;
}

export interface FutureControl<T> {
  running(): boolean;
  resolve(value: T): boolean;
  reject(error: unknown): boolean;
  /** The other side has finished with the call, whatever became of the future. */
  settle(): void;
}

/** What `addDoneCallback` calls, with the future, once it is done. */
type DoneCallback<T> = (future: Future<T>) => void;

let control: <T>(future: Future<T>) => FutureControl<T>;

/**
 * The result of a call or task still under way, after Python's `concurrent.futures.Future`:
 * pending → running → finished or cancelled. Await it (it is a thenable), or block for it with
 * `resultSync`. Futures come from loopthread (`run`, a proxy's async functions, `pool.submit`...),
 * never from `new`.
 *
 * @typeParam T - The value it finishes with.
 * @example
 * ```ts
 * const future = pool.submit((n: number) => n * 2, 21);
 * future.cancel(); // false once it is running or done
 * console.log(await future); // 42
 * console.log(future.resultSync({ timeout: 1_000 })); // the same, blocking
 * ```
 */
export class Future<T> implements PromiseLike<T> {
  #state: FutureState = 'pending';
  #value: T | undefined;
  #error: unknown;
  #failed = false;
  #callbacks: DoneCallback<T>[] = [];
  #promise: Promise<T> | undefined;
  #settled: Promise<void>;
  #markSettled!: () => void;
  readonly #hooks: FutureHooks;

  static {
    control = <T>(future: Future<T>): FutureControl<T> => ({
      running: () => future.#setRunning(),
      resolve: (value: T) => future.#finish('finished', value, undefined),
      reject: (error: unknown) => future.#finish('finished', undefined, error, true),
      settle: () => {
        future.#markSettled();
      },
    });
  }

  /** @internal Creates a future and the handle that completes it (for loopthread's own parts). */
  static create<T>(hooks: FutureHooks = {}): [Future<T>, FutureControl<T>] {
    const future = new Future<T>(hooks);
    return [future, control(future)];
  }

  private constructor(hooks: FutureHooks) {
    this.#hooks = hooks;
    this.#settled = new Promise((resolve) => {
      this.#markSettled = resolve;
    });
  }

  /** Where the future is now. */
  get state(): FutureState {
    if (this.#state === 'pending') this.#hooks.poll?.();
    return this.#state;
  }

  /** Resolves once the other side has really finished with the call (also after a cancel). */
  get settled(): Promise<void> {
    return this.#settled;
  }

  /** Whether it is finished or cancelled. */
  done(): boolean {
    return this.#state === 'finished' || this.#state === 'cancelled';
  }

  /** Whether its call or task is running now. */
  running(): boolean {
    if (this.#state === 'pending') this.#hooks.poll?.();
    return this.#state === 'running';
  }

  /** Whether it was cancelled. */
  cancelled(): boolean {
    return this.#state === 'cancelled';
  }

  /**
   * Cancels the future unless it is already done. A call that is running is asked to stop (its
   * signal aborts); `settled` tells when it has.
   *
   * @param reason - Why: the `cause` of the CancelledError it then fails with.
   * @returns Whether the future is now cancelled (false once it finished).
   */
  cancel(reason?: unknown): boolean {
    if (this.#state === 'cancelled') return true;
    if (this.#state === 'finished') return false;
    const error = new CancelledError('the future was cancelled', reason === undefined ? undefined : { cause: reason });
    this.#finish('cancelled', undefined, error, true);
    this.#hooks.onCancel?.(reason);
    return true;
  }

  /**
   * Blocks this thread until the future is done.
   *
   * @param options - `timeout`: milliseconds to wait at most.
   * @returns The value it finished with.
   * @throws The error it finished with; {@link CancelledError} if it was cancelled;
   * {@link TimeoutError} if `timeout` passed first (the future itself goes on).
   */
  resultSync(options: WaitOptions = {}): T {
    this.#waitSync(options.timeout);
    if (this.#failed) throw this.#error;
    return this.#value as T;
  }

  /**
   * Blocks this thread until the future is done.
   *
   * @param options - `timeout`: milliseconds to wait at most.
   * @returns The error it failed with, or undefined if it succeeded.
   * @throws {@link CancelledError} if it was cancelled; {@link TimeoutError} if `timeout` passed first.
   */
  exceptionSync(options: WaitOptions = {}): unknown {
    this.#waitSync(options.timeout);
    if (this.#state === 'cancelled') throw this.#error;
    return this.#failed ? this.#error : undefined;
  }

  /**
   * Runs `callback(this)` once the future is done; at once if it already is.
   *
   * @param callback - Called with this future. One that throws does not stop the others: its error
   *   is thrown uncaught on a later tick.
   */
  addDoneCallback(callback: DoneCallback<T>): void {
    if (this.done()) this.#invoke(callback);
    else this.#callbacks.push(callback);
  }

  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#asPromise().then(onFulfilled, onRejected);
  }

  /** As `Promise.prototype.catch`. */
  catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.#asPromise().catch(onRejected);
  }

  /** As `Promise.prototype.finally`. */
  finally(onFinally?: (() => void) | null): Promise<T> {
    return this.#asPromise().finally(onFinally);
  }

  /** `'Future'`. */
  readonly [Symbol.toStringTag] = 'Future';

  #asPromise(): Promise<T> {
    this.#promise ??= new Promise<T>((resolve, reject) => {
      this.addDoneCallback(() => {
        if (this.#failed) reject(this.#error);
        else resolve(this.#value as T);
      });
    });
    return this.#promise;
  }

  #waitSync(timeout: number | undefined): void {
    if (this.done()) return;
    const block = this.#hooks.block;
    if (block === undefined) throw new TypeError('this future cannot be waited on synchronously');
    const deadline = timeout === undefined ? Infinity : performance.now() + timeout;
    block(() => this.done(), deadline);
    if (!this.done()) throw new TimeoutError(`the future was not done within ${String(timeout)} ms`);
  }

  #setRunning(): boolean {
    if (this.#state !== 'pending') return false;
    this.#state = 'running';
    return true;
  }

  #finish(state: 'finished' | 'cancelled', value: T | undefined, error: unknown, failed = false): boolean {
    if (this.done()) return false;
    this.#state = state;
    this.#value = value;
    this.#error = error;
    this.#failed = failed;
    for (const callback of this.#callbacks.splice(0)) this.#invoke(callback);
    return true;
  }

  #invoke(callback: DoneCallback<T>): void {
    try {
      callback(this);
    } catch (error) {
      // A failing callback must not stop the others, nor be lost: report it as uncaught.
      process.nextTick(() => {
        throw error;
      });
    }
  }
}
