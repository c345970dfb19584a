/**
 * A LoopThread shared with another thread: the handle that travels there, and the connection
 * made from it.
 */
import { MessagePort } from 'node:worker_threads';
import type { ConnectionLife, CloseOptions } from './lifecycle.js';
import type { PortalClient, CallOptions } from './portal/client.js';
import { connectHandle } from './portal/connect.js';
import { LoopThreadCaller, type CallerOptions } from './loop-thread-caller.js';
import type { CallStats } from './observe/call-stats.js';

/**
 * What another thread needs to call a LoopThread: post it there with its port in the transfer
 * list (`worker.postMessage(handle, [handle.port])`, or as workerData with `transferList:
 * [handle.port]`), then `LoopThread.connect(handle)` on that thread. Each handle is one
 * connection, for one thread.
 */
export interface LoopThreadHandle {
  /** What the handle is for. */
  readonly kind: 'loopthread.handle';
  /** The LoopThread's name. */
  readonly name: string;
  /** The LoopThread's threadId. */
  readonly threadId: number;
  /** The bytes of shared memory of the connection's line in each direction (the LoopThread's `bufferSize`). */
  readonly bufferSize: number;
  /** The connection's port: put it in the transfer list. */
  readonly port: MessagePort;
  /** Who waits for whom in this process (loopthread's own, behind DeadlockError). */
  readonly waits: SharedArrayBuffer;
  /** The LoopThread's end as its owner tells it (loopthread's own, see EndWord). */
  readonly end: SharedArrayBuffer;
}

/** A connection to a LoopThread from another thread (see LoopThread.connect). */
export class LoopThreadConnection extends LoopThreadCaller implements Disposable, AsyncDisposable {
  readonly #client: PortalClient;
  readonly #life: ConnectionLife;
  readonly #options: CallOptions;

  /** @internal */
  constructor(client: PortalClient, options: CallOptions, life: ConnectionLife) {
    super(client, options);
    this.#client = client;
    this.#life = life;
    this.#options = options;
  }

  /** The call methods with these options (timeout, signal, exit), over the connection's own. */
  with(options: CallerOptions): LoopThreadCaller {
    return new LoopThreadCaller(this.#client, { ...this.#options, ...options });
  }

  /** This connection's calls so far (see LoopThread.stats). */
  stats(): CallStats {
    return this.#client.stats.snapshot();
  }

  /** Resolves once this connection is closed: by close(), or because the LoopThread stopped. */
  get closed(): Promise<void> {
    return this.#life.closed;
  }

  /** True once this connection is closed, or its LoopThread is. */
  get isClosed(): boolean {
    return this.#life.isClosed;
  }

  /**
   * Ends this connection (not the LoopThread): calls through it then fail with ClosedError. Its
   * async calls still pending get `grace` ms (default 0) to settle first.
   */
  close(options?: CloseOptions): Promise<void> {
    return this.#life.close(options);
  }

  /** Ends this connection at once. */
  closeSync(): void {
    this.#life.closeSync();
  }

  /** closeSync(), for `using`. */
  [Symbol.dispose](): void {
    this.closeSync();
  }

  /** close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** See LoopThread.connect. */
export function connectTo(handle: LoopThreadHandle, options: CallOptions): LoopThreadConnection {
  if (handle?.kind !== 'loopthread.handle' || !(handle.port instanceof MessagePort)) {
    throw new TypeError('LoopThread.connect expects a handle made by loop.createHandle()');
  }
  const { client, life } = connectHandle(handle, `LoopThread "${handle.name}"`, options, handle.bufferSize);
  return new LoopThreadConnection(client, options, life);
}
