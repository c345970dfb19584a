// What the machine's CPUs did, for the benches' "was anything else running?" lines.
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';

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
