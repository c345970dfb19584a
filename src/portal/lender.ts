/**
 * The objects one side of a connection has lent to the other: functions, class instances,
 * iterators, resources. The other side holds proxies; every call on a proxy names the object here
 * by id. An object is kept until the other side has released every copy of its id it received
 * (counted, so that a release crossing a new lending of the same object cannot drop it too early).
 */
import { Interface as ReadlineInterface } from 'node:readline';
import { byRef } from '../codec/marks.js';
import { describeType } from '../codec/encode.js';
import { RefOp, type Fn } from '../call/target.js';

/**
 * The class of every readline interface: `createInterface()` makes a `readline.Interface`, but
 * `FileHandle.readLines()` makes one of its base class, which Node does not export.
 */
const readlineBase: unknown = (Object.getPrototypeOf(ReadlineInterface.prototype) as { constructor?: unknown })
  .constructor;
const ReadlineBase = (
  typeof readlineBase === 'function' && readlineBase !== Object ? readlineBase : ReadlineInterface
) as typeof ReadlineInterface;

/** What the receiving side needs to build a proxy, sent with each lent object. */
export const enum Shape {
  Function = 1,
  AsyncIterable = 2,
  Iterable = 4,
  AsyncDisposable = 8,
  Disposable = 16,
}

/** Whose object a reference on the wire stands for. */
export const enum Home {
  /** The sender's, lent: the receiver makes a proxy of it. */
  Sender = 0,
  /** The receiver's own, coming back home. */
  Receiver = 1,
}

/** A reference on the wire: `[Home.Sender, id, shape, methods, label]` or `[Home.Receiver, id]`. */
export type Descriptor =
  | readonly [home: Home.Sender, id: number, shape: number, methods: readonly string[], label: string]
  | readonly [home: Home.Receiver, id: number];

/** A batch of items: the items, then 0 (more may follow), 1 (done) or 2 (the error thrown after them). */
export type Batch = [items: unknown[], end: 0 | 1 | 2, error: unknown];

/** The names of `o`'s own properties that hold functions (not getters: reading those is a call). */
function ownMethods(o: object, into: Set<string>): void {
  for (const key of Object.getOwnPropertyNames(o)) {
    if (key === 'constructor' || key === 'then') continue;
    const d = Object.getOwnPropertyDescriptor(o, key);
    if (d !== undefined && typeof d.value === 'function') into.add(key);
  }
}

/** The methods a prototype chain gives, by prototype (a class's methods, taken as fixed once it is lent). */
const chainMethods = new WeakMap<object, readonly string[]>();

function methodsOfChain(proto: object | null): readonly string[] {
  if (proto === null || proto === Object.prototype || proto === Function.prototype) return [];
  let methods = chainMethods.get(proto);
  if (methods === undefined) {
    const names = new Set<string>(methodsOfChain(Object.getPrototypeOf(proto) as object | null));
    ownMethods(proto, names);
    methods = [...names];
    chainMethods.set(proto, methods);
  }
  return methods;
}

/** Methods are found on the object and its prototypes, up to (not including) Object.prototype. */
function methodsOf(value: object): readonly string[] {
  const inherited = methodsOfChain(Object.getPrototypeOf(value) as object | null);
  const own = new Set<string>();
  ownMethods(value, own);
  if (own.size === 0) return inherited;
  for (const name of inherited) own.add(name);
  return [...own];
}

function shapeOf(value: object): number {
  const has = (key: symbol): boolean => typeof (value as Record<symbol, unknown>)[key] === 'function';
  return (
    (typeof value === 'function' ? Shape.Function : 0) |
    (has(Symbol.asyncIterator) ? Shape.AsyncIterable : 0) |
    (has(Symbol.iterator) ? Shape.Iterable : 0) |
    (has(Symbol.asyncDispose) ? Shape.AsyncDisposable : 0) |
    (has(Symbol.dispose) ? Shape.Disposable : 0)
  );
}

interface Loan {
  readonly value: object;
  /** Copies of the id sent and not yet released. */
  count: number;
}

