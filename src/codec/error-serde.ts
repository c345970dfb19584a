import { inspect } from 'node:util';
import * as ours from '../errors.js';
import { encodeValue } from './encode.js';
import { Writer } from './writer.js';

/** An error as plain data: what crosses the thread boundary in place of the Error object. */
export interface ErrorDescriptor {
  /** The nearest constructor the other side can rebuild: a built-in or one of loopthread's errors. */
  ctor: string;
  name: string;
  message: string;
  stack: string | undefined;
  props: Record<string, unknown>;
  hasCause: boolean;
  cause: unknown;
  errors: unknown[] | undefined;
}

type ErrorClass = abstract new (...args: never[]) => Error;

const builtins: Record<string, ErrorClass> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  AggregateError,
  LoopThreadError: ours.LoopThreadError,
  ClosedError: ours.ClosedError,
  WorkerCrashedError: ours.WorkerCrashedError,
  DeadlockError: ours.DeadlockError,
  NeverSettledError: ours.NeverSettledError,
  CancelledError: ours.CancelledError,
  TimeoutError: ours.TimeoutError,
  DataCloneError: ours.DataCloneError,
};

const skipped = new Set(['stack', 'message', 'cause', 'errors']);

function copyable(value: unknown): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol'))
    return true;
  try {
    encodeValue(new Writer(Buffer.allocUnsafe(256)), value);
    return true;
  } catch {
    return false;
  }
}

/** Errors being described right now: an error whose cause chain comes back to itself is cut there. */
const describing = new Set<Error>();

/** Keeps a value when it can be copied, else its util.inspect text, so an error never fails to cross. */
function keep(value: unknown): unknown {
  if (value instanceof Error && describing.has(value)) return '[Circular error]';
  return copyable(value) ? value : inspect(value, { depth: 2 });
}

function nearestConstructor(error: Error): string {
  if (typeof DOMException !== 'undefined' && error instanceof DOMException) return 'DOMException';
  for (let p: unknown = Object.getPrototypeOf(error); p !== null && p !== undefined; p = Object.getPrototypeOf(p)) {
    const ctor = (p as { constructor?: { name?: string } }).constructor;
    const name = ctor?.name;
    if (name !== undefined && builtins[name] === ctor) return name;
  }
  return 'Error';
}

export function describeError(error: Error): ErrorDescriptor {
  describing.add(error);
  try {
    return describeOwnFields(error);
  } finally {
    describing.delete(error);
  }
}

function describeOwnFields(error: Error): ErrorDescriptor {
  const props: Record<string, unknown> = {};
  for (const key of Object.getOwnPropertyNames(error)) {
    if (skipped.has(key)) continue;
    const d = Object.getOwnPropertyDescriptor(error, key);
    if (d === undefined || !('value' in d)) continue;
    props[key] = keep(d.value);
  }
  const hasCause = Object.prototype.hasOwnProperty.call(error, 'cause');
  const errors = (error as { errors?: unknown }).errors;
  return {
    ctor: nearestConstructor(error),
    name: error.name,
    message: error.message,
    stack: typeof error.stack === 'string' ? error.stack : undefined,
    props,
    hasCause,
    cause: hasCause ? keep(error.cause) : undefined,
    errors: Array.isArray(errors) ? errors.map(keep) : undefined,
  };
}

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable: false });
}

/** Rebuilds an error on its nearest known class, with every field it had. */
export function reviveError(d: ErrorDescriptor): Error {
  let error: Error;
  if (d.ctor === 'DOMException' && typeof DOMException !== 'undefined') {
    error = new DOMException(d.message, d.name);
  } else {
    const ctor = builtins[d.ctor] ?? Error;
    const proto = ctor.prototype as Error;
    error = Object.create(proto) as Error;
    define(error, 'message', d.message);
    if (d.name !== proto.name) define(error, 'name', d.name);
  }
  define(error, 'stack', d.stack ?? `${d.name}: ${d.message}`);
  for (const [key, value] of Object.entries(d.props)) {
    if (key === 'name' && d.ctor === 'DOMException') continue;
    Object.defineProperty(error, key, { value, writable: true, configurable: true, enumerable: true });
  }
  if (d.hasCause) define(error, 'cause', d.cause);
  if (d.errors !== undefined) define(error, 'errors', d.errors);
  return error;
}
