/**
 * concurrent.futures.as_completed and wait, for any loopthread Future (a pool's or a LoopThread's).
 */
import { TimeoutError } from '../errors.js';

/** What asCompleted and wait need of a future (any loopthread Future has it, whatever its value type). */
export interface Completable {
  /** Whether it is finished or cancelled. */
  done(): boolean;
  /** Whether it was cancelled. */
  cancelled(): boolean;
  /** Its error, or undefined (only called once it is done). */
  exceptionSync(): unknown;
  /** Calls `callback` once it is done. */
  addDoneCallback(callback: () => void): void;
}

/**
 * A future as asCompleted yields it: the Future itself, typed without `then` because `for await`
 * would otherwise type each one as its value.
 */
export type Completed<F> = Omit<F, 'then' | 'catch' | 'finally'>;

/** Options of {@link asCompleted}. */
export interface AsCompletedOptions {
  /** Milliseconds from the call until iteration throws TimeoutError if futures are still pending. */
  timeout?: number | undefined;
}

/** When {@link wait} returns: once any future is done, once one fails, or once all are done. */
export type ReturnWhen = 'FIRST_COMPLETED' | 'FIRST_EXCEPTION' | 'ALL_COMPLETED';

/** The options of `wait(futures)`; a single future's `resultSync` takes WaitOptions. */
export interface FuturesWaitOptions {
  /** When to return (default 'ALL_COMPLETED'). FIRST_EXCEPTION: when one fails (cancelled does not count). */
  returnWhen?: ReturnWhen | undefined;
  /** Milliseconds to wait at most; then it returns what is done by then (it does not throw). */
  timeout?: number | undefined;
}

/** What {@link wait} resolves with. */
export interface WaitResult<F> {
  /** The futures done (finished or cancelled). */
  done: Set<F>;
  /** The others. */
  notDone: Set<F>;
}

/**
 * Yields each future as soon as it is done (those already done first); duplicates are yielded
 * once. A plain iterator rather than an async generator: a generator would await each future it
 * yields and hand out its value instead.
 *
 * @param futures - Any loopthread Futures.
 * @param options - `timeout`: ms from this call until the iteration throws.
 * @throws {@link TimeoutError} from the iteration once `timeout` passed with futures still pending.
 * @example
 * ```ts
 * const futures = files.map((f) => pool.submit(hash, f));
 * for await (const future of asCompleted(futures, { timeout: 60_000 })) console.log(future.resultSync());
 * ```
 */
export function asCompleted<F extends Completable>(
  futures: Iterable<F>,
  options: AsCompletedOptions = {},
): AsyncIterableIterator<Completed<F>> {
  const all = new Set(futures);
  const done: F[] = [];
  let wake: (() => void) | undefined;
  for (const f of all) {
    f.addDoneCallback(() => {
      done.push(f);
      wake?.();
    });
  }
  const { timeout } = options;
  const deadline = timeout === undefined ? Infinity : performance.now() + timeout;
  let yielded = 0;
  const next = async (): Promise<IteratorResult<Completed<F>, undefined>> => {
    for (;;) {
      if (yielded >= all.size) return { done: true, value: undefined };
      const f = done.shift();
      if (f !== undefined) {
        yielded++;
        return { done: false, value: f };
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        const missing = all.size - yielded;
        yielded = all.size;
        throw new TimeoutError(`${missing} of ${all.size} futures were not done in time`);
      }
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (left !== Infinity) timer = setTimeout(resolve, left);
      });
      wake = undefined;
      clearTimeout(timer);
    }
  };
  return {
    next,
    return: () => {
      yielded = all.size;
      return Promise.resolve({ done: true, value: undefined });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Waits until `returnWhen` holds for the futures, or until the timeout; returns which are done.
 * It never throws for a future's failure or for the timeout.
 *
 * @param futures - Any loopthread Futures.
 * @param options - `returnWhen` (default 'ALL_COMPLETED'), `timeout` (ms).
 * @example
 * ```ts
 * const { done, notDone } = await wait(futures, { returnWhen: 'FIRST_EXCEPTION', timeout: 5_000 });
 * for (const f of notDone) f.cancel();
 * ```
 */
export function wait<F extends Completable>(
  futures: Iterable<F>,
  options: FuturesWaitOptions = {},
): Promise<WaitResult<F>> {
  const all = new Set(futures);
  const returnWhen = options.returnWhen ?? 'ALL_COMPLETED';
  const failed = (f: F): boolean => {
    if (f.cancelled()) return false;
    try {
      return f.exceptionSync() !== undefined;
    } catch {
      return false;
    }
  };
  const result = (): WaitResult<F> => {
    const done = new Set<F>();
    const notDone = new Set<F>();
    for (const f of all) (f.done() ? done : notDone).add(f);
    return { done, notDone };
  };
  const satisfied = (): boolean => {
    let pending = 0;
    for (const f of all) {
      if (!f.done()) pending++;
      else if (returnWhen === 'FIRST_COMPLETED') return true;
      else if (returnWhen === 'FIRST_EXCEPTION' && failed(f)) return true;
    }
    return pending === 0;
  };
  if (satisfied()) return Promise.resolve(result());
  return new Promise((resolve) => {
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve(result());
    };
    if (options.timeout !== undefined) timer = setTimeout(finish, options.timeout);
    for (const f of all) {
      f.addDoneCallback(() => {
        if (!finished && satisfied()) finish();
      });
    }
  });
}
