// Benchmark: start-up. `new LoopThread()` plus its first trivial `runSync`, against a plain
// `new Worker()` (an eval'd script) until its first message reaches the main thread.
// Run with `npm run bench:startup` (builds first) or `node bench/startup.mjs [--idle-only | --busy-only] [--quick]`.
//
// STARTS fresh starts of each, taking turns; each thread is ended (not timed) before the next start.
// The median is printed, and the ratio loopthread / plain Worker (the target: at most 1.3x).
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { LoopThread } from 'loopthread';
import { benchOptions, inRegime, saveResults } from './machine.mjs';

const { quick, regimes } = benchOptions();
const STARTS = quick ? 7 : 15;
const GOAL = 1.3;

const cases = {
  async loopthread() {
    const t0 = performance.now();
    const loop = new LoopThread({ name: 'bench start-up' });
    if (loop.runSync(() => 1) !== 1) throw new Error('wrong answer');
    const ms = performance.now() - t0;
    loop.closeSync();
    return ms;
  },
  async worker() {
    const t0 = performance.now();
    const worker = new Worker("require('node:worker_threads').parentPort.postMessage(1);", { eval: true });
    await once(worker, 'message');
    const ms = performance.now() - t0;
    await worker.terminate();
    return ms;
  },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const fmt = (n, digits = 1) => n.toFixed(digits);

console.log(`Start-up to the first answer, Node ${process.version}; ${STARTS} fresh starts of each, taking turns`);
const report = {};
const targets = [];
for (const regime of regimes) {
  report[regime.key] = await inRegime(regime, 10 * 60_000, async () => {
    // One untimed start of each: the first thread of a process also loads the library and warms the disk cache.
    for (const run of Object.values(cases)) await run();
    const ms = { loopthread: [], worker: [] };
    for (let i = 0; i < STARTS; i++) {
      for (const [name, run] of Object.entries(cases)) ms[name].push(await run());
    }
    const lt = median(ms.loopthread);
    const w = median(ms.worker);
    console.log(
      `median ms: new LoopThread() + first runSync ${fmt(lt)} (min ${fmt(Math.min(...ms.loopthread))}), ` +
        `plain Worker to its first message ${fmt(w)} (min ${fmt(Math.min(...ms.worker))})`,
    );
    console.log(`loopthread / plain Worker: ${fmt(lt / w, 2)}x (target: at most ${GOAL}x)`);
    targets.push({
      target: 'start-up: new LoopThread() + first runSync vs a plain Worker',
      regime: regime.key,
      ratio: lt / w,
      goal: GOAL,
      lowerIsBetter: true,
    });
    return { medianMs: { loopthread: lt, worker: w }, ms };
  });
}
saveResults('startup', { starts: STARTS, regimes: report, targets });
