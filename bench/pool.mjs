// Benchmark: loopthread's ThreadPoolExecutor against piscina, tinypool, workerpool and poolifier,
// all in one run, 2 worker threads each. Run with `npm run bench:pool` (builds first) or
// `node bench/pool.mjs [--idle-only | --busy-only] [--quick]`; both regimes by default.
//
// Cases, per contender:
// - burst: BURST trivial tasks (identity of a number) submitted at once, then awaited together:
//   tasks per second from the first submit to the last result (queueing included).
// - serial: one trivial task at a time (await each before the next): microseconds per task.
// - fib: FIB_TASKS tasks computing fib(FIB_N) the slow way, submitted at once: tasks per second,
//   and how the tasks were split between the two threads (fair scheduling gives about 50/50).
//
// Each contender gets its own pool, warmed up first; then ROUNDS rounds, the contenders taking
// turns within each round, and the median round is printed. Ratios compare loopthread with each
// peer measured in the same run. The machine's CPU use during the run is printed too: other
// processes running meanwhile skew every number (the ratios less).
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ThreadPoolExecutor } from 'loopthread';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import workerpool from 'workerpool';
import { FixedThreadPool } from 'poolifier';
import { benchOptions, machineTimes, saveResults, startBusyProcess } from './machine.mjs';
import { measureMachineCosts } from '../dist/src/shm/costs.js';

const THREADS = 2;
const FIB_N = 25;
const { quick, regimes } = benchOptions();
const BURST = quick ? 20_000 : 100_000;
const SERIAL = quick ? 1_000 : 4_000;
const FIB_TASKS = quick ? 50 : 200;
const ROUNDS = quick ? 3 : 5;

const tasksURL = new URL('./pool-workers/tasks.mjs', import.meta.url);
const file = (name) => fileURLToPath(new URL(`./pool-workers/${name}`, import.meta.url));

const contenders = [
  {
    name: 'loopthread',
    make() {
      const pool = new ThreadPoolExecutor({ maxWorkers: THREADS, minWorkers: THREADS });
      const tasks = pool.import(tasksURL);
      return { run: (x) => tasks.identity(x), fib: (n) => tasks.fib(n), close: () => pool.shutdown() };
    },
  },
  {
    name: 'piscina',
    make() {
      const pool = new Piscina({ filename: tasksURL.href, minThreads: THREADS, maxThreads: THREADS });
      return {
        run: (x) => pool.run(x, { name: 'identity' }),
        fib: (n) => pool.run(n, { name: 'fib' }),
        close: () => pool.destroy(),
      };
    },
  },
  {
    name: 'tinypool',
    make() {
      const pool = new Tinypool({ filename: tasksURL.href, minThreads: THREADS, maxThreads: THREADS });
      return {
        run: (x) => pool.run(x, { name: 'identity' }),
        fib: (n) => pool.run(n, { name: 'fib' }),
        close: () => pool.destroy(),
      };
    },
  },
  {
    name: 'workerpool',
    make() {
      const pool = workerpool.pool(file('workerpool-worker.cjs'), {
        minWorkers: THREADS,
        maxWorkers: THREADS,
        workerType: 'thread',
      });
      return {
        run: (x) => pool.exec('identity', [x]),
        fib: (n) => pool.exec('fib', [n]),
        close: () => pool.terminate(),
      };
    },
  },
  {
    name: 'poolifier',
    make() {
      // Its defaults: its task queue (enableTasksQueue) makes bursts some 7 times slower here.
      const pool = new FixedThreadPool(THREADS, file('poolifier-worker.cjs'));
      return {
        run: (x) => pool.execute(x, 'identity'),
        fib: (n) => pool.execute(n, 'fib'),
        close: () => pool.destroy(),
      };
    },
  },
];

async function burst(c, n) {
  const start = performance.now();
  const all = new Array(n);
  for (let i = 0; i < n; i++) all[i] = c.run(i);
  const results = await Promise.all(all);
  const ms = performance.now() - start;
  if (results[n - 1] !== n - 1) throw new Error(`${c.name}: wrong burst result`);
  return (n / ms) * 1000;
}

async function serial(c, n) {
  const start = performance.now();
  for (let i = 0; i < n; i++) if ((await c.run(i)) !== i) throw new Error(`${c.name}: wrong serial result`);
  return ((performance.now() - start) / n) * 1000;
}

