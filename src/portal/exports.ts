/**
 * What a module looks like from another thread: which exports are functions (called remotely),
 * which are data (copied once, when the module is imported), and which plain objects nest more of them.
 */
import { encodeValue, describeType } from '../codec/encode.js';
import { Writer } from '../codec/writer.js';

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

function copyable(v: unknown): boolean {
  try {
    encodeValue(new Writer(Buffer.allocUnsafe(1024)), v);
    return true;
  } catch {
    return false;
  }
}

function shapeOf(v: unknown, depth: number): ExportShape {
  if (typeof v === 'function') return ['function'];
  if (v !== null && typeof v === 'object' && depth < MAX_DEPTH && isPlainContainer(v) && !copyable(v)) {
    return ['object', describeExports(v, depth + 1)];
  }
  return copyable(v) ? ['value', v] : ['uncopyable', describeType(v)];
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
