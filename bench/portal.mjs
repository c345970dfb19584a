// Benchmark: worker threads calling into the MAIN thread's event loop through a Portal, against a
// hand-written bridge of the kind loopthread's peers use, and (for reference) into a LoopThread.
// Run with `npm run bench:portal` (builds first; about 90 s on 2 cores) or
// `node bench/portal.mjs [--idle-only | --busy-only] [--quick]` (`BENCH_ONLY=mixed`: section 4 alone). Every section runs in both regimes, one
// after the other: an idle machine, and one core kept busy by another process.
//
// 1. Round trip: one worker, blocking calls of a trivial echo of an 8-byte string, each call timestamped;
//    median per-call time per round, after a warm-up, rounds of the two cases taking turns.
// 2. Throughput: 1, 2 and 4 workers at once, each making N calls (N chosen from a warm-up so that a round
//    takes about ROUND_MS), blocking, and async with WINDOW calls in flight per worker.
// 3. The same blocking throughput into a LoopThread (loop.createHandle() + LoopThread.connect()).
// 4. Mixed (the issue's target: at least 3x): MIXED_WORKERS workers at once, each making MIXED_CALLS calls
//    in turn blocking and awaited (`echoSync`, then `await echo`), against the hand-written bridges doing
//    the same (blocking: Atomics.wait + receiveMessageOnPort; awaited: postMessage and on('message'));
//    wall time from the start signal until the last worker is done, median of rounds, after warm-up
//    rounds of each until its time stops falling.
//
// The hand-written bridge: the worker posts {id, value} on a MessagePort to the main thread and blocks
// with Atomics.wait on a word of a SharedArrayBuffer; the main thread's 'message' handler answers with
// postMessage on a second port, then Atomics.add + Atomics.notify on that word; the worker reads the
// reply with receiveMessageOnPort, and sleeps again on the counter until its id's reply is there. The
// counter only goes up, and the worker reads it before it looks for the reply: a reply posted after the
// look moved the counter past what was read, so the wait returns at once and no wake-up is lost.
//
// Timing is done in the workers (on the clock all threads share); the main thread only serves and waits.
import { availableParallelism, cpus, loadavg } from 'node:os';
import process from 'node:process';
import {
  MessageChannel,
  Worker,
  isMainThread,
  parentPort,
  receiveMessageOnPort,
  workerData,
} from 'node:worker_threads';
import { LoopThread, Portal } from 'loopthread';
import { benchOptions, inRegime, machineTimes, saveResults } from './machine.mjs';

const VALUE = 'abcdefgh'; // 8 bytes
const WARMUP_MS = 400;
const ROUND_MS = 300;
const { quick, regimes } = benchOptions(isMainThread ? undefined : []);
const LATENCY_ROUNDS = quick ? 3 : 7;
const THROUGHPUT_ROUNDS = quick ? 3 : 5;
const THREADS = [1, 2, 4];
const MIXED_WORKERS = 8;
const MIXED_CALLS = 2_000;
const MIXED_ROUNDS = quick ? 3 : 5;
const MIXED_GOAL = 3;
const MIXED_WARM_ROUNDS = 6;
/** `BENCH_ONLY=mixed` runs section 4 alone. */
const MIXED_ONLY = process.env.BENCH_ONLY === 'mixed';
/** Async calls in flight per worker. */
const WINDOW = 64;
/** Other processes' load (in cores) above which the numbers are called skewed. */
const STRAY_CORES = 0.25;

/** Sent to the LoopThread as source text. */
const loopIdentity = async (x) => x;

/** Milliseconds on the clock that all threads of the process share. */
const sharedNow = () => performance.timeOrigin + performance.now();

// ---- worker side ---------------------------------------------------------------------------------

