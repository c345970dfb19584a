/**
 * Proxies of objects lent by the other side of a connection. A proxy's method calls, property
 * reads and `new` are calls to the other thread: blocking ones from a sync proxy (what a blocking
 * call returned), Futures from an async proxy. Sync proxies of async iterables are iterable with
 * `for...of`, a batch of items per round trip. A proxy that is garbage collected, or released,
 * tells the other side, which then drops the object.
 */
import { inspect } from 'node:util';
import { markRemoteProxy } from '../codec/marks.js';
import type { Lending } from '../codec/encode.js';
import type { Future } from '../future.js';
import { Home, Shape, type Batch, type Descriptor, type Lender } from './lender.js';
import { RefOp, TargetKind, type Target } from '../call/target.js';

export type Mode = 'sync' | 'async';

/** The connection a proxy's calls go through. */
export interface Peer {
  readonly name: string;
  /** A blocking call of a lent object's operation. */
  refSync(target: Target, args: unknown[]): unknown;
  /** A non-blocking call of a lent object's operation. */
  refAsync(target: Target, args: unknown[]): Future<unknown> | Promise<unknown>;
  /** The proxies of `id` are gone: `count` copies of it were received. */
  release(id: number, count: number): void;
}

/** One proxy's claim on an id: how many copies of it this proxy stands for. */
interface Claim {
  readonly id: number;
  count: number;
  released: boolean;
}

interface RemoteInfo {
  readonly remotes: Remotes;
  readonly claim: Claim;
  readonly mode: Mode;
  readonly label: string;
  readonly shape: number;
}

const infos = new WeakMap<object, RemoteInfo>();
/** Proxies of entered resources (LoopThread.enterSync): disposing of them exits the resource. */
const enteredProxies = new WeakSet<object>();

/** Disposing of this proxy (`using`) exits its resource instead of disposing of it directly. */
export function markEntered(proxy: object): void {
  enteredProxies.add(proxy);
}

const collected = new FinalizationRegistry<{ remotes: Remotes; claim: Claim; mode: Mode }>(
  ({ remotes, claim, mode }) => {
    remotes.forget(claim, mode);
  },
);

/** How LoopThread reaches a proxy's exit (not a public member). */
export const exitSymbol = Symbol('loopthread.exit');

/** Iteration options of a remote iterable. */
export interface IterateOptions {
  /**
   * Items per round trip at most (the serving side takes no more than 65,536 in one). Default:
   * adaptive (16, then growing to 1024 while the loop goes on; a batch holds only the items that
   * are ready). 1 means strictly one item per round trip.
   */
  batchSize?: number;
}

/** The proxies of one connection's side, by the id of what they stand for. */
export class Remotes {
  private readonly live = new Map<number, { sync?: WeakRef<object>; async?: WeakRef<object> }>();
  /** What the encoder of this side's messages uses: lends local objects, sends proxies home. */
  readonly lending: Lending;

  constructor(
    readonly peer: Peer,
    lender: Lender,
  ) {
    this.lending = {
      lend: (value) => {
        const info = infos.get(value);
        if (info === undefined) return { descriptor: lender.lend(value) };
        if (info.remotes !== this) {
          return {
            refused: `a reference to an object of ${info.remotes.peer.name}, which can only be passed back there`,
          };
        }
        if (info.claim.released) return { refused: 'a released reference' };
        return { descriptor: [Home.Receiver, info.claim.id] };
      },
    };
  }

  /** What a descriptor stands for here: one of this side's own objects, or a proxy. */
  revive(descriptor: unknown, mode: Mode, lender: Lender): unknown {
    const d = descriptor as Descriptor;
    if (d[0] === Home.Receiver) return lender.get(d[1]);
    const [, id, shape, methods, label] = d;
    const entry = this.live.get(id) ?? {};
    const existing = entry[mode]?.deref();
    if (existing !== undefined) {
      const info = infos.get(existing) as RemoteInfo;
      if (!info.claim.released) {
        info.claim.count++;
        return existing;
      }
    }
    const claim: Claim = { id, count: 1, released: false };
    const proxy = makeProxy(this, claim, mode, shape, methods, label);
    entry[mode] = new WeakRef(proxy);
    this.live.set(id, entry);
    collected.register(proxy, { remotes: this, claim, mode }, claim);
    return proxy;
  }

  /** A proxy was collected or released: give its copies of the id back. */
  forget(claim: Claim, mode: Mode): void {
    const entry = this.live.get(claim.id);
    const proxy = entry?.[mode]?.deref();
    if (entry !== undefined && (proxy === undefined || infos.get(proxy)?.claim === claim)) {
      entry[mode] = undefined;
      if (entry.sync === undefined && entry.async === undefined) this.live.delete(claim.id);
    }
    if (claim.released) return;
    claim.released = true;
    collected.unregister(claim);
    try {
      this.peer.release(claim.id, claim.count);
    } catch {
      // The connection is gone, and the other side's table with it.
    }
  }
}

