/**
 * The async half of a client: requests by the MessagePort, each a Future settled by its reply
 * (matched by call id), with its own timeout and signal; callbacks the other side calls while
 * this thread's loop runs; and what the host's idle notice means for the calls still pending.
 */
import { CancelKind, runCall, Status } from '../call/run.js';
import { NeverSettledError, TimeoutError } from '../errors.js';
import { Future, type FutureControl } from '../future.js';
import { ASYNC_SEQ, HostState, STATE } from '../protocol/line.js';
import { changed, waitForChange } from '../shm/wait.js';
import type { CallOptions, Write } from './client-blocking.js';
import type { CallMessage, ClientCore } from './client-core.js';
import { MessageKind, postOn, readPacket, WAKE, writeRelease, writeReply, type PortPacket } from './messages.js';

interface PendingCall {
  control: FutureControl<unknown>;
  cleanup: () => void;
}

export class AsyncCalls {
  private readonly pending = new Map<number, PendingCall>();
  /** The host said its loop is idle with our async calls pending; cleared by our next request. */
  private hostIdle = false;
  /** The host was asked to look again since the last sign of life (see askAgain). */
  private askedAgain = false;
  private exitWatch = false;

  constructor(private readonly core: ClientCore) {}

  /** Rejects every call still waiting with `error` (the client failed). */
  failAll(error: Error): void {
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.cleanup();
      call.control.reject(error);
      call.control.settle();
    }
  }

  onPortMessage(p: PortPacket): void {
    if (p === WAKE) return;
    const reply = readPacket(p, this.core.reviveAsync);
    if (reply.kind === MessageKind.Idle) {
      if (reply.id >= this.core.lastSent) this.onHostIdle();
      return;
    }
    if (reply.kind === MessageKind.Died) {
      this.core.died = reply;
      return;
    }
    if (reply.kind === MessageKind.Call) {
      this.serveFromPort(reply);
      return;
    }
    if (reply.kind === MessageKind.Release) {
      for (let i = 0; i + 1 < reply.released.length; i += 2) {
        this.core.lender.release(reply.released[i] as number, reply.released[i + 1] as number);
      }
      return;
    }
    if (reply.kind !== MessageKind.Reply) return;
    const call = this.pending.get(reply.id);
    if (call === undefined) return;
    this.askedAgain = false;
    this.pending.delete(reply.id);
    call.cleanup();
    if (reply.status === Status.Ok) call.control.resolve(reply.value);
    else call.control.reject(reply.value);
    call.control.settle();
    if (this.pending.size === 0) this.core.hooks.onBusy?.(false);
  }

  /**
   * The host's loop is idle while our async calls wait: only a request from some thread can
   * settle them now. Stop keeping this process alive for them; if this thread then has nothing
   * left to do either (its loop is about to exit), nothing can settle them: NeverSettledError.
   */
  private onHostIdle(): void {
    if (this.pending.size === 0) return;
    this.hostIdle = true;
    this.core.hooks.onBusy?.(false);
    if (this.exitWatch) return;
    this.exitWatch = true;
    process.once('beforeExit', () => {
      this.exitWatch = false;
      if (this.hostIdle && !this.askAgain()) this.neverSettled();
    });
  }

  /**
   * The host said it was idle before this thread's last acts, and one of them may have woken it: a
   * notify that its Atomics.waitAsync waits for reaches it through its loop, after it said so. So
   * before giving up, this thread asks it to look once more: any message takes the host's loop out
   * of idle, and once that loop has run what was due, it says again whether it is idle (or the
   * calls settle). True if asked now; false if it already was since the last sign of life (a reply,
   * a new call): then the calls can never settle.
   */
  private askAgain(): boolean {
    if (this.askedAgain) return false;
    // An empty list of released references: a message that asks for nothing. (It cannot go if the
    // host is gone: then nothing is held for an answer either.)
    const sent = this.core.post((w) => {
      writeRelease(w, []);
    });
    if (!sent) return false;
    this.askedAgain = true;
    this.hostIdle = false;
    this.core.hooks.onBusy?.(true);
    return true;
  }

  private neverSettled(): void {
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.cleanup();
      call.control.reject(
        new NeverSettledError(
          'the call can never settle: the loop thread went idle with its promise still pending, and the calling thread has nothing left to do',
        ),
      );
      call.control.settle();
      this.core.cancelRemote(id, CancelKind.Cancel);
    }
    this.core.hooks.onNeverSettled?.();
  }

  /** Blocks until `isDone()`, receiving port replies meanwhile: the blocking wait of a Future. */
  private blockForPort = (isDone: () => boolean, deadline: number): void => {
    this.core.guard();
    this.core.blocked(() => {
      this.waitForPort(isDone, deadline);
    });
  };

  private waitForPort(isDone: () => boolean, deadline: number): void {
    const words = this.core.line.words;
    for (;;) {
      const seen = Atomics.load(words, ASYNC_SEQ);
      this.core.pump();
      if (isDone()) return;
      // Blocked here, this thread cannot send what would settle it: if the host is idle, nothing
      // will (once the host has looked again after this thread's last acts).
      if (this.hostIdle && !this.askAgain()) {
        this.neverSettled();
        return;
      }
      if (!waitForChange(words, ASYNC_SEQ, seen, deadline, this.core.checkAlive)) return;
    }
  }

  send<T>(write: Write, options: CallOptions): Future<T> {
    const id = ++this.core.nextId;
    const [future, control] = Future.create<T>({
      block: this.blockForPort,
      onCancel: () => {
        this.core.cancelRemote(id, CancelKind.Cancel);
      },
    });
    if (this.core.failure !== undefined) {
      control.reject(this.core.failure);
      control.settle();
      return future;
    }
    const { signal, timeout } = options;
    if (signal?.aborted === true) {
      future.cancel(signal.reason);
      control.settle();
      return future;
    }
    this.core.flushReleases();
    try {
      postOn(this.core.port, (w) => {
        write(w, id);
      });
    } catch (error) {
      control.reject(error);
      control.settle();
      return future;
    }
    this.core.lastSent = id;
    control.running();
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const startTimer = (): void => {
      if (settled || timeout === undefined) return;
      timer = setTimeout(() => {
        if (control.reject(new TimeoutError(`the call to ${this.core.name} timed out after ${String(timeout)} ms`))) {
          this.core.cancelRemote(id, CancelKind.Timeout);
        }
      }, timeout);
      timer.unref();
    };
    if (timeout !== undefined) {
      // The call's timeout is its own: it starts once the serving thread has started.
      const started = changed(this.core.line.words, STATE, HostState.Starting);
      if (started === undefined) startTimer();
      else void started.then(startTimer);
    }
    const onAbort = (): void => {
      future.cancel(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (this.pending.size === 0 || this.hostIdle) this.core.hooks.onBusy?.(true);
    this.hostIdle = false;
    this.askedAgain = false;
    this.pending.set(id, {
      control,
      cleanup: () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      },
    });
    return future;
  }

  /** A callback called while this thread's event loop runs: its result, awaited, goes back by the port. */
  private serveFromPort(m: CallMessage): void {
    // A plain result is answered at once: this thread may be blocked waiting for a Future.
    void runCall(
      undefined,
      () => this.core.perform(m),
      (status, value) => {
        // (If the other side is gone, nobody waits for this answer.)
        this.core.post((w) => {
          writeReply(w, m.id, status, value, this.core.remotes.lending);
        });
      },
    );
  }
}
