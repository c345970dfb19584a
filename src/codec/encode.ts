import { MessagePort } from 'node:worker_threads';
import { DataCloneError } from '../errors.js';
import { inspect } from 'node:util';
import { types } from 'node:util';
import { isForcedRef, isForcedValue, isRemoteProxy } from './marks.js';
import { BUFFER_KIND, DATAVIEW_KIND, Tag, viewKinds } from './tags.js';
import type { Writer } from './writer.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded by the first error, not at start-up (see ARCHITECTURE.md)
const errorSerde = () => require('./error-serde.js') as typeof import('./error-serde.js');

/**
 * How a connection lends what is not plain data. Without one, such values are refused.
 */
export interface Lending {
  /**
   * The descriptor (plain data) that stands for `value` on the other side, or a sentence saying
   * why it cannot be lent (for example a proxy that belongs to another connection).
   */
  lend(value: object): { descriptor: unknown } | { refused: string };
}

/**
 * Encodes what structuredClone copies, as it copies it: primitives but symbols, plain objects and
 * arrays (holes and huge lengths included), Map, Set, Date, RegExp, ArrayBuffer (resizable too) and
 * its views (their byteOffset and shared buffer kept), boxed primitives, errors (with all their
 * fields), URL and URLSearchParams, and class instances as their own enumerable fields. Shared and
 * cyclic references keep their shape.
 *
 * With `lending`, what is not data is lent instead: functions, objects with methods of their own,
 * and class instances that have methods, or every class instance if `lendInstances` (a result: a
 * returned FileHandle or client stays usable). Without it, what cannot be copied (functions,
 * symbols, promises, iterators, weak collections) is refused with a DataCloneError whose path says
 * where it sits.
 */
export function encodeValue(w: Writer, value: unknown, lending?: Lending, lendInstances = false): void {
  new Encoding(w, lending, lendInstances).put(value);
}

/** Where a refused value sits, built while the error unwinds out of nested containers. */
class Refusal extends Error {
  constructor(
    readonly what: string,
    readonly path: string,
  ) {
    super(what);
  }
}

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  const t = typeof value;
  if (t === 'function') {
    const name = (value as { name?: unknown }).name;
    return typeof name === 'string' && name !== '' ? `a function (${name})` : 'a function';
  }
  if (t === 'symbol') return `a symbol (${(value as symbol).toString()})`;
  if (t !== 'object') return t;
  const proto: unknown = Object.getPrototypeOf(value);
  const ctor = (proto as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof ctor === 'string' && ctor !== '' ? `an instance of ${ctor}` : 'an object with an unusual prototype';
}

/** Runs `encode`, turning a refusal into a DataCloneError that names `root` (for example "argument 2"). */
export function encodeOrExplain(root: string, direction: string, encode: () => void): void {
  try {
    encode();
  } catch (error) {
    throw explainRefusal(error, root, direction);
  }
}

/** What encodeOrExplain throws for `error`: a refusal as a DataCloneError naming `root`, anything else as it is. */
export function explainRefusal(error: unknown, root: string, direction: string): unknown {
  if (!(error instanceof Refusal)) return error;
  const where = error.path === '' ? root : `${root} at ${error.path}`;
  return new DataCloneError(
    `${where} is ${error.what}, which cannot be copied ${direction}. ` +
      'What structuredClone copies crosses by copy (primitives but symbols, objects and class instances ' +
      'as their own fields, arrays, Map, Set, Date, RegExp, ArrayBuffer and views, errors, URL); ' +
      'functions and objects with methods cross by reference only in calls to a LoopThread or Portal.',
    where,
  );
}

/** Whether an own property of `o` (by name or by symbol) holds a function. */
function hasMethods(o: object): boolean {
  const record = o as Record<string | symbol, unknown>;
  for (const key in o) {
    if (Object.prototype.hasOwnProperty.call(o, key) && typeof record[key] === 'function') return true;
  }
  for (const key of Object.getOwnPropertySymbols(o)) if (typeof record[key] === 'function') return true;
  return false;
}

/** Whether a prototype chain (up to Object.prototype) has methods: a class to talk to, not data. */
const chainHasMethods = new WeakMap<object, boolean>();

function classHasMethods(proto: object | null): boolean {
  if (proto === null || proto === Object.prototype) return false;
  let has = chainHasMethods.get(proto);
  if (has === undefined) {
    has = classHasMethods(Object.getPrototypeOf(proto) as object | null);
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (has) break;
      if (key === 'constructor') continue;
      const d = Object.getOwnPropertyDescriptor(proto, key);
      has = d !== undefined && typeof d.value === 'function';
    }
    chainHasMethods.set(proto, has);
  }
  return has;
}

