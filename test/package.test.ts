/**
 * What the published package carries (issue 14): its metadata, its licence, and source maps that
 * work without the sources (the tarball has no src/, so each map holds its sources' text).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;

describe('the package', () => {
  it('names its repository, homepage and issue tracker, and ships an MIT LICENSE', () => {
    assert.ok(pkg.repository && pkg.homepage && pkg.bugs);
    assert.equal(pkg.license, 'MIT');
    assert.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /^MIT License/);
  });

  it("every source map in dist/src carries its sources' text", () => {
    const maps = readdirSync(join(root, 'dist', 'src'), { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.map'),
    );
    assert.ok(maps.length > 10);
    for (const file of maps) {
      const map = JSON.parse(readFileSync(join(root, 'dist', 'src', file), 'utf8')) as {
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      assert.equal(map.sourcesContent?.length, map.sources.length, `${file} has no sourcesContent`);
      assert.ok(
        map.sourcesContent.every((text) => typeof text === 'string' && text.length > 0),
        file,
      );
    }
  });

  it('the loopthread/synckit entry of exports exists for import and require', () => {
    for (const file of ['synckit.js', 'synckit.d.ts', 'synckit-esm.mjs', 'synckit-esm.d.mts']) {
      assert.ok(existsSync(join(root, 'dist', 'src', file)), file);
    }
  });

  it('only the waiting layer (src/shm) calls Atomics.wait or Atomics.waitAsync', () => {
    // One place decides how a thread waits and spins (issue 11): a wait written elsewhere would
    // escape its liveness checks and its cost model. Comments aside, no other source names them.
    const src = join(root, 'src');
    const offenders: string[] = [];
    for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
      const path = file.replaceAll('\\', '/');
      if (!/\.m?ts$/.test(path) || path.startsWith('shm/')) continue;
      const code = readFileSync(join(src, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      if (/Atomics\.wait(Async)?\b/.test(code)) offenders.push(path);
    }
    assert.deepEqual(offenders, []);
  });

  it("every internal module's exports object keeps fast properties (no re-exports outside the entries)", () => {
    // A re-export (`export { x } from`, or exporting an imported binding) is compiled to an accessor
    // on `exports`, which turns the object into a dictionary: every call through that module then
    // costs a generic property lookup, on the hot path of every blocking call. The entries re-export
    // on purpose (users hold what they take from them); the threads' own main files run a thread.
    const script = `
      const { readdirSync } = require('node:fs');
      const { join } = require('node:path');
      const dir = ${JSON.stringify(join(root, 'dist', 'src'))};
      const skip = /(^|\\/)(index|synckit|loop-thread-main|loop-thread-boot|worker-entry|executor\\/worker-main)\\.js$|\\.bundle(-code)?\\.js$/;
      const slow = [];
      const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .map((f) => f.replaceAll('\\\\', '/'))
        .filter((f) => f.endsWith('.js') && !skip.test(f));
      for (const file of files) if (!%HasFastProperties(require(join(dir, file)))) slow.push(file);
      console.log(JSON.stringify({ checked: files.length, slow }));
      process.exit(0);
    `;
    const child = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const { checked, slow } = JSON.parse(child.stdout) as { checked: number; slow: string[] };
    assert.ok(checked > 40, `only ${String(checked)} modules checked`);
    assert.deepEqual(slow, []);
  });
});