function workerMain() {
  const { portalHandle, loopHandle, bridge, asyncBridge, go } = workerData;
  const main = Portal.connect(portalHandle);
  const loop = LoopThread.connect(loopHandle);
  const goWord = new Int32Array(go);

  // The hand-written blocking bridge.
  const counter = new Int32Array(bridge.counter);
  let nextId = 0;
  const bridgeSync = (value) => {
    const id = ++nextId;
    bridge.requests.postMessage({ id, value });
    for (;;) {
      const seen = Atomics.load(counter, 0);
      for (let m = receiveMessageOnPort(bridge.replies); m !== undefined; m = receiveMessageOnPort(bridge.replies)) {
        if (m.message.id === id) return m.message.value;
        // Another id can only be a stale reply; there is none here, since one call is out at a time.
      }
      Atomics.wait(counter, 0, seen);
    }
  };

  // The hand-written async bridge: postMessage both ways, replies matched by id.
  const waiting = new Map();
  let nextAsyncId = 0;
  asyncBridge.replies.on('message', ({ id, value }) => {
    const resolve = waiting.get(id);
    waiting.delete(id);
    resolve(value);
  });
  asyncBridge.replies.unref();
  const bridgeAsync = (value) =>
    new Promise((resolve) => {
      const id = ++nextAsyncId;
      waiting.set(id, resolve);
      asyncBridge.requests.postMessage({ id, value });
    });

  const sync = {
    portal: () => main.echoSync(VALUE),
    bridge: () => bridgeSync(VALUE),
    loop: () => loop.runSync(loopIdentity, VALUE),
  };
  const asyncCalls = {
    portalAsync: () => main.echo(VALUE),
    bridgeAsync: () => bridgeAsync(VALUE),
  };

  const check = (value) => {
    if (value !== VALUE) throw new Error(`echo returned ${String(value)}`);
  };

  /** Runs calls until `done(calls)` says stop; returns how many were made. */
  async function run(mode, done) {
    let calls = 0;
    if (mode in sync) {
      const call = sync[mode];
      while (!done(calls)) {
        check(call());
        calls++;
      }
      return calls;
    }
    const call = asyncCalls[mode];
    let started = 0;
    const lane = async () => {
      while (!done(started)) {
        started++;
        check(await call());
        calls++;
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, lane));
    return calls;
  }

  const commands = {
    async check() {
      for (const mode of [...Object.keys(sync), ...Object.keys(asyncCalls)]) await run(mode, (n) => n >= 3);
    },
    /** Calls for `ms`; the speed is taken from the second half, once the first woke everything up. */
    async warm({ mode, ms }) {
      const start = performance.now();
      let half;
      const calls = await run(mode, (n) => {
        const t = performance.now() - start;
        if (half === undefined && t >= ms / 2) half = { n, t };
        return t >= ms;
      });
      return { calls: calls - half.n, ms: performance.now() - start - half.t };
    },
    latency({ mode, calls }) {
      const call = sync[mode];
      for (let i = 0; i < 20; i++) check(call()); // the first calls after the other case ran wake things up
      const stamps = new Float64Array(calls + 1);
      stamps[0] = performance.now();
      for (let i = 1; i <= calls; i++) {
        check(call());
        stamps[i] = performance.now();
      }
      const us = new Float64Array(calls);
      for (let i = 0; i < calls; i++) us[i] = (stamps[i + 1] - stamps[i]) * 1000;
      us.sort();
      return {
        medianUs: us[Math.floor((calls - 1) / 2)],
        p99Us: us[Math.min(calls - 1, Math.ceil(0.99 * calls) - 1)],
        meanUs: ((stamps[calls] - stamps[0]) * 1000) / calls,
      };
    },
    /** Calls in turn blocking and awaited, through the portal or through the hand-written bridges. */
    async mixed({ impl, calls, target }) {
      const blocking = impl === 'portal' ? sync.portal : sync.bridge;
      const awaited = impl === 'portal' ? asyncCalls.portalAsync : asyncCalls.bridgeAsync;
      parentPort.postMessage({ type: 'ready' });
      for (let g = Atomics.load(goWord, 0); g < target; g = Atomics.load(goWord, 0)) Atomics.wait(goWord, 0, g);
      const start = sharedNow();
      for (let i = 0; i < calls; i++) check(i % 2 === 0 ? blocking() : await awaited());
      return { start, end: sharedNow() };
    },
    async throughput({ mode, calls, target }) {
      if (mode in sync) for (let i = 0; i < 20; i++) check(sync[mode]());
      parentPort.postMessage({ type: 'ready' });
      // Every worker of the round starts at once.
      for (let g = Atomics.load(goWord, 0); g < target; g = Atomics.load(goWord, 0)) Atomics.wait(goWord, 0, g);
      const start = sharedNow();
      const made = await run(mode, (n) => n >= calls);
      return { start, end: sharedNow(), calls: made };
    },
  };

  parentPort.on('message', (msg) => {
    Promise.resolve()
      .then(() => commands[msg.cmd](msg))
      .then(
        (result) => parentPort.postMessage({ type: 'result', result }),
        (error) => parentPort.postMessage({ type: 'error', message: String(error?.stack ?? error) }),
      );
  });
  parentPort.postMessage({ type: 'online' });
}

