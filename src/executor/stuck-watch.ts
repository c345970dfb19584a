/**
 * Whether the pool keeps the process alive: while tasks are unsettled it does, unless every busy
 * worker is stuck on a task that only this thread could still settle, by cancelling it
 * (PoolWorker.stuckOn). Then it waits for this thread to have nothing left to do either, as a
 * LoopThread's caller does, and drops those tasks: they can never settle.
 */
import { KeepAlive } from '../shm/keep-alive.js';
import type { PoolWorker } from './worker.js';

export class StuckWatch {
  readonly #keepAlive = new KeepAlive();
  /** Some busy worker was stuck at the last look. */
  stuck = false;
  /** Listening for this thread's 'beforeExit' (see #onIdle). */
  #watchingIdle = false;

  constructor(
    private readonly workers: readonly PoolWorker[],
    private readonly unsettled: () => number,
  ) {}

  /** The first task was submitted, or the last one settled. */
  hold(on: boolean): void {
    this.#keepAlive.hold(on);
  }

  /** Looks again at the busy workers. */
  update(): void {
    let stuck = false;
    let going = false;
    for (const w of this.workers) {
      if (w.outstanding === 0) continue;
      if (w.stuckOn() !== 0) stuck = true;
      else going = true;
    }
    this.stuck = stuck;
    this.#keepAlive.hold(this.unsettled() > 0 && (going || !stuck));
    if (stuck && !this.#watchingIdle) {
      this.#watchingIdle = true;
      process.once('beforeExit', this.#onIdle);
    }
  }

  dispose(): void {
    this.#keepAlive.dispose();
    process.removeListener('beforeExit', this.#onIdle);
  }

  /** This thread has nothing left to do: it will cancel nothing, so stuck tasks can never settle. */
  readonly #onIdle = (): void => {
    this.#watchingIdle = false;
    for (const w of this.workers) {
      const seq = w.stuckOn();
      if (seq !== 0) w.drop(seq);
    }
    // Alive again until the workers' answers are in.
    this.update();
  };
}
