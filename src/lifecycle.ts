/**
 * The one lifecycle of every part (LoopThread, Portal, ThreadPoolExecutor, Channel, connections,
 * spawnThread): `close(options?)` returns a Promise, `closed` is a Promise that resolves once
 * fully closed, `isClosed` says whether closing has begun. `grace` and `signal` bound how long
 * work already under way may go on.
 */
import type { MessagePort } from 'node:worker_threads';
import { ClosedError } from './errors.js';
import type { PortalClient } from './portal/client.js';

/**
 * Options of `close()` and `closeSync()`, the same on every part.
 *
 * @example
 * ```ts
 * await loop.close({ grace: 5_000 }); // calls under way get 5 s, then are cancelled
 * await pool.close({ signal: AbortSignal.timeout(1_000) });
 * ```
 */
export interface CloseOptions {
  /**
   * Milliseconds that work already under way (calls in flight, running tasks, items left to get)
   * may go on before it is cancelled, terminated or dropped. Each part documents its default.
   */
  grace?: number | undefined;
  /** Aborting it ends the grace period now. */
  signal?: AbortSignal | undefined;
  /** @deprecated The name of `grace` in 0.1 (LoopThread, Portal). */
  timeout?: number | undefined;
}

/** The grace period of `options` in ms (`fallback` when none is given); 0 if its signal has aborted. */
export function graceOf(options: CloseOptions | undefined, fallback: number): number {
  if (options?.signal?.aborted === true) return 0;
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- the 0.1 alias still works
  const grace = options?.grace ?? options?.timeout ?? fallback;
  if (typeof grace !== 'number' || Number.isNaN(grace) || grace < 0) {
    throw new TypeError(`grace must be a number of milliseconds >= 0, got ${String(grace)}`);
  }
  return grace;
}

/**
 * Resolves when the grace period ends: after `grace` ms, or when the signal aborts. `cancel()`
 * stops its timer and listener (call it once the work ended first). An infinite grace with no
 * signal never resolves.
 */
export function graceEnd(grace: number, signal: AbortSignal | undefined): { ended: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const ended = new Promise<void>((resolve) => {
    if (grace !== Infinity) timer = setTimeout(resolve, grace);
    if (signal !== undefined) {
      onAbort = () => {
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  return {
    ended,
    cancel: () => {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * The lifecycle of one connection (LoopThread.connect, Portal.connect): closed when this side
 * closes it or the serving side goes, which both close its port.
 */
export class ConnectionLife {
  /** Set right after construction (the client's hooks need this object first). */
  client!: PortalClient;
  /** Never keeps the event loop alive by itself: the serving side's close is seen when the port's 'close' event comes. */
  readonly closed: Promise<void>;
  #markClosed!: () => void;
  readonly #port: MessagePort;
  readonly #name: string;
  #busy = false;
  readonly #idle: (() => void)[] = [];

  constructor(port: MessagePort, name: string) {
    this.#port = port;
    this.#name = name;
    this.closed = new Promise((resolve) => {
      this.#markClosed = resolve;
    });
    port.once('close', this.#markClosed);
  }

  /** The client's onBusy hook: async calls pending (true) or none (false). Holds the process meanwhile. */
  onBusy(busy: boolean): void {
    this.#busy = busy;
    if (busy) this.#port.ref();
    else {
      this.#port.unref();
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  get isClosed(): boolean {
    return this.client.closedError !== undefined;
  }

  closeSync(): void {
    if (this.client.closedError === undefined) {
      this.client.disconnect(new ClosedError(`this connection to ${this.#name} is closed`));
    }
    this.#markClosed();
  }

  async close(options?: CloseOptions): Promise<void> {
    const grace = graceOf(options, 0);
    if (this.#busy && grace > 0 && !this.isClosed) {
      const end = graceEnd(grace, options?.signal);
      await Promise.race([new Promise<void>((resolve) => this.#idle.push(resolve)), end.ended]);
      end.cancel();
    }
    this.closeSync();
    await this.closed;
  }
}
