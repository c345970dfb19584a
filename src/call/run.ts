/**
 * Running one call: in its own context (its signal, found by AsyncLocalStorage), then settling it
 * exactly once, at once for a plain result and when its promise settles otherwise.
 */
import { CancelledError, TimeoutError } from '../errors.js';
import { runInContext, type CallContext } from './context.js';
import { isThenable } from './target.js';

/** How a call ended; the first byte of its outcome on the wire. */
export const enum Status {
  Ok = 0,
  Thrown = 1,
  /** Cancelled before it started: it never ran (pool tasks only). */
  Skipped = 2,
}

/** How a call that ran ended. */
export type Settled = Status.Ok | Status.Thrown;

/** Why a caller gave a call up; its signal aborts with the matching error. */
export const enum CancelKind {
  Cancel = 1,
  Timeout = 2,
}

/** The abort reason of a call given up for `kind`; `timedOut` and `cancelled` say it in words. */
export function cancelError(kind: CancelKind, timedOut: string, cancelled: string): Error {
  return kind === CancelKind.Timeout ? new TimeoutError(timedOut) : new CancelledError(cancelled);
}

/**
 * Runs `run` in `context` and calls `settle` once with its outcome. Returns the promise that
 * settles it when the result is a promise (or another thenable), undefined when it settled at once.
 */
export function runCall(
  context: CallContext | undefined,
  run: () => unknown,
  settle: (status: Settled, value: unknown) => void,
): Promise<void> | undefined {
  let result: unknown;
  try {
    result = context === undefined ? run() : runInContext(context, run);
  } catch (error) {
    settle(Status.Thrown, error);
    return undefined;
  }
  if (!isThenable(result)) {
    settle(Status.Ok, result);
    return undefined;
  }
  // Through Promise.resolve: a thenable that calls back twice, or at once, still settles once, later.
  return Promise.resolve(result).then(
    (value) => {
      settle(Status.Ok, value);
    },
    (error: unknown) => {
      settle(Status.Thrown, error);
    },
  );
}