/** Whether `o` is a class instance with methods (own or from its class): an object to talk to, not data. */
export function isInstanceWithMethods(o: object): boolean {
  const proto = Object.getPrototypeOf(o) as object | null;
  return proto !== null && proto !== Object.prototype && (hasMethods(o) || classHasMethods(proto));
}

/** Objects of the engine's whose state is internal: structuredClone refuses them, so does the codec. */
function isInternal(o: object): boolean {
  return (
    types.isPromise(o) ||
    types.isWeakMap(o) ||
    types.isWeakSet(o) ||
    types.isGeneratorObject(o) ||
    types.isMapIterator(o) ||
    types.isSetIterator(o) ||
    types.isExternal(o) ||
    o instanceof WeakRef ||
    o instanceof FinalizationRegistry ||
    Object.prototype.toString.call(o).endsWith(' Iterator]')
  );
}

/** Whether an ArrayBuffer was transferred away (its bytes are gone). */
function isDetached(b: ArrayBuffer): boolean {
  const detached = (b as { detached?: boolean }).detached;
  if (detached !== undefined) return detached;
  if (b.byteLength !== 0) return false;
  try {
    new Uint8Array(b);
    return false;
  } catch {
    return true;
  }
}

/** An error's name and message are strings but for odd errors; those are made strings. */
const asText = (v: unknown): string => (typeof v === 'string' ? v : String(v));

/**
 * Objects numbered before a Map is made to find them: a call's arguments are one array, often
 * of primitives, and a Map per call cost more than looking through a few.
 */
const FEW_REFS = 8;

class Encoding {
  /** Object to number, made once more than FEW_REFS objects are numbered. */
  private refs: Map<object, number> | undefined;
  private nextRef = 0;
  /** The numbered objects, by number: so that a failed part can be undone. */
  private readonly order: object[] = [];

  constructor(
    private readonly w: Writer,
    private readonly lending: Lending | undefined,
    private readonly lendInstances: boolean,
  ) {}

  put(v: unknown): void {
    const w = this.w;
    switch (typeof v) {
      case 'string':
        w.u8(Tag.String);
        w.string(v);
        return;
      case 'number':
        if ((v | 0) === v && !Object.is(v, -0)) {
          w.u8(Tag.Int32);
          w.i32(v);
        } else {
          w.u8(Tag.Float64);
          w.f64(v);
        }
        return;
      case 'boolean':
        w.u8(v ? Tag.True : Tag.False);
        return;
      case 'undefined':
        w.u8(Tag.Undefined);
        return;
      case 'bigint':
        w.u8(Tag.BigInt);
        w.string(v.toString(16));
        return;
      case 'object':
        if (v === null) {
          w.u8(Tag.Null);
          return;
        }
        this.putObject(v);
        return;
      case 'function':
        if (this.lending === undefined) throw new Refusal(describeType(v), '');
        this.putObject(v);
        return;
      default:
        throw new Refusal(describeType(v), '');
    }
  }

  private putRef(o: object): void {
    const lent = (this.lending as Lending).lend(o);
    if ('refused' in lent) throw new Refusal(lent.refused, '');
    this.w.u8(Tag.Ref);
    this.put(lent.descriptor);
  }

