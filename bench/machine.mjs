// What the machine's CPUs did, for the benches' "was anything else running?" lines, and what every
// bench shares: its two regimes, the machine's measured costs, and handing results to bench/all.mjs.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { measureMachineCosts } from '../dist/src/shm/costs.js';
import { writeBundles } from '../scripts/bundle-boot.mjs';

// The worker bundles hold dist/src's files: rewritten if tsc wrote newer ones (`npm run build` does both).
writeBundles({ onlyStale: true });

/** Busy and total milliseconds of all CPUs of the machine so far. */
export function machineTimes() {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  return { busy, total };
}

/**
 * Starts a process that keeps one core busy for at most `ms` and resolves once it is spinning. It can
 * not outlive the bench: it is killed when its section ends or this process exits; Ctrl-C reaches it
 * too (same process group); and it stops by itself at its deadline or as soon as its parent is gone.
 * No signal handlers here: they would only run between sections, so they would delay Ctrl-C instead.
 */
export async function startBusyProcess(ms) {
  const source = `
    require('node:fs').writeSync(1, 'ready\\n');
    const parent = process.ppid;
    const end = Date.now() + ${Math.round(ms)};
    for (let i = 1; Date.now() < end; i++) if (i % 1e6 === 0 && process.ppid !== parent) break;`;
  // Taken before the child starts its clock, so the child surely runs until then.
  const deadline = Date.now() + ms;
  const child = spawn(process.execPath, ['-e', source], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const stop = async () => {
    process.off('exit', kill);
    // No pid: it never started (and will not emit 'exit').
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    kill();
    await exited;
  };
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the busy process did not start within 10 s')), 10_000);
      child.stdout.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`the busy process exited early (${code ?? signal})`)));
    });
  } catch (error) {
    await stop();
    throw error;
  }
  child.stdout.resume();
  return { pid: child.pid, deadline, stop };
}

/**
 * The two regimes every bench runs: an idle machine, and one core kept busy by a process of the
 * bench's own (startBusyProcess). `--idle-only` / `--busy-only` pick one; `--quick` (or
 * BENCH_QUICK=1) asks the bench for fewer rounds.
 */
export function benchOptions(argv = process.argv.slice(2)) {
  const known = ['--idle-only', '--busy-only', '--quick'];
  const unknown = argv.filter((a) => !known.includes(a));
  if (unknown.length > 0 || (argv.includes('--idle-only') && argv.includes('--busy-only'))) {
    console.error(`usage: node ${process.argv[1]} [--idle-only | --busy-only] [--quick] (got: ${argv.join(' ')})`);
    process.exit(2);
  }
  const all = [
    { key: 'idle', title: 'idle machine', load: false },
    { key: 'busy', title: 'one core kept busy by another process', load: true },
  ];
  return {
    quick: argv.includes('--quick') || process.env.BENCH_QUICK === '1',
    regimes: all.filter((r) => !argv.includes(r.load ? '--idle-only' : '--busy-only')),
  };
}

/**
 * Runs `fn(costs)` in a regime: with the busy process running (for at most `maxMs`) if it is the
 * loaded one, after measuring what waiting costs on the machine right then, which it prints.
 */
export async function inRegime(regime, maxMs, fn) {
  console.log(`\n== ${regime.title} ==`);
  const busy = regime.load ? await startBusyProcess(maxMs) : undefined;
  try {
    const costs = await measureMachineCosts();
    console.log(
      `this machine now: futex round trip ${(costs.futexRoundTripMs * 1000).toFixed(2)} us, spin round trip ` +
        `${(costs.spinRoundTripMs * 1000).toFixed(2)} us, idle event loop woken by a message ${(costs.portWakeMs * 1000).toFixed(2)} us`,
    );
    const result = await fn(costs);
    if (busy !== undefined && Date.now() > busy.deadline) {
      console.log('WARNING: the busy process ended before this section did: the load did not cover all of it');
    }
    return result;
  } finally {
    await busy?.stop();
  }
}

/**
 * Hands a bench's results to `bench/all.mjs` (npm run bench), which collects them in
 * bench/results.json; run alone, a bench only prints. `targets`: the targets this bench
 * measures, each { target, regime, ratio, goal, higherIsBetter } (ratio and goal as "times").
 */
export function saveResults(name, data) {
  const file = process.env.LOOPTHREAD_BENCH_OUT;
  if (file === undefined) return;
  writeFileSync(file, JSON.stringify({ name, ...data }, null, 2) + '\n');
}
