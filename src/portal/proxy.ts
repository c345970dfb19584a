/**
 * Module proxies: an object that looks like the module on the other thread. Its functions are
 * stubs that call the real ones remotely; its data exports are the values copied at import time.
 */
import type { ExportShape } from './exports.js';
import { TargetKind, type Target } from '../call/target.js';

/** Values that always cross by copy, whatever methods their prototype has. */
type Copied =
  | string
  | number
  | boolean
  | bigint
  | symbol
  | null
  | undefined
  | readonly unknown[]
  | Date
  | RegExp
  | Map<unknown, unknown>
  | Set<unknown>
  | ArrayBuffer
  | SharedArrayBuffer
  | ArrayBufferView
  | Error
  | URL
  | URLSearchParams;

/** True when some property of T is a function: such an object crosses by reference. */
type HasMethods<T> = {
  [K in keyof T]-?: T[K] extends (...args: never[]) => unknown ? K : never;
}[keyof T] extends never
  ? false
  : true;

/**
 * What a value of type T becomes when a blocking call returns it: copied data stays as it is;
 * functions and objects with methods become references whose calls block; async iterables become
 * iterable with `for...of`.
 */
export type SyncValue<T> = T extends Copied
  ? T
  : T extends (...args: never[]) => unknown
    ? SyncFunction<T>
    : T extends AsyncIterable<infer I> | Iterable<infer I>
      ? Iterable<I> & Syncified<Omit<T, typeof Symbol.asyncIterator | typeof Symbol.iterator>>
      : T extends object
        ? HasMethods<T> extends true
          ? Syncified<T> & Disposable
          : T
        : T;

/** What a value of type T becomes when a non-blocking call returns it (see SyncValue). */
export type AsyncValue<T> = T extends Copied
  ? T
  : T extends (...args: never[]) => unknown
    ? AsyncFunction<T>
    : T extends AsyncIterable<infer I> | Iterable<infer I>
      ? AsyncIterable<I> & Asyncified<Omit<T, typeof Symbol.asyncIterator | typeof Symbol.iterator>>
      : T extends object
        ? HasMethods<T> extends true
          ? Asyncified<T> & AsyncDisposable
          : T
        : T;

/** Platform objects that cross as themselves (rebuilt on the other side, or posted beside the message). */
type Rebuilt = Blob | import('node:worker_threads').MessagePort;

/**
 * A lent object as the receiving thread sees it without blocking: every property read and method
 * call is a call back to the owner, so each gives a promise.
 */
export type LentAsync<T> = {
  readonly [K in keyof T]: T[K] extends (...args: never[]) => unknown
    ? AsyncFunction<T[K]>
    : PromiseLike<AsyncValue<Awaited<T[K]>>>;
};

/**
 * What the receiving thread gets for an argument of type T: copied data as it is (a class instance
 * without methods as its fields), a function as a function returning a promise, and an object
 * with methods (own or from its class) as a lent proxy whose reads and calls are promises.
 */
export type Received<T> = T extends readonly unknown[]
  ? { [K in keyof T]: Received<T[K]> }
  : T extends Copied | Rebuilt
    ? T
    : T extends (...args: never[]) => unknown
      ? AsyncFunction<T>
      : T extends object
        ? HasMethods<T> extends true
          ? LentAsync<T>
          : { [K in keyof T]: Received<T[K]> }
        : T;

/** The arguments of a call as the receiving thread gets them (see Received). */
export type ReceivedArgs<A extends readonly unknown[]> = { [K in keyof A]: Received<A[K]> };

/** A function's type with its result awaited, as a blocking stub returns it. */
export type SyncFunction<F> = F extends (...args: infer A) => infer R ? (...args: A) => SyncValue<Awaited<R>> : never;

/** A function's type returning a Future of its awaited result: what a non-blocking stub returns. */
export type AsyncFunction<F> = F extends (...args: infer A) => infer R
  ? (...args: A) => import('../future.js').Future<AsyncValue<Awaited<R>>>
  : never;

/** A module (or object) as seen through `importSync`: every function blocks and returns its awaited value. */
export type Syncified<T> = {
  readonly [K in keyof T]: T[K] extends (...args: never[]) => unknown
    ? SyncFunction<T[K]>
    : T[K] extends object
      ? SyncValue<T[K]>
      : T[K];
};

/** A module (or object) as seen through `import`: every function returns a Future. */
export type Asyncified<T> = {
  readonly [K in keyof T]: T[K] extends (...args: never[]) => unknown
    ? AsyncFunction<T[K]>
    : T[K] extends object
      ? AsyncValue<T[K]>
      : T[K];
};

export interface StubInfo {
  readonly target: Target;
  /** Which connection the stub belongs to: calling it through another one is refused. */
  readonly owner: object;
}

const stubs = new WeakMap<object, StubInfo>();

/** The remote function a stub stands for, if `fn` is a stub. */
export function stubInfo(fn: unknown): StubInfo | undefined {
  return typeof fn === 'function' ? stubs.get(fn) : undefined;
}

export function buildProxy(
  shape: Record<string, ExportShape>,
  moduleId: number,
  owner: object,
  invoke: (target: Target, args: unknown[], stub: (...args: never[]) => unknown) => unknown,
  path: readonly string[] = [],
): object {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, entry] of Object.entries(shape)) {
    const here = [...path, key];
    switch (entry[0]) {
      case 'function': {
        const target: Target = [TargetKind.Export, moduleId, here];
        const stub = {
          [key]: (...args: unknown[]): unknown => invoke(target, args, stub),
        }[key] as (...args: unknown[]) => unknown;
        stubs.set(stub, { target, owner });
        out[key] = stub;
        break;
      }
      case 'value':
        out[key] = entry[1];
        break;
      case 'object':
        out[key] = buildProxy(entry[1], moduleId, owner, invoke, here);
        break;
      case 'uncopyable': {
        const what = entry[1];
        Object.defineProperty(out, key, {
          enumerable: true,
          get() {
            throw new TypeError(
              `export '${here.join('.')}' is ${what}, which cannot be copied to this thread (only functions and copyable data can be used here)`,
            );
          },
        });
        break;
      }
    }
  }
  Object.defineProperty(out, Symbol.toStringTag, { value: 'Module' });
  return Object.freeze(out);
}
