// Benchmark: huge values crossing to a LoopThread, against structuredClone and a MessagePort.
// Run with `npm run bench:huge` (builds first) or `node bench/huge.mjs [--idle-only | --busy-only] [--quick]`.
//
// Values: a string of one-byte characters (BENCH_HUGE_STRING_MIB, default 256 MiB) and a Uint8Array
// (BENCH_HUGE_BYTES_MIB, default 512 MiB). Per value, the cases take turns for ROUNDS rounds, the median
// is printed:
// - runSync, argument: `loop.runSync((v) => v.length, v)`, one crossing (the value is decoded on the
//   loop thread), against structuredClone(v), also one copy of the value into a new one;
// - runSync, identity: `loop.runSync((v) => v, v)`, there and back, against a worker that echoes the
//   value on a MessagePort (postMessage there, postMessage back).
// The string is flattened before timing (String.prototype.repeat makes a rope), so no case pays for that.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { LoopThread } from 'loopthread';
import { benchOptions, inRegime, saveResults } from './machine.mjs';

const MiB = 1024 * 1024;
const { structuredClone } = globalThis;
const STRING_MIB = Number(process.env.BENCH_HUGE_STRING_MIB ?? 256);
const BYTES_MIB = Number(process.env.BENCH_HUGE_BYTES_MIB ?? 512);
const { quick, regimes } = benchOptions();
const ROUNDS = quick ? 1 : 3;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const fmt = (n, digits = 0) => n.toFixed(digits);

function makeValues() {
  const string = 'x'.repeat(STRING_MIB * MiB);
  /x$/.test(string); // flattens it
  const bytes = new Uint8Array(BYTES_MIB * MiB);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = i & 0xff;
  return [
    { label: `${STRING_MIB} MiB string`, key: 'string', value: string, size: (v) => v.length },
    { label: `${BYTES_MIB} MiB Uint8Array`, key: 'bytes', value: bytes, size: (v) => v.byteLength },
  ];
}

async function runRegime(regime) {
  return inRegime(regime, 20 * 60_000, async () => {
    const loop = new LoopThread({ name: 'bench huge' });
    loop.runSync(() => 0);
    const echo = new Worker(
      "const { parentPort } = require('node:worker_threads'); parentPort.on('message', (v) => parentPort.postMessage(v));",
      { eval: true },
    );
    const results = {};
    try {
      for (const { label, key, value, size } of makeValues()) {
        const n = size(value);
        const check = (got) => {
          if (got !== n) throw new Error(`${label}: got ${got}, expected ${n}`);
        };
        const cases = {
          structuredClone: () => check(size(structuredClone(value))),
          runSyncArgument: () => check(loop.runSync((v) => (typeof v === 'string' ? v.length : v.byteLength), value)),
          portEcho: async () => {
            const back = once(echo, 'message');
            echo.postMessage(value);
            check(size((await back)[0]));
          },
          runSyncIdentity: () => check(size(loop.runSync((v) => v, value))),
        };
        const ms = Object.fromEntries(Object.keys(cases).map((c) => [c, []]));
        for (let r = 0; r < ROUNDS; r++) {
          for (const [name, run] of Object.entries(cases)) {
            const t0 = performance.now();
            await run();
            ms[name].push(performance.now() - t0);
          }
          process.stderr.write('.');
        }
        process.stderr.write('\n');
        const m = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)]));
        results[key] = { label, ms: m, rounds: ms };
        console.log(`\n${label} (median of ${ROUNDS} round(s), ms):`);
        console.log(
          `  one crossing:   runSync argument ${fmt(m.runSyncArgument)}, structuredClone ${fmt(m.structuredClone)}` +
            `  -> structuredClone / runSync ${fmt(m.structuredClone / m.runSyncArgument, 2)}x (>= 1: no slower)`,
        );
        console.log(
          `  there and back: runSync identity ${fmt(m.runSyncIdentity)}, MessagePort echo ${fmt(m.portEcho)}` +
            `  -> port / runSync ${fmt(m.portEcho / m.runSyncIdentity, 2)}x`,
        );
      }
    } finally {
      await echo.terminate();
      loop.closeSync();
    }
    return results;
  });
}

console.log(
  `Huge values crossing to a LoopThread, Node ${process.version}; ` +
    `sizes from BENCH_HUGE_STRING_MIB=${STRING_MIB} and BENCH_HUGE_BYTES_MIB=${BYTES_MIB}`,
);
const report = {};
for (const regime of regimes) report[regime.key] = await runRegime(regime);

console.log('\nstructuredClone / runSync argument (>= 1: loopthread no slower), per regime:');
const targets = [];
for (const key of ['string', 'bytes']) {
  const cells = regimes.map((r) => {
    const { ms, label } = report[r.key][key];
    const ratio = ms.structuredClone / ms.runSyncArgument;
    targets.push({
      target: `huge values: ${label} as a runSync argument vs structuredClone`,
      regime: r.key,
      ratio,
      goal: 1,
    });
    return `${r.key} ${fmt(ratio, 2)}x`;
  });
  console.log(`  ${report[regimes[0].key][key].label}: ${cells.join(', ')}`);
}
saveResults('huge', { sizesMiB: { string: STRING_MIB, bytes: BYTES_MIB }, rounds: ROUNDS, regimes: report, targets });
