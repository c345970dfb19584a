/**
 * What a call runs, whoever carries it: an export of a module (found by a property path), an
 * inline function sent as source text, an operation on an object the receiver lent, or (a
 * LoopThread's enterSync) a function whose result is entered as a resource.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';

export type Fn = (...args: unknown[]) => unknown;

/** The first element of a Target: which kind of target it is. */
export const enum TargetKind {
  Export = 0,
  Inline = 1,
  Lent = 2,
  Enter = 3,
}

/** The operations a proxy asks of a lent object; they travel in a Lent target. */
export const enum RefOp {
  /** Call the object itself (`key` null) or its method `key`. */
  Call = 0,
  Get = 1,
  Set = 2,
  New = 3,
  /** Start iterating: returns the iterator (lent) and its first batch. */
  Iterate = 4,
  /** The next batch of an iterator: up to `n` items. */
  Next = 5,
  /** End an iteration early: the iterator's return(), awaited. */
  Return = 6,
  /** Dispose of the object (Symbol.asyncDispose or Symbol.dispose), awaited. */
  Dispose = 7,
  /** Exit an entered resource (see LoopThread.enterSync), awaited; its argument is the body's error, if any. */
  Exit = 8,
}

/**
 * A call's target on a portal connection, a tuple (cheap to encode). An export names a module the
 * host loaded by id; an inline source is sent once per channel, then named by its id alone; an
 * Enter target wraps the function whose result is entered (`exit` names its exit method, null
 * for Symbol.asyncDispose).
 */
export type Target =
  | readonly [kind: TargetKind.Export, moduleId: number, path: readonly string[]]
  | readonly [kind: TargetKind.Inline, sourceId: number, source: string | undefined]
  | readonly [kind: TargetKind.Lent, refId: number, op: RefOp, key: string | null, n: number]
  | readonly [kind: TargetKind.Enter, inner: Target, exit: string | null];

export const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null &&
  (typeof v === 'object' || typeof v === 'function') &&
  typeof (v as { then?: unknown }).then === 'function';

/**
 * The source text `fn` travels as. Native and bound functions have none and are refused;
 * `importer` names the call that gives functions which can be called remotely instead.
 */
export function inlineSource(fn: unknown, importer: string): string {
  if (typeof fn !== 'function') throw new TypeError(`expected a function, got ${fn === null ? 'null' : typeof fn}`);
  const source = Function.prototype.toString.call(fn);
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    throw new TypeError(
      `a native or bound function cannot be sent as source; pass an inline function, or a function from ${importer}`,
    );
  }
  return source;
}

/** An inline function's source text and the id it travels by. */
export interface InlineSource {
  readonly id: number;
  readonly source: string;
}

/** Ids for inline sources: the same text gets the same id, so it is sent and compiled once. */
export class SourceIds {
  readonly #ids = new Map<string, number>();
  /** Functions seen before: a function called again is not turned into text and checked again. */
  readonly #byFunction = new WeakMap<object, InlineSource>();

  /** The source and id of `fn`, an inline function (see inlineSource for what it refuses). */
  inline(fn: unknown, importer: string): InlineSource {
    const known = typeof fn === 'function' ? this.#byFunction.get(fn) : undefined;
    if (known !== undefined) return known;
    const source = inlineSource(fn, importer);
    const entry: InlineSource = { id: this.idOf(source), source };
    this.#byFunction.set(fn as object, entry);
    return entry;
  }

  idOf(source: string): number {
    let id = this.#ids.get(source);
    if (id === undefined) {
      id = this.#ids.size;
      this.#ids.set(source, id);
    }
    return id;
  }
}

/**
 * The value at `path` in a module namespace or api object (undefined where the path breaks off),
 * and its `this`. Each step is an own property: a path never reaches `__proto__`, `constructor` or
 * what every object inherits (a peer names the path, and a portal serves only its api).
 */
export function exportAt(ns: object, path: readonly string[]): [value: unknown, self: unknown] {
  let self: unknown;
  let value: unknown = ns;
  for (const key of path) {
    self = value;
    const container = (typeof value === 'object' && value !== null) || typeof value === 'function';
    value = container && Object.hasOwn(value as object, key) ? (value as Record<string, unknown>)[key] : undefined;
  }
  return [value, self];
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isKey = (v: unknown): v is string | null => v === null || typeof v === 'string';

/**
 * `t` as a Target, or undefined if it is not one (a target decoded from a peer's bytes is checked
 * before anything trusts its shape). An Enter target wraps one target that is not an Enter.
 */
export function asTarget(t: unknown, nested = false): Target | undefined {
  return isTarget(t, nested) ? (t as Target) : undefined;
}

function isTarget(t: unknown, nested: boolean): boolean {
  if (!Array.isArray(t)) return false;
  const a = t as unknown[];
  switch (a[0]) {
    case TargetKind.Export:
      return a.length === 3 && isId(a[1]) && Array.isArray(a[2]) && a[2].every((k) => typeof k === 'string');
    case TargetKind.Inline:
      return a.length === 3 && isId(a[1]) && (a[2] === undefined || typeof a[2] === 'string');
    case TargetKind.Lent:
      return a.length === 5 && isId(a[1]) && isId(a[2]) && a[2] <= (RefOp.Exit as number) && isKey(a[3]) && isId(a[4]);
    case TargetKind.Enter:
      return !nested && a.length === 3 && isTarget(a[1], true) && isKey(a[2]);
    default:
      return false;
  }
}

/** Relative paths resolve against the working directory; bare names and URLs go as they are. */
export function normalizeSpecifier(specifier: string | URL): string {
  if (specifier instanceof URL) return specifier.href;
  if (typeof specifier !== 'string') throw new TypeError('the module specifier must be a string or a URL');
  if (specifier.startsWith('./') || specifier.startsWith('../')) return fileUrl(resolvePath(specifier));
  if (isAbsolute(specifier)) return fileUrl(specifier);
  return specifier;
}

/** node:url is loaded by the first path to convert, not when a thread starts (see ARCHITECTURE.md). */
function fileUrl(path: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('node:url') as typeof import('node:url')).pathToFileURL(path).href;
}
