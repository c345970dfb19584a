// Writes the worker bundles, run by `npm run build` after tsc: for each worker entry file of
// dist/src, one file holding the entry and every file it requires at load (the static requires at
// the top of each emitted file, followed to their end), so that a worker starts by loading one file
// instead of thirty (issue 11: a file costs resolution, a read and a compilation of its own).
//
// Each bundled file becomes a function of the CommonJS wrapper's arguments, keyed by its path
// relative to dist/src, and runs under its REAL filename, with a record in require.cache like
// Node's own: a later require() of that file (user code requiring loopthread on the thread, or a
// file loaded lazily) finds the same module object, so each module still has one copy. What is not
// bundled (lazy requires, node: builtins) is required for real. The loader is the `LOADER` below.
// The test runner and the benches write them too when tsc has written newer files since.
//
// A worker starts from a small starter, `<entry>.bundle.js`, which runs the bundle's code,
// `<entry>.bundle-code.js`, as if it were itself, compiled from V8's code cache of that code when a
// cache made by this very build and Node version is beside it: compiling it was a tenth of a
// LoopThread's start-up. The caches are made after the bundles, by a LoopThread and a pool worker
// that start, answer a few calls and write what V8 compiled by then (writeCodeCaches, in a child).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';

const root = join(import.meta.dirname, '..', 'dist', 'src');

/** The worker entries, relative to dist/src; each gets `<entry>.bundle.js` beside it. */
export const ENTRIES = ['loop-thread-main.js', 'executor/worker-main.js'];

export const bundleOf = (entry) => entry.replace(/\.js$/, '.bundle.js');
/** The bundle's code, which the starter runs. */
export const codeOf = (entry) => entry.replace(/\.js$/, '.bundle-code.js');

/** A require at the top level of an emitted file: `const x = require("./y.js");` and the like. */
const STATIC_REQUIRE =
  /^(?:(?:const|let|var) [\w$]+ = )?(?:__import(?:Default|Star)\()?require\("(\.{1,2}\/[^"]+)"\)/gm;
const SOURCE_MAP_COMMENT = /\n\/\/# sourceMappingURL=.*\s*$/;

/** The files `entry` loads at load time, entry first, each relative to dist/src. */
function closure(entry) {
  const files = [];
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.shift();
    if (files.includes(file)) continue;
    files.push(file);
    const text = readFileSync(join(root, file), 'utf8');
    for (const [, specifier] of text.matchAll(STATIC_REQUIRE)) pending.push(posix.join(posix.dirname(file), specifier));
  }
  return files;
}

/**
 * The loader at the bundle's end. `new Module(filename, parent)` makes the record Node itself makes
 * for a file (its `require`, `path`, `paths`, `children`...): require.cache is public and documented
 * as open to added entries, and its entries are such module objects, which Node 20 to 26's CommonJS
 * loader and its ES module import of CommonJS take as their own (test/startup.test.ts requires and
 * imports loopthread on the thread). Calling the Module constructor is the one undocumented piece
 * (it is typed by @types/node). Bun's module objects are not records of that class: there the
 * bundle loads the files one by one, as before.
 */
