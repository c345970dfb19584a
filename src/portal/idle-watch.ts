/**
 * What a host's loop going idle with calls pending means. A call whose promise waits for nothing
 * that can still happen would leave its caller waiting forever: when no connected thread can act
 * any more, such calls are answered with NeverSettledError (as Node's loader hooks answer
 * "never-settle").
 */
import { NeverSettledError } from '../errors.js';
import { Status, type Settled } from '../call/run.js';
import type { HostConnection } from './host-connection.js';
import { writeIdle } from './messages.js';

/** What the watch needs of its host. */
export interface IdleHost {
  readonly connections: ReadonlySet<HostConnection>;
  reply(conn: HostConnection, id: number, viaPort: boolean, status: Settled, value: unknown): void;
  /** From now on every call is answered with ClosedError. */
  refuseCalls(): void;
  /** `waiting` changed: the host decides again whether to keep its loop alive. */
  updateKeepAlive(): void;
}

export class IdleWatch {
  /** The loop went idle with calls pending, but a connected thread that is not blocked may still act. */
  waiting = false;

  constructor(private readonly host: IdleHost) {}

  /** Something happened (a request, a caller gone): the host's loop is no longer known to be idle. */
  reset(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.host.updateKeepAlive();
  }

  /**
   * The loop has nothing left to do while calls are pending. If every connected thread is blocked
   * in a call here, none of them can send what would settle the pending calls: answer them all
   * with NeverSettledError ('never-settled'). Otherwise a thread that is free may still do so:
   * tell the free threads with calls pending that the loop is idle (they know whether they
   * themselves have anything left to do; see AsyncCalls) and keep waiting ('waiting').
   */
  onLoopIdle(): 'never-settled' | 'waiting' {
    const connections = this.host.connections;
    // A caller serving a callback of ours is working for us: its answer will come.
    for (const conn of connections) {
      if (conn.callbacks.size > 0) return this.#wait();
    }
    const free = [...connections].filter((conn) => conn.blockedIn() === 0);
    if (free.length === 0) {
      // Refuse calls first: answering lets a caller send its next call at once.
      this.host.refuseCalls();
      this.#answerNeverSettled();
      return 'never-settled';
    }
    for (const conn of free) {
      if (conn.inflight.size === 0) continue;
      conn.post((w) => {
        writeIdle(w, conn.lastRequest);
      });
    }
    return this.#wait();
  }

  #wait(): 'waiting' {
    this.waiting = true;
    this.host.updateKeepAlive();
    return 'waiting';
  }

  /** Answers every call still owed an answer with NeverSettledError (and aborts its signal). */
  #answerNeverSettled(): void {
    for (const conn of this.host.connections) {
      for (const [id, call] of conn.inflight) {
        if (call.abandoned && !call.viaPort) continue;
        call.abandoned = true;
        call.context.abort(new NeverSettledError('the loop thread went idle'));
        this.host.reply(
          conn,
          id,
          call.viaPort,
          Status.Thrown,
          new NeverSettledError(
            'the call can never settle: the loop thread went idle with its promise still pending ' +
              '(it awaits something that nothing will resolve)',
          ),
        );
      }
    }
  }
}
