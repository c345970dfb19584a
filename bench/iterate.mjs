// Benchmark: iterating a remote async generator of small items from synchronous code.
// Run with `npm run bench:iterate` (builds first) or `node bench/iterate.mjs [--idle-only | --busy-only] [--quick]`.
// Both regimes, one after the other: an idle machine, and one core kept busy by another process.
//
// loopthread iterates with for...of, items prefetched in batches (default adaptive, then strictly one
// per round trip with batchSize 1). The peers can only call functions, so they take one item per
// blocking call. Each case runs ROUNDS times, the cases taking turns; the median rate is reported.
import { fileURLToPath } from 'node:url';
import { LoopThread, iterateSync } from 'loopthread';
import { createSyncFn } from 'synckit';
import makeSynchronized from 'make-synchronized';
import { benchOptions, inRegime, machineTimes, saveResults } from './machine.mjs';

const { quick, regimes } = benchOptions();
const ROUNDS = quick ? 3 : 5;
const counterModule = new URL('./peers/counter.mjs', import.meta.url);
const synckitWorker = fileURLToPath(new URL('./peers/counter-worker.mjs', import.meta.url));

const CASES = [
  {
    name: 'loopthread for...of (adaptive batches)',
    items: 100_000,
    setup() {
      const loop = new LoopThread({ name: 'bench iterate' });
      const { count } = loop.importSync(counterModule);
      return {
        run(n) {
          let sum = 0;
          for (const i of count(n)) sum += i;
          return sum;
        },
        close: () => loop.closeSync(),
      };
    },
  },
  {
    name: 'loopthread for...of, batchSize 1',
    items: 20_000,
    setup() {
      const loop = new LoopThread({ name: 'bench iterate 1' });
      const { count } = loop.importSync(counterModule);
      return {
        run(n) {
          let sum = 0;
          for (const i of iterateSync(count(n), { batchSize: 1 })) sum += i;
          return sum;
        },
        close: () => loop.closeSync(),
      };
    },
  },
  {
    name: 'synckit, one call per item',
    items: 5_000,
    setup() {
      const call = createSyncFn(synckitWorker);
      return {
        run(n) {
          call('start', n);
          let sum = 0;
          for (let v = call('next'); v !== null; v = call('next')) sum += v;
          return sum;
        },
        close() {},
      };
    },
  },
  {
    name: 'make-synchronized, one call per item',
    items: 5_000,
    setup() {
      const { start, next } = makeSynchronized(counterModule);
      return {
        run(n) {
          start(n);
          let sum = 0;
          for (let v = next(); v !== null; v = next()) sum += v;
          return sum;
        },
        close() {},
      };
    },
  },
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

console.log(
  `Sync iteration of a remote async generator of small integers (median of ${ROUNDS} rounds), Node ${process.version}`,
);
const report = {};
for (const regime of regimes) {
  report[regime.key] = await inRegime(regime, 10 * 60_000, async () => {
    const before = machineTimes();
    const live = CASES.map((c) => ({ ...c, ...c.setup(), rates: [] }));
    for (const c of live) c.run(Math.min(c.items, 1000)); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of live) {
        const start = performance.now();
        const sum = c.run(c.items);
        const ms = performance.now() - start;
        if (sum !== (c.items * (c.items - 1)) / 2) throw new Error(`${c.name}: wrong sum ${sum}`);
        c.rates.push((c.items / ms) * 1000);
      }
    }
    for (const c of live) c.close();
    const after = machineTimes();

    const synckitRate = median(live.find((c) => c.name.startsWith('synckit')).rates);
    console.log(
      `machine busy ${(((after.busy - before.busy) / (after.total - before.total)) * 100).toFixed(0)}% meanwhile\n`,
    );
    console.log('| case | items per round | items/s | vs synckit |');
    console.log('| --- | ---: | ---: | ---: |');
    const rows = live.map((c) => ({ case: c.name, items: c.items, itemsPerSecond: median(c.rates) }));
    for (const r of rows) {
      console.log(
        `| ${r.case} | ${r.items.toLocaleString('en')} | ${Math.round(r.itemsPerSecond).toLocaleString('en')} | ${(r.itemsPerSecond / synckitRate).toFixed(1)}x |`,
      );
    }
    return rows;
  });
}
saveResults('iterate', { rounds: ROUNDS, regimes: report, targets: [] });