const LOADER = `
// Node's class of module records, which \`require('node:module')\` is too: taken from this module, since
// loading node:module (and the ES module loader it brings) costs a start a tenth of a millisecond.
const Module = module.constructor;
const { dirname, join, posix } = require('node:path');
/** dist/src, which the keys above are relative to. */
const root = join(__dirname, __ROOT__);

/** Where dist/src's files look for packages: the bundle's own lookup minus its folders below dist/src. */
const rootPaths = module.paths.slice(__DEPTH__);

/** node_modules folders a record looks in, as Node would list them for its file (one list per folder). */
const pathsOf = new Map();
function lookupPaths(key) {
  const folder = posix.dirname(key);
  let paths = pathsOf.get(folder);
  if (paths === undefined) {
    const own = [];
    for (let dir = folder; dir !== '.'; dir = posix.dirname(dir)) own.push(join(root, dir, 'node_modules'));
    paths = [...own, ...rootPaths];
    pathsOf.set(folder, paths);
  }
  return paths;
}

/** The exports of bundled file \`key\`, run once per thread, or those require.cache holds for it. */
function load(key, parent) {
  const filename = join(root, key);
  const cached = require.cache[filename];
  if (cached !== undefined) return cached.exports;
  const record = new Module(filename, parent);
  record.filename = filename;
  record.paths = lookupPaths(key);
  // Recorded before it runs, as Node does, so that a cycle finds its partial exports.
  require.cache[filename] = record;
  try {
    FILES[key].call(record.exports, record.exports, requireFrom(key, record), record, filename, dirname(filename));
  } catch (error) {
    delete require.cache[filename];
    throw error;
  }
  record.loaded = true;
  return record.exports;
}

/** The require of bundled file \`key\`: bundled files from the bundle, anything else for real. */
function requireFrom(key, record) {
  const own = function require(specifier) {
    if (!specifier.startsWith('./') && !specifier.startsWith('../')) return record.require(specifier);
    const target = posix.join(posix.dirname(key), specifier);
    return Object.hasOwn(FILES, target) ? load(target, record) : record.require(join(root, target));
  };
  // The rest of a module's require: what every require shares, and resolve from the file's place.
  own.cache = require.cache;
  own.extensions = require.extensions;
  own.main = require.main;
  let real;
  const resolver = () => (real ??= require('node:module').createRequire(record.filename));
  own.resolve = (request, options) => resolver().resolve(request, options);
  own.resolve.paths = (request) => resolver().resolve.paths(request);
  return own;
}

// A runtime whose modules are not records of that class (Bun) loads the files one by one, as tsc wrote them.
if (module instanceof Module && typeof Module.prototype.require === 'function') load(__ENTRY__, module);
else require(join(root, __ENTRY__));
`;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** A source map's mappings as lines of segments of absolute numbers [column, source, line, column, name?]. */
function decodeMappings(mappings) {
  const state = [0, 0, 0, 0];
  return mappings.split(';').map((line) => {
    let column = 0;
    return line
      .split(',')
      .filter((segment) => segment !== '')
      .map((segment) => {
        const fields = [];
        for (let i = 0, value = 0, shift = 0; i < segment.length; i++) {
          const digit = B64.indexOf(segment[i]);
          value += (digit & 31) << shift;
          shift += 5;
          if ((digit & 32) === 0) {
            fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
            value = shift = 0;
          }
        }
        column += fields[0];
        const out = [column];
        for (let f = 1; f < fields.length; f++) out.push((state[f - 1] += fields[f]));
        return out;
      });
  });
}

function vlq(n) {
  let value = n < 0 ? (-n << 1) | 1 : n << 1;
  let out = '';
  do {
    const digit = value & 31;
    value >>>= 5;
    out += B64[value > 0 ? digit | 32 : digit];
  } while (value > 0);
  return out;
}

function encodeMappings(lines) {
  const state = [0, 0, 0, 0];
  return lines
    .map((segments) => {
      let column = 0;
      return segments
        .map((segment) => {
          let out = vlq(segment[0] - column);
          column = segment[0];
          for (let f = 1; f < segment.length; f++) {
            out += vlq(segment[f] - state[f - 1]);
            state[f - 1] = segment[f];
          }
          return out;
        })
        .join(',');
    })
    .join(';');
}

