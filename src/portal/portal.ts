/**
 * Portal: any thread's event loop (the main thread's too) opened for calls from other threads,
 * blocking or awaited: asyncio.run_coroutine_threadsafe for Node. The thread that opens a portal
 * hosts an object of functions; each other thread connects with a handle of its own.
 */
import { MessageChannel, MessagePort, threadId } from 'node:worker_threads';
import { ClosedError } from '../errors.js';
import type { Future } from '../future.js';
import { ConnectionLife, graceEnd, graceOf, type CloseOptions } from '../lifecycle.js';
import { DEFAULT_CLOSE_TIMEOUT_MS } from '../protocol/close.js';
import { EndWord, HostState } from '../protocol/line.js';
import { waitTable } from '../shm/wait-for.js';
import { atThreadEnd } from '../shm/thread-end.js';
import type { PortalClient, CallOptions } from './client.js';
import { connectHandle } from './connect.js';
import { describeExports, type ExportShape } from './exports.js';
import { PortalHost } from './host.js';
import { TargetKind, type Target } from '../call/target.js';
import type { AsyncFunction, SyncFunction } from './proxy.js';

type AnyFunction = (...args: never[]) => unknown;

/** The lifecycle members of a portal connection, beside the api's functions. */
export interface PortalConnectionLife<Api> extends Disposable, AsyncDisposable {
  /** Ends this connection (not the portal); its async calls still pending get `grace` ms (default 0) first. */
  close(options?: CloseOptions): Promise<void>;
  /** Ends this connection at once. */
  closeSync(): void;
  /** Resolves once this connection is closed: by close(), or because the portal closed or its thread ended. */
  readonly closed: Promise<void>;
  /** True once this connection is closed. */
  readonly isClosed: boolean;
  /** The same connection with other call options (timeout, signal) for the calls made through it. */
  with(options: CallOptions): PortalConnection<Api>;
}

/** The functions of `Api` as a connected thread sees them: `fn` returns a Future, `fnSync` blocks. */
export type PortalConnection<Api> = {
  readonly [K in keyof Api as Api[K] extends AnyFunction ? K & string : never]: AsyncFunction<Api[K]>;
} & {
  readonly [K in keyof Api as Api[K] extends AnyFunction ? `${K & string}Sync` : never]: SyncFunction<Api[K]>;
} & PortalConnectionLife<Api>;

/** @deprecated The name of PortalConnection in 0.1. */
export type PortalClientOf<Api> = PortalConnection<Api>;

/** Names a connection keeps for its own lifecycle: an api function may not take them (nor their Sync form). */
const RESERVED = new Set(['close', 'closeSync', 'closed', 'isClosed', 'with']);

/**
 * What another thread needs to call a portal. Send it with its port in the transfer list
 * (`new Worker(file, { workerData: { handle }, transferList: [handle.port] })`). One handle is one
 * connection, for one thread: make one per thread.
 */
export interface PortalHandle<Api = unknown> {
  /** What the handle is for. */
  readonly kind: 'loopthread.portal';
  /** The portal's name. */
  readonly name: string;
  /** The threadId of the portal's thread. */
  readonly threadId: number;
  /** The connection's port: put it in the transfer list. */
  readonly port: MessagePort;
  /** Who waits for whom in this process (loopthread's own, behind DeadlockError). */
  readonly waits: SharedArrayBuffer;
  /** The portal's end (loopthread's own, see EndWord): a connection whose line it never served reads it. */
  readonly end: SharedArrayBuffer;
  /** The api's functions, by name (loopthread's own). */
  readonly shape: Record<string, ExportShape>;
  /** Only carries the type of the api. */
  readonly api?: Api;
}

/** Options of {@link Portal.open}. */
export interface PortalOptions {
  /** Shown in errors. Default "portal on thread n". */
  name?: string;
}

const clients = new WeakMap<object, { client: PortalClient; life: ConnectionLife; handle: PortalHandle }>();