  private putObject(o: object): void {
    const w = this.w;
    const seen = this.refs === undefined ? this.order.indexOf(o) : (this.refs.get(o) ?? -1);
    if (seen >= 0) {
      w.u8(Tag.BackRef);
      w.u32(seen);
      return;
    }
    this.number(o);
    if (this.lending !== undefined && (typeof o === 'function' || isForcedRef(o) || isRemoteProxy(o))) {
      this.putRef(o);
      return;
    }
    let proto: unknown;
    try {
      proto = Object.getPrototypeOf(o);
    } catch {
      throw new Refusal(types.isProxy(o) ? 'a revoked Proxy' : 'an object whose prototype cannot be read', '');
    }
    if (o instanceof MessagePort || o instanceof SharedArrayBuffer) {
      if (w.beside === undefined) {
        throw new Refusal(
          `${describeType(o)} (it must be posted, so it can go to run() or import(), not to a blocking call)`,
          '',
        );
      }
      w.u8(Tag.Beside);
      w.u32(w.beside.push(o) - 1);
      return;
    }
    if (Array.isArray(o)) {
      this.putArray(o as unknown[]);
      return;
    }
    if (proto === Object.prototype || proto === null || (isForcedValue(o) && !(o instanceof Error))) {
      // An object literal with methods is an object to talk to, not data: it is lent whole.
      if (this.lending !== undefined && !isForcedValue(o) && hasMethods(o)) {
        this.putRef(o);
        return;
      }
      this.putFields(o);
      return;
    }
    if (o instanceof Map) {
      w.u8(Tag.Map);
      w.u32(o.size);
      for (const [k, v] of o as Map<unknown, unknown>) {
        this.child(k, At.Fixed, '<Map key>');
        this.child(v, At.MapValue, k);
      }
      return;
    }
    if (o instanceof Set) {
      w.u8(Tag.Set);
      w.u32(o.size);
      for (const v of o as Set<unknown>) this.child(v, At.Fixed, '<Set member>');
      return;
    }
    if (o instanceof Date) {
      w.u8(Tag.Date);
      w.f64(o.getTime());
      return;
    }
    if (o instanceof RegExp) {
      w.u8(Tag.RegExp);
      w.string(o.source);
      w.string(o.flags);
      return;
    }
    if (o instanceof ArrayBuffer) {
      if (isDetached(o)) throw new Refusal('a detached ArrayBuffer (its bytes were transferred away)', '');
      if (o.resizable) {
        w.u8(Tag.ResizableArrayBuffer);
        w.f64(o.maxByteLength);
      } else {
        w.u8(Tag.ArrayBuffer);
      }
      w.bytes(new Uint8Array(o));
      return;
    }
    if (ArrayBuffer.isView(o)) {
      this.putView(o);
      return;
    }
    if (o instanceof URL) {
      w.u8(Tag.URL);
      w.string(o.href);
      return;
    }
    if (o instanceof URLSearchParams) {
      w.u8(Tag.URLSearchParams);
      w.string(o.toString());
      return;
    }
    if (o instanceof Blob) {
      if (w.beside === undefined) {
        throw new Refusal(
          `${describeType(o)} (its bytes can only be read asynchronously, so it can go to run() or import(), not to a blocking call, a channel or a pool; pass the bytes of await blob.arrayBuffer())`,
          '',
        );
      }
      w.u8(Tag.Beside);
      w.u32(w.beside.push(o) - 1);
      return;
    }
    if (o instanceof Error) {
      this.putError(o);
      return;
    }
    if (o instanceof Number || o instanceof String || o instanceof Boolean || o instanceof BigInt) {
      w.u8(Tag.Boxed);
      this.put(o.valueOf());
      return;
    }
    // A class instance, or an object of the engine's. Lent when it is something to talk to (a result,
    // or an argument with methods); copied as its own fields (prototype dropped) when it is data.
    if (
      this.lending !== undefined &&
      (this.lendInstances || hasMethods(o) || classHasMethods(proto as object | null))
    ) {
      this.putRef(o);
      return;
    }
    if (isInternal(o)) throw new Refusal(describeType(o), '');
    this.putFields(o);
  }

  /** An object's own enumerable fields, as a plain object. */
  private putFields(o: object): void {
    const w = this.w;
    w.u8(Tag.Object);
    const keys = Object.keys(o);
    w.u32(keys.length);
    for (const key of keys) {
      w.string(key);
      this.child((o as Record<string, unknown>)[key], At.Field, key);
    }
  }

  /**
   * A dense array element by element; at its first hole it starts over as a sparse array, which
   * carries only the entries it has (so a length of 2 ** 32 - 1 costs nothing). Named properties
   * are kept on a sparse array; on a dense one they are not looked for (listing an array's keys
   * costs a string per element, several times the copy itself).
   */
  private putArray(a: unknown[]): void {
    const w = this.w;
    const start = w.pos;
    const refCount = this.nextRef;
    const n = a.length;
    w.u8(Tag.Array);
    w.u32(n);
    for (let i = 0; i < n; i++) {
      const v = a[i];
      if (v === undefined && !(i in a)) {
        this.undo(start, refCount);
        this.putSparse(a);
        return;
      }
      this.child(v, At.Index, i);
    }
  }

  private putSparse(a: unknown[]): void {
    const w = this.w;
    w.u8(Tag.SparseArray);
    w.u32(a.length);
    const keys = Object.keys(a);
    w.u32(keys.length);
    for (const key of keys) {
      w.string(key);
      this.child((a as unknown as Record<string, unknown>)[key], At.SparseKey, key);
    }
  }