// ---- main side -----------------------------------------------------------------------------------

/** A worker with everything it needs to call the main thread's portal, the bridges and the LoopThread. */
class BenchWorker {
  #waiters = [];
  #failure;

  constructor(index, portal, loop, api, go) {
    this.index = index;
    const portalHandle = portal.createHandle();
    const loopHandle = loop.createHandle();

    // The blocking bridge: requests on one channel, replies on another, a counter word to sleep on.
    const requests = new MessageChannel();
    const replies = new MessageChannel();
    const counterSab = new SharedArrayBuffer(4);
    const counter = new Int32Array(counterSab);
    requests.port2.on('message', ({ id, value }) => {
      replies.port2.postMessage({ id, value: api.echo(value) });
      Atomics.add(counter, 0, 1);
      Atomics.notify(counter, 0);
    });
    // The async bridge: the same without the counter.
    const asyncRequests = new MessageChannel();
    const asyncReplies = new MessageChannel();
    asyncRequests.port2.on('message', ({ id, value }) => {
      asyncReplies.port2.postMessage({ id, value: api.echo(value) });
    });
    this.ports = [requests.port2, replies.port2, asyncRequests.port2, asyncReplies.port2];

    this.worker = new Worker(new URL(import.meta.url), {
      name: `bench worker ${index}`,
      workerData: {
        portalHandle,
        loopHandle,
        go,
        bridge: { requests: requests.port1, replies: replies.port1, counter: counterSab },
        asyncBridge: { requests: asyncRequests.port1, replies: asyncReplies.port1 },
      },
      transferList: [
        portalHandle.port,
        loopHandle.port,
        requests.port1,
        replies.port1,
        asyncRequests.port1,
        asyncReplies.port1,
      ],
    });
    this.worker.on('message', (m) => {
      if (m.type === 'error') {
        this.#fail(new Error(`worker ${index}: ${m.message}`));
        return;
      }
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(m.result);
    });
    this.worker.on('error', (error) => {
      this.#fail(error);
    });
    this.worker.on('exit', (code) => {
      this.#fail(new Error(`worker ${index} exited (${code})`));
    });
    this.online = this.next('online');
  }

  #fail(error) {
    this.#failure ??= error;
    for (const w of this.#waiters.splice(0)) w.reject(this.#failure);
  }

  /** The next message of this type from the worker. */
  next(type) {
    return new Promise((resolve, reject) => {
      if (this.#failure !== undefined) reject(this.#failure);
      else this.#waiters.push({ type, resolve, reject });
    });
  }

  ask(cmd, args = {}) {
    const reply = this.next('result');
    this.worker.postMessage({ cmd, ...args });
    return reply;
  }

  async stop() {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
    for (const port of this.ports) port.close();
  }
}

/** A snapshot to measure CPU use from: the machine's, this process's (all its threads) and the main loop's. */
function cpuMark() {
  return {
    wall: performance.now(),
    machine: machineTimes(),
    own: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
  };
}

/** Cores used since `mark`: by this process (`own`), by other processes (`others`); the main loop's utilization. */
function cpuSince(mark) {
  const wallMs = performance.now() - mark.wall;
  const now = machineTimes();
  const machineCores = ((now.busy - mark.machine.busy) / Math.max(1, now.total - mark.machine.total)) * cpus().length;
  const { user, system } = process.cpuUsage(mark.own);
  const own = (user + system) / 1000 / wallMs;
  return {
    wallMs,
    ownCpuMs: (user + system) / 1000,
    own,
    others: Math.max(0, machineCores - own),
    mainElu: performance.eventLoopUtilization(mark.elu).utilization,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const int = (n) => Math.round(n).toLocaleString('en-US');
const medianOf = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

function printTable(rows, textColumns) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
  const line = (row) =>
    row
      .map((cell, i) => (i < textColumns ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i])))
      .join('  ');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows.slice(1)) console.log(line(row));
}

