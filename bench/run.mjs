// Benchmark: a trivial async identity function called synchronously, through loopthread and its peers.
// Run with `npm run bench:calls` (builds first) or `node bench/run.mjs [--idle-only | --busy-only] [--quick]`;
// `npm run bench` runs it among all the benches (bench/all.mjs).
//
// Two sections, each with fresh threads: an idle machine, then one core kept busy by another process
// (a bounded busy loop in a child process), which makes thread wake-ups cheap and spinning costly.
//
// Every case is warmed up, then timed over ROUNDS rounds, the cases taking turns. The number of calls
// per round is chosen from the warm-up speed so that each round takes about ROUND_MS, which keeps fast
// and slow cases within the same time budget. Each call is timestamped, so p99 comes for free; the
// timer's own cost is in every number and is what the native baseline shows.
import diagnostics from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { LoopThread, diagnosticsChannels } from 'loopthread';
import { createSyncFn } from 'synckit';
import makeSynchronized from 'make-synchronized';
import makeSynchronous from 'make-synchronous';
import { benchOptions, machineTimes, saveResults, startBusyProcess } from './machine.mjs';
import { measureMachineCosts } from '../dist/src/shm/costs.js';

const { quick, regimes: sections } = benchOptions();
const ROUNDS = quick ? 3 : 5;
const ROUND_MS = 250;
const WARMUP_MS = 250;
// Bounds on calls per round: enough samples for a p99, and a cap so the native baseline stays small.
const MIN_CALLS = 50;
const MAX_CALLS = 200_000;

const PAYLOADS = [
  { label: '8 B', value: 'abcdefgh' },
  { label: '64 KiB', value: 'x'.repeat(64 * 1024) },
];

const identityModule = new URL('./peers/identity.mjs', import.meta.url);
const synckitWorker = fileURLToPath(new URL('./peers/identity-worker.mjs', import.meta.url));

// Sent to the loop thread as source text, so it must not capture anything.
const inlineIdentity = async (value) => value;

// Each case creates its own thread(s) in setup and frees them in close.
const CASES = [
  {
    name: 'native sync call (floor)',
    kind: 'baseline',
    setup: () => ({ call: (value) => value, close() {} }),
  },
  {
    name: 'loopthread runSync inline',
    kind: 'loopthread',
    setup() {
      const loop = new LoopThread({ name: 'bench inline' });
      return {
        call: (value) => loop.runSync(inlineIdentity, value),
        close: () => loop.closeSync(),
      };
    },
  },
  {
    // What observing costs: the same calls with a subscriber on the call start channel (subscribed
    // only while this case runs; without one, publishing costs a boolean check per call).
    name: 'loopthread runSync inline, call:start subscribed',
    kind: 'loopthread',
    payloads: [PAYLOADS[0]],
    setup() {
      const loop = new LoopThread({ name: 'bench observed' });
      const listener = () => undefined;
      return {
        call: (value) => loop.runSync(inlineIdentity, value),
        enter: () => diagnostics.subscribe(diagnosticsChannels.callStart, listener),
        leave: () => diagnostics.unsubscribe(diagnosticsChannels.callStart, listener),
        close: () => loop.closeSync(),
      };
    },
  },
  {
    name: 'loopthread importSync',
    kind: 'loopthread',
    setup() {
      const loop = new LoopThread({ name: 'bench import' });
      const { identity } = loop.importSync(identityModule);
      return { call: identity, close: () => loop.closeSync() };
    },
  },
  {
    name: 'synckit',
    kind: 'peer',
    // The worker is unref'd by synckit and has no close API; it sits idle afterwards.
    setup: () => ({ call: createSyncFn(synckitWorker), close() {} }),
  },
  {
    name: 'make-synchronized',
    kind: 'peer',
    setup: () => ({
      call: makeSynchronized(identityModule).identity,
      close() {},
    }),
  },
  {
    // The default export reuses one worker per function ('make-synchronous/subprocess' would spawn a
    // process per call); the time-based calibration gives it fewer calls if it is slow anyway.
    name: 'make-synchronous',
    kind: 'peer',
    setup: () => ({
      call: makeSynchronous(async (value) => value),
      close() {},
    }),
  },
];