async function fib(c, n) {
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: n }, () => c.fib(FIB_N)));
  const ms = performance.now() - start;
  const byThread = new Map();
  for (const [, thread] of results) byThread.set(thread, (byThread.get(thread) ?? 0) + 1);
  const shares = [...byThread.values()].sort((a, b) => b - a);
  return { rate: (n / ms) * 1000, split: shares.map((s) => Math.round((s / n) * 100)).join('/') };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(
  `Node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${THREADS} threads per pool\n`,
);
/** Runs every contender in one regime: `loaded` keeps one core busy with another process meanwhile. */
async function regime(title, loaded) {
  let outcome;
  const busyProcess = loaded ? await startBusyProcess(30 * 60_000) : undefined;
  try {
    const costs = await measureMachineCosts();
    console.log(`== ${title} ==`);
    console.log(
      `this machine: futex round trip ${(costs.futexRoundTripMs * 1000).toFixed(2)} us, spin round trip ` +
        `${(costs.spinRoundTripMs * 1000).toFixed(2)} us, idle event loop woken by a message ${(costs.portWakeMs * 1000).toFixed(2)} us\n`,
    );
    const live = [];
    for (const spec of contenders) {
      const c = { name: spec.name, ...spec.make(), bursts: [], serials: [], fibs: [], splits: [] };
      await burst(c, 10_000);
      await serial(c, 1_000);
      await fib(c, 20);
      live.push(c);
    }
    const before = machineTimes();
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of live) {
        c.bursts.push(await burst(c, BURST));
        c.serials.push(await serial(c, SERIAL));
        const f = await fib(c, FIB_TASKS);
        c.fibs.push(f.rate);
        c.splits.push(f.split);
      }
      process.stdout.write(`round ${round + 1} of ${ROUNDS} done\n`);
    }
    const after = machineTimes();

    const rows = live.map((c) => ({
      name: c.name,
      burst: median(c.bursts),
      serial: median(c.serials),
      fib: median(c.fibs),
      split: c.splits[c.fibs.indexOf(median(c.fibs))],
    }));
    const ours = rows[0];
    const fmt = (n, digits = 0) =>
      n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
    console.log('');
    console.log(
      `| pool | burst of ${fmt(BURST)} (tasks/s) | serial latency (us/task) | fib(${FIB_N}) x ${FIB_TASKS} (tasks/s) | fib split |`,
    );
    console.log('| --- | ---: | ---: | ---: | :---: |');
    for (const r of rows) {
      console.log(`| ${r.name} | ${fmt(r.burst)} | ${fmt(r.serial, 1)} | ${fmt(r.fib)} | ${r.split} |`);
    }
    console.log('');
    console.log(
      "loopthread against each peer (burst and fib: how many times the peer's rate; serial: how many times faster):",
    );
    console.log('');
    console.log('| peer | burst | serial latency | fib |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const r of rows.slice(1)) {
      console.log(
        `| ${r.name} | ${fmt(ours.burst / r.burst, 2)}x | ${fmt(r.serial / ours.serial, 2)}x | ${fmt(ours.fib / r.fib, 2)}x |`,
      );
    }
    const peers = rows.slice(1);
    const bestBurst = peers.reduce((a, b) => (b.burst > a.burst ? b : a));
    const bestSerial = peers.reduce((a, b) => (b.serial < a.serial ? b : a));
    console.log('');
    console.log(
      `burst: ${fmt(ours.burst / bestBurst.burst, 2)}x the fastest peer (${bestBurst.name}); ` +
        `serial latency: ${fmt(ours.serial / bestSerial.serial, 2)} of the best peer's (${bestSerial.name})`,
    );
    const busy = (after.busy - before.busy) / (after.total - before.total);
    console.log(`machine CPU use during the timed rounds: ${fmt(busy * 100)}% of all cores`);
    outcome = { rows, costs, machineBusy: busy };

    // Closing comes after the table: poolifier's destroy() can leave its promise pending for ever (the
    // process would then end without a word), so each close gets a few seconds at most.
    for (const c of live) {
      let timer;
      const closed = await Promise.race([
        Promise.resolve(c.close()).then(() => true),
        new Promise((resolve) => (timer = setTimeout(resolve, 5_000, false))),
      ]);
      clearTimeout(timer);
      if (!closed) console.log(`(${c.name} did not close within 5 s)`);
    }
  } finally {
    await busyProcess?.stop();
  }
  return outcome;
}

const report = {};
for (const r of regimes) {
  report[r.key] = await regime(r.title, r.load);
  console.log('');
}
console.log('loopthread / each peer (burst and fib: rate; serial: how many times faster), per regime:');
for (const peer of contenders.slice(1).map((c) => c.name)) {
  const cells = regimes.map((r) => {
    const ours = report[r.key].rows[0];
    const p = report[r.key].rows.find((x) => x.name === peer);
    const x = (n) => `${n.toFixed(2)}x`;
    return `${r.key}: burst ${x(ours.burst / p.burst)}, serial ${x(p.serial / ours.serial)}, fib ${x(ours.fib / p.fib)}`;
  });
  console.log(`  ${peer}: ${cells.join('; ')}`);
}
saveResults('pool', { rounds: ROUNDS, regimes: report, targets: [] });
process.exit(0);
