/**
 * Errors across threads: which class to rebuild one as, which of its fields travel, and how to
 * make the copy. The codec writes the fields with its own reference table, so an error inside a
 * cycle (or a cycle of causes) keeps its shape like any other object.
 */
import * as ours from '../errors.js';

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
  DisconnectedError: ours.DisconnectedError,
  WorkerCrashedError: ours.WorkerCrashedError,
  DeadlockError: ours.DeadlockError,
  NeverSettledError: ours.NeverSettledError,
  CancelledError: ours.CancelledError,
  TimeoutError: ours.TimeoutError,
  DataCloneError: ours.DataCloneError,
  QueueFullError: ours.QueueFullError,
  WorkerEntryNotFoundError: ours.WorkerEntryNotFoundError,
};

/** Fields written on their own, not among the own properties. */
const apart = new Set(['stack', 'message', 'cause', 'errors']);

/** The nearest class the other side can rebuild: a built-in, one of loopthread's, or DOMException. */
export function nearestConstructor(error: Error): string {
  if (error instanceof DOMException) return 'DOMException';
  for (let p: unknown = Object.getPrototypeOf(error); p !== null && p !== undefined; p = Object.getPrototypeOf(p)) {
    const ctor = (p as { constructor?: { name?: string } }).constructor;
    const name = ctor?.name;
    if (name !== undefined && builtins[name] === ctor) return name;
  }
  return 'Error';
}

/** The own data properties that travel (code, errno, custom fields; the name if set on the instance). */
export function ownFields(error: Error): [string, unknown][] {
  const fields: [string, unknown][] = [];
  for (const key of Object.getOwnPropertyNames(error)) {
    if (apart.has(key)) continue;
    const d = Object.getOwnPropertyDescriptor(error, key);
    if (d !== undefined && 'value' in d) fields.push([key, d.value]);
  }
  return fields;
}

/** The 'errors' of an AggregateError (or any error that has an array there). */
export function aggregated(error: Error): unknown[] | undefined {
  const errors = (error as { errors?: unknown }).errors;
  return Array.isArray(errors) ? errors : undefined;
}

function define(target: object, key: string, value: unknown, enumerable = false): void {
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable });
}

/** A new error of the named class with its message and name; its other fields come after. */
export function createError(ctorName: string, name: string, message: string): Error {
  if (ctorName === 'DOMException') return new DOMException(message, name);
  const ctor = builtins[ctorName] ?? Error;
  const proto = ctor.prototype as Error;
  const error = Object.create(proto) as Error;
  define(error, 'message', message);
  if (name !== proto.name) define(error, 'name', name);
  return error;
}

export function setStack(error: Error, stack: unknown): void {
  define(error, 'stack', typeof stack === 'string' ? stack : `${error.name}: ${error.message}`);
}

export function setField(error: Error, key: string, value: unknown): void {
  if (key === 'cause' || key === 'errors') define(error, key, value);
  else if (!(key === 'name' && error instanceof DOMException)) define(error, key, value, true);
}
