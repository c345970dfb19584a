/** The errors a Channel's methods throw or reject with, worded for the user (types: src/errors.ts). */
import { CancelledError, ClosedError, DisconnectedError, TimeoutError } from '../errors.js';
import { roleName } from './connections.js';
import { CLOSED_NOW, STATE } from './layout.js';

/** A put or get through a connection that ended (disconnect()) or whose role does not allow it. */
export function cannotError(ended: boolean, role: number, what: 'put' | 'get'): Error {
  if (ended) return endedError();
  return new TypeError(`this connection's role is '${roleName(role)}': it cannot ${what}`);
}

export function endedError(): ClosedError {
  return new ClosedError('this connection was ended by disconnect()');
}

/** Nobody is left on the other side (connections.ts). */
export function goneError(what: 'put' | 'get' | 'join'): DisconnectedError {
  return new DisconnectedError(
    what === 'put'
      ? 'the channel is full and every connection that may get has ended'
      : what === 'get'
        ? 'the channel is empty and every connection that may put has ended'
        : 'items are not done and every connection that may get (and mark them done) has ended',
  );
}

/** The channel whose header is `words` was closed (a get: and drained, or dropped). */
export function closedError(words: Int32Array, what: 'put' | 'get'): ClosedError {
  if (what === 'put') return new ClosedError('the channel is closed: it takes no more items');
  return new ClosedError(
    Atomics.load(words, STATE) === CLOSED_NOW
      ? 'the channel was closed at once (immediate): its items were dropped'
      : 'the channel is closed and drained',
  );
}

export function timeoutError(what: string, timeout: number | undefined): TimeoutError {
  return new TimeoutError(`channel.${what}() timed out after ${String(timeout)} ms`);
}

export function cancelled(signal: AbortSignal): CancelledError {
  return new CancelledError('the channel operation was cancelled', { cause: signal.reason });
}
