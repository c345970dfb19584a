/**
 * What waiting costs on this machine, measured rather than assumed: the same kind of VM has shown
 * futex round trips of 50 us one week and 370 us the next. A few milliseconds of ping-pong with a
 * thread of its own give the three costs the spin policy weighs:
 *
 *   futex round trip   both threads sleep in Atomics.wait and wake each other with notify
 *   spin round trip    both threads spin on a shared word
 *   port wake          a message posted to a thread whose event loop is idle, until it acts
 *
 * Medians, so one descheduling does not skew them.
 */
import { Worker } from 'node:worker_threads';

export interface MachineCosts {
  /** Median round trip (ms) through Atomics.wait/notify, both sides asleep in turn. */
  futexRoundTripMs: number;
  /** Median round trip (ms) between two spinning threads. */
  spinRoundTripMs: number;
  /** Median time (ms) from posting a message to an idle event loop until that thread acts on it. */
  portWakeMs: number;
}

const PING = 0;
const PONG = 1;
const PHASE = 2;
const FUTEX_ROUNDS = 31;
const SPIN_ROUNDS = 201;
const PORT_ROUNDS = 15;
/** Where the partner stamps when it acts on a message (on the clock all threads share). */
const ACTED_BYTE = 16;

/** The partner thread: answers pings by futex, then by spinning, then port messages, as PHASE says. */
const partner = `
const { workerData, parentPort } = require('node:worker_threads');
const w = new Int32Array(workerData);
let seen = 0;
for (;;) {
  const phase = Atomics.load(w, ${PHASE});
  if (phase === 2) break;
  if (phase === 0) Atomics.wait(w, ${PING}, seen);
  const ping = Atomics.load(w, ${PING});
  if (ping === seen) continue;
  seen = ping;
  Atomics.store(w, ${PONG}, ping);
  Atomics.notify(w, ${PONG});
}
const acted = new Float64Array(workerData, ${ACTED_BYTE}, 1);
parentPort.on('message', (n) => {
  acted[0] = performance.timeOrigin + performance.now();
  Atomics.store(w, ${PONG}, n);
  Atomics.notify(w, ${PONG});
});
parentPort.postMessage('ready');
`;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
};

/** Measures this machine's costs with a short-lived thread (a few ms once it has started). */
export async function measureMachineCosts(): Promise<MachineCosts> {
  const sab = new SharedArrayBuffer(ACTED_BYTE + 8);
  const acted = new Float64Array(sab, ACTED_BYTE, 1);
  const w = new Int32Array(sab);
  const worker = new Worker(partner, { eval: true, workerData: sab });
  try {
    const exchange = (rounds: number, spin: boolean): number => {
      const times: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const ping = Atomics.load(w, PING) + 1;
        const start = performance.now();
        Atomics.store(w, PING, ping);
        if (!spin) Atomics.notify(w, PING);
        while (Atomics.load(w, PONG) !== ping) if (!spin) Atomics.wait(w, PONG, ping - 1, 1_000);
        times.push(performance.now() - start);
      }
      return median(times.slice(1));
    };
    // The partner sleeps on PING in phase 0: the first exchange also waits for it to start.
    exchange(1, false);
    const futexRoundTripMs = exchange(FUTEX_ROUNDS, false);
    // Wake the partner from its futex sleep into the spinning phase.
    Atomics.store(w, PHASE, 1);
    Atomics.notify(w, PING);
    const spinRoundTripMs = exchange(SPIN_ROUNDS, true);
    Atomics.store(w, PHASE, 2);
    Atomics.store(w, PING, Atomics.load(w, PING) + 1);
    Atomics.notify(w, PING);
    await new Promise((resolve) => worker.once('message', resolve));
    // The partner's loop is idle now: each message wakes it, and it stamps when it acts on it (this
    // thread sleeps meanwhile: spinning here could take the core the partner needs).
    const wakes: number[] = [];
    for (let n = 1; n <= PORT_ROUNDS; n++) {
      const before = Atomics.load(w, PONG);
      const posted = performance.timeOrigin + performance.now();
      worker.postMessage(n + 1_000_000);
      while (Atomics.load(w, PONG) !== n + 1_000_000) Atomics.wait(w, PONG, before, 1_000);
      wakes.push(Math.max(0, (acted[0] as number) - posted));
      // Let the partner's loop go idle again before the next message.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { futexRoundTripMs, spinRoundTripMs, portWakeMs: median(wakes) };
  } finally {
    await worker.terminate();
  }
}