  /**
   * A view: a Buffer as its own bytes (a Buffer usually sits in Node's shared 8 KiB pool), any
   * other view as its ArrayBuffer (one copy for views that share it), offset and length.
   */
  private putView(o: ArrayBufferView): void {
    const w = this.w;
    const proto: unknown = Object.getPrototypeOf(o);
    const kind = viewKinds.findIndex((k) => proto === k.prototype);
    if (o.buffer instanceof SharedArrayBuffer) {
      throw new Refusal(
        `${describeType(o)} over a SharedArrayBuffer (to share memory, pass the SharedArrayBuffer itself to run() or import())`,
        '',
      );
    }
    if (kind < 0) throw new Refusal(describeType(o), '');
    if (isDetached(o.buffer)) throw new Refusal(`${describeType(o)} over a detached ArrayBuffer`, '');
    w.u8(Tag.View);
    w.u8(kind);
    if (kind === BUFFER_KIND) {
      w.bytes(new Uint8Array(o.buffer, o.byteOffset, o.byteLength));
      return;
    }
    this.child(o.buffer, At.Fixed, '.buffer');
    w.f64(o.byteOffset);
    w.f64(kind === DATAVIEW_KIND ? o.byteLength : (o as Uint8Array).length);
  }

  /** Gives `o` the next number, so that a later reference to it is written as a BackRef. */
  private number(o: object): void {
    const n = this.nextRef++;
    this.order.push(o);
    if (this.refs !== undefined) this.refs.set(o, n);
    else if (n >= FEW_REFS) this.refs = new Map(this.order.map((x, i) => [x, i]));
  }

  /** Forgets what was written after `pos` and the objects numbered since `refCount`. */
  private undo(pos: number, refCount: number): void {
    this.w.pos = pos;
    for (const o of this.order.splice(refCount)) this.refs?.delete(o);
    this.nextRef = refCount;
  }

  /**
   * An error: class, name and message first (the other side makes the error from them before
   * reading the rest, so references back to it resolve), then stack, own fields, cause and
   * AggregateError.errors. A field that cannot be copied travels as its util.inspect text, so an
   * error always crosses.
   */
  private putError(e: Error): void {
    const w = this.w;
    const { aggregated, nearestConstructor, ownFields } = errorSerde();
    w.u8(Tag.Error);
    w.string(nearestConstructor(e));
    w.string(asText(e.name));
    w.string(asText(e.message));
    this.lenient(e.stack);
    const fields = ownFields(e);
    const hasCause = Object.prototype.hasOwnProperty.call(e, 'cause');
    if (hasCause) fields.push(['cause', e.cause]);
    const errors = aggregated(e);
    if (errors !== undefined) fields.push(['errors', errors]);
    w.u32(fields.length);
    for (const [key, value] of fields) {
      w.string(key);
      this.lenient(value);
    }
  }

  /** Puts `v`, or if it cannot be copied, its inspect text in its place (undoing what was written). */
  private lenient(v: unknown): void {
    const pos = this.w.pos;
    const refCount = this.nextRef;
    try {
      this.put(v);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      this.undo(pos, refCount);
      this.put(inspect(v, { depth: 2 }));
    }
  }

  /** Puts a member of a container; where it sits is made into words only if it is refused. */
  private child(v: unknown, at: At, key: unknown): void {
    try {
      this.put(v);
    } catch (error) {
      if (error instanceof Refusal) throw new Refusal(error.what, segment(at, key) + error.path);
      throw error;
    }
  }
}

/** How a member sits in its container, for the path of a refused value. */
const enum At {
  Index,
  Field,
  /** A sparse array's key: an index or a named property. */
  SparseKey,
  /** The value of the Map key given. */
  MapValue,
  /** The key is the segment itself. */
  Fixed,
}

/**
 * The path segment of a member. Made only when a value is refused: building it for every member
 * cost a string per array element or field, more than copying a number.
 */
function segment(at: At, key: unknown): string {
  switch (at) {
    case At.Index:
      return `[${String(key)}]`;
    case At.Field:
      return `.${String(key)}`;
    case At.SparseKey:
      return /^\d+$/.test(String(key)) ? `[${String(key)}]` : `.${String(key)}`;
    case At.MapValue:
      return `<Map value of ${typeof key === 'string' ? JSON.stringify(key) : describeType(key)}>`;
    case At.Fixed:
      return String(key);
  }
}
