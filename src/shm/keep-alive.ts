/**
 * Holding a thread's event loop open while something waits that Node does not count: a pending
 * Atomics.waitAsync, a call whose answer comes through shared memory, a pool task. Each holder is
 * one interval made once and only ref'd and unref'd after that, which costs far less than making
 * and clearing a timer per wait; it never fires.
 */
const FOREVER_MS = 1 << 30;

export class KeepAlive {
  readonly #timer = setInterval(() => undefined, FOREVER_MS);

  constructor() {
    this.#timer.unref();
  }

  /** Holds the loop open (true) or lets it end (false). */
  hold(on: boolean): void {
    if (on) this.#timer.ref();
    else this.#timer.unref();
  }

  /** Done for good. */
  dispose(): void {
    clearInterval(this.#timer);
  }
}

/** One holder for every async Channel wait of this thread, counted. */
let waiting = 0;
let shared: KeepAlive | undefined;

export function holdLoop(): void {
  if (waiting++ === 0) (shared ??= new KeepAlive()).hold(true);
}

export function releaseLoop(): void {
  if (--waiting === 0) shared?.hold(false);
}