/** The bundle of `entry` and its source map (the files' own maps, moved to where each file sits). */
function build(entry) {
  const out = codeOf(entry);
  const outDir = posix.dirname(out);
  const files = closure(entry);
  // What the code cache must have been made from: this bundle's files as they are now.
  const hash = createHash('sha256');
  for (const file of files) hash.update(file).update(readFileSync(join(root, file)));
  const buildId = hash.digest('hex').slice(0, 16);
  const chunks = [];
  const map = { version: 3, file: posix.basename(out), sources: [], sourcesContent: [], names: [], mappings: '' };
  const mapped = [];
  // Lines of the bundle's own (the loader, each file's wrapper) map to themselves, in the bundle.
  map.sources.push(posix.basename(out));
  map.sourcesContent.push(null); // the bundle's own text, once written
  const add = (text, segments) => {
    chunks.push(text);
    const n = text.split('\n').length;
    for (let i = 0; i < n; i++) mapped.push(segments === undefined ? [[0, 0, mapped.length, 0]] : (segments[i] ?? []));
  };
  add("'use strict';");
  add(
    `// Generated by scripts/bundle-boot.mjs from ${files.length} files of dist/src: ${entry} and what it requires at load; build ${buildId}.`,
  );
  add('const FILES = {');
  for (const file of files) {
    const source = readFileSync(join(root, file), 'utf8').replace(SOURCE_MAP_COMMENT, '');
    // Named after the file: the frames of a file's top-level code say which file it is. In
    // parentheses, V8 compiles it with the bundle (each runs once, at once) rather than skimming it
    // then and parsing it again when it runs.
    add(
      `${JSON.stringify(file)}: (function ${file.replace(/[^\w$]/g, '_')}(exports, require, module, __filename, __dirname) {`,
    );
    let segments;
    const mapFile = join(root, `${file}.map`);
    if (existsSync(mapFile)) {
      const own = JSON.parse(readFileSync(mapFile, 'utf8'));
      // The map's sources are relative to its own folder; the bundle's map is in `outDir`.
      const from = resolve(dirname(mapFile), own.sourceRoot ?? '');
      const sourceBase = map.sources.length;
      const nameBase = map.names.length;
      for (const [i, s] of own.sources.entries()) {
        map.sources.push(relative(join(root, outDir), resolve(from, s)).replaceAll('\\', '/'));
        map.sourcesContent.push(own.sourcesContent?.[i] ?? null);
      }
      map.names.push(...(own.names ?? []));
      segments = decodeMappings(own.mappings).map((line) =>
        line.map(([column, s, l, c, n]) =>
          s === undefined
            ? [column]
            : n === undefined
              ? [column, s + sourceBase, l, c]
              : [column, s + sourceBase, l, c, n + nameBase],
        ),
      );
    }
    add(source, segments);
    add('}),');
  }
  add('};');
  const depth = outDir === '.' ? 0 : outDir.split('/').length;
  add(
    LOADER.replaceAll('__ROOT__', JSON.stringify(posix.relative(outDir, '.') || '.'))
      .replaceAll('__DEPTH__', String(depth))
      .replaceAll('__ENTRY__', JSON.stringify(entry))
      .trim(),
  );
  add(`//# sourceMappingURL=${posix.basename(out)}.map\n`);
  map.mappings = encodeMappings(mapped);
  const text = chunks.join('\n');
  map.sourcesContent[0] = text;
  return { out, files, text, map: JSON.stringify(map) };
}

/**
 * A worker's first file: runs the bundle's code as if it were this file (same exports, require,
 * module, folder), compiled by node:vm with V8's code cache of it when `<code>.cache` was made from
 * this very build (its header: the build id and the Node version). A cache V8 refuses anyway is only
 * a compilation more. Other runtimes require the code as a file of its own.
 */
const STARTER = `'use strict';
// Generated by scripts/bundle-boot.mjs: a worker starts here (see that script).
const file = require('node:path').join(__dirname, __CODE__);
// Source maps apply only to files Node's loader compiles; other runtimes have no code cache to use.
if (process.sourceMapsEnabled || process.versions.bun !== undefined || process.versions.deno !== undefined) {
  require(file);
} else {
  // The owner learns that this thread runs JavaScript before the code, which can fail to load, is
  // compiled: the thread is then seen to have stopped, not to be still starting.
__EARLY__
  const { readFileSync, writeFileSync } = require('node:fs');
  const vm = require('node:vm');
  const source = readFileSync(file, 'utf8');
  const header = \`\${/; build (\\w+)\\.\\n/.exec(source)?.[1]} \${process.version}\\n\`;
  let cachedData;
  try {
    const cache = readFileSync(\`\${file}.cache\`);
    if (cache.toString('latin1', 0, header.length) === header) cachedData = cache.subarray(header.length);
  } catch {
    // No cache: the code is compiled.
  }
  const script = new vm.Script(\`(function (exports, require, module, __filename, __dirname) {\${source}\\n})\`, {
    filename: file,
    cachedData,
  });
  // Code compiled by node:vm has no module loader for import(): this file lends its own (src/starter-host.ts).
  globalThis[Symbol.for('loopthread.starter')] = {
    evaluate: function compileInline(text) {
      return (0, eval)(text);
    },
    importModule: (specifier) => import(specifier),
  };
  globalThis[Symbol.for('loopthread.codeCache')] =
    cachedData === undefined ? 'none' : script.cachedDataRejected ? 'refused' : 'used';
  if (process.env.LOOPTHREAD_WRITE_CODE_CACHE === '1') {
    globalThis[Symbol.for('loopthread.writeCodeCache')] = () => {
      writeFileSync(\`\${file}.cache\`, Buffer.concat([Buffer.from(header, 'latin1'), script.createCachedData()]));
    };
  }
  script.runInThisContext().call(module.exports, module.exports, require, module, __filename, __dirname);
}
`;

