/**
 * What a Channel's callers pass: the public option and handle types, and the checks of what they
 * pass (the ring's sizes, timeouts, close's grace, blocking on the main thread).
 */
import { isMainThread, type MessagePort } from 'node:worker_threads';
import { DeadlockError } from '../errors.js';
import { graceOf, type CloseOptions } from '../lifecycle.js';
import type { ChannelRole } from './connections.js';
import { BYTES, CAPACITY, HEADER_WORDS, MODE, RING_BYTES, VALUES } from './layout.js';

/** Options of `new Channel()`. */
export interface ChannelOptions {
  /** The most items the channel holds; a put waits while it is full. Default: no limit but bufferSize. */
  capacity?: number;
  /** Bytes of shared memory for the items (encoded, 4 bytes of header each). Default 1 MiB. */
  bufferSize?: number;
  /** Bytes mode: items are Uint8Arrays, copied as they are (no encoding). */
  bytes?: boolean;
  /** Allow the blocking methods on the main thread of this process (they freeze its event loop). */
  allowBlockingMainThread?: boolean;
  /**
   * What this connection does: 'put', 'get' or 'both' (default). Getters of an empty channel fail
   * with DisconnectedError once no connection that may put is left, and putters of a full one once
   * none that may get is left: give a connection that never puts the role 'get' (and one that never
   * gets 'put').
   */
  role?: ChannelRole;
}

/** Options of {@link Channel.connect}. */
export interface ChannelConnectOptions {
  /** Allow the blocking methods on the main thread of this process (they freeze its event loop). */
  allowBlockingMainThread?: boolean;
}

/**
 * What a thread needs to connect to a channel; send it with postMessage or workerData. A handle from
 * createHandle() has a `port`, to list in the transferList, and serves one connection.
 */
export interface ChannelHandle {
  /** What the handle is for. */
  readonly kind: 'loopthread.channel';
  /** The channel's shared memory. */
  readonly buffer: SharedArrayBuffer;
  /** On handles from createHandle(): list it in the transferList. */
  readonly port?: MessagePort;
  /** @internal */
  readonly slot?: SharedArrayBuffer;
  /** @internal */
  readonly maker?: SharedArrayBuffer;
}

/** Options of an awaited `get` or `put`. */
export interface ChannelWaitOptions {
  /** Aborting it rejects the wait with CancelledError (whose cause is the signal's reason). */
  signal?: AbortSignal | undefined;
  /** Milliseconds to wait at most; then a TimeoutError. 0 means do not wait. */
  timeout?: number | undefined;
}

/** Options of a blocking `getSync` or `putSync`. */
export interface ChannelSyncOptions {
  /** Milliseconds to block at most; then a TimeoutError. 0 means do not wait. */
  timeout?: number | undefined;
  /** Allow this call to block the main thread (see ChannelOptions.allowBlockingMainThread). */
  allowBlockingMainThread?: boolean | undefined;
  /** @deprecated The name of allowBlockingMainThread for one call in 0.1. */
  allowMainThread?: boolean | undefined;
}

/** Options of `put`, `putSync` and `tryPut`, beside those of the wait. */
export interface ChannelPutOptions {
  /**
   * ArrayBuffers to hand over as postMessage does: after the put they are detached here. Their
   * bytes are still copied once into shared memory (nothing else can cross it).
   */
  transfer?: readonly ArrayBuffer[] | undefined;
}

/** What `tryGet` returns: `{ ok: true, value }` with an item, `{ ok: false }` when there is none now. */
export type TryGetResult<T> =
  | {
      /** An item was there. */
      ok: true;
      /** The item. */
      value: T;
    }
  | {
      /** The channel was empty (or closed and drained). */
      ok: false;
    };

/**
 * `grace`: ms that getters may go on draining the items left before they are dropped (0: drop
 * them now); none by default: the items stay for the getters. `signal`: aborting it drops them.
 */
export interface ChannelCloseOptions extends CloseOptions {
  /** Allow closeSync() with a grace period to block the main thread. */
  allowBlockingMainThread?: boolean | undefined;
  /** @deprecated 0.1's way to drop the items left: `{ grace: 0 }`. */
  immediate?: boolean | undefined;
}

const DEFAULT_BUFFER = 1 << 20;
const MAX_BUFFER = 1 << 30;
const NO_LIMIT = 0x7fffffff;

/** The shared memory of a new channel, its header filled in from `options` (checked). */
export function channelBuffer(options: ChannelOptions): SharedArrayBuffer {
  const capacity = options.capacity ?? NO_LIMIT;
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > NO_LIMIT) {
    throw new RangeError(`capacity must be an integer from 1 to ${NO_LIMIT}, got ${String(capacity)}`);
  }
  const requested = options.bufferSize ?? DEFAULT_BUFFER;
  if (!Number.isInteger(requested) || requested < 16 || requested > MAX_BUFFER) {
    throw new RangeError(`bufferSize must be an integer from 16 to ${MAX_BUFFER}, got ${String(requested)}`);
  }
  const size = (requested + 3) & ~3;
  const buffer = new SharedArrayBuffer(HEADER_WORDS * 4 + size);
  const words = new Int32Array(buffer, 0, HEADER_WORDS);
  words[CAPACITY] = capacity;
  words[RING_BYTES] = size;
  words[MODE] = options.bytes === true ? BYTES : VALUES;
  return buffer;
}

/** The deadline (a performance.now() time) of a wait of at most `timeout` ms; Infinity without one. */
export function checkTimeout(timeout: number | undefined): number {
  if (timeout === undefined) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
    throw new TypeError(`timeout must be a number of milliseconds >= 0, got ${String(timeout)}`);
  }
  return performance.now() + timeout;
}

/** The grace of a channel's close: undefined (the items stay), 0 (dropped now) or ms of draining. */
export function closeGrace(options: ChannelCloseOptions & { signal?: AbortSignal | undefined }): number | undefined {
  /* eslint-disable @typescript-eslint/no-deprecated -- the 0.1 aliases still work */
  if (options.immediate === true) return 0;
  if (options.grace === undefined && options.timeout === undefined && options.signal === undefined) return undefined;
  /* eslint-enable @typescript-eslint/no-deprecated */
  return graceOf(options, Infinity);
}

/**
 * DeadlockError if the blocking `channel.<what>()` would block the main thread without leave:
 * `allowMain` from the connection's options, or the call's own.
 */
export function checkBlocking(
  allowMain: boolean,
  options: Pick<ChannelSyncOptions, 'allowBlockingMainThread' | 'allowMainThread'> | undefined,
  what: string,
): void {
  if (
    isMainThread &&
    !allowMain &&
    options?.allowBlockingMainThread !== true &&
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- the 0.1 alias still works
    options?.allowMainThread !== true
  ) {
    throw new DeadlockError(
      `channel.${what}() would block the main thread, freezing its event loop (and deadlocking if the ` +
        `async end it waits for runs there). Use the async ${what.replace('Sync', '')}(), or pass ` +
        '{ allowBlockingMainThread: true } (to this call or to the Channel) if you mean it.',
    );
  }
}