export class Lender {
  private readonly loans = new Map<number, Loan>();
  /** Iterations started by the other side and not yet ended: ended (return()) when the host closes. */
  readonly iterating = new Set<AnyIterator>();
  private readonly ids = new Map<object, number>();
  private nextId = 1;

  /** How many objects are lent now. */
  get size(): number {
    return this.loans.size;
  }

  lend(value: object): Descriptor {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(value, id);
      this.loans.set(id, { value, count: 0 });
      // A readline interface emits its lines whether or not anyone iterates; its iterator buffers
      // them only once created. Created now, lines read before the other side's for...of stay.
      if (value instanceof ReadlineBase) value[Symbol.asyncIterator]();
    }
    (this.loans.get(id) as Loan).count++;
    const label =
      typeof value === 'function' ? describeType(value) : describeType(value).replace(/^an? (instance of )?/, '');
    return [Home.Sender, id, shapeOf(value), methodsOf(value), label];
  }

  /** The object lent as `id`; a clear error if it was released. */
  get(id: number): object {
    const loan = this.loans.get(id);
    if (loan === undefined) {
      throw new ReferenceError(`reference #${String(id)} was released: its object is no longer reachable from here`);
    }
    return loan.value;
  }

  /** The other side dropped `count` copies of the id. */
  release(id: number, count: number): void {
    const loan = this.loans.get(id);
    if (loan === undefined) return;
    loan.count -= count;
    if (loan.count <= 0) {
      this.loans.delete(id);
      this.ids.delete(loan.value);
    }
  }

  /** Forgets everything (the connection is gone). */
  clear(): void {
    this.loans.clear();
    this.ids.clear();
  }
}

export type AnyIterator = AsyncIterator<unknown> | Iterator<unknown>;

/** A pull that did not complete within the batch that started it; the next batch awaits it first. */
const pendingPulls = new WeakMap<object, Promise<IteratorResult<unknown>>>();

/**
 * Whether the other side may use `key` of a lent object: not `constructor`, `__proto__` nor
 * anything found on Object.prototype or Function.prototype, through which it would reach past
 * the object (to `Function`, which compiles source, or to every object's prototype).
 */
function reachable(target: object, key: string): boolean {
  if (key === 'constructor' || key === '__proto__') return false;
  for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    if (o === Object.prototype || o === Function.prototype) return false;
    if (Object.hasOwn(o, key)) return true;
  }
  return true;
}

function refuse(key: string): TypeError {
  return new TypeError(`'${key}' of a remote object cannot be used from another thread`);
}

/**
 * Performs `op` on the lent object `id`. Returns its result (maybe a promise), for the caller to
 * send back. `exit` handles RefOp.Exit (only a LoopThread enters resources).
 */
export function performRefOp(
  lender: Lender,
  id: number,
  op: RefOp,
  key: string | null,
  n: number,
  args: unknown[],
  exit?: (value: object, error: unknown) => Promise<unknown>,
): unknown {
  const target = lender.get(id) as Record<string, unknown>;
  switch (op) {
    case RefOp.Call: {
      if (key === null) {
        if (typeof target !== 'function') throw new TypeError('the remote object is not a function');
        return (target as unknown as Fn)(...args);
      }
      const method = reachable(target, key) ? target[key] : undefined;
      if (typeof method !== 'function') throw new TypeError(`the remote object has no method '${key}'`);
      return (method as Fn).apply(target, args);
    }
    case RefOp.Get:
      return reachable(target, key as string) ? target[key as string] : undefined;
    case RefOp.Set:
      if (!reachable(target, key as string)) throw refuse(key as string);
      target[key as string] = args[0];
      return undefined;
    case RefOp.New:
      return Reflect.construct(target as unknown as Fn, args) as unknown;
    case RefOp.Iterate:
      return startIteration(lender, target, n);
    case RefOp.Next:
      return pullBatch(lender, target as unknown as AnyIterator, n);
    case RefOp.Return:
      lender.iterating.delete(target as unknown as AnyIterator);
      return endIteration(target as unknown as AnyIterator);
    case RefOp.Dispose:
      return dispose(target);
    case RefOp.Exit:
      if (exit === undefined) throw new TypeError('this object was not entered here');
      return exit(target, args[0]);
  }
}

