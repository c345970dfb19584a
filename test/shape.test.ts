/**
 * The README's table of lifecycle and sharing members (section "One lifecycle, one way to share"),
 * checked against the real objects both ways: a ✓ is a member that exists and behaves as the
 * README says, a — is a member that is absent. Also the error codes of the README's Errors table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MessagePort } from 'node:worker_threads';
import * as lib from 'loopthread';
import { Channel, LoopThread, Portal, ThreadPoolExecutor, spawnThread } from 'loopthread';

const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');

const PARTS = ['LoopThread', 'Portal', 'ThreadPoolExecutor', 'Channel', 'connection', 'spawnThread'] as const;
type Part = (typeof PARTS)[number];
const MEMBERS = [
  'close({ grace, signal })',
  'closeSync()',
  'terminate()',
  'closed',
  'isClosed',
  '[Symbol.asyncDispose]',
  '[Symbol.dispose]',
  'createHandle()',
  'X.connect(handle)',
  'with(options)',
] as const;
type Member = (typeof MEMBERS)[number];

/** The table between the shape-table markers: member -> part -> whether it has it. */
function readTable(): Map<string, Map<string, boolean>> {
  const start = readme.indexOf('<!-- shape-table -->');
  const end = readme.indexOf('<!-- /shape-table -->');
  assert.ok(start >= 0 && end > start, 'the README has the shape table between its markers');
  const rows = readme
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  const [header, , ...body] = rows;
  assert.deepEqual(header, ['member', ...PARTS]);
  const table = new Map<string, Map<string, boolean>>();
  for (const [member = '', ...cells] of body) {
    const row = new Map<string, boolean>();
    cells.forEach((cell, i) => {
      assert.ok(cell.startsWith('✓') || cell === '—', `cell ${member} / ${String(PARTS[i])}: ${cell}`);
      row.set(PARTS[i] as string, cell.startsWith('✓'));
    });
    table.set(member.replace(/`/g, ''), row);
  }
  assert.deepEqual([...table.keys()], [...MEMBERS]);
  return table;
}

/** Something that closes, whatever part it is. */
interface Closeable {
  close?: (options?: lib.CloseOptions) => Promise<void>;
  closeSync?: () => void;
  terminate?: () => Promise<void>;
  closed?: Promise<void>;
  isClosed?: boolean;
  with?: (options: object) => unknown;
  createHandle?: () => { port: unknown };
  [Symbol.asyncDispose]?: () => PromiseLike<void>;
  [Symbol.dispose]?: () => void;
}

const api = { ping: async () => 'pong' };

/** A fresh object of each part (connections: to a LoopThread, and to a Portal), and how to end what it needs. */
function make(part: Part): { objects: Closeable[]; connect?: (handle: never) => unknown; done: () => Promise<void> } {
  switch (part) {
    case 'LoopThread': {
      const loop = new LoopThread({ name: 'shape' });
      return { objects: [loop], connect: (h: never) => LoopThread.connect(h), done: () => loop.terminate() };
    }
    case 'Portal': {
      const portal = Portal.open(api);
      return { objects: [portal], connect: (h: never) => Portal.connect(h), done: () => portal.close({ grace: 0 }) };
    }
    case 'ThreadPoolExecutor': {
      const pool = new ThreadPoolExecutor({ maxWorkers: 1, name: 'shape' });
      return { objects: [pool], done: () => pool.terminate() };
    }
    case 'Channel': {
      const channel = new Channel();
      return { objects: [channel], connect: (h: never) => Channel.connect(h), done: () => channel.close() };
    }
    case 'connection': {
      const loop = new LoopThread({ name: 'shape, connected' });
      const portal = Portal.open(api);
      const objects = [LoopThread.connect(loop.createHandle()), Portal.connect(portal.createHandle())];
      return {
        objects,
        done: async () => {
          await loop.terminate();
          await portal.close({ grace: 0 });
        },
      };
    }
    case 'spawnThread': {
      const job = spawnThread((x: number) => x * 2, 21);
      return { objects: [job], done: () => job.terminate() };
    }
  }
}

const has = (o: object, key: PropertyKey): boolean => key in o;

/** `promise` is a real Promise and it settles (a hang is caught by the runner's test timeout). */
async function settles(promise: unknown, what: string): Promise<void> {
  assert.ok(promise instanceof Promise, `${what} is a Promise`);
  await promise;
}

/** Checks that `o` has `member` and that it behaves, or that it does not have it. */
async function check(part: Part, o: Closeable, member: Member, present: boolean, connect?: (h: never) => unknown) {
  const key: PropertyKey = {
    'close({ grace, signal })': 'close',
    'closeSync()': 'closeSync',
    'terminate()': 'terminate',
    closed: 'closed',
    isClosed: 'isClosed',
    '[Symbol.asyncDispose]': Symbol.asyncDispose,
    '[Symbol.dispose]': Symbol.dispose,
    'createHandle()': 'createHandle',
    'X.connect(handle)': 'connect',
    'with(options)': 'with',
  }[member];
  const what = `${part}: ${member}`;
  if (member === 'X.connect(handle)') {
    assert.equal(connect !== undefined, present, what);
    return;
  }
  if (member === 'with(options)' && part === 'spawnThread') {
    assert.equal(typeof spawnThread.with, present ? 'function' : 'undefined', what);
    if (present) assert.equal(typeof spawnThread.with({}), 'function', what);
    return;
  }
  assert.equal(has(o, key), present, what);
  if (!present) return;
  switch (member) {
    case 'closed':
      assert.ok(o.closed instanceof Promise, `${what} is a Promise`);
      return;
    case 'isClosed':
      assert.equal(o.isClosed, false, `${what} is false while open`);
      return;
    case 'createHandle()': {
      const handle = o.createHandle?.();
      assert.ok(handle?.port instanceof MessagePort, `${what}: every handle has a port to transfer`);
      const connection = connect?.(handle as never) as Closeable;
      assert.equal(typeof connection.closeSync, 'function', `${what}: X.connect(handle) gives a connection`);
      connection.closeSync?.();
      return;
    }
    case 'with(options)':
      assert.equal(typeof (o.with?.({ timeout: 1_000 }) as object | undefined), 'object', what);
      return;
    default:
      assert.equal(typeof (o as Record<PropertyKey, unknown>)[key], 'function', `${what} is a method`);
  }
}

/** Each way of closing, on a fresh object: it closes, isClosed turns true and closed resolves. */
async function checkClosing(part: Part, member: Member): Promise<void> {
  const { objects, done } = make(part);
  try {
    for (const o of objects) {
      const what = `${part}: ${member}`;
      switch (member) {
        case 'close({ grace, signal })':
          await settles(o.close?.({ grace: 1_000, signal: new AbortController().signal }), what);
          break;
        case 'closeSync()':
          assert.equal(o.closeSync?.(), undefined);
          break;
        case 'terminate()':
          await settles(o.terminate?.(), what);
          break;
        case '[Symbol.asyncDispose]':
          await settles(o[Symbol.asyncDispose]?.(), what);
          break;
        case '[Symbol.dispose]':
          o[Symbol.dispose]?.();
          break;
        default:
          return;
      }
      assert.equal(o.isClosed, true, `${what}: isClosed after it`);
      await settles(o.closed, `${what}: closed`);
    }
  } finally {
    await done();
  }
}

describe('the README table of lifecycle and sharing members', () => {
  const table = readTable();

  for (const part of PARTS) {
    test(`${part}: every ✓ is there and behaves, every — is absent`, async () => {
      const { objects, connect, done } = make(part);
      try {
        for (const o of objects) {
          for (const member of MEMBERS) {
            await check(part, o, member, table.get(member)?.get(part) === true, connect);
          }
        }
      } finally {
        await done();
      }
    });

    test(`${part}: each way of closing closes it, turns isClosed and resolves closed`, async () => {
      for (const member of MEMBERS) if (table.get(member)?.get(part) === true) await checkClosing(part, member);
    });
  }

  test("close's signal ends the grace period: a pool with a task that never ends closes once it aborts", async () => {
    const pool = new ThreadPoolExecutor({ maxWorkers: 1, name: 'shape, grace' });
    const forever = pool.submit(() => new Promise(() => setInterval(() => undefined, 1_000)));
    const controller = new AbortController();
    const closing = pool.close({ signal: controller.signal });
    assert.equal(pool.isClosed, true);
    controller.abort();
    await settles(closing, 'close()');
    assert.equal(forever.cancelled(), true);
    assert.equal(pool.threads.length, 0);
  });
});

describe('error codes', () => {
  const classes = Object.entries(lib).filter(
    ([, value]) => typeof value === 'function' && value.prototype instanceof Error,
  ) as unknown as [string, new (message: string, path?: string) => Error & { code: string }][];

  test('every error class has a stable code of its own, listed in the README beside it', () => {
    assert.ok(classes.length >= 10);
    const codes = new Set<string>();
    for (const [name, ErrorClass] of classes) {
      const error = new ErrorClass('x', 'path');
      assert.match(error.code, /^ERR_LOOPTHREAD(_[A-Z_]+)?$/, name);
      assert.ok(!codes.has(error.code), `${name}: ${error.code} is its own`);
      codes.add(error.code);
      assert.match(readme, new RegExp(`\\| \`${name}\` +\\| \`${error.code}\``), `${name} and its code in the README`);
    }
  });

  test('the code crosses threads with the error, and each class is rebuilt as itself', async () => {
    using loop = new LoopThread({ name: 'shape, errors' });
    for (const [name, ErrorClass] of classes) {
      let caught: unknown;
      try {
        loop.runSync(
          async (entry: string, className: string) => {
            const errors = (await import(entry)) as Record<string, new (m: string, p?: string) => Error>;
            const Class = errors[className] as new (m: string, p?: string) => Error;
            throw new Class('from the loop thread', 'path');
          },
          require.resolve('loopthread'),
          name,
        );
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof ErrorClass, `${name} arrives as ${name}`);
      assert.equal((caught as { code: string }).code, new ErrorClass('x', 'path').code, `${name}: its code crossed`);
    }
  });
});
