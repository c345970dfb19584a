/**
 * A Portal serves only its api, and a peer's bytes never take down the thread that serves it.
 * The portal runs on this test's main thread: were a peer able to crash it, this file would fail.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Portal } from 'loopthread';
import { within } from './helpers.js';

const entry = require.resolve('loopthread');
const peerFile = join(__dirname, '..', '..', 'test', 'fixtures', 'portal-peer.cjs');

interface Outcome {
  ok: boolean;
  value?: unknown;
  name?: string;
  message?: string;
  code?: string;
}

class Thing {
  constructor(private readonly factor: number) {}
  twice(n: number): number {
    return n * this.factor;
  }
}

let neverAborted = 0;
const api = {
  hello: (who: string) => `hello ${who}`,
  makeThing: () => new Thing(2),
  never: () =>
    new Promise<never>(() => {
      neverAborted++;
    }),
};
const portal = Portal.open(api, { name: 'trusting portal' });
after(() => portal.close({ grace: 0 }));

/** Runs `script` of the peer fixture in a worker with a new handle; resolves with what it posted. */
async function peer(script: string, extra: Record<string, unknown> = {}): Promise<Outcome> {
  const handle = portal.createHandle();
  const worker = new Worker(peerFile, {
    workerData: { handle, entry, script, ...extra },
    transferList: [handle.port] as never[],
  });
  try {
    const outcome = Promise.race([
      once(worker, 'message').then(([m]) => m as Outcome),
      once(worker, 'error').then(([e]) => assert.fail(`the peer worker failed: ${String(e)}`)),
    ]);
    return await within(outcome, `the peer script ${script}`, 60_000);
  } finally {
    await worker.terminate();
  }
}

/** Other connections go on: a well-behaved peer's blocking and awaited calls are answered. */
async function othersServed(): Promise<void> {
  const healthy = await peer('healthy', { count: 3 });
  assert.deepEqual(healthy, { ok: true, value: 6 });
}

const refused = (outcome: unknown, message: RegExp): void => {
  assert.equal((outcome as Outcome).ok, false, 'refused');
  assert.equal((outcome as Outcome).name, 'TypeError');
  assert.match((outcome as Outcome).message ?? '', message);
};

const protocolError = (outcome: unknown, what: RegExp): void => {
  const o = outcome as Outcome;
  assert.equal(o.ok, false, 'the call failed');
  assert.equal(o.name, 'ProtocolError');
  assert.equal(o.code, 'ERR_LOOPTHREAD_PROTOCOL');
  assert.match(o.message ?? '', /closed by its serving side for a malformed message/);
  assert.match(o.message ?? '', what);
};

describe('a Portal serves only its api', () => {
  test('an export path takes own properties only: no Function, no Object.prototype', async () => {
    try {
      const outcome = await peer('walk');
      assert.equal(outcome.ok, true);
      const v = outcome.value as Record<string, unknown>;
      refused(v.functionCtor, /constructor\.constructor is not a function/);
      refused(v.defineGetter, /__proto__\.__defineGetter__ is not a function/);
      refused(v.hasOwn, /hasOwnProperty is not a function/);
      assert.deepEqual(v.hello, { ok: true, value: 'hello peer' });
      assert.equal(Object.hasOwn(Object.prototype, 'loopthreadPolluted'), false);
    } finally {
      delete (Object.prototype as Record<string, unknown>).loopthreadPolluted;
    }
  });

  test("a handle relabelled as a LoopThread's gets no inline source, imports or resources", async () => {
    try {
      const outcome = await peer('relabel');
      assert.equal(outcome.ok, true);
      const v = outcome.value as Record<string, unknown>;
      refused(v.inline, /a portal serves only its api: it runs no inline functions/);
      refused(v.importSync, /a portal serves only its api: it imports no modules/);
      refused(v.enterSync, /a portal serves only its api: it enters no resources/);
      assert.equal((globalThis as Record<string, unknown>).loopthreadRelabelled, undefined);
    } finally {
      delete (globalThis as Record<string, unknown>).loopthreadRelabelled;
    }
  });

  test("a lent object's constructor, __proto__ and Object.prototype members stay out of reach", async () => {
    const protoBefore = Object.getPrototypeOf(new Thing(1)) as unknown;
    const outcome = await peer('lent');
    assert.equal(outcome.ok, true);
    const v = outcome.value as Record<string, unknown>;
    assert.equal(v.constructor, 'undefined');
    assert.equal(v.proto, 'undefined');
    assert.equal(v.defineGetter, 'undefined');
    refused(v.setProto, /'__proto__' of a remote object cannot be used from another thread/);
    assert.equal(v.method, 42, 'its own methods still work');
    assert.equal(Object.getPrototypeOf(new Thing(1)), protoBefore);
  });
});

describe("a peer's bytes fail its own connection, never the host", () => {
  test('a non-protocol message on the port: its pending and later calls fail with ProtocolError', async () => {
    const before = neverAborted;
    const outcome = await peer('junkOnPort');
    assert.equal(outcome.ok, true);
    const v = outcome.value as { before: string; pending: unknown; after: unknown };
    assert.equal(v.before, 'hello before');
    assert.equal(neverAborted, before + 1, 'the pending call had started');
    protocolError({ ok: false, ...(v.pending as object) }, /a port message that is not a packet/);
    protocolError(v.after, /a port message that is not a packet/);
    await othersServed();
  });

  test("a first message that is not the connection's line: blocking and awaited calls fail with ProtocolError", async () => {
    const v = (await peer('junkFirst')).value as { blocking: unknown; awaited: unknown };
    protocolError(v.blocking, /the first message is not the connection's line/);
    protocolError(v.awaited, /the first message is not the connection's line/);
    await othersServed();
  });

  test('a request of an unknown kind in the shared line', async () => {
    protocolError((await peer('badKind')).value, /corrupt message \(kind 99\)/);
    await othersServed();
  });

  test('a request length beyond the slot', async () => {
    protocolError((await peer('badLength')).value, /a length of \d+ bytes in a slot of \d+/);
    await othersServed();
  });

  test('a bulk marker without its packet', async () => {
    protocolError((await peer('markerWithoutPacket')).value, /missing on the port/);
    await othersServed();
  });

  test('bulk packets without markers are refused, not buffered', async () => {
    protocolError((await peer('endlessPackets', { count: 64 })).value, /a bulk packet with no marker for it/);
    await othersServed();
  });
});
