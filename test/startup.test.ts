/**
 * Start-up (issue 11): a LoopThread's worker loads only the files a call needs, from one file (the
 * worker bundle, scripts/bundle-boot.mjs), and each of loopthread's modules still has one copy on
 * the thread. What only lending, imports, entered resources, errors, a dying thread or calls that
 * never settle use is loaded on first use, and then works.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import {
  CancelledError,
  LoopThread,
  ThreadPoolExecutor,
  WorkerCrashedError,
  WorkerEntryNotFoundError,
} from '../src/index.js';
import { rejectionWithin, thrown } from './helpers.js';

/** loopthread's ES module entry, as user code imports it. */
const esmEntry = pathToFileURL(join(__dirname, '..', 'src', 'esm.mjs')).href;

/** loopthread's own files the loop thread has loaded, relative to dist/src. */
function ownFilesLoaded(loop: LoopThread): string[] {
  return loop.runSync(() => {
    const { createRequire } = process.getBuiltinModule('node:module');
    return Object.keys(createRequire('/').cache)
      .map((file) => file.replaceAll('\\', '/'))
      .filter((file) => file.includes('/dist/src/'))
      .map((file) => file.slice(file.lastIndexOf('/dist/src/') + '/dist/src/'.length));
  });
}

/** Files a call that sends and returns plain data does not need. */
const RARE = [
  'portal/lender.js',
  'portal/remote.js',
  'portal/exports.js',
  'portal/resources.js',
  'portal/idle-watch.js',
  'modules.js',
  'codec/standalone.js',
  'codec/error-serde.js',
  'shm/thread-liveness.js',
];

describe('a LoopThread starting', () => {
  const loop = new LoopThread({ name: 'start-up' });
  after(() => {
    loop.closeSync();
  });

  it('answers a trivial call without loading what lending and imports need', () => {
    assert.equal(
      loop.runSync(() => 1),
      1,
    );
    const loaded = ownFilesLoaded(loop);
    assert.ok(loaded.includes('portal/host.js'), `the host's own file is seen: ${loaded.join(', ')}`);
    for (const file of RARE) assert.ok(!loaded.includes(file), `${file} was loaded at start-up`);
  });

  it('runs the host from the worker bundle, not from dist/src files loaded one by one', () => {
    const { main, hostFiles } = loop.runSync(() => {
      // The files of the frames that run this call (the host's), whatever maps stacks to sources.
      // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, never called here
      const { prepareStackTrace } = Error;
      Error.prepareStackTrace = (_, sites: NodeJS.CallSite[]) => sites.map((site) => site.getFileName() ?? '');
      const files = new Error().stack as unknown as string[];
      Error.prepareStackTrace = prepareStackTrace;
      const { createRequire } = process.getBuiltinModule('node:module');
      return { main: createRequire('/').main?.filename ?? '', hostFiles: files.slice(1) };
    });
    // The thread starts from the bundle's starter, which runs the bundle's code as itself.
    assert.match(main, /[\\/]dist[\\/]src[\\/]loop-thread-main\.bundle\.js$/);
    const code = main.replace(/\.bundle\.js$/, '.bundle-code.js');
    assert.ok(hostFiles.includes(code), `the host's frames: ${hostFiles.join(', ')}`);
    for (const file of hostFiles) assert.ok(!/[\\/]dist[\\/]src[\\/]portal[\\/]/.test(file), `a frame of ${file}`);
  });

  it("user code on the thread that requires or imports loopthread gets the host's own modules", async () => {
    // The call's signal, and the reason the host aborts it with, as user code sees them.
    const running = loop.run(
      async (file: string, esm: string) => {
        const { createRequire } = process.getBuiltinModule('node:module');
        const lt = createRequire(file)('loopthread') as typeof import('../src/index.js');
        const signal = lt.currentSignal();
        const aborted = new Promise((resolve) => {
          signal.addEventListener('abort', resolve);
        });
        const imported = import(esm) as Promise<typeof import('../src/index.js')>;
        (globalThis as { seen?: unknown }).seen = { lt, imported, signal };
        await aborted;
      },
      __filename,
      esmEntry,
    );
    // Calls by the port run in order: by this one, the call above waits for its signal.
    assert.ok(await loop.run(() => (globalThis as { seen?: unknown }).seen !== undefined));
    running.cancel();
    assert.ok((await rejectionWithin(running, 'the cancelled call', 30_000)) instanceof CancelledError);
    const seen = await loop.run(async () => {
      type Api = typeof import('../src/index.js');
      const { lt, signal, ...rest } = (
        globalThis as { seen?: { lt: Api; imported: Promise<Api>; signal: AbortSignal } }
      ).seen!;
      const imported = await rest.imported;
      return {
        aborted: signal.aborted,
        reasonIsCancelledError: signal.reason instanceof lt.CancelledError,
        reasonIsLoopThreadError: signal.reason instanceof lt.LoopThreadError,
        importedIsRequired:
          imported.currentSignal === lt.currentSignal && imported.CancelledError === lt.CancelledError,
      };
    });
    assert.deepEqual(seen, {
      aborted: true,
      reasonIsCancelledError: true,
      reasonIsLoopThreadError: true,
      importedIsRequired: true,
    });
  });

  it('loads the lending code when it first lends, and the lent function works', () => {
    const add = loop.runSync(() => (a: number, b: number) => a + b);
    assert.equal(add(2, 3), 5);
    const loaded = ownFilesLoaded(loop);
    assert.ok(loaded.includes('portal/lender.js') && loaded.includes('portal/remote.js'));
  });

  it('loads what errors need when one first crosses, and the error keeps its class', () => {
    assert.throws(
      () =>
        loop.runSync(() => {
          throw new RangeError('out of range');
        }),
      (error: unknown) => error instanceof RangeError && error.message === 'out of range',
    );
    assert.ok(ownFilesLoaded(loop).includes('codec/error-serde.js'));
  });
});