/** Releases a remote reference now, instead of when it is garbage collected. Using it after fails. */
export function release(proxy: object): void {
  const info = infos.get(proxy);
  if (info === undefined) throw new TypeError('release() takes a reference to an object of another thread');
  info.remotes.forget(info.claim, info.mode);
}

/** Whether `value` is a proxy of an object of another thread. */
export function isRemote(value: unknown): boolean {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && infos.has(value);
}

function targetOf(claim: Claim, label: string, op: RefOp, key: string | null, n = 0): Target {
  if (claim.released) throw new ReferenceError(`this reference to ${label} was released`);
  return [TargetKind.Lent, claim.id, op, key, n];
}

function makeProxy(
  remotes: Remotes,
  claim: Claim,
  mode: Mode,
  shape: number,
  methods: readonly string[],
  label: string,
): object {
  const peer = remotes.peer;
  const invoke = (op: RefOp, key: string | null, args: unknown[]): unknown => {
    const target = targetOf(claim, label, op, key);
    return mode === 'sync' ? peer.refSync(target, args) : peer.refAsync(target, args);
  };
  const stubs = new Map<string | symbol, unknown>();
  const stub = (key: string | symbol, make: () => unknown): unknown => {
    let s = stubs.get(key);
    if (s === undefined) stubs.set(key, (s = make()));
    return s;
  };
  const iterable = (shape & (Shape.AsyncIterable | Shape.Iterable)) !== 0;
  const disposable = (shape & (Shape.AsyncDisposable | Shape.Disposable)) !== 0;
  /** Runs `op` on the object, then releases the proxy, whichever way the op ends. */
  const finalOp = (op: RefOp, args: unknown[]): unknown => {
    const forget = (): void => {
      remotes.forget(claim, mode);
    };
    if (mode === 'sync') {
      try {
        return invoke(op, null, args);
      } finally {
        forget();
      }
    }
    return Promise.resolve(invoke(op, null, args)).finally(forget);
  };
  const dispose = (): unknown => {
    if (claim.released) return mode === 'sync' ? undefined : Promise.resolve();
    if (enteredProxies.has(proxy)) return finalOp(RefOp.Exit, [undefined]);
    if (disposable) return finalOp(RefOp.Dispose, []);
    remotes.forget(claim, mode);
    return mode === 'sync' ? undefined : Promise.resolve();
  };
  /** Exits an entered resource with the body's error (LoopThread.withSync), then releases it. */
  const exit = (error: unknown): unknown => finalOp(RefOp.Exit, [error]);
  const description = `[remote ${label} #${String(claim.id)} of ${peer.name}]`;

  const member = (key: symbol): unknown => {
    if (key === Symbol.iterator && mode === 'sync' && iterable) {
      return stub(key, () => () => iterateSync(proxy));
    }
    if (key === Symbol.asyncIterator && mode === 'async' && iterable) {
      return stub(key, () => () => iterate(proxy));
    }
    if (key === Symbol.dispose && mode === 'sync') return dispose;
    if (key === Symbol.asyncDispose && mode === 'async') return dispose;
    if (key === exitSymbol) return exit;
    if (key === Symbol.toStringTag) return `Remote ${label}`;
    if (key === inspect.custom) return () => description;
    return undefined;
  };

  const target =
    (shape & Shape.Function) !== 0
      ? function remote(): void {
          // Only a callable target for the Proxy: calls go through its apply trap.
        }
      : {};
  const proxy: object = new Proxy(target, {
    get(_, key) {
      if (typeof key === 'symbol') return member(key);
      if (key === 'then') return undefined;
      if (key === 'toString' && !methods.includes(key)) return () => description;
      if (methods.includes(key)) {
        return stub(
          key,
          () =>
            (...args: unknown[]) =>
              invoke(RefOp.Call, key, args),
        );
      }
      return invoke(RefOp.Get, key, []);
    },
    set(_, key, value) {
      if (typeof key === 'symbol' || mode === 'async') {
        throw new TypeError(
          `cannot set ${String(key)} on ${description}` +
            (mode === 'async' ? ': a property of a remote object can be set only through a blocking proxy' : ''),
        );
      }
      invoke(RefOp.Set, key, [value]);
      return true;
    },
    has(_, key) {
      return typeof key === 'symbol' ? member(key) !== undefined : methods.includes(key);
    },
    apply(_, _this, args) {
      return invoke(RefOp.Call, null, args);
    },
    construct(_, args) {
      return invoke(RefOp.New, null, args) as object;
    },
  });
  infos.set(proxy, { remotes, claim, mode, label, shape });
  markRemoteProxy(proxy);
  return proxy;
}