/** Calls `call(value)` until `ms` have passed; returns the mean time per call in microseconds. */
function warmUp(call, value, ms) {
  const start = performance.now();
  let calls = 0;
  do {
    call(value);
    calls++;
  } while (performance.now() - start < ms);
  return ((performance.now() - start) * 1000) / calls;
}

/** Times `calls` calls, each timestamped; returns the per-call durations in microseconds. */
function timeRound(call, value, calls) {
  const stamps = new Float64Array(calls + 1);
  stamps[0] = performance.now();
  for (let i = 1; i <= calls; i++) {
    call(value);
    stamps[i] = performance.now();
  }
  const durations = new Float64Array(calls);
  for (let i = 0; i < calls; i++) durations[i] = (stamps[i + 1] - stamps[i]) * 1000;
  return durations;
}

const median = (sorted) => sorted[Math.floor((sorted.length - 1) / 2)];
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/**
 * How many cores this process and all other processes kept busy since `start`. A blocking call waits
 * for the other thread to get a core, so other processes' load skews every number here, loopthread's
 * (which spins while it waits) more than the peers': the bench reports it rather than guess.
 */
function cpuUseSince(start, wallMs) {
  const now = machineTimes();
  const machine = ((now.busy - start.machine.busy) / (now.total - start.machine.total)) * availableParallelism();
  const { user, system } = process.cpuUsage(start.own);
  const own = (user + system) / 1000 / wallMs;
  return { own, others: Math.max(0, machine - own) };
}

/** CPU milliseconds a process has used so far, from /proc (Linux); undefined where that is not available. */
function processCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15, in ticks of 10 ms.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/**
 * CPU milliseconds the calling (main) thread has used so far, from its schedstat (Linux, in ns);
 * undefined elsewhere. With process.cpuUsage() it splits a call's CPU into the caller's and the
 * rest of the process's (mostly the serving thread): where a regime's time goes, per side.
 */
function callerCpuMs() {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return undefined;
  }
}

const processCpuUs = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** Checks the case, warms it up and picks how many calls a round makes. */
function prepare(call, value) {
  // One checked call first: a broken case must fail loudly, not look fast.
  if (call(value) !== value) throw new Error('identity returned a different value');
  const warmUs = warmUp(call, value, WARMUP_MS);
  return Math.max(MIN_CALLS, Math.min(MAX_CALLS, Math.round((ROUND_MS * 1000) / warmUs)));
}

/**
 * Runs every case of a section. Every case is set up first, then their rounds interleave: this machine's
 * speed drifts (other processes, CPU wake-up latency), and interleaving spreads the drift over all cases
 * rather than favouring whichever happened to run in a quiet moment. Idle workers sleep, so they do not
 * slow the case being timed.
 */
