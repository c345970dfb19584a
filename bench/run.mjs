// Benchmark: a trivial async identity function called synchronously, through loopthread and its peers.
// Run with `npm run bench` (builds first) or `npx tsc -p . && node bench/run.mjs`.
//
// Every case is warmed up, then timed over ROUNDS rounds. The number of calls per round is chosen from
// the warm-up speed so that each round takes about ROUND_MS, which keeps fast and slow cases within the
// same time budget. Each call is timestamped, so p99 comes for free; the timer's own cost is in every
// number and is what the native baseline shows.
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { LoopThread } from 'loopthread';
import { createSyncFn } from 'synckit';
import makeSynchronized from 'make-synchronized';
import makeSynchronous from 'make-synchronous';

const ROUNDS = 5;
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

// Each case creates its own thread(s) in setup and frees them in close, so that no idle worker of one
// case competes for the 2 cores while another case runs.
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
      return { call: (value) => loop.runSync(inlineIdentity, value), close: () => loop.closeSync() };
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
    setup: () => ({ call: makeSynchronized(identityModule).identity, close() {} }),
  },
  {
    // make-synchronous 2.x keeps one worker per function (1.x spawned a process per call); the
    // time-based calibration gives it fewer calls if it is slow anyway.
    name: 'make-synchronous',
    kind: 'peer',
    setup: () => ({ call: makeSynchronous(async (value) => value), close() {} }),
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

function measure(call, value) {
  // One checked call first: a broken case must fail loudly, not look fast.
  if (call(value) !== value) throw new Error('identity returned a different value');
  const warmUs = warmUp(call, value, WARMUP_MS);
  const calls = Math.max(MIN_CALLS, Math.min(MAX_CALLS, Math.round((ROUND_MS * 1000) / warmUs)));
  const roundMeans = [];
  const all = new Float64Array(calls * ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    const durations = timeRound(call, value, calls);
    all.set(durations, r * calls);
    roundMeans.push(durations.reduce((a, b) => a + b, 0) / calls);
  }
  roundMeans.sort((a, b) => a - b);
  all.sort();
  return {
    callsPerRound: calls,
    medianUs: median(roundMeans),
    minRoundUs: roundMeans[0],
    maxRoundUs: roundMeans[roundMeans.length - 1],
    p99Us: percentile(all, 99),
  };
}

const started = performance.now();
const results = [];
for (const c of CASES) {
  const { call, close } = c.setup();
  try {
    for (const p of PAYLOADS) {
      results.push({ case: c.name, kind: c.kind, payload: p.label, ...measure(call, p.value) });
      process.stderr.write('.');
    }
  } finally {
    close();
  }
}
process.stderr.write('\n');

// Ratio = peer time / loopthread inline time for the same payload: how many times faster loopthread is.
const reference = new Map(
  results.filter((r) => r.case === 'loopthread runSync inline').map((r) => [r.payload, r.medianUs]),
);
for (const r of results) {
  r.callsPerSecond = 1e6 / r.medianUs;
  r.ratioVsLoopthreadInline = r.kind === 'baseline' ? null : r.medianUs / reference.get(r.payload);
}

const fmt = (n, digits = 2) => n.toFixed(digits);
const rows = [
  ['case', 'payload', 'median us/call', 'p99 us', 'calls/s', 'peer / loopthread'],
  ...results.map((r) => [
    r.case,
    r.payload,
    fmt(r.medianUs),
    fmt(r.p99Us),
    Math.round(r.callsPerSecond).toLocaleString('en-US'),
    r.ratioVsLoopthreadInline === null ? '-' : `${fmt(r.ratioVsLoopthreadInline)}x`,
  ]),
];
const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
// Text columns align left, numbers right.
const line = (row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');

const cpuModel = cpus()[0]?.model ?? 'unknown';
console.log(`Node ${process.version}, ${availableParallelism()} CPUs (${cpuModel}), ${process.platform}/${process.arch}`);
console.log(`${ROUNDS} rounds of ~${ROUND_MS} ms per case after ${WARMUP_MS} ms warm-up; median of round means\n`);
console.log(line(rows[0]));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of rows.slice(1)) console.log(line(row));

// A peer beating loopthread is the result this bench exists to catch, so say it plainly.
for (const r of results) {
  if (r.kind === 'peer' && r.ratioVsLoopthreadInline < 1) {
    console.log(`\nWARNING: ${r.case} is faster than loopthread inline at ${r.payload}`);
  }
}
console.log(`\ntotal ${fmt((performance.now() - started) / 1000, 1)} s`);

writeFileSync(
  new URL('./results.json', import.meta.url),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: availableParallelism(),
      cpuModel,
      rounds: ROUNDS,
      roundMs: ROUND_MS,
      warmupMs: WARMUP_MS,
      results,
    },
    null,
    2,
  ) + '\n',
);

// Every LoopThread is closed and the peers' workers are unref'd, so the process should exit by itself;
// if a peer left a handle alive anyway, do not hang (the timer is unref'd, so it never delays a clean exit).
setTimeout(() => {
  console.error('a handle kept the process alive after the bench; exiting');
  process.exit(0);
}, 2000).unref();
