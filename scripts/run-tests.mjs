// Runs the node:test suite on the compiled tests: dist/test/*.test.js for `npm test`, or with
// --soak the long soaks in dist/test/soak/ for `npm run test:soak`. Each file runs in a
// `node --test` process of its own, two at a time (the machines this runs on have two cores), and
// its output is printed whole when it ends, then a line of times per file. A failed file's output
// is printed again at the end and kept in test-failures/ (git-ignored), so that a failure seen once
// can be studied later. Other arguments pass through to `node --test`.
//
// Hangs fail instead of stalling the run: --test-timeout fails a test whose promise never settles,
// and a file still running after its file limit is killed (with its subprocesses) and fails. The
// runner enforces that limit itself because a test that blocks its thread (a sync call that never
// wakes) cannot be stopped from inside, and since Node 22 `node --test` waits for such a file
// forever. Both limits are far above what any file takes on a loaded machine: they catch a hang,
// never a slow machine.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { writeBundles } from './bundle-boot.mjs';

const args = process.argv.slice(2);
const soak = args.includes('--soak');
const passThrough = args.filter((a) => a !== '--soak');

const root = join(import.meta.dirname, '..');
const dir = join(root, 'dist', 'test', ...(soak ? ['soak'] : []));
const TEST_LIMIT_MS = soak ? 20 * 60_000 : 2 * 60_000;
const FILE_LIMIT_MS = soak ? 30 * 60_000 : 5 * 60_000;
const CONCURRENCY = soak ? 1 : 2;

let files;
try {
  files = readdirSync(dir)
    .filter((f) => f.endsWith('.test.js') || f.endsWith('.test.mjs'))
    .sort()
    .map((f) => join(dir, f));
} catch {
  files = [];
}
// The worker bundles hold dist/src's files: rewritten if tsc wrote newer ones (`npm run build` does both).
for (const line of writeBundles({ onlyStale: true })) console.log(`wrote ${line}`);
if (files.length === 0) {
  console.error(`no compiled tests found in ${relative(root, dir)}: run \`npm run build\` first`);
  process.exit(1);
}

/** Process groups still running, so that an interrupted run leaves nothing behind. */
const running = new Set();
const killGroup = (pid) => {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
};
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const pid of running) killGroup(pid);
    process.exit(130);
  });
}

/**
 * Whether a process of group `pgid` still runs. On Linux, processes that have exited but not yet
 * been reaped (zombies, which the signal check counts) are not running: a helper that ended with
 * its parent is reaped by init in its own time.
 */
function groupAlive(pgid) {
  if (process.platform === 'linux') {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so read after the last ')'.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') return true;
    }
    return false;
  }
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs one file; resolves with its outcome once its whole process group is done. */
function runFile(file) {
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(
      process.execPath,
      ['--test', '--test-concurrency=1', `--test-timeout=${TEST_LIMIT_MS}`, ...passThrough, file],
      // A process group of its own: a hung file is killed with whatever it started.
      { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    running.add(child.pid);
    const output = [];
    child.stdout.on('data', (chunk) => output.push(chunk));
    child.stderr.on('data', (chunk) => output.push(chunk));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      killGroup(child.pid);
    }, FILE_LIMIT_MS);
    let exit = { code: null, signal: null };
    let leftBehind = false;
    child.on('exit', (code, signal) => {
      exit = { code, signal };
    });
    // Judged once the file's stdio has closed, not at its exit: helpers that end with their parent
    // (esbuild's service, which tsx starts and which shares stderr) are gone by then, while
    // anything still in the group was left running. The file's time limit still covers the wait.
    child.on('close', () => {
      clearTimeout(timer);
      // Whatever the file started and left running goes with it (the test failed to stop it).
      if (groupAlive(child.pid)) {
        leftBehind = !killed;
        killGroup(child.pid);
      }
      running.delete(child.pid);
      const text = Buffer.concat(output).toString();
      const { code, signal } = exit;
      let why = '';
      if (killed) why = `killed: still running after ${String(FILE_LIMIT_MS / 1000)} s`;
      else if (code !== 0) why = signal === null ? `exit code ${String(code)}` : `killed by ${signal}`;
      else if (leftBehind) why = 'it left processes running';
      resolve({ file, text, failed: why !== '', why, seconds: (performance.now() - start) / 1000 });
    });
  });
}

const counts = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
const outcomes = [];
const queue = [...files];
const started = performance.now();
async function worker() {
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const outcome = await runFile(file);
    outcomes.push(outcome);
    const name = relative(root, outcome.file);
    console.log(`\n=== ${name} (${outcome.seconds.toFixed(1)} s)${outcome.failed ? ` FAILED: ${outcome.why}` : ''}`);
    process.stdout.write(outcome.text);
    // The totals the reporter printed (TAP: "# pass 3", spec: "ℹ pass 3").
    for (const [, key, n] of outcome.text.matchAll(/^[#ℹ] (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gmu)) {
      counts[key] += Number(n);
    }
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));

console.log(`\n=== ${soak ? 'soak' : 'test'} files, slowest first`);
for (const o of outcomes.toSorted((a, b) => b.seconds - a.seconds)) {
  console.log(`${o.failed ? 'FAIL' : 'ok  '} ${o.seconds.toFixed(1).padStart(6)} s  ${relative(root, o.file)}`);
}
const failedFiles = outcomes.filter((o) => o.failed);
// Named by the run's start, so that a later run's failure of the same file does not overwrite it.
const runName = new Date(performance.timeOrigin).toISOString().replaceAll(':', '-');
for (const o of failedFiles) {
  const log = join(root, 'test-failures', `${runName}-${basename(o.file)}.log`);
  mkdirSync(join(root, 'test-failures'), { recursive: true });
  writeFileSync(log, `${relative(root, o.file)} FAILED: ${o.why}\n\n${o.text}`);
  console.log(`\n=== FAILED: ${relative(root, o.file)}: ${o.why} (kept in ${relative(root, log)})`);
  process.stdout.write(o.text);
}
console.log(
  `${String(files.length)} files, ${String(counts.tests)} tests (${String(counts.cancelled)} cancelled), ` +
    `in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
// Last, the plain closing line CI reads: cancelled tests count as failed.
console.log(
  `tests: ${String(counts.pass)} passed, ${String(counts.fail + counts.cancelled)} failed, ${String(counts.skipped)} skipped`,
);
process.exit(failedFiles.length === 0 ? 0 : 1);
