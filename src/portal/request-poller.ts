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

  constructor(
    /** Takes the connection's next request (it has one). */
    private readonly take: (conn: HostConnection) => void,
    /** Makes the connection's caller wake this thread by message again (and looks once more). */
    private readonly idle: (conn: HostConnection) => void,
    /** Whether the connection is still served. */
    private readonly serves: (conn: HostConnection) => boolean,
  ) {}

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
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#lastLook = at;
      setImmediate(this.#look);
    }
    return true;
  }

  /** Whether `conn` is watched (its caller need not wake this thread for its next request). */
  watches(conn: HostConnection): boolean {
    return this.#watched.has(conn);
  }

  /** How many connections other than `conn` are watched (their callers are between blocking calls). */
  othersWatched(conn: HostConnection): number {
    return this.#watched.size - (this.watches(conn) ? 1 : 0);
  }

  readonly #look = (): void => {
    this.#scheduled = false;
    const t = performance.now();
    // A turn of the loop that took half the budget: this thread was descheduled (more threads
    // than cores) or has work of its own. Either way looking costs what it would save: stop.
    if (t - this.#lastLook > this.#budget / 2) this.#policy.backOff();
    this.#lastLook = t;
    for (const [conn, since] of this.#watched) {
      if (!this.serves(conn)) {
        this.#watched.delete(conn);
      } else if (conn.line.request.seq() !== conn.seenRequest) {
        this.#watched.delete(conn);
        this.#policy.observe(t - since, this.#budget);
        this.take(conn);
      }
    }
    if (this.#watched.size === 0) return;
    if (t < this.#until) {
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
