/**
 * The call methods of a LoopThread (and of its connections), alone or bound to a set of call
 * options (`LoopThread.with`).
 */
import type { PortalClient, CallOptions } from './portal/client.js';
import type { Future } from './future.js';
import type { Asyncified, AsyncValue, ReceivedArgs, Syncified, SyncValue } from './portal/proxy.js';
import { exitSymbol, markEntered } from './portal/remote.js';

/** Options of the call methods, for `LoopThread.with`. */
export interface CallerOptions extends CallOptions {
  /**
   * The method that exits a resource entered by enterSync/usingSync/withSync (for example
   * "close" or "end"). Default: its Symbol.asyncDispose, else its Symbol.dispose.
   */
  exit?: string | undefined;
}

/** A function that may be sent: a stub from `importSync`/`import`, or an inline function sent as source. */
export type Callable<A extends unknown[], R> = (...args: ReceivedArgs<A>) => R;

/** The call methods, bound to a set of call options (see `LoopThread.with`). */
export class LoopThreadCaller {
  /** @internal */
  constructor(
    private readonly client: PortalClient,
    private readonly options: CallerOptions,
  ) {}

  /**
   * Calls `fn(...args)` on the loop thread and enters the resource it resolves to (an object with
   * Symbol.asyncDispose, or with the exit method named by `with({ exit })`), blocking until
   * entered. The resource stays open until the LoopThread closes, which exits entered resources
   * last-in first-out, or until the returned reference is disposed (`using`). Enter and exit run
   * in one async frame on the loop thread, so AsyncLocalStorage state set on enter is there on exit.
   */
  enterSync<A extends unknown[], R extends object>(
    fn: Callable<A, R | Promise<R>>,
    ...args: A
  ): Syncified<R> & Disposable {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    const ref = this.client.enterSync(fn, args, this.options.exit ?? null, this.options, this.enterSync) as object;
    markEntered(ref);
    return ref as Syncified<R> & Disposable;
  }

  /** enterSync for a block: `using conn = loop.usingSync(connect, url)` exits the resource at the end of the block. */
  usingSync<A extends unknown[], R extends object>(
    fn: Callable<A, R | Promise<R>>,
    ...args: A
  ): Syncified<R> & Disposable {
    return this.enterSync(fn, ...args);
  }

  /**
   * Enters the resource `fn(...args)` resolves to, runs `body` with it, and exits it; the exit
   * method receives the body's error (undefined if it returned). Returns what `body` returned, or
   * throws its error (a SuppressedError if the exit failed too), unless the exit method returned
   * true, which suppresses the error (as Python's `__aexit__`): then it returns undefined.
   */
  withSync<A extends unknown[], R extends object, T>(
    fn: Callable<A, R | Promise<R>>,
    args: A,
    body: (resource: Syncified<R>) => T,
  ): T | undefined {
    const resource = this.enterSync(fn, ...args);
    const exit = (resource as unknown as Record<symbol, (error: unknown) => unknown>)[exitSymbol] as (
      error: unknown,
    ) => unknown;
    let result: T;
    try {
      result = body(resource);
    } catch (error) {
      let suppress: unknown;
      try {
        suppress = exit(error);
      } catch (exitError) {
        throw suppressedError(exitError, error, 'exiting the resource failed after its body threw');
      }
      if (suppress === true) return undefined;
      throw error;
    }
    exit(undefined);
    return result;
  }

  /** Enters a resource without blocking: resolves to an async reference; `await using` exits it. */
  async enter<A extends unknown[], R extends object>(
    fn: Callable<A, R | Promise<R>>,
    ...args: A
  ): Promise<Asyncified<R> & AsyncDisposable> {
    const ref = await this.client.enter<object>(fn, args, this.options.exit ?? null, this.options);
    markEntered(ref);
    return ref as Asyncified<R> & AsyncDisposable;
  }

  /**
   * Runs `fn(...args)` on the loop thread and blocks until it settles: returns its value or throws its error.
   *
   * @param fn - A function from `importSync`/`import`, or an inline function (sent as source: it may
   *   use only its arguments and globals).
   * @param args - Its arguments: data is copied, objects with methods are lent.
   * @throws What `fn` throws (copied from the loop thread); {@link TimeoutError} after the call's
   *   timeout; {@link CancelledError} when its signal aborts; {@link ClosedError} once closed;
   *   {@link WorkerCrashedError} if the thread dies; {@link NeverSettledError} if its promise can
   *   never settle; {@link DeadlockError} if called on the loop thread itself;
   *   {@link DataCloneError} for an argument that cannot cross.
   */
  runSync<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): SyncValue<Awaited<R>> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    return this.client.callSync(fn, args, this.options, this.runSync) as SyncValue<Awaited<R>>;
  }

  /**
   * Runs `fn(...args)` on the loop thread without blocking.
   *
   * @param fn - As for `runSync`.
   * @param args - As for `runSync`.
   * @returns A Future that fails as `runSync` throws.
   */
  run<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<AsyncValue<Awaited<R>>> {
    return this.client.call<AsyncValue<Awaited<R>>>(fn, args, this.options);
  }

  /**
   * Imports a module on the loop thread; its functions block and return their awaited values.
   *
   * @param specifier - An absolute path, a file URL or a package name (resolved from the working directory).
   * @throws The error that loading the module threw (copied from the loop thread); the loopthread
   *   errors of `runSync`.
   */
  importSync<T = Record<string, unknown>>(specifier: string | URL): Syncified<T> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only marks where the caller's stack starts
    return this.client.importSync(specifier, this.options, this.importSync) as Syncified<T>;
  }

  /**
   * Imports a module on the loop thread; its functions return Futures.
   *
   * @param specifier - As for `importSync`.
   */
  async import<T = Record<string, unknown>>(specifier: string | URL): Promise<Asyncified<T>> {
    return (await this.client.import(specifier, this.options)) as Asyncified<T>;
  }
}

/** `new SuppressedError(...)`, also where Node has no SuppressedError yet (Node 20). */
function suppressedError(error: unknown, suppressed: unknown, message: string): Error {
  const Native = (globalThis as { SuppressedError?: typeof SuppressedError }).SuppressedError;
  if (Native !== undefined) return new Native(error, suppressed, message);
  return Object.assign(new Error(message), { name: 'SuppressedError', error, suppressed });
}