// ---- the code caches (scripts/bundle-boot.mjs) ------------------------------------------------

/** How the thread's starter compiled the bundle's code: 'used' its cache, 'refused' (V8 did), or 'none'. */
const codeCache = (): unknown => (globalThis as Record<symbol, unknown>)[Symbol.for('loopthread.codeCache')];

/** The header a cache must start with to be used: the build of the code beside it, and this Node. */
function cacheHeader(dir: string, code: string): string {
  const build = /; build (\w+)\.\n/.exec(readFileSync(join(dir, code), 'utf8'))?.[1];
  assert.ok(build !== undefined, `${code} names its build`);
  return `${build} ${process.version}\n`;
}

describe('threads start from code cached by the build, when it was this build and this Node', () => {
  const dist = join(__dirname, '..', 'src');
  const made = (file: string): string => readFileSync(join(dist, file)).toString('latin1').split('\n', 1)[0] ?? '';
  // The build made the caches with the Node that built; the suite may run on another (CI's Node 24).
  const sameNode = (file: string): boolean => made(file).endsWith(` ${process.version}`);
  /** What a thread's starter says it did with the cache beside `file`; with source maps on, it reads none. */
  const expected = (file: string): unknown =>
    process.sourceMapsEnabled ? undefined : sameNode(`${file}.cache`) ? 'used' : 'none';

  it('a LoopThread and a pool worker use the caches the build wrote (on the Node that wrote them)', async () => {
    const loop = new LoopThread({ name: 'cached' });
    const pool = new ThreadPoolExecutor({ maxWorkers: 1 });
    try {
      assert.equal(loop.runSync(codeCache), expected('loop-thread-main.bundle-code.js'));
      assert.equal(await pool.submit(codeCache), expected('executor/worker-main.bundle-code.js'));
    } finally {
      loop.closeSync();
      await pool.shutdown();
    }
  });

  it('a cache of another build is not read, one V8 refuses is compiled anew: both threads work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopthread-cache-'));
    try {
      cpSync(dist, dir, { recursive: true });
      const loopCode = 'loop-thread-main.bundle-code.js';
      const poolCode = join('executor', 'worker-main.bundle-code.js');
      // Another build's (the header differs), and this build's with bytes V8 cannot take.
      writeFileSync(join(dir, `${loopCode}.cache`), `0123456789abcdef ${process.version}\n...`);
      writeFileSync(join(dir, `${poolCode}.cache`), `${cacheHeader(dir, poolCode)}not a code cache`);
      const loop = new LoopThread({ name: 'stale cache', workerDir: dir });
      const pool = new ThreadPoolExecutor({ maxWorkers: 1, workerDir: dir });
      try {
        assert.deepEqual(
          loop.runSync(
            (n: number) => [n + 1, (globalThis as Record<symbol, unknown>)[Symbol.for('loopthread.codeCache')]],
            1,
          ),
          [2, process.sourceMapsEnabled ? undefined : 'none'],
        );
        assert.deepEqual(
          await pool.submit(
            (n: number) => [n + 1, (globalThis as Record<symbol, unknown>)[Symbol.for('loopthread.codeCache')]],
            1,
          ),
          [2, process.sourceMapsEnabled ? undefined : 'refused'],
        );
        // Code the thread evaluates, and modules it imports, still have a module loader for import().
        assert.equal(await loop.run(async () => (await import('node:path')).sep.length), 1);
        assert.equal(await pool.submit(async () => (await import('node:path')).sep.length), 1);
      } finally {
        loop.closeSync();
        await pool.shutdown();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a worker folder with a bundle's starter but not its code fails at once, naming the missing file", () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopthread-cache-'));
    try {
      cpSync(dist, dir, { recursive: true });
      for (const code of ['loop-thread-main.bundle-code.js', join('executor', 'worker-main.bundle-code.js')]) {
        rmSync(join(dir, code));
      }
      for (const start of [
        () => new LoopThread({ workerDir: dir }),
        () => new ThreadPoolExecutor({ workerDir: dir }),
      ]) {
        const error = thrown(start);
        assert.ok(error instanceof WorkerEntryNotFoundError, String(error));
        assert.match(error.message, /bundle-code\.js does not exist/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a LoopThread or pool worker whose code fails to load fails a blocked call at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopthread-cache-'));
    try {
      cpSync(dist, dir, { recursive: true });
      for (const file of ['loop-thread-main.bundle-code.js', join('executor', 'worker-main.bundle-code.js')]) {
        const code = join(dir, file);
        rmSync(`${code}.cache`);
        writeFileSync(code, `${readFileSync(code, 'utf8')}\nthis is not JavaScript (\n`);
      }
      // Limits long enough that only finding the thread stopped ends the call before the test's
      // own limit: before, nothing said the thread had run, and it was taken for one still starting.
      const loop = new LoopThread({ workerDir: dir, startupTimeout: 600_000 });
      const pool = new ThreadPoolExecutor({ maxWorkers: 1, workerDir: dir });
      try {
        const error = thrown(() => loop.runSync(() => 1));
        assert.ok(error instanceof WorkerCrashedError, String(error));
        assert.doesNotMatch(error.message, /did not start/);
        const poolError = thrown(() => pool.submit((n: number) => n, 1).resultSync({ timeout: 600_000 }));
        assert.ok(poolError instanceof WorkerCrashedError, String(poolError));
      } finally {
        loop.closeSync();
        await pool.terminate();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