/**
 * The most items one batch takes, whatever the caller asks: an endless synchronous iterator would
 * otherwise be pulled without end before anything is answered (a caller's batchSize, or a peer's
 * bytes, can ask for 2**31). Items past it come in the next batches.
 */
const MAX_BATCH_ITEMS = 65_536;

async function startIteration(lender: Lender, target: object, n: number): Promise<[AnyIterator, ...Batch]> {
  const t = target as { [Symbol.asyncIterator]?: () => AnyIterator; [Symbol.iterator]?: () => AnyIterator };
  const make = t[Symbol.asyncIterator] ?? t[Symbol.iterator];
  if (typeof make !== 'function') throw new TypeError(`${describeType(target)} is not iterable`);
  const it = make.call(target);
  lender.iterating.add(it);
  return [byRef(it), ...(await pullBatch(lender, it, n))];
}

/**
 * Up to `max` items: the first is awaited however long it takes; after it, items are taken while
 * they are ready before the event loop turns, so a slow item never holds back those before it.
 * A pull still pending when the batch ends is kept for the next batch (never pulled twice).
 * Written with callbacks rather than `await` in a loop: per item, that is one reaction instead of
 * three, which is most of the cost of a batch.
 */
function pullBatch(lender: Lender, it: AnyIterator, asked: number): Promise<Batch> {
  const max = Math.min(asked, MAX_BATCH_ITEMS);
  return new Promise((resolve) => {
    const items: unknown[] = [];
    let finished = false;
    let armed = false;
    let pending: Promise<IteratorResult<unknown>> | undefined;
    const finish = (end: 0 | 1 | 2, error?: unknown): void => {
      finished = true;
      if (end !== 0) lender.iterating.delete(it);
      resolve([items, end, error]);
    };
    const onResult = (r: IteratorResult<unknown>): void => {
      if (finished) return; // parked for the next batch, which takes it from pendingPulls
      pending = undefined;
      if (r.done === true) {
        finish(1);
        return;
      }
      items.push(r.value);
      step(undefined);
    };
    const onError = (error: unknown): void => {
      if (finished) return;
      pending = undefined;
      finish(2, error);
    };
    const onTurn = (): void => {
      if (finished || pending === undefined || items.length === 0) return;
      pendingPulls.set(it, pending);
      finish(0);
    };
    const step = (first: Promise<IteratorResult<unknown>> | undefined): void => {
      try {
        for (;;) {
          if (items.length >= max) {
            finish(0);
            return;
          }
          const r: IteratorResult<unknown> | PromiseLike<IteratorResult<unknown>> = first ?? it.next();
          first = undefined;
          if (typeof (r as { then?: unknown }).then === 'function') {
            if (items.length > 0 && !armed) {
              armed = true;
              setImmediate(onTurn);
            }
            pending = Promise.resolve(r);
            pending.then(onResult, onError);
            return;
          }
          const result = r as IteratorResult<unknown>;
          if (result.done === true) {
            finish(1);
            return;
          }
          items.push(result.value);
        }
      } catch (error) {
        finish(2, error);
      }
    };
    const parked = pendingPulls.get(it);
    pendingPulls.delete(it);
    step(parked);
  });
}

/** Ends an iteration early: its pending pull settles first, then return() runs (the generator's finally). */
export async function endIteration(it: AnyIterator): Promise<void> {
  const pending = pendingPulls.get(it);
  pendingPulls.delete(it);
  if (pending !== undefined) await pending.catch(() => undefined);
  await it.return?.();
}

async function dispose(target: object): Promise<void> {
  const t = target as { [Symbol.asyncDispose]?: () => unknown; [Symbol.dispose]?: () => unknown };
  const method = t[Symbol.asyncDispose] ?? t[Symbol.dispose];
  if (typeof method === 'function') await method.call(target);
}
