// Runs the node:test suite on the compiled tests (dist/test), two files at a time for the two
// cores of the machines this runs on. Extra arguments pass through to `node --test`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(import.meta.dirname, '..', 'dist', 'test');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js') || f.endsWith('.test.mjs'))
  .sort()
  .map((f) => join(dir, f));
if (files.length === 0) {
  console.error('no compiled tests found in dist/test: run `npm run build` first');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=120000', ...process.argv.slice(2), ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
