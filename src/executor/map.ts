/**
 * Executor.map, lazily: the input is read only as results are taken, with at most `concurrency`
 * chunks in flight, so an endless input is fine. Results come in input order; an item whose call
 * threw raises where it sits, and whatever is still in flight is cancelled when iteration stops.
 */
import type { Future } from '../future.js';

/** Options of `pool.map`. */
export interface MapOptions {
  /** Items sent to a worker per task (fewer hand-offs for cheap functions). Default 1. */
  chunkSize?: number;
  /** The most chunks in flight at once. Default twice the pool's maxWorkers. */
  concurrency?: number;
}

/** What a chunk's task returns: the values in order, the index of the failing item (-1 if none), its error. */
export type ChunkResult<R> = [values: R[], failedAt: number, error: unknown];

type Pull<T> = () => IteratorResult<T> | Promise<IteratorResult<T>>;

export async function* mapChunks<T, R>(
  submit: (items: T[]) => Future<ChunkResult<R>>,
  input: Iterable<T> | AsyncIterable<T>,
  options: MapOptions,
): AsyncGenerator<R, void, undefined> {
  const chunkSize = Math.max(1, Math.floor(options.chunkSize ?? 1));
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const iterator: Iterator<T> | AsyncIterator<T> =
    Symbol.asyncIterator in input ? input[Symbol.asyncIterator]() : input[Symbol.iterator]();
  const pull: Pull<T> = () => iterator.next();
  const inflight: Future<ChunkResult<R>>[] = [];
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && inflight.length < concurrency) {
        const items: T[] = [];
        while (items.length < chunkSize) {
          const next = await pull();
          if (next.done === true) {
            exhausted = true;
            break;
          }
          items.push(next.value);
        }
        if (items.length > 0) inflight.push(submit(items));
      }
      const head = inflight.shift();
      if (head === undefined) return;
      const [values, failedAt, error] = await head;
      for (const value of values) yield value;
      if (failedAt >= 0) throw error;
    }
  } finally {
    for (const future of inflight) future.cancel();
    if (!exhausted) await iterator.return?.();
  }
}
