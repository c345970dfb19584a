/**
 * Random bytes and frames from a peer, into a handle's shared line and onto its port: the thread
 * that serves the portal (this one) survives every run, answers the peer or ends its connection,
 * and goes on serving its other connections. portal-fuzz.test.ts runs a few hundred; the soak
 * runs many more.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker, type MessagePort } from 'node:worker_threads';
import * as fc from 'fast-check';
import { Portal, type PortalConnection } from 'loopthread';
import { Writer } from '../src/codec/writer.js';
import { TargetKind, type Target } from '../src/call/target.js';
import {
  MessageKind,
  postOn,
  readPacket,
  writeCall,
  writeCancel,
  writeClose,
  writeImport,
  writeRelease,
  writeReply,
  type PortPacket,
} from '../src/portal/messages.js';
import { Line } from '../src/protocol/line.js';
import { within } from './helpers.js';

/** A watchdog for a hang, far above any answer on a loaded machine (never a timing guess). */
const HANG_MS = 60_000;
const PROBE_ID = 0x7fff_fff0;
/** Large enough to go in a part of its own (src/codec/writer.ts). */
const PART_BYTES = 64 * 1024;

const api = {
  hello: (who: unknown) => `hello ${String(who)}`,
  makeThing: () =>
    new (class Thing {
      twice(n: number): number {
        return 2 * n;
      }
    })(),
  fail: () => {
    throw new RangeError('as asked');
  },
};
type Api = typeof api;

type Frame =
  { to: 'line'; bytes: Uint8Array; length: number | null; onPort: boolean } | { to: 'port'; message: unknown };

const json = fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null));
const target: fc.Arbitrary<Target> = fc.oneof(
  fc.constant<Target>([TargetKind.Export, 0, ['hello']]),
  fc.constant<Target>([TargetKind.Export, 0, ['makeThing']]),
  fc.constant<Target>([TargetKind.Export, 0, ['constructor', 'constructor']]),
  fc.constant<Target>([TargetKind.Inline, 0, '() => 1']),
  fc
    .tuple(fc.nat({ max: 3 }), fc.nat({ max: 9 }), fc.option(fc.constantFrom('twice', 'constructor')))
    .map(([refId, op, key]): Target => [TargetKind.Lent, refId, op, key, 4]),
);

/** The bytes of a well-formed message of any kind, for the flips to corrupt. */
const validMessage: fc.Arbitrary<Buffer> = fc
  .oneof(
    fc.tuple(fc.nat(), target, fc.array(json, { maxLength: 3 })).map(([id, t, args]) => (w: Writer) => {
      writeCall(w, id, t, args, 'to the portal');
    }),
    fc.array(fc.nat({ max: 9 }), { maxLength: 6 }).map((r) => (w: Writer) => {
      writeRelease(w, r);
    }),
    fc.nat().map((id) => (w: Writer) => {
      writeImport(w, id, 'node:fs');
    }),
    fc.nat().map((id) => (w: Writer) => {
      writeClose(w, id, 0);
    }),
    fc.tuple(fc.nat(), fc.constantFrom(1, 2)).map(([id, reason]) => (w: Writer) => {
      writeCancel(w, id, reason);
    }),
    fc.tuple(fc.nat(), json).map(([id, value]) => (w: Writer) => {
      writeReply(w, id, 0, value);
    }),
    // Bytes or a string large enough for a part of its own (or the spare): the message names a part
    // (the frame brings random ones, or none) or the spare.
    fc.tuple(fc.nat(), fc.boolean()).map(([id, text]) => (w: Writer) => {
      const big = text ? 'x'.repeat(PART_BYTES) : new Uint8Array(PART_BYTES);
      writeCall(w, id, [TargetKind.Export, 0, ['hello']], [big], 'to the portal');
    }),
  )
  .chain((write) =>
    fc.boolean().map((withSpare) => {
      const spare = withSpare ? { take: (n: number) => Buffer.alloc(n) } : undefined;
      const w = new Writer(Buffer.alloc(256), 0, undefined, [], spare);
      write(w);
      return w.buf.subarray(0, w.pos);
    }),
  );

const flips = fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 });
const messageBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 48 }),
  fc.tuple(fc.nat({ max: 12 }), fc.nat(), fc.uint8Array({ maxLength: 32 })).map(([kind, id, tail]) => {
    const head = Buffer.alloc(5);
    head[0] = kind;
    head.writeUInt32LE(id, 1);
    return Buffer.concat([head, tail]);
  }),
  fc.tuple(validMessage, flips).map(([bytes, changes]) => {
    const out = Buffer.from(bytes);
    for (const [at, value] of changes) if (out.length > 0) out[at % out.length] = value;
    return out;
  }),
);