const LABELS = {
  portal: 'portal echoSync',
  bridge: 'hand-written bridge (sync)',
  portalAsync: `portal echo, ${WINDOW} in flight`,
  bridgeAsync: `hand-written postMessage, ${WINDOW} in flight`,
  loop: 'LoopThread runSync (connect)',
};

/** Every section in one regime; returns the ratios (>1: loopthread is faster). */
async function runRegime(regime) {
  // The bench's own busy process is not a stray load.
  const busyCores = regime.load ? 1 : 0;
  const summary = {};
  const api = { echo: (x) => x };
  const portal = Portal.open(api, { name: 'bench portal' });
  const loop = new LoopThread({ name: 'bench loop' });
  const goSab = new SharedArrayBuffer(4);
  const goWord = new Int32Array(goSab);
  let goCount = 0;
  const maxThreads = Math.max(...THREADS, MIXED_WORKERS);
  const workers = Array.from({ length: maxThreads }, (_, i) => new BenchWorker(i, portal, loop, api, goSab));
  const runMark = cpuMark();
  const sectionStray = [];

  try {
    await Promise.all(workers.map((w) => w.online));
    await Promise.all(workers.map((w) => w.ask('check')));

    // BENCH_ONLY=mixed: section 4 alone (while working on it).
    if (!MIXED_ONLY) {
      // ---- 1. round trip ----
      process.stderr.write(`${regime.key}: round trip `);
      const sectionMark = cpuMark();
      const w0 = workers[0];
      const latencyModes = ['portal', 'bridge'];
      const latency = {};
      for (const mode of latencyModes) {
        const { calls, ms } = await w0.ask('warm', { mode, ms: WARMUP_MS });
        latency[mode] = {
          calls: Math.max(100, Math.min(200_000, Math.round((calls / ms) * ROUND_MS))),
          rounds: [],
          cpuUsPerCall: [],
        };
      }
      for (let r = 0; r < LATENCY_ROUNDS; r++) {
        for (const mode of latencyModes) {
          const entry = latency[mode];
          const mark = cpuMark();
          entry.rounds.push(await w0.ask('latency', { mode, calls: entry.calls }));
          entry.cpuUsPerCall.push((cpuSince(mark).ownCpuMs * 1000) / entry.calls);
        }
        process.stderr.write('.');
      }
      process.stderr.write('\n');
      const latencyCpu = cpuSince(sectionMark);
      sectionStray.push(['round trip', latencyCpu.others - busyCores]);

      console.log(
        `\n== 1. round trip: one worker's blocking call into the main thread, echo of an 8-byte string ==\n` +
          `${LATENCY_ROUNDS} rounds per case after ${WARMUP_MS} ms warm-up, cases taking turns; ` +
          `other processes: ${fmt(latencyCpu.others)} cores\n`,
      );
      const latencyRows = [
        ['case', 'calls/round', 'median us', 'round medians min-max', 'mean us', 'p99 us', 'CPU us/call'],
      ];
      const latencySummary = {};
      for (const mode of latencyModes) {
        const { calls, rounds, cpuUsPerCall } = latency[mode];
        const medians = rounds.map((x) => x.medianUs);
        latencySummary[mode] = {
          median: medianOf(medians),
          mean: medianOf(rounds.map((x) => x.meanUs)),
          p99: medianOf(rounds.map((x) => x.p99Us)),
        };
        latencyRows.push([
          LABELS[mode],
          int(calls),
          fmt(latencySummary[mode].median),
          `${fmt(Math.min(...medians))}-${fmt(Math.max(...medians))}`,
          fmt(latencySummary[mode].mean),
          fmt(latencySummary[mode].p99),
          fmt(medianOf(cpuUsPerCall)),
        ]);
      }
      printTable(latencyRows, 1);
      const latencyRatio = latencySummary.bridge.median / latencySummary.portal.median;
      console.log(
        `\nratio bridge / portal (median per-call time): ${fmt(latencyRatio)}x` +
          ` (means: ${fmt(latencySummary.bridge.mean / latencySummary.portal.mean)}x, p99: ${fmt(latencySummary.bridge.p99 / latencySummary.portal.p99)}x)` +
          `  [>1: the portal is faster]`,
      );
      console.log('CPU us/call: CPU time of the whole process (all threads) per call: spinning shows here.');

      // ---- 2 and 3. throughput ----
      const modes = ['portal', 'bridge', 'portalAsync', 'bridgeAsync', 'loop'];
      const throughput = [];
      for (const threads of THREADS) {
        process.stderr.write(`${threads} thread(s) `);
        const group = workers.slice(0, threads);
        const mark = cpuMark();
        const configs = [];
        for (const mode of modes) {
          // Calibrate: all the threads at once for WARMUP_MS; N per worker so that a round takes ~ROUND_MS.
          const warm = await Promise.all(group.map((w) => w.ask('warm', { mode, ms: WARMUP_MS })));
          const rate = warm.reduce((sum, x) => sum + x.calls / x.ms, 0);
          const calls = Math.max(WINDOW, Math.round((rate * ROUND_MS) / threads));
          configs.push({ mode, threads, calls, rates: [], cpuUsPerCall: [], cores: [], elu: [], spread: [] });
        }
        for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
          for (const c of configs) {
            const target = ++goCount;
            const ready = group.map((w) => w.next('ready'));
            const results = group.map((w) => w.ask('throughput', { mode: c.mode, calls: c.calls, target }));
            await Promise.all(ready);
            const roundMark = cpuMark();
            Atomics.store(goWord, 0, target);
            Atomics.notify(goWord, 0);
            const done = await Promise.all(results);
            const cpu = cpuSince(roundMark);
            const total = done.reduce((sum, x) => sum + x.calls, 0);
            const wallMs = Math.max(...done.map((x) => x.end)) - Math.min(...done.map((x) => x.start));
            const durations = done.map((x) => x.end - x.start);
            c.rates.push((total / wallMs) * 1000);
            c.cpuUsPerCall.push((cpu.ownCpuMs * 1000) / total);
            c.cores.push(cpu.own);
            c.elu.push(cpu.mainElu);
            c.spread.push(Math.max(...durations) / Math.min(...durations));
          }
          process.stderr.write('.');
        }
        process.stderr.write('\n');
        const cpu = cpuSince(mark);
        sectionStray.push([`${threads} thread(s)`, cpu.others - busyCores]);
        for (const c of configs) throughput.push({ ...c, others: cpu.others });
      }

      const find = (mode, threads) => throughput.find((c) => c.mode === mode && c.threads === threads);
      const rateOf = (c) => medianOf(c.rates);
      const REFERENCE = { portal: 'bridge', portalAsync: 'bridgeAsync', loop: 'bridge' };
      console.log(
        `\n== 2/3. throughput: calls per second from 1, 2 and 4 workers at once (8-byte echo) ==\n` +
          `each worker makes N calls per round (N from a ${WARMUP_MS} ms warm-up, ~${ROUND_MS} ms per round), ` +
          `${THROUGHPUT_ROUNDS} rounds, cases taking turns; median of rounds.\n` +
          'cores: CPU of the whole process (all threads) during the round, in cores; main ELU: event loop ' +
          'utilization of the main thread;\nslow/fast: the slowest worker time / the fastest (1.00 = fair); ' +
          'ratio: loopthread / hand-written calls/s (>1: loopthread is faster).\n' +
          'LoopThread rows call a LoopThread (its own thread), not the main thread: their ratio is against the ' +
          'bridge into the main thread, for scale only.\n',
      );
      const rows = [
        [
          'case',
          'threads',
          'N/worker',
          'calls/s',
          'rounds min-max',
          'cores',
          'CPU us/call',
          'main ELU',
          'slow/fast',
          'ratio',
        ],
      ];
      for (const threads of THREADS) {
        for (const mode of modes) {
          const c = find(mode, threads);
          const ref = REFERENCE[mode] && find(REFERENCE[mode], threads);
          rows.push([
            LABELS[mode],
            threads,
            int(c.calls),
            int(rateOf(c)),
            `${int(Math.min(...c.rates))}-${int(Math.max(...c.rates))}`,
            fmt(medianOf(c.cores)),
            fmt(medianOf(c.cpuUsPerCall)),
            fmt(medianOf(c.elu)),
            fmt(medianOf(c.spread)),
            ref ? `${fmt(rateOf(c) / rateOf(ref))}x` : '-',
          ]);
        }
      }
      printTable(rows, 1);

      console.log('\n== ratios (>1: loopthread is faster) ==');
      console.log(`round trip, bridge time / portal time (median): ${fmt(latencyRatio)}x`);
      for (const [mode, label] of [
        ['portal', 'blocking: portal / bridge calls/s'],
        ['portalAsync', `async, ${WINDOW} in flight: portal / postMessage calls/s`],
        ['loop', 'blocking: LoopThread / bridge-into-main calls/s'],
      ]) {
        const ratios = THREADS.map(
          (t) => `${t} thread(s) ${fmt(rateOf(find(mode, t)) / rateOf(find(REFERENCE[mode], t)))}x`,
        );
        console.log(`${label}: ${ratios.join(', ')}`);
        ratios.forEach((_, i) => {
          summary[`${mode} ${THREADS[i]} thread(s)`] =
            rateOf(find(mode, THREADS[i])) / rateOf(find(REFERENCE[mode], THREADS[i]));
        });
      }
      summary.roundTrip = latencyRatio;
    }

    // ---- 4. mixed calls from many workers ----
    process.stderr.write(`${MIXED_WORKERS} workers, mixed calls `);
    const mixedMark = cpuMark();
    const mixedRound = async (impl, calls) => {
      const target = ++goCount;
      const ready = workers.map((w) => w.next('ready'));
      const results = workers.map((w) => w.ask('mixed', { impl, calls, target }));
      await Promise.all(ready);
      const mark = cpuMark();
      Atomics.store(goWord, 0, target);
      Atomics.notify(goWord, 0);
      const done = await Promise.all(results);
      mixedCpu[impl]?.push((cpuSince(mark).ownCpuMs * 1000) / (calls * MIXED_WORKERS));
      return Math.max(...done.map((x) => x.end)) - Math.min(...done.map((x) => x.start));
    };
    const mixed = { portal: [], bridge: [] };
    const mixedCpu = {};
    // Warm-up: full rounds of each until its time stops falling by a tenth (the JIT of nine isolates
    // takes a few rounds, loopthread's larger code more than the bridges'), at most MIXED_WARM_ROUNDS.
    for (const impl of Object.keys(mixed)) {
      let last = Infinity;
      for (let r = 0; r < MIXED_WARM_ROUNDS; r++) {
        const ms = await mixedRound(impl, MIXED_CALLS);
        if (ms > last * 0.9) break;
        last = ms;
      }
    }
    for (const impl of Object.keys(mixed)) mixedCpu[impl] = [];
    for (let r = 0; r < MIXED_ROUNDS; r++) {
      for (const impl of Object.keys(mixed)) mixed[impl].push(await mixedRound(impl, MIXED_CALLS));
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    sectionStray.push(['mixed', cpuSince(mixedMark).others - busyCores]);
    const mixedRatio = medianOf(mixed.bridge) / medianOf(mixed.portal);
    console.log(
      `\n== 4. ${MIXED_WORKERS} workers x ${int(MIXED_CALLS)} calls into the main thread, in turn blocking and awaited ==\n` +
        `wall ms (median of ${MIXED_ROUNDS} rounds): portal ${fmt(medianOf(mixed.portal), 1)} ` +
        `(${mixed.portal.map((x) => fmt(x, 0)).join(', ')}), hand-written bridges ${fmt(medianOf(mixed.bridge), 1)} ` +
        `(${mixed.bridge.map((x) => fmt(x, 0)).join(', ')})\n` +
        `CPU us/call (whole process): portal ${fmt(medianOf(mixedCpu.portal))}, bridges ${fmt(medianOf(mixedCpu.bridge))}\n` +
        `bridges / portal: ${fmt(mixedRatio)}x (target: at least ${MIXED_GOAL}x)`,
    );
    summary.mixed = mixedRatio;
    summary.mixedMs = { portal: medianOf(mixed.portal), bridge: medianOf(mixed.bridge) };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await loop.close();
    await portal.close();
  }

  const total = cpuSince(runMark);
  const after = loadavg();
  console.log(
    `\nmachine during the run: this process ${fmt(total.own)} cores on average, other processes (besides the busy process) ` +
      `${sectionStray.map(([name, cores]) => `${fmt(cores)} (${name})`).join(', ')}; ` +
      `load average now ${after.map((l) => fmt(l)).join(' ')}`,
  );
  const stray = sectionStray.filter(([, cores]) => cores > STRAY_CORES);
  if (stray.length > 0) {
    console.log(
      `WARNING: other processes kept more than ${STRAY_CORES} cores busy during ${stray.map(([n]) => n).join(', ')}: ` +
        'those numbers are skewed',
    );
  }
  return summary;
}

