// Every bench, one after the other, each in a process of its own and in both regimes (an idle
// machine, then one core kept busy by another process): `npm run bench` (builds first), or
// `node bench/all.mjs [--idle-only | --busy-only] [--quick]` (the flags pass through to every
// bench; --quick or BENCH_QUICK=1 gives fewer rounds, and huge values of a quarter of the size
// unless BENCH_HUGE_STRING_MIB / BENCH_HUGE_BYTES_MIB say otherwise).
//
// Prints a summary of the targets with the measured ratios (text only: nothing fails), and
// writes every bench's results to bench/results.json.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchOptions } from './machine.mjs';

const BENCHES = [
  ['calls', 'run.mjs'],
  ['pool', 'pool.mjs'],
  ['portal', 'portal.mjs'],
  ['channel', 'channel.mjs'],
  ['iterate', 'iterate.mjs'],
  ['startup', 'startup.mjs'],
  ['huge', 'huge.mjs'],
];

const flags = process.argv.slice(2);
const { quick } = benchOptions(flags);
const env = { ...process.env };
if (quick) {
  env.BENCH_HUGE_STRING_MIB ??= '64';
  env.BENCH_HUGE_BYTES_MIB ??= '128';
}
const dir = mkdtempSync(join(tmpdir(), 'loopthread-bench-'));
const started = performance.now();
const results = {};
const failed = [];
try {
  for (const [name, file] of BENCHES) {
    console.log(`\n######## ${name} (bench/${file}) ########\n`);
    const out = join(dir, `${name}.json`);
    const t0 = performance.now();
    const run = spawnSync(process.execPath, [fileURLToPath(new URL(file, import.meta.url)), ...flags], {
      stdio: 'inherit',
      env: { ...env, LOOPTHREAD_BENCH_OUT: out },
    });
    const seconds = (performance.now() - t0) / 1000;
    try {
      results[name] = { seconds, ...JSON.parse(readFileSync(out, 'utf8')) };
    } catch {
      failed.push(`${name} (exit ${run.status ?? run.signal})`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** The targets of the blocking-call and pool benches, from their results (those benches print tables, not targets). */
function derivedTargets() {
  const out = [];
  for (const [regime, section] of Object.entries(results.calls?.sections ?? {})) {
    const median = (name, payload) =>
      section.results.find((r) => r.case === name && r.payload === payload)?.medianUs ?? Number.NaN;
    for (const [payload, idle, busy] of [
      ['8 B', 15, 1.5],
      ['64 KiB', 3, 1.2],
    ]) {
      out.push({
        target: `blocking call vs synckit, ${payload}`,
        regime,
        ratio: median('synckit', payload) / median('loopthread runSync inline', payload),
        goal: regime === 'idle' ? idle : busy,
      });
    }
    if (regime === 'idle') {
      out.push({
        target: 'trivial blocking call / spin round trip',
        regime,
        ratio: median('loopthread runSync inline', '8 B') / (section.costs.spinRoundTripMs * 1000),
        goal: 10,
        lowerIsBetter: true,
      });
    }
  }
  for (const [regime, { rows }] of Object.entries(results.pool?.regimes ?? {})) {
    const ours = rows.find((r) => r.name === 'loopthread');
    const peers = rows.filter((r) => r.name === 'piscina' || r.name === 'poolifier');
    if (ours === undefined || peers.length === 0) continue;
    out.push({
      target: 'pool burst vs the best of piscina and poolifier',
      regime,
      ratio: ours.burst / Math.max(...peers.map((r) => r.burst)),
      goal: 2,
    });
    out.push({
      target: 'pool serial latency vs the best of piscina and poolifier',
      regime,
      ratio: Math.min(...peers.map((r) => r.serial)) / ours.serial,
      goal: regime === 'idle' ? 2 : 1.2,
    });
  }
  return out;
}

const targets = [...derivedTargets(), ...Object.values(results).flatMap((r) => r.targets ?? [])];
const rows = [
  ['target', 'regime', 'measured', 'goal', 'holds'],
  ...targets.map((t) => [
    t.target,
    t.regime,
    `${t.ratio.toFixed(2)}x`,
    `${t.lowerIsBetter ? '<=' : '>='} ${t.goal}x`,
    (t.lowerIsBetter ? t.ratio <= t.goal : t.ratio >= t.goal) ? 'yes' : 'NO',
  ]),
];
const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
console.log("\n######## the issue's targets ########\n");
for (const [i, row] of rows.entries()) {
  console.log(row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log(
  "\nRatios: start-up is loopthread time / a plain Worker's; the trivial call is its time in spin round trips; " +
    'the others are how many times faster loopthread is (huge values: structuredClone time / runSync time).',
);
if (failed.length > 0) console.log(`\nWARNING: no results from ${failed.join(', ')}`);
console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);

writeFileSync(
  new URL('./results.json', import.meta.url),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      flags,
      benches: results,
      targets,
    },
    null,
    2,
  ) + '\n',
);
if (failed.length > 0) process.exitCode = 1;
