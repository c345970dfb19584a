/**
 * What the published package carries (issue 14): its metadata, its licence, and source maps that
 * work without the sources (the tarball has no src/, so each map holds its sources' text).
 */
import assert from 'node:assert/strict';
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
});