const bufferOf = (bytes: Uint8Array): ArrayBuffer => new Uint8Array(bytes).buffer;
const sharedOf = (bytes: Uint8Array): SharedArrayBuffer => {
  const sab = new SharedArrayBuffer(bytes.length);
  new Uint8Array(sab).set(bytes);
  return sab;
};
/** A message's parts (Writer.parts): random bytes, which a message may name or not. */
const parts = fc.array(messageBytes.map(bufferOf), { maxLength: 2 });
const portMessage: fc.Arbitrary<unknown> = fc.oneof(
  messageBytes.map((b) => Buffer.from(b).toString('latin1')),
  fc.string({ unit: 'binary', maxLength: 16 }),
  fc.anything({ maxDepth: 2 }),
  fc
    .tuple(messageBytes, fc.integer({ min: -4, max: 80 }), parts, fc.option(messageBytes.map(sharedOf)))
    .map(([b, length, p, spare]) => ({ bulk: bufferOf(b), length, parts: p, spare: spare ?? undefined })),
  fc
    .tuple(messageBytes, fc.integer({ min: -4, max: 80 }), fc.array(json, { maxLength: 2 }), parts)
    .map(([b, length, beside, p]) => ({ bytes: bufferOf(b), length, beside, parts: p })),
  fc.constant(''),
);

const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    to: fc.constant('line' as const),
    bytes: messageBytes,
    length: fc.option(fc.integer({ min: -8, max: 300_000 }), { freq: 3 }),
    onPort: fc.boolean(),
  }),
  fc.record({ to: fc.constant('port' as const), message: portMessage }),
);

/** Writes `f` as a peer would: into the request slot (then wakes the host), or onto the port. */
function send(line: Line, port: MessagePort, f: Frame): void {
  if (f.to === 'port') {
    port.postMessage(f.message);
    return;
  }
  line.request.data.set(f.bytes);
  line.request.publish(f.length ?? f.bytes.length, f.onPort);
  port.postMessage('');
}

/**
 * After the frames: a well-formed call by the port. The host has handled every frame before it
 * once it answers that call (a port keeps its order), unless it ended the connection instead.
 */
function probe(port: MessagePort): Promise<'answered' | 'refused'> {
  return new Promise((resolve) => {
    port.on('message', (p: PortPacket) => {
      try {
        const m = readPacket(p);
        if (m.kind === MessageKind.Reply && m.id === PROBE_ID) resolve('answered');
      } catch {
        // A reply holding a reference, or the host's last words: not the probe's answer.
      }
    });
    port.once('close', () => {
      resolve('refused');
    });
    postOn(port, (w) => {
      writeCall(w, PROBE_ID, [TargetKind.Export, 0, ['hello']], ['probe'], 'to the portal');
    });
  });
}

const entry = require.resolve('loopthread');
const peerFile = join(__dirname, '..', '..', 'test', 'fixtures', 'portal-peer.cjs');

/** A well-behaved peer in a worker: blocking and awaited calls answered. */
async function healthyPeer(portal: Portal<Api>): Promise<void> {
  const handle = portal.createHandle();
  const worker = new Worker(peerFile, {
    workerData: { handle, entry, script: 'healthy', count: 3 },
    transferList: [handle.port] as never[],
  });
  try {
    const [outcome] = (await within(once(worker, 'message'), 'the healthy peer', HANG_MS)) as [unknown];
    assert.deepEqual(outcome, { ok: true, value: 6 });
  } finally {
    await worker.terminate();
  }
}

export async function fuzzPortal(numRuns: number): Promise<{ answered: number; refused: number }> {
  const portal = Portal.open(api, { name: 'fuzzed portal' });
  const counts = { answered: 0, refused: 0 };
  const other: PortalConnection<Api> = Portal.connect(portal.createHandle());
  try {
    await healthyPeer(portal);
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), async (frames) => {
        const handle = portal.createHandle();
        // A raw peer: it makes the connection's line and sends it first, as Portal.connect does.
        const line = Line.create();
        handle.port.postMessage({ line: line.sab });
        try {
          for (const f of frames) send(line, handle.port, f);
          counts[await within(probe(handle.port), 'the probe of a fuzzed connection', HANG_MS)]++;
        } finally {
          handle.port.close();
        }
        assert.equal(await within(other.hello('other'), 'a call of another connection', HANG_MS), 'hello other');
      }),
      { numRuns, includeErrorInReport: true },
    );
    await healthyPeer(portal);
  } finally {
    other.closeSync();
    await portal.close({ grace: 0 });
  }
  return counts;
}