function iterationOf(remote: object, what: string): RemoteInfo {
  const info = infos.get(remote);
  if (info === undefined) throw new TypeError(`${what}() takes a reference to an iterable of another thread`);
  if ((info.shape & (Shape.AsyncIterable | Shape.Iterable)) === 0) {
    throw new TypeError(`${info.label} of ${info.remotes.peer.name} is not iterable`);
  }
  return info;
}

const MIN_BATCH = 16;
const MAX_BATCH = 1024;

function batchSizes(batchSize: number | undefined): () => number {
  if (batchSize !== undefined) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError('batchSize must be a positive integer');
    return () => batchSize;
  }
  let next = MIN_BATCH;
  return () => {
    const n = next;
    next = Math.min(MAX_BATCH, next * 4);
    return n;
  };
}

/**
 * The state of one iteration over a remote iterable: the items in hand, then whether the remote
 * iterator is done or failed after them. The remote iterator lives on the other side and is
 * released when the iteration ends, whichever way.
 */
class Iteration {
  items: unknown[] = [];
  at = 0;
  end: 0 | 1 | 2 = 0;
  error: unknown;
  iterator: object | undefined;
  finished = false;

  constructor(readonly info: RemoteInfo) {}

  take(batch: Batch): void {
    [this.items, this.end, this.error] = batch;
    this.at = 0;
  }

  /** The next item in hand, or undefined when a batch must be fetched. */
  ready(): IteratorResult<unknown> | undefined {
    if (this.at < this.items.length) {
      const value = this.items[this.at];
      this.items[this.at++] = undefined;
      return { value, done: false };
    }
    if (this.finished) return { value: undefined, done: true };
    if (this.end === 0) return undefined;
    this.finish();
    if (this.end === 2) throw this.error;
    return { value: undefined, done: true };
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.items = [];
    if (this.iterator !== undefined) release(this.iterator);
  }

  target(op: RefOp, n = 0): Target {
    const iterator = infos.get(this.iterator as object) as RemoteInfo;
    return targetOf(iterator.claim, 'an iterator', op, null, n);
  }

  start(n: number): Target {
    return targetOf(this.info.claim, this.info.label, RefOp.Iterate, null, n);
  }
}

/**
 * Iterates a remote iterable (async or not) from synchronous code, blocking for each batch.
 * `break` or a throw in the loop body ends the remote iterator (its `finally` runs) before the
 * loop statement ends; an error of the remote iterator is thrown after the items before it.
 */
export function iterateSync<T = unknown>(remote: object, options: IterateOptions = {}): IterableIterator<T> {
  const info = iterationOf(remote, 'iterateSync');
  if (info.mode !== 'sync') throw new TypeError('iterateSync() takes a reference returned by a blocking call');
  const sizes = batchSizes(options.batchSize);
  const state = new Iteration(info);
  const peer = info.remotes.peer;
  const iterator: IterableIterator<T> = {
    next(): IteratorResult<T> {
      for (;;) {
        const r = state.ready();
        if (r !== undefined) return r as IteratorResult<T>;
        if (state.iterator === undefined) {
          const [it, ...batch] = peer.refSync(state.start(sizes()), []) as [object, ...Batch];
          state.iterator = it;
          state.take(batch);
        } else {
          state.take(peer.refSync(state.target(RefOp.Next, sizes()), []) as Batch);
        }
      }
    },
    return(): IteratorResult<T> {
      if (!state.finished && state.iterator !== undefined && state.end === 0) {
        try {
          peer.refSync(state.target(RefOp.Return), []);
        } finally {
          state.finish();
        }
      }
      state.finish();
      return { value: undefined, done: true };
    },
    [Symbol.iterator]() {
      return iterator;
    },
  };
  return iterator;
}

/** Iterates a remote iterable with `for await`, a batch of items per round trip. */
export function iterate<T = unknown>(remote: object, options: IterateOptions = {}): AsyncIterableIterator<T> {
  const info = iterationOf(remote, 'iterate');
  if (info.mode !== 'async') throw new TypeError('iterate() takes a reference returned by a non-blocking call');
  const sizes = batchSizes(options.batchSize);
  const state = new Iteration(info);
  const peer = info.remotes.peer;
  const iterator: AsyncIterableIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        const r = state.ready();
        if (r !== undefined) return r as IteratorResult<T>;
        if (state.iterator === undefined) {
          const [it, ...batch] = (await peer.refAsync(state.start(sizes()), [])) as [object, ...Batch];
          state.iterator = it;
          state.take(batch);
        } else {
          state.take((await peer.refAsync(state.target(RefOp.Next, sizes()), [])) as Batch);
        }
      }
    },
    async return(): Promise<IteratorResult<T>> {
      if (!state.finished && state.iterator !== undefined && state.end === 0) {
        try {
          await peer.refAsync(state.target(RefOp.Return), []);
        } finally {
          state.finish();
        }
      }
      state.finish();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