async function mainThread() {
  const started = performance.now();
  const cpuModel = cpus()[0]?.model ?? 'unknown';
  console.log(
    `Node ${process.version}, ${availableParallelism()} CPUs (${cpuModel}), ${process.platform}/${process.arch}`,
  );

  // How busy is the machine before we start? The load average trails (a 1-minute mean, threads waiting
  // included), so the warning goes by what other processes used over the last seconds.
  const before = cpuMark();
  await sleep(2000);
  const idle = cpuSince(before);
  const load = loadavg();
  console.log(
    `before the run: load average ${load.map((l) => fmt(l)).join(' ')} (1, 5, 15 min); ` +
      `other processes kept ${fmt(idle.others)} cores busy over the last 2 s`,
  );
  if (idle.others > STRAY_CORES) {
    console.log('WARNING: other processes are busy: every number below is skewed (threads wait for a core)');
  } else if (load[0] > availableParallelism() / 2) {
    console.log('note: the load average is still high from earlier work, but the machine was quiet just now');
  }

  const report = {};
  for (const regime of regimes) report[regime.key] = await inRegime(regime, 30 * 60_000, () => runRegime(regime));

  console.log('\n== ratios of both regimes (>1: loopthread is faster) ==');
  for (const key of Object.keys(report[regimes[0].key])) {
    if (key === 'mixedMs') continue;
    console.log(`  ${key}: ${regimes.map((r) => `${r.key} ${fmt(report[r.key][key])}x`).join(', ')}`);
  }
  const targets = regimes.map((r) => ({
    target: `Portal: ${MIXED_WORKERS} workers x ${MIXED_CALLS} mixed calls vs hand-written MessagePort RPC`,
    regime: r.key,
    ratio: report[r.key].mixed,
    goal: MIXED_GOAL,
  }));
  saveResults('portal', { regimes: report, targets });
  console.log(`\ntotal ${fmt((performance.now() - started) / 1000, 1)} s`);

  // Every worker is terminated, the LoopThread and the portal are closed: the process should exit by
  // itself. If something kept it alive anyway, say so (the timer is unref'd: it never delays a clean exit).
  setTimeout(() => {
    console.error('BUG: a handle kept the process alive after the bench; exiting');
    process.exit(1);
  }, 5000).unref();
}

if (isMainThread) await mainThread();
else workerMain();
