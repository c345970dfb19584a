/**
 * Looking for blocking requests between turns of the serving thread's event loop: one doorbell
 * for every connection.
 *
 * A blocking caller wakes a sleeping host with a WAKE message on its port, and that message costs
 * both sides more than the call itself. While this thread's loop is turning anyway (port
 * messages, requests taken, replies sent), it looks at every connection between turns
 * (setImmediate) and the callers are told not to ring (readerSleeps 0): a request on any
 * connection is found in the same pass, without a message. Looking goes on while each turn saw
 * such activity, and after a blocking reply for about as long as a wake-up costs here (the one
 * spin policy: a blocking caller calls again soon). Once a turn saw nothing and that time is up,
 * every connection goes back to being woken by message (and is looked at once more, so no
 * request is missed). Timers, I/O and async calls run between the looks.
 */
import type { HostConnection } from './host-connection.js';
import { SpinPolicy } from '../shm/spin-policy.js';

export class RequestPoller {
  /** The connections answered blocking and watched for their next request, with when (performance.now()). */
  readonly #watched = new Map<HostConnection, number>();
  readonly #policy = new SpinPolicy();
  #budget = 0;
  #until = 0;
  #scheduled = false;
  /** When the last look ran (performance.now()). */
  #lastLook = 0;
  /** Bumped by every poke: a look that sees it unchanged since the last one saw an idle turn. */
  #activity = 0;
  #seenActivity = 0;
  /** Which connections were active in this turn and the one before: one, or null for several. */
  #active: HostConnection | null | undefined;
  #activeBefore: HostConnection | null | undefined;

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

  /** Whether the connections are looked at between turns (their callers need not ring). */
  get awake(): boolean {
    return this.#scheduled;
  }

  /** `conn`'s caller made this thread's loop turn (a message, a request): look between turns meanwhile. */
  poke(conn: HostConnection): void {
    this.#activity++;
    if (this.#active === undefined) this.#active = conn;
    else if (this.#active !== conn) this.#active = null;
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#lastLook = performance.now();
    this.#seenActivity = this.#activity;
    for (const conn of this.connections) Atomics.store(conn.line.words, conn.line.request.readerSleepsIndex, 0);
    setImmediate(this.#look);
  }

  /** After answering `conn`'s blocking request: look for its next for about a wake-up's cost too. */
  watch(conn: HostConnection): void {
    const budget = this.#policy.next();
    if (budget <= 0) {
      // A wait not looked for still counts down the policy's time off.
      this.#policy.observe(0, 0);
    } else {
      const at = performance.now();
      this.#watched.set(conn, at);
      this.#budget = budget;
      this.#until = Math.max(this.#until, at + budget);
    }
    this.poke(conn);
  }

  /**
   * Whether a caller other than `conn`'s uses this thread: it made the loop turn in this turn or
   * the one before, or it is watched (between blocking calls).
   */
  othersThan(conn: HostConnection): boolean {
    const other = (a: HostConnection | null | undefined): boolean => a !== undefined && a !== conn;
    return other(this.#active) || other(this.#activeBefore) || this.#watched.size > (this.#watched.has(conn) ? 1 : 0);
  }

  readonly #look = (): void => {
    const t = performance.now();
    // A turn of the loop that took half the budget: this thread was descheduled (more threads
    // than cores) or has work of its own. Either way looking past activity costs what it would save.
    if (this.#watched.size > 0 && t - this.#lastLook > this.#budget / 2) this.#policy.backOff();
    this.#lastLook = t;
    const busy = this.#activity !== this.#seenActivity;
    this.#seenActivity = this.#activity;
    this.#activeBefore = this.#active;
    this.#active = undefined;
    for (const conn of this.connections) {
      if (!this.serves(conn) || conn.line.request.seq() === conn.seenRequest) continue;
      const since = this.#watched.get(conn);
      if (since !== undefined) {
        this.#watched.delete(conn);
        this.#policy.observe(t - since, this.#budget);
      }
      this.take(conn);
    }
    if (busy || (this.#watched.size > 0 && t < this.#until)) {
      setImmediate(this.#look);
      return;
    }
    this.#scheduled = false;
    this.#activeBefore = undefined;
    for (let i = 0; i < this.#watched.size; i++) this.#policy.observe(Infinity, this.#budget);
    this.#watched.clear();
    for (const conn of this.connections) if (this.serves(conn)) this.idle(conn);
  };
}
