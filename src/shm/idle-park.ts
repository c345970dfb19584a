/**
 * How an event-loop thread that serves requests through shared memory waits for the next one when
 * it has run dry: in its event loop (the other side wakes it with a message), or, while that loop
 * has nothing else to do, parked in Atomics.wait (the other side wakes it with a notify).
 *
 * Both wake a thread about as soon, but a futex wake costs both threads far less CPU than a port
 * message (the post takes the port's lock and writes an eventfd; the woken loop returns from epoll,
 * takes the lock again, deserializes and dispatches an event). With a core kept busy by another
 * process, every microsecond of CPU is a microsecond of wall time: a pool worker woken by futex
 * answered serial tasks in 14 us against 17-18 us woken by message.
 *
 * A parked thread's loop is frozen, so it parks only when the loop has nothing that could run:
 * no ref'd handle, request or timer (process.getActiveResourcesInfo(), 0.1 us when empty). What the
 * loop cannot show (a microtask queued by the last request, an unref'd timer or socket) waits at
 * most `ms`, which the caller makes the rest of the time it may hold its loop anyway while it
 * serves; after that the thread idles in its loop until the next request. (Parking from a
 * setImmediate instead, with every microtask run, cost a turn of the loop per request and gave
 * back half the gain.)
 *
 * One Int32 word holds the state (ParkState); the serving thread writes InLoop before it leaves its
 * loop idle, the other side takes the word to Awake when it hands over work (wakeIdle) and to
 * InLoop when it posts some other message (wakeToLoop).
 */
import { sleepOn } from './wait.js';

export const enum ParkState {
  /** Working, or about to look for work: no wake-up is needed. */
  Awake = 0,
  /** Idle in its event loop: a message wakes it. */
  InLoop = 1,
  /** Parked in Atomics.wait on the word: a notify wakes it. */
  Parked = 2,
}

/**
 * Whether an idle loop has something that could run (and so must not be frozen), beyond the
 * `own` resources that the serving code itself holds (a keep-alive timer).
 */
export function loopHasWork(own: number): boolean {
  // A runtime that cannot tell (an older Bun or Deno) is taken to have work: the thread idles in its loop.
  if (typeof process.getActiveResourcesInfo !== 'function') return true;
  return process.getActiveResourcesInfo().length > own;
}

/**
 * Parks the calling thread, whose word is InLoop and whose loop has run dry, for up to `ms`. Says
 * whether it was woken for work (the word is Awake: serve now); otherwise the word is InLoop, or
 * Awake with a wake-up message on its way, and the thread goes back to its loop.
 */
export function parkIdle(words: Int32Array, index: number, ms: number, own: number): boolean {
  if (loopHasWork(own)) return false;
  // Woken meanwhile (the word is Awake): a wake-up message is on its way.
  if ((Atomics.compareExchange(words, index, ParkState.InLoop, ParkState.Parked) as ParkState) !== ParkState.InLoop) {
    return false;
  }
  sleepOn(words, index, ParkState.Parked, ms);
  // Timed out: back to the loop, unless the other side takes the word just now.
  const was = Atomics.compareExchange(words, index, ParkState.Parked, ParkState.InLoop) as ParkState;
  return was === ParkState.Awake;
}

/** Whether the serving thread waits for work (in its loop or parked), as far as this thread can see. */
export function isIdle(words: Int32Array, index: number): boolean {
  return (Atomics.load(words, index) as ParkState) !== ParkState.Awake;
}

/**
 * Work has been published for the serving thread, which was seen idle (isIdle): wakes it, with
 * `post` (a message) if it idles in its loop, by notify if parked. Says whether it had to be woken.
 */
export function wakeIdle(words: Int32Array, index: number, post: () => void): boolean {
  switch (Atomics.exchange(words, index, ParkState.Awake) as ParkState) {
    case ParkState.Awake:
      return false;
    case ParkState.InLoop:
      post();
      return true;
    case ParkState.Parked:
      Atomics.notify(words, index);
      return true;
  }
}

/** A message has been posted to the serving thread: a parked thread goes back to its loop to read it. */
export function wakeToLoop(words: Int32Array, index: number): void {
  if ((Atomics.compareExchange(words, index, ParkState.Parked, ParkState.InLoop) as ParkState) === ParkState.Parked) {
    Atomics.notify(words, index);
  }
}
