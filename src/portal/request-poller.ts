/**
 * Looking for the next blocking requests between turns of the serving thread's event loop.
 *
 * A blocking caller calls again soon after its answer, and waking this thread by message costs
 * both sides more than the call itself. With one caller the host spins for its next request
 * (PortalHost.reply); with several, spinning for one would hold up the others and this thread's
 * own loop. So after answering, the connection is watched instead: its caller is told not to wake
 * this thread (readerSleeps 0), and every turn of the loop (setImmediate) looks at all watched
 * connections, for about as long as a wake-up costs here (the one spin policy). Requests found are
 * taken without a message; when the time is up, the connections that stayed quiet go back to
 * being woken by message. Timers, I/O and async calls run between the looks.
 *
 * One doorbell for all: while awaited calls keep this loop turning anyway (their port messages),
 * every connection is looked at between turns and no caller rings; a turn without one ends that,
 * and every connection is woken by message again (after one more look, so no request is missed).
 */
import type { HostConnection } from './host-connection.js';
import { SpinPolicy } from '../shm/spin-policy.js';

export class RequestPoller {
  /** The watched connections, with when each was last answered (performance.now()). */
  readonly #watched = new Map<HostConnection, number>();
  readonly #policy = new SpinPolicy();
  #budget = 0;
  #until = 0;
  #scheduled = false;
  /** When the last look ran (performance.now()). */
  #lastLook = 0;
  /** Awaited calls keep the loop turning: every connection is looked at, and none rings. */
  #open = false;
  /** Port messages since the last look. */
  #heard = false;

  constructor(
    /** The connections served. */
    private readonly connections: Iterable<HostConnection>,
    /** Takes the connection's next request (it has one). */
    private readonly take: (conn: HostConnection) => void,
    /** Makes the connection's caller wake this thread by message again (and looks once more). */
    private readonly idle: (conn: HostConnection) => void,
    /** Whether the connection is still served. */
    private readonly serves: (conn: HostConnection) => boolean,
  ) {}

  /** Whether every connection is looked at between turns (no caller need ring). */
  get open(): boolean {
    return this.#open;
  }

  /** After answering `conn`'s blocking request. False if the policy says not to look (cores are short). */
  watch(conn: HostConnection): boolean {
    const budget = this.#policy.next();
    if (budget <= 0) {
      // A wait not looked for still counts down the policy's time off.
      this.#policy.observe(0, 0);
      return false;
    }
    Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 0);
    const at = performance.now();
    this.#watched.set(conn, at);
    this.#budget = budget;
    this.#until = Math.max(this.#until, at + budget);
    this.#schedule(at);
    return true;
  }

  /** A port message that is not a WAKE (an awaited call): this loop turns for callers now. */
  heard(): void {
    this.#heard = true;
    if (this.#open) return;
    this.#open = true;
    for (const conn of this.connections) Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 0);
    this.#schedule(performance.now());
  }

  /** Whether a connection other than `conn` is watched (its caller is between blocking calls). */
  watchesOtherThan(conn: HostConnection): boolean {
    return this.#watched.size > (this.#watched.has(conn) ? 1 : 0);
  }

  #schedule(at: number): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#lastLook = at;
    setImmediate(this.#look);
  }

  readonly #look = (): void => {
    this.#scheduled = false;
    const t = performance.now();
    // A turn of the loop that took half the budget: this thread was descheduled (more threads
    // than cores) or has work of its own. Either way looking costs what it would save: stop.
    if (this.#watched.size > 0 && t - this.#lastLook > this.#budget / 2) this.#policy.backOff();
    this.#lastLook = t;
    const heard = this.#heard;
    this.#heard = false;
    for (const conn of this.#open ? this.connections : this.#watched.keys()) {
      const since = this.#watched.get(conn);
      if (!this.serves(conn)) {
        this.#watched.delete(conn);
      } else if (conn.line.request.seq() !== conn.seenRequest) {
        this.#watched.delete(conn);
        if (since !== undefined) this.#policy.observe(t - since, this.#budget);
        this.take(conn);
      }
    }
    if (this.#open && !heard) {
      // A turn without awaited calls: every connection rings again (and is looked at once more).
      this.#open = false;
      for (const conn of this.connections) if (this.serves(conn) && !this.#watched.has(conn)) this.idle(conn);
    }
    if (this.#watched.size === 0 && !this.#open) return;
    if (this.#open || t < this.#until) {
      this.#scheduled = true;
      setImmediate(this.#look);
      return;
    }
    for (const conn of this.#watched.keys()) {
      this.#policy.observe(Infinity, this.#budget);
      this.idle(conn);
    }
    this.#watched.clear();
  };
}