/**
 * An object of functions served on this thread's event loop (the main thread's too) to other
 * threads, which call them blocking (`fnSync`) or awaited (`fn`): `asyncio.run_coroutine_threadsafe`
 * for Node. Open it with {@link Portal.open}; connect from another thread with {@link Portal.connect}.
 *
 * @typeParam Api - The object of functions it serves.
 * @example
 * ```ts
 * // main.ts
 * const portal = Portal.open({ async lookup(id: number) { return cache.get(id); } });
 * const handle = portal.createHandle(); // one per thread
 * new Worker('./worker.js', { workerData: { handle }, transferList: [handle.port] });
 *
 * // worker.ts
 * const main = Portal.connect(workerData.handle as PortalHandle<MainApi>);
 * const value = main.lookupSync(7); // blocks this worker until lookup() settled on the main loop
 * const later = await main.lookup(8); // a Future
 * ```
 */
export class Portal<Api extends object> implements AsyncDisposable {
  /** Shown in errors: `options.name`, or "portal on thread n". */
  readonly name: string;
  /** Resolves once the portal is closed (close() done, or its thread ended). Never rejects. */
  readonly closed: Promise<void>;
  #markClosed!: () => void;
  readonly #host = new PortalHost({});
  readonly #end = new EndWord();
  readonly #forget: () => void;
  readonly #shape: Record<string, ExportShape>;
  #state: 'open' | 'closing' | 'closed' = 'open';

