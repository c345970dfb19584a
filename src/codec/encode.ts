import { MessagePort } from 'node:worker_threads';
import { DataCloneError } from '../errors.js';
import { inspect } from 'node:util';
import { aggregated, nearestConstructor, ownFields } from './error-serde.js';
import { types } from 'node:util';
import { isForcedRef, isForcedValue } from './marks.js';
import { Tag, viewKinds } from './tags.js';
import type { Writer } from './writer.js';

/**
 * How a connection lends what is not plain data. Without one, such values are refused.
 */
export interface Lending {
  /** Whether `value` goes by reference although it looks copyable (a proxy of a remote object). */
  claims(value: object): boolean;
  /**
   * The descriptor (plain data) that stands for `value` on the other side, or a sentence saying
   * why it cannot be lent (for example a proxy that belongs to another connection).
   */
  lend(value: object): { descriptor: unknown } | { refused: string };
}

/**
 * Encodes structured-cloneable data: primitives but symbols, plain objects and arrays, Map, Set,
 * Date, RegExp, ArrayBuffer and its views, boxed primitives and errors (with all their fields).
 * Shared and cyclic references keep their shape. Anything else (functions, class instances,
 * symbols, promises) is refused with a DataCloneError whose path says where it sits.
 */
export function encodeValue(w: Writer, value: unknown, lending?: Lending): void {
  new Encoding(w, lending).put(value);
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
    if (!(error instanceof Refusal)) throw error;
    const where = error.path === '' ? root : `${root} at ${error.path}`;
    throw new DataCloneError(
      `${where} is ${error.what}, which cannot be copied ${direction}. ` +
        'Only structured-cloneable data (primitives, plain objects and arrays, Map, Set, Date, RegExp, ' +
        'ArrayBuffer and typed arrays, errors) crosses by copy.',
      where,
    );
  }
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

/** An error's name and message are strings but for odd errors; those are made strings. */
const asText = (v: unknown): string => (typeof v === 'string' ? v : String(v));

class Encoding {
  private refs: Map<object, number> | undefined;
  private nextRef = 0;
  /** The objects of `refs` in the order they were numbered, so that a failed part can be undone. */
  private readonly order: object[] = [];

  constructor(
    private readonly w: Writer,
    private readonly lending: Lending | undefined,
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
    const refs = (this.refs ??= new Map<object, number>());
    const seen = refs.get(o);
    if (seen !== undefined) {
      w.u8(Tag.BackRef);
      w.u32(seen);
      return;
    }
    refs.set(o, this.nextRef++);
    this.order.push(o);
    if (this.lending !== undefined && (typeof o === 'function' || isForcedRef(o) || this.lending.claims(o))) {
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
      w.u8(Tag.Array);
      const n = o.length;
      w.u32(n);
      for (let i = 0; i < n; i++) this.child(o[i], `[${i}]`);
      return;
    }
    if (proto === Object.prototype || proto === null || (isForcedValue(o) && !(o instanceof Error))) {
      // An object literal with methods is an object to talk to, not data: it is lent whole.
      if (this.lending !== undefined && !isForcedValue(o) && hasMethods(o)) {
        this.putRef(o);
        return;
      }
      w.u8(Tag.Object);
      const keys = Object.keys(o);
      w.u32(keys.length);
      for (const key of keys) {
        w.string(key);
        this.child((o as Record<string, unknown>)[key], `.${key}`);
      }
      return;
    }
    if (o instanceof Map) {
      w.u8(Tag.Map);
      w.u32(o.size);
      for (const [k, v] of o as Map<unknown, unknown>) {
        this.child(k, '<Map key>');
        this.child(v, `<Map value of ${typeof k === 'string' ? JSON.stringify(k) : describeType(k)}>`);
      }
      return;
    }
    if (o instanceof Set) {
      w.u8(Tag.Set);
      w.u32(o.size);
      for (const v of o as Set<unknown>) this.child(v, '<Set member>');
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
      w.u8(Tag.ArrayBuffer);
      w.bytes(new Uint8Array(o));
      return;
    }
    if (ArrayBuffer.isView(o)) {
      const proto: unknown = Object.getPrototypeOf(o);
      const kind = viewKinds.findIndex((k) => proto === k.prototype);
      if (o.buffer instanceof SharedArrayBuffer) {
        throw new Refusal(
          `${describeType(o)} over a SharedArrayBuffer (to share memory, pass the SharedArrayBuffer itself to run() or import())`,
          '',
        );
      }
      if (kind < 0) throw new Refusal(describeType(o), '');
      w.u8(Tag.View);
      w.u8(kind);
      w.bytes(new Uint8Array(o.buffer, o.byteOffset, o.byteLength));
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
    if (this.lending !== undefined) {
      this.putRef(o);
      return;
    }
    throw new Refusal(describeType(o), '');
  }

  /**
   * An error: class, name and message first (the other side makes the error from them before
   * reading the rest, so references back to it resolve), then stack, own fields, cause and
   * AggregateError.errors. A field that cannot be copied travels as its util.inspect text, so an
   * error always crosses.
   */
  private putError(e: Error): void {
    const w = this.w;
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
      this.w.pos = pos;
      for (const o of this.order.splice(refCount)) this.refs?.delete(o);
      this.nextRef = refCount;
      this.put(inspect(v, { depth: 2 }));
    }
  }

  private child(v: unknown, segment: string): void {
    try {
      this.put(v);
    } catch (error) {
      if (error instanceof Refusal) throw new Refusal(error.what, segment + error.path);
      throw error;
    }
  }
}
