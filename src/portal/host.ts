/**
 * The serving side of a portal: it reads calls from its connections (blocking callers through
 * shared memory, async callers through a MessagePort), runs them on this thread's event loop,
 * each with its own AbortSignal, and answers every one of them.
 */
import { MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { CallContext } from '../call/context.js';
import { explainCapture } from '../call/compile.js';
import { cancelError, runCall, Status, type CancelKind, type Settled } from '../call/run.js';
import type { Fn, Target } from '../call/target.js';
import { CancelledError, ClosedError } from '../errors.js';
import { corrupt } from '../codec/writer.js';
import { isBulk } from '../protocol/bulk.js';
import { HostState, Line } from '../protocol/line.js';
import { coreCount, now, observeWake } from '../shm/spin-policy.js';
import { spinFor } from '../shm/wait.js';
import { KeepAlive } from '../shm/keep-alive.js';
import { HostConnection, type InFlight } from './host-connection.js';
import type { IdleWatch } from './idle-watch.js';
import {
  isPortPacket,
  MessageKind,
  postOn,
  readMessage,
  readPacket,
  postRefusal,
  writeDied,
  writeReply,
  WAKE,
  type LineMessage,
  type Message,
} from './messages.js';
import type { EnteredResources } from './resources.js';
import { RequestPoller } from './request-poller.js';
import { HostTargets } from './host-targets.js';

/* eslint-disable @typescript-eslint/no-require-imports -- loaded on first use, not at start-up (see ARCHITECTURE.md) */
const resources = () => require('./resources.js') as typeof import('./resources.js');
const idleWatch = () => require('./idle-watch.js') as typeof import('./idle-watch.js');
const lender = () => require('./lender.js') as typeof import('./lender.js');
/* eslint-enable @typescript-eslint/no-require-imports */

export interface HostOptions {
  /** Loads a module for `import` requests; without it they are refused. */
  load?(specifier: string): Promise<object>;
  /**
   * A LoopThread's own thread: callers may run inline functions here and enter resources. Without
   * it (a Portal) a caller reaches the hosted api object and nothing else. This is the host's own
   * record of what it serves: nothing a caller sends (its handle's kind) can change it.
   */
  inline?: boolean;
  /**
   * Keep this thread's event loop alive while waiting for calls (a LoopThread's own thread). A
   * portal opened on a thread that has other work does not hold that thread's loop open.
   */
  keepAlive?: boolean;
  /** Called for a close request from a connection allowed to close the host. */
  onCloseRequest?(timeout: number): Promise<void>;
}

/** Sent by the owner of the host: accept one more connection (see LoopThread.createHandle). */
export interface ConnectRequest {
  connect: { port: MessagePort };
}

/** After this many requests taken in a row without yielding, the host lets timers and I/O run. */
const MAX_CHAINED_REQUESTS = 256;

export class PortalHost {
  readonly connections = new Set<HostConnection>();
  /** The ports of handles not connected yet: each waits for its line (see accept). */
  private readonly accepting = new Set<MessagePort>();
  private state: 'running' | 'closing' | 'closed' = 'running';
  private pending = 0;
  /** Of those, the blocking calls: their callers' threads wait (see reply, Line.crowded). */
  private blockingPending = 0;
  private busyOutboxes = 0;
  private flushWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Resources entered by enterSync, exited last-in first-out when the host closes (made on first use). */
  private enteredResources: EnteredResources | undefined;
  /** What a call's target names here: the hosted modules, lent objects, inline functions. */
  private readonly targets: HostTargets;
  /** Answers the calls that can never settle (see onLoopIdle; made on first use). */
  private idleWatch: IdleWatch | undefined;
  /** Keeps this thread's loop alive while it waits for calls, and only then (see onLoopIdle). */
  private readonly keepAlive = new KeepAlive();
  /** Looks for the next blocking requests of several callers between loop turns (see reply). */
  private readonly poller = new RequestPoller(
    (conn) => {
      this.takeRequest(conn);
    },
    (conn) => {
      this.idle(conn);
    },
    (conn) => this.state !== 'closed' && this.connections.has(conn),
  );

  constructor(private readonly options: HostOptions) {
    this.targets = new HostTargets(options, () => (this.enteredResources ??= new (resources().EnteredResources)()));
    // A loop thread's host holds its loop open from the start, waiting for calls.
    if (options.keepAlive === true) this.keepAlive.hold(true);
  }

  /** Hosts a module namespace or api object; its id is what targets name. */
  addModule(namespace: object): number {
    return this.targets.add(namespace);
  }

  /**
   * Serves one more connection. `owner`: the connection of whoever opened this host (a
   * LoopThread's owner), which may close the host and ask it to serve further connections.
   */
  serve(line: Line, port: MessagePort, owner: boolean): HostConnection {
    const conn = new HostConnection(line, port, owner, (busy) => {
      this.busyOutboxes += busy ? 1 : -1;
      if (this.busyOutboxes === 0) for (const resolve of this.flushWaiters.splice(0)) resolve();
      this.updateKeepAlive();
    });
    this.connections.add(conn);
    conn.seenRequest = Atomics.load(line.words, line.request.ackIndex);
    port.on('message', (p: unknown) => {
      this.onPortMessage(conn, p);
    });
    // The calling thread is gone (exited or crashed): its calls have no one to answer to.
    port.on('close', () => {
      this.drop(conn);
    });
    port.unref();
    line.announce(this.state === 'running' ? HostState.Running : HostState.Closing);
    this.idle(conn);
    return conn;
  }

  /**
   * A handle's port: its connection is served once its line, the first message, comes. Until
   * then it costs only the port (a handle may never be connected).
   */
  accept(port: MessagePort): void {
    if (this.state === 'closed') {
      port.close();
      return;
    }
    this.accepting.add(port);
    const first = (p: unknown): void => {
      port.off('message', first);
      port.off('close', gone);
      this.accepting.delete(port);
      const line = (p as Partial<LineMessage> | null)?.line;
      if (Line.fits(line)) this.serve(new Line(line), port, false);
      else {
        postRefusal(port, corrupt("the first message is not the connection's line"));
        port.close();
      }
    };
    const gone = (): void => {
      this.accepting.delete(port);
    };
    port.on('message', first);
    port.on('close', gone);
    port.unref();
  }

  private drop(conn: HostConnection): void {
    if (!this.connections.delete(conn)) return;
    for (const call of conn.inflight.values()) {
      call.abandoned = true;
      call.context.abort(new ClosedError('the calling thread is gone'));
    }
    conn.rejectCallbacks(new ClosedError('the calling thread is gone'));
    if (conn.hasLent) conn.lender.clear();
    // The loop may be waiting idle for this caller to act: with one caller fewer, decide again.
    this.idleWatch?.reset();
  }

  /**
   * What the peer posted: a WAKE, a request, a bulk packet (see bulk.ts), or from the owner a
   * ConnectRequest. Anything else, or a request that does not decode, ends the connection.
   */
  private onPortMessage(conn: HostConnection, p: unknown): void {
    if (!this.connections.has(conn)) return;
    conn.heardAt = performance.now();
    if (p === WAKE) {
      conn.chained = 0;
      this.takeRequest(conn, true);
      return;
    }
    let message: Message;
    try {
      if (isBulk(p)) {
        conn.bulk.add(p);
        return;
      }
      if (conn.mayClose && isConnectRequest(p)) {
        this.accept(p.connect.port);
        return;
      }
      if (!isPortPacket(p)) throw corrupt('a port message that is not a packet');
      message = readPacket(p, conn.revive);
    } catch (error) {
      this.refuse(conn, error);
      return;
    }
    this.dispatch(conn, message, true);
  }

  /**
   * Ends a connection whose peer sent what is not loopthread's protocol: its calls are aborted
   * and fail with a ProtocolError on its side; this thread and its other connections go on.
   */
  private refuse(conn: HostConnection, cause: unknown): void {
    if (!this.connections.has(conn)) return;
    this.drop(conn);
    postRefusal(conn.port, cause);
    conn.line.announce(HostState.Refused);
    conn.port.close();
  }

  /**
   * The connection waits for its next blocking request. The flag tells the caller to wake this
   * thread with a WAKE message on the port (a posted message wakes an event loop sooner than
   * Atomics.waitAsync does); setting it and then looking once more means no request is missed.
   */
  private idle(conn: HostConnection): void {
    Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 1);
    if (conn.line.request.seq() !== conn.seenRequest) {
      setImmediate(() => {
        this.takeRequest(conn);
      });
    }
  }

  /** `woken`: this thread slept, and the caller's WAKE message woke it (a wake-up to learn from). */
  private takeRequest(conn: HostConnection, woken = false): void {
    if (!this.connections.has(conn)) return;
    const mailbox = conn.line.request;
    const seq = mailbox.seq();
    if (seq === conn.seenRequest || this.state === 'closed') {
      if (this.state !== 'closed') this.idle(conn);
      return;
    }
    conn.seenRequest = seq;
    Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 0);
    mailbox.markTaken();
    if (woken) observeWake(now() - mailbox.publishedAt());
    // How soon the caller called again after our last reply: worth spinning for next time, or not.
    if (conn.replied) conn.spin.observe(mailbox.publishedAt() - conn.line.reply.publishedAt(), conn.spun);
    conn.replied = false;
    const slot = mailbox.peek();
    let message: Message;
    try {
      if (!slot.onPort && (slot.length < 0 || slot.length > mailbox.data.length)) {
        throw corrupt(`a length of ${String(slot.length)} bytes in a slot of ${String(mailbox.data.length)}`);
      }
      // What the port holds before a request sent by it is handled first, as the loop would have; a
      // WAKE among it is for a request taken already (this one, or one before).
      if (slot.onPort) {
        const { bytes, parts, spare } = conn.bulk.take(conn.port, (p) => {
          if (p !== WAKE) this.onPortMessage(conn, p);
          // Refused meanwhile: its port is closed, and is not read again.
          if (!this.connections.has(conn)) throw corrupt('a message before a bulk packet');
        });
        if (!this.connections.has(conn)) return;
        message = readMessage(bytes, 0, bytes.length, undefined, conn.revive, parts, spare);
      } else {
        // Read in place: no view of the slot is made per call.
        message = readMessage(mailbox.data, 0, slot.length, undefined, conn.revive);
      }
    } catch (error) {
      this.refuse(conn, error);
      return;
    } finally {
      mailbox.consume();
    }
    this.dispatch(conn, message, false);
    // Wait for the next request even while this one runs: after a timeout the caller sends more.
    // A call answered at once may have left its caller to the poller: then the poller waits.
    if (!this.poller.watches(conn)) this.idle(conn);
  }

  private dispatch(conn: HostConnection, m: Message, viaPort: boolean): void {
    this.idleWatch?.reset();
    if (m.kind === MessageKind.Call || m.kind === MessageKind.Import || m.kind === MessageKind.Close) {
      conn.lastRequest = Math.max(conn.lastRequest, m.id);
    }
    switch (m.kind) {
      case MessageKind.Call:
        this.call(conn, m.id, m.target, m.args, viaPort);
        return;
      case MessageKind.Import:
        this.track(conn, m.id, viaPort, () => this.targets.importModule(m.specifier));
        return;
      case MessageKind.Close:
        if (!conn.mayClose) {
          this.reply(
            conn,
            m.id,
            viaPort,
            Status.Thrown,
            new ClosedError('this connection may not close the loop thread'),
          );
          return;
        }
        // What the caller posted before this blocking request comes first: its calls are taken
        // (and then aborted by the close), not refused.
        if (!viaPort) {
          for (let p = receiveMessageOnPort(conn.port); p !== undefined; p = receiveMessageOnPort(conn.port)) {
            this.onPortMessage(conn, p.message);
          }
        }
        // Not tracked as a call: close waits for the calls in flight, and this is not one of them.
        void Promise.resolve(this.options.onCloseRequest?.(m.timeout)).then(
          () => {
            this.reply(conn, m.id, viaPort, Status.Ok, undefined);
          },
          (error: unknown) => {
            this.reply(conn, m.id, viaPort, Status.Thrown, error);
          },
        );
        return;
      case MessageKind.Cancel:
        this.cancel(conn, m.id, m.reason);
        return;
      case MessageKind.Reply: {
        const callback = conn.callbacks.get(m.id);
        if (callback === undefined) return;
        conn.callbacks.delete(m.id);
        if (m.status === Status.Ok) callback.resolve(m.value);
        else callback.reject(m.value);
        return;
      }
      case MessageKind.Release:
        for (let i = 0; i + 1 < m.released.length; i += 2) {
          conn.lender.release(m.released[i] as number, m.released[i + 1] as number);
        }
        return;
      case MessageKind.Idle:
      case MessageKind.Died:
        return;
    }
  }

  private call(conn: HostConnection, id: number, target: Target, args: unknown[], viaPort: boolean): void {
    let fn: Fn;
    let self: unknown;
    try {
      [fn, self] = this.targets.resolve(conn, target, viaPort);
    } catch (error) {
      this.reply(conn, id, viaPort, Status.Thrown, error);
      return;
    }
    this.track(conn, id, viaPort, () => fn.apply(self, args));
  }

  /** Runs one call with its own signal and answers it exactly once. */
  private track(conn: HostConnection, id: number, viaPort: boolean, run: () => unknown): void {
    if (this.state !== 'running') {
      this.reply(conn, id, viaPort, Status.Thrown, new ClosedError('the loop thread is closing'));
      return;
    }
    const context = new CallContext();
    const call: InFlight = { context, abandoned: false, viaPort };
    const early = conn.precancelled.get(id);
    if (early !== undefined) {
      conn.precancelled.delete(id);
      call.abandoned = true;
      context.abort(abortReason(early));
    }
    conn.inflight.set(id, call);
    this.pending++;
    if (!viaPort) this.blockingPending++;
    if (this.pending === 1) this.updateKeepAlive();
    void runCall(context, run, (status, value) => {
      conn.inflight.delete(id);
      this.pending--;
      if (!viaPort) this.blockingPending--;
      if (!(call.abandoned && !viaPort)) this.reply(conn, id, viaPort, status, value);
      if (this.pending === 0) {
        this.updateKeepAlive();
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    });
  }

  reply(conn: HostConnection, id: number, viaPort: boolean, status: Settled, value: unknown): void {
    if (status === Status.Thrown) value = explainCapture(value);
    if (viaPort) {
      conn.post((w) => {
        writeReply(w, id, status, value, conn.lending);
      });
      return;
    }
    // A blocking caller is likely to call again at once: look for its next request before
    // sleeping, and tell it meanwhile that it need not wake this thread.
    const words = conn.line.words;
    const chainEnded = conn.chained >= MAX_CHAINED_REQUESTS;
    let budget = chainEnded ? 0 : conn.spin.next();
    const shared = this.connections.size > 1;
    if (budget > 0 && this.othersCalling(conn, budget)) budget = 0;
    const spin = budget > 0;
    if (spin) Atomics.store(words, conn.line.request.readerSleepsIndex, 0);
    // The other blocking callers (waiting for answers, or between calls), this one and this thread:
    // more than the cores can run, and this caller should not spin for its next answer.
    conn.line.crowded = this.blockingPending + this.poller.othersWatched(conn) + 2 > coreCount();
    const published = conn.outbox.send((w) => {
      writeReply(w, id, status, value, conn.lending);
    }, id);
    conn.replied = published;
    conn.spun = budget;
    if (!spin) {
      // Several callers, or a long chain of one's requests served without a turn of the loop:
      // look for the next request between loop turns (the poller's own policy decides). Not for
      // one caller whose spinning is off (the cores are short, or it calls seldom): looking
      // between turns would take the core its thread needs, as spinning would.
      if (published && (shared || chainEnded)) this.poller.watch(conn);
      return;
    }
    if (published && spinFor(words, conn.line.request.seqIndex, conn.seenRequest, budget)) {
      conn.chained++;
      this.takeRequest(conn);
      return;
    }
    this.idle(conn);
  }

  /**
   * Whether other connections are calling: a blocking call of theirs is in flight, one was
   * answered and is being watched for its next, or their caller posted to this thread within the
   * last `ms` (the spin's budget: an awaited call, a WAKE). Then this thread must not spin for one
   * caller while the others wait for it (nor take cores from their threads); spinning also holds
   * up this loop, so an awaited call cannot be this caller's next request in the meantime.
   */
  private othersCalling(conn: HostConnection, ms: number): boolean {
    if (this.connections.size < 2) return false;
    if (this.poller.othersWatched(conn) > 0) return true;
    const since = performance.now() - ms;
    for (const other of this.connections) {
      if (other === conn) continue;
      if (other.heardAt > since) return true;
      for (const call of other.inflight.values()) if (!call.viaPort && !call.abandoned) return true;
    }
    return false;
  }

  private cancel(conn: HostConnection, id: number, reason: CancelKind): void {
    conn.outbox.drop(id);
    conn.rejectCallbacks(
      new CancelledError('the blocking call this callback was called during is over (it timed out or was cancelled)'),
      id,
    );
    const call = conn.inflight.get(id);
    if (call === undefined) {
      // The request may still sit unread in the mailbox; remember the cancel for when it is read.
      if (conn.precancelled.size < 10_000) conn.precancelled.set(id, reason);
      return;
    }
    call.abandoned = true;
    call.context.abort(abortReason(reason));
  }

  updateKeepAlive(): void {
    if (this.state === 'closed' || this.options.keepAlive !== true) return;
    this.keepAlive.hold(this.pending === 0 || this.busyOutboxes > 0 || this.idleWatch?.waiting === true);
  }

  /**
   * The loop has nothing left to do while calls are pending: 'never-settled' when they were all
   * answered with NeverSettledError (see IdleWatch), 'waiting' when a caller may still act.
   */
  onLoopIdle(): 'never-settled' | 'waiting' | 'nothing-pending' {
    if (this.pending === 0) return 'nothing-pending';
    return (this.idleWatch ??= new (idleWatch().IdleWatch)(this)).onLoopIdle();
  }

  /**
   * Stops taking calls, aborts the signals of the calls in flight and waits for them to settle,
   * up to `timeout` ms. Calls still running then are answered with ClosedError by the caller's side.
   */
  async close(timeout: number): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'closing';
    for (const conn of this.connections) {
      conn.line.announce(HostState.Closing);
      for (const call of conn.inflight.values()) call.context.abort(new ClosedError('the loop thread is closing'));
    }
    if (this.pending > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        timer = setTimeout(resolve, timeout);
      });
      clearTimeout(timer);
    }
    await this.enteredResources?.exitAll();
    await this.endIterations(timeout);
  }

  /** Ends the iterations callers left open (their generators' finally blocks run), up to `timeout` ms. */
  private async endIterations(timeout: number): Promise<void> {
    const open = [...this.connections].flatMap((conn) => (conn.hasLent ? [...conn.lender.iterating] : []));
    if (open.length === 0) return;
    const { endIteration } = lender();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(open.map(endIteration)),
      new Promise((resolve) => (timer = setTimeout(resolve, timeout))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Resolves once every reply is out of the outboxes: each caller has acknowledged, in shared
   * memory, the reply before it (see Outbox).
   */
  whenFlushed(): Promise<void> {
    if (this.busyOutboxes === 0) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /** From now on every call is answered with ClosedError (the loop thread is about to end). */
  refuseCalls(): void {
    if (this.state === 'running') this.state = 'closing';
  }

  /**
   * Final: marks every connection with `state` and stops keeping the loop alive. A dying thread
   * first sends each connection its last words (exit code, uncaught error), which a caller reads
   * from its port whether it is blocked or awaiting.
   */
  shutDown(state: HostState.Closed | HostState.Crashed, exitCode = 0, error?: unknown): void {
    this.state = 'closed';
    this.keepAlive.dispose();
    // Handles never connected: their connections, should they come, find the port closed.
    for (const port of this.accepting) port.close();
    this.accepting.clear();
    for (const conn of this.connections) {
      if (state === HostState.Crashed) {
        postOn(conn.port, (w) => {
          writeDied(w, exitCode, error);
        });
      }
      conn.line.announce(state, exitCode);
      conn.port.close();
    }
  }
}

function isConnectRequest(p: unknown): p is ConnectRequest {
  const c = (p as Partial<ConnectRequest> | null)?.connect;
  return typeof c === 'object' && c !== null && c.port instanceof MessagePort;
}

function abortReason(kind: CancelKind): Error {
  return cancelError(kind, 'the caller timed out waiting for this call', 'the caller cancelled this call');
}