  private constructor(api: Api, options: PortalOptions) {
    this.name = options.name ?? `portal on thread ${threadId}`;
    this.#shape = describeExports(api);
    for (const [name, entry] of Object.entries(this.#shape)) {
      if (entry[0] === 'function' && (RESERVED.has(name) || RESERVED.has(`${name}Sync`))) {
        throw new TypeError(
          `the api's function "${name}" would hide the connection's own ${RESERVED.has(name) ? name : `${name}Sync`}: rename it`,
        );
      }
    }
    this.#host.addModule(api);
    this.closed = new Promise((resolve) => {
      this.#markClosed = resolve;
    });
    // When this thread ends with the portal open, its callers are told at once, blocked ones too:
    // closed after a clean exit, crashed (exit code, error) otherwise. See the README for
    // terminate() and the heap limit, which run no code.
    this.#forget = atThreadEnd((code, thrown) => {
      const clean = code === 0 && thrown === undefined;
      this.#host.shutDown(clean ? HostState.Closed : HostState.Crashed, code, thrown?.error);
      this.#end.tell(clean ? HostState.Closed : HostState.Crashed, code);
      this.#state = 'closed';
      this.#markClosed();
    });
  }

  /**
   * Opens `api` on this thread's event loop. It does not keep the loop alive by itself.
   *
   * @param api - An object of functions, or a module namespace.
   * @param options - `name`, shown in errors.
   * @throws TypeError if an api function is named `close`, `closed`, `isClosed` or `with` (or `x`
   *   whose `xSync` is one of those): a connection keeps those names.
   */
  static open<Api extends object>(api: Api, options: PortalOptions = {}): Portal<Api> {
    if (api === null || typeof api !== 'object') throw new TypeError('Portal.open expects an object of functions');
    return new Portal(api, options);
  }

  /**
   * A new connection for one other thread (send it with `[handle.port]` as its transfer list).
   *
   * @throws {@link ClosedError} if the portal is closed.
   */
  createHandle(): PortalHandle<Api> {
    if (this.#state !== 'open') throw new ClosedError(`${this.name} is closed`);
    // The connecting thread makes the connection's line (see Portal.connect): until then a handle
    // costs this thread one port.
    const channel = new MessageChannel();
    this.#host.accept(channel.port2);
    return {
      kind: 'loopthread.portal',
      name: this.name,
      threadId,
      port: channel.port1,
      waits: waitTable(),
      end: this.#end.sab,
      shape: this.#shape,
    };
  }

  /**
   * Connects to a portal from the thread that received its handle. `options` (timeout, signal)
   * apply to every call made through this connection; `connection.with()` gives one with other options.
   *
   * @param handle - From `portal.createHandle()`, received by this thread.
   * @param options - `timeout` (ms) and `signal` of every call made through the connection.
   * @returns For each function `fn` of the api, `fn(...)` returning a Future and `fnSync(...)` that
   *   blocks, with the lifecycle members of {@link PortalConnectionLife}. Its calls fail with
   *   {@link ClosedError} once the portal closed, {@link DeadlockError} if blocking on the portal's own thread.
   */
  static connect<Api>(handle: PortalHandle<Api>, options: CallOptions = {}): PortalConnection<Api> {
    if (handle?.kind !== 'loopthread.portal' || !(handle.port instanceof MessagePort)) {
      throw new TypeError('Portal.connect expects a handle made by portal.createHandle()');
    }
    const { client, life } = connectHandle(handle, handle.name, options);
    return Portal.#bind<Api>(client, life, handle, options);
  }

  static #bind<Api>(client: PortalClient, life: ConnectionLife, handle: PortalHandle, options: CallOptions) {
    const out: Record<string, unknown> = {};
    for (const [name, entry] of Object.entries(handle.shape)) {
      if (entry[0] !== 'function') continue;
      const target: Target = [TargetKind.Export, 0, [name]];
      out[name] = (...args: unknown[]): Future<unknown> => client.invoke(target, args, options);
      const sync = (...args: unknown[]): unknown => client.invokeSync(target, args, options, sync);
      out[`${name}Sync`] = sync;
    }
    const own = (value: unknown): PropertyDescriptor => ({ value });
    Object.defineProperties(out, {
      close: own((closeOptions?: CloseOptions) => life.close(closeOptions)),
      closeSync: own(() => {
        life.closeSync();
      }),
      closed: { get: () => life.closed },
      isClosed: { get: () => life.isClosed },
      with: own((callOptions: CallOptions) => Portal.#bind<Api>(client, life, handle, { ...options, ...callOptions })),
      [Symbol.dispose]: own(() => {
        life.closeSync();
      }),
      [Symbol.asyncDispose]: own(() => life.close()),
    });
    clients.set(out, { client, life, handle });
    return Object.freeze(out) as PortalConnection<Api>;
  }

  /** @deprecated Use `connection.with(options)`, which this calls. */
  static with<Api>(connected: PortalConnection<Api>, options: CallOptions): PortalConnection<Api> {
    const entry = clients.get(connected);
    if (entry === undefined) throw new TypeError('Portal.with expects a connection made by Portal.connect()');
    return Portal.#bind<Api>(entry.client, entry.life, entry.handle, options);
  }

  /** @deprecated Use `connection.closeSync()` (or `close()`), which this calls. */
  static disconnect(connected: object): void {
    clients.get(connected)?.life.closeSync();
  }

  /** True once closing has begun: new calls then fail with ClosedError. */
  get isClosed(): boolean {
    return this.#state !== 'open';
  }

  /**
   * Closes the portal: new calls fail with ClosedError, the signals of calls in flight abort and
   * they get `grace` ms (default 5000) to finish, or until `signal` aborts; then every connected
   * thread, blocked or not, is told the portal is closed. Resolves once it is. Idempotent.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#state === 'open') {
      const grace = graceOf(options, DEFAULT_CLOSE_TIMEOUT_MS);
      this.#state = 'closing';
      const end = graceEnd(Infinity, options.signal);
      await Promise.race([this.#host.close(grace), end.ended]);
      end.cancel();
      this.#forget();
      this.#host.shutDown(HostState.Closed);
      this.#end.tell(HostState.Closed);
      this.#state = 'closed';
      this.#markClosed();
    }
    await this.closed;
  }

  /** `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