/**
 * Per entry, what its starter does first: say that the thread runs JavaScript, where its owner's
 * liveness probe reads it (a LoopThread's line, named in workerData; a pool worker's words, which
 * come by message: executor/worker-boot.js takes them).
 */
const EARLY = {
  'loop-thread-main.js': `  const data = require('node:worker_threads').workerData;
  if (data?.line instanceof SharedArrayBuffer && Number.isInteger(data.ranIndex)) {
    Atomics.store(new Int32Array(data.line), data.ranIndex, -1);
  }`,
  'executor/worker-main.js': `  require('./worker-boot.js');`,
};

/** Whether `entry`'s bundle is missing, or older than a file it holds (tsc writes every file anew). */
function stale(entry) {
  const out = join(root, codeOf(entry));
  if (!existsSync(out) || !existsSync(join(root, bundleOf(entry)))) return true;
  const built = statSync(out).mtimeMs;
  return closure(entry).some((file) => statSync(join(root, file)).mtimeMs > built);
}

/** Writes the bundles (with `onlyStale`, those missing or older than their files): says which. */
export function writeBundles({ onlyStale = false } = {}) {
  const written = [];
  for (const entry of ENTRIES) {
    if (onlyStale && !stale(entry)) continue;
    const { out, files, text, map } = build(entry);
    rmSync(join(root, `${out}.cache`), { force: true });
    writeFileSync(join(root, out), text);
    writeFileSync(join(root, `${out}.map`), map);
    writeFileSync(
      join(root, bundleOf(entry)),
      STARTER.replace('__CODE__', JSON.stringify(posix.basename(out))).replace('__EARLY__', EARLY[entry]),
    );
    written.push(`dist/src/${bundleOf(entry)} (${files.length} files)`);
  }
  if (written.length > 0) written.push(...writeCodeCaches());
  return written;
}

/**
 * Writes the bundles' code caches: in a child process (no thread of loopthread's runs in the
 * caller's), a LoopThread and a pool worker start, answer a few calls, and write what V8 has
 * compiled of their code by then. Without caches threads only start slower: a failure is said, not thrown.
 */
export function writeCodeCaches() {
  const child = spawnSync(process.execPath, [import.meta.filename, '--code-caches'], {
    env: { ...process.env, LOOPTHREAD_WRITE_CODE_CACHE: '1' },
    encoding: 'utf8',
    // Only a guard for the build: its threads report their own failures, and a build stuck here
    // would be worse than threads that start without a cache.
    timeout: 120_000,
  });
  if (child.status === 0) return child.stdout.split('\n').filter((line) => line !== '');
  return [`no code caches (the threads start without): ${child.stderr.trim() || `exit ${String(child.status)}`}`];
}

/** In the child of writeCodeCaches. */
function makeCodeCaches() {
  const { LoopThread, ThreadPoolExecutor } = createRequire(import.meta.url)('../dist/src/index.js');
  const write = () => globalThis[Symbol.for('loopthread.writeCodeCache')]();
  const loop = new LoopThread();
  try {
    for (let i = 0; i < 3; i++) loop.runSync((x) => x, 'warm');
    loop.runSync(write);
  } finally {
    loop.closeSync();
  }
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
  try {
    for (let i = 0; i < 3; i++) pool.submit((x) => x, 'warm').resultSync();
    pool.submit(write).resultSync();
  } finally {
    void pool.shutdown();
  }
  for (const entry of ENTRIES) console.log(`dist/src/${codeOf(entry)}.cache`);
}

if (process.argv[1] === import.meta.filename) {
  if (process.argv[2] === '--code-caches') makeCodeCaches();
  else for (const line of writeBundles()) console.log(`wrote ${line}`);
}