async function runSection(section) {
  let busy;
  if (section.load) {
    // Long enough for the section, with room for slow setups; the section checks that it was.
    const expectedMs = CASES.length * PAYLOADS.length * (WARMUP_MS + ROUNDS * ROUND_MS) + 5_000;
    busy = await startBusyProcess(expectedMs * 1.5);
  }
  // What waking and spinning cost on this machine now, in this regime (the spin policy's inputs).
  const costs = await measureMachineCosts();
  const started = performance.now();
  const cpuAtStart = { machine: machineTimes(), own: process.cpuUsage() };
  const busyCpuAtStart = busy && processCpuMs(busy.pid);
  const setups = [];
  const runs = [];
  let busyCores;
  let busyOutlasted = true;
  try {
    for (const c of CASES) {
      const impl = c.setup();
      setups.push(impl);
      for (const p of c.payloads ?? PAYLOADS) runs.push({ c, p, impl, call: impl.call });
    }
    for (const run of runs) {
      run.impl.enter?.();
      run.calls = prepare(run.call, run.p.value);
      run.impl.leave?.();
      run.roundMeans = [];
      run.samples = new Float64Array(run.calls * ROUNDS);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const run of runs) {
        run.impl.enter?.();
        // A few untimed calls: the first call after another case ran pays for waking this case's thread.
        for (let i = 0; i < 20; i++) run.call(run.p.value);
        const caller0 = callerCpuMs();
        const process0 = processCpuUs();
        const durations = timeRound(run.call, run.p.value, run.calls);
        const callerUs = caller0 === undefined ? undefined : (callerCpuMs() - caller0) * 1000;
        const processUs = processCpuUs() - process0;
        run.impl.leave?.();
        run.samples.set(durations, r * run.calls);
        run.roundMeans.push(durations.reduce((a, b) => a + b, 0) / run.calls);
        if (callerUs !== undefined) {
          (run.callerCpu ??= []).push(callerUs / run.calls);
          (run.otherCpu ??= []).push(Math.max(0, processUs - callerUs) / run.calls);
        }
      }
      process.stderr.write('.');
    }
    if (busy) {
      busyOutlasted = Date.now() < busy.deadline;
      const busyCpuNow = processCpuMs(busy.pid);
      if (busyCpuAtStart !== undefined && busyCpuNow !== undefined) {
        busyCores = (busyCpuNow - busyCpuAtStart) / (performance.now() - started);
      }
    }
  } finally {
    for (const impl of setups) impl.close();
    await busy?.stop();
  }
  process.stderr.write('\n');
  const cpuUse = cpuUseSince(cpuAtStart, performance.now() - started);
  if (busyCores !== undefined) cpuUse.busyProcess = busyCores;

  const results = runs.map(({ c, p, calls, roundMeans, samples, callerCpu, otherCpu }) => {
    roundMeans.sort((a, b) => a - b);
    samples.sort();
    callerCpu?.sort((a, b) => a - b);
    otherCpu?.sort((a, b) => a - b);
    return {
      case: c.name,
      kind: c.kind,
      payload: p.label,
      callsPerRound: calls,
      medianUs: median(roundMeans),
      minRoundUs: roundMeans[0],
      maxRoundUs: roundMeans[roundMeans.length - 1],
      p99Us: percentile(samples, 99),
      // Median over rounds of the CPU per call: the calling thread's, and the rest of the process's.
      callerCpuUs: callerCpu && median(callerCpu),
      otherCpuUs: otherCpu && median(otherCpu),
    };
  });

  // Ratio = peer time / loopthread inline time for the same payload: how many times faster loopthread is.
  const reference = new Map(
    results.filter((r) => r.case === 'loopthread runSync inline').map((r) => [r.payload, r.medianUs]),
  );
  for (const r of results) {
    r.callsPerSecond = 1e6 / r.medianUs;
    r.ratioVsLoopthreadInline = r.kind === 'baseline' ? null : r.medianUs / reference.get(r.payload);
  }
  return {
    cpuUse,
    busyOutlasted,
    costs,
    seconds: (performance.now() - started) / 1000,
    results,
  };
}

const fmt = (n, digits = 2) => n.toFixed(digits);

