/**
 * What a module looks like from another thread: which exports are functions (called remotely),
 * which are data (copied once, when the module is imported), and which plain objects nest more of them.
 */
import { encodeValue, describeType, isInstanceWithMethods } from '../codec/encode.js';
import { decodeValue } from '../codec/decode.js';
import { Reader, Writer } from '../codec/writer.js';

export type ExportShape =
  | readonly ['function']
  | readonly ['value', unknown]
  | readonly ['object', Record<string, ExportShape>]
  | readonly ['uncopyable', string];

const MAX_DEPTH = 4;

function isPlainContainer(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null || Object.prototype.toString.call(v) === '[object Module]';
}

/**
 * The copy the importing thread gets (class instances made plain, as the call's reply would lend
 * them), or `uncopyable` if it cannot be copied.
 */
function copied(v: unknown): { value: unknown } | undefined {
  const w = new Writer(Buffer.allocUnsafe(1024));
  try {
    encodeValue(w, v);
  } catch {
    return undefined;
  }
  return { value: decodeValue(new Reader(w.buf, 0, w.pos)) };
}

function shapeOf(v: unknown, depth: number): ExportShape {
  if (typeof v === 'function') return ['function'];
  const copy = copied(v);
  if (v !== null && typeof v === 'object' && depth < MAX_DEPTH && isPlainContainer(v) && copy === undefined) {
    return ['object', describeExports(v, depth + 1)];
  }
  // A class instance with methods would be lent if a call returned it; an export is copied once, so
  // its fields alone would pass for the object: it is refused instead.
  const object = v !== null && typeof v === 'object';
  if (object && Object.prototype.toString.call(v) === '[object Object]' && isInstanceWithMethods(v)) {
    return ['uncopyable', describeType(v)];
  }
  return copy === undefined ? ['uncopyable', describeType(v)] : ['value', copy.value];
}

export function describeExports(ns: object, depth = 0): Record<string, ExportShape> {
  const shape: Record<string, ExportShape> = {};
  for (const key of Object.keys(ns)) {
    let value: unknown;
    try {
      value = (ns as Record<string, unknown>)[key];
    } catch (error) {
      value = error;
    }
    shape[key] = shapeOf(value, depth);
  }
  return shape;
}
