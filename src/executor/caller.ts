/**
 * The submit methods of a ThreadPoolExecutor, alone or bound to a set of task options
 * (`ThreadPoolExecutor.with`).
 */
import type { Future } from '../future.js';
import { QueueFullError } from '../errors.js';
import { normalizeSpecifier } from '../call/target.js';
import { mapChunks, type MapOptions } from './map.js';
import { moduleProxy, targetOf, type Offloaded } from './targets.js';
import type { TaskOptions } from './task-queue.js';
import { Mode } from './wire.js';
import type { ThreadPoolExecutor } from './pool.js';

/** A function that may be sent: a stub from `executor.import()`, or an inline function (sent as source). */
export type Callable<A extends unknown[], R> = (...args: A) => R;

/** The submit methods, bound to a set of task options (see `ThreadPoolExecutor.with`). */
export class ExecutorCaller {
  readonly #target: ThreadPoolExecutor | undefined;
  readonly #options: TaskOptions;

  /** @internal */
  constructor(target: ThreadPoolExecutor | undefined, options: TaskOptions) {
    this.#target = target;
    this.#options = options;
  }

  /** @internal The executor (a ThreadPoolExecutor is its own). */
  protected get pool(): ThreadPoolExecutor {
    return this.#target ?? (this as unknown as ThreadPoolExecutor);
  }

  /** @internal */
  protected get options(): TaskOptions {
    return this.#options;
  }

  /**
   * Runs `fn(...args)` on a worker. Returns at once; when the queue is full the task waits its
   * turn (FIFO) to enter it, still cancellable.
   *
   * @param fn - A function from `pool.import()`, or an inline function (sent as source: it may use
   *   only its arguments and globals).
   * @param args - Its arguments, copied to the worker.
   * @returns A Future of its result. It fails with what `fn` throws; {@link ClosedError} if the pool
   *   is closed; {@link WorkerCrashedError} if the worker dies; {@link TimeoutError} or
   *   {@link CancelledError} per the task options; {@link NeverSettledError} if its promise can
   *   never settle; {@link DataCloneError} for an argument that cannot be copied.
   * @example
   * ```ts
   * const future = pool.submit((a: number, b: number) => a * b, 6, 7);
   * console.log(await future); // 42
   * ```
   */
  submit<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<Awaited<R>> {
    return this.pool.submitWith(this.options, fn, ...args);
  }

  /**
   * As submit if the queue has room now; undefined (nothing submitted) when it is full.
   *
   * @param fn - As for `submit`.
   * @param args - As for `submit`.
   */
  trySubmit<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<Awaited<R>> | undefined {
    try {
      return this.pool.submitWith({ ...this.options, nowait: true }, fn, ...args);
    } catch (error) {
      if (error instanceof QueueFullError) return undefined;
      throw error;
    }
  }

  /** @deprecated Python's `submit_nowait`: as trySubmit, but throws QueueFullError when the queue is full. */
  submitNowait<A extends unknown[], R>(fn: Callable<A, R>, ...args: A): Future<Awaited<R>> {
    return this.pool.submitWith({ ...this.options, nowait: true }, fn, ...args);
  }

  /**
   * `fn(item)` for each item, in input order. The input is read lazily and at most
   * `concurrency` chunks of `chunkSize` items are in flight, so it may be endless.
   *
   * @param fn - As for `submit`, called with one item.
   * @param input - A sync or async iterable.
   * @param options - `chunkSize` (default 1), `concurrency` (default twice maxWorkers).
   * @returns The results in input order; the iteration throws the first error, in order.
   * @example
   * ```ts
   * for await (const size of pool.map(sizeOf, paths, { chunkSize: 16 })) total += size;
   * ```
   */
  map<T, R>(
    fn: (item: T) => R,
    input: Iterable<T> | AsyncIterable<T>,
    options: MapOptions = {},
  ): AsyncGenerator<Awaited<R>, void, undefined> {
    const id = targetOf(fn);
    return mapChunks<T, Awaited<R>>(
      (items) => this.pool.submitTarget(id, Mode.Chunk, items, this.options) as Future<[Awaited<R>[], number, unknown]>,
      input,
      { concurrency: this.pool.maxWorkers * 2, ...options },
    );
  }

  /**
   * A module loaded in the workers: each of its functions runs there and returns a Future.
   *
   * @param specifier - An absolute path, a file URL or a package name (resolved from the working directory).
   * @example
   * ```ts
   * const images = pool.import<typeof import('./images.js')>(new URL('./images.js', import.meta.url));
   * const thumb = await images.resize(buffer, 128);
   * ```
   */
  import<T = Record<string, unknown>>(specifier: string | URL): Offloaded<T> {
    const spec = normalizeSpecifier(specifier);
    return moduleProxy(spec, (id, args) => this.pool.submitTarget(id, Mode.Call, args, this.options)) as Offloaded<T>;
  }
}