function printSection(section, { cpuUse, busyOutlasted, costs, results }) {
  const rows = [
    [
      'case',
      'payload',
      'median us/call',
      'rounds min-max',
      'p99 us',
      'calls/s',
      'peer / loopthread',
      'CPU us/call: caller + rest',
    ],
    ...results.map((r) => [
      r.case,
      r.payload,
      fmt(r.medianUs),
      `${fmt(r.minRoundUs)}-${fmt(r.maxRoundUs)}`,
      fmt(r.p99Us),
      Math.round(r.callsPerSecond).toLocaleString('en-US'),
      r.ratioVsLoopthreadInline === null ? '-' : `${fmt(r.ratioVsLoopthreadInline)}x`,
      r.callerCpuUs === undefined ? '-' : `${fmt(r.callerCpuUs)} + ${fmt(r.otherCpuUs)}`,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  // Text columns align left, numbers right.
  const line = (row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');

  // Other processes' load beyond the bench's own busy process skews the numbers, so say how much there was.
  const busyCores = cpuUse.busyProcess;
  const stray = section.load ? cpuUse.others - (busyCores ?? 1) : cpuUse.others;
  console.log(`\n== ${section.title} ==`);
  console.log(
    `CPU use, in cores: this process ${fmt(cpuUse.own)}, other processes ${fmt(cpuUse.others)}` +
      (section.load ? ` (the busy process ${busyCores === undefined ? 'unmeasured' : fmt(busyCores)})` : ''),
  );
  const trivial = results.find((r) => r.case === 'loopthread runSync inline' && r.payload === PAYLOADS[0].label);
  console.log(
    `this machine: futex round trip ${fmt(costs.futexRoundTripMs * 1000)} us, spin round trip ` +
      `${fmt(costs.spinRoundTripMs * 1000)} us, idle event loop woken by a message ${fmt(costs.portWakeMs * 1000)} us; ` +
      `a trivial runSync costs ${fmt(trivial.medianUs / (costs.spinRoundTripMs * 1000), 0)} spin round trips`,
  );
  console.log('');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows.slice(1)) console.log(line(row));
  console.log(
    'CPU us/call: the calling thread + the rest of the process (mostly the serving thread), median of rounds (Linux)',
  );

  // A peer beating loopthread is the result this bench exists to catch, so say it plainly.
  const beaten = results.filter((r) => r.kind === 'peer' && r.ratioVsLoopthreadInline < 1);
  if (beaten.length > 0) {
    console.log(
      `\nWARNING: faster than loopthread inline: ${beaten.map((r) => `${r.case} (${r.payload})`).join(', ')}`,
    );
  }
  if (stray > 0.25) {
    console.log(
      `\nWARNING: other processes kept ${fmt(stray)} cores busy${section.load ? ' besides the busy process' : ''}: these numbers are skewed`,
    );
  }
  if (!busyOutlasted)
    console.log('\nWARNING: the busy process ended before the last round: the load did not cover the whole section');
}

const started = performance.now();
const cpuModel = cpus()[0]?.model ?? 'unknown';
console.log(
  `Node ${process.version}, ${availableParallelism()} CPUs (${cpuModel}), ${process.platform}/${process.arch}`,
);
console.log(`${ROUNDS} rounds of ~${ROUND_MS} ms per case after ${WARMUP_MS} ms warm-up; median of round means`);
const report = {};
for (const section of sections) {
  process.stderr.write(`${section.title} `);
  const outcome = await runSection(section);
  printSection(section, outcome);
  report[section.key] = { title: section.title, ...outcome };
}
if (sections.length > 1) {
  console.log('\npeer time / loopthread runSync inline time (>1: loopthread is faster), per regime:');
  for (const r of report[sections[0].key].results.filter((x) => x.kind === 'peer' || x.case.endsWith('importSync'))) {
    const cells = sections.map((s) => {
      const other = report[s.key].results.find((x) => x.case === r.case && x.payload === r.payload);
      return `${s.key} ${fmt(other.ratioVsLoopthreadInline)}x`;
    });
    console.log(`  ${r.case}, ${r.payload}: ${cells.join(', ')}`);
  }
}
console.log(`\ntotal ${fmt((performance.now() - started) / 1000, 1)} s`);

saveResults('calls', { rounds: ROUNDS, roundMs: ROUND_MS, warmupMs: WARMUP_MS, sections: report, targets: [] });

// Every LoopThread is closed, the busy process is gone and the peers' workers are unref'd, so the process
// should exit by itself; if a peer left a handle alive anyway, do not hang (the timer is unref'd, so it
// never delays a clean exit).
setTimeout(() => {
  console.error('a handle kept the process alive after the bench; exiting');
  process.exit(0);
}, 2000).unref();
