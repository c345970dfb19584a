// Benchmark: Channel throughput between a worker thread and the main event loop, both ways, for
// small values and 64 KiB Uint8Arrays, against a plain MessagePort.postMessage pipe and a
// ringbuf.js single-producer single-consumer ring in the same run.
// Run with `npm run bench:channel` (builds first) or `node bench/channel.mjs [--idle-only | --busy-only] [--quick]`.
//
// Both regimes, one after the other: an idle machine, and one core kept busy by another process.
// The targets: small items at least 3x a MessagePort idle and 1.5x with the busy core,
// 64 KiB items at least 1x.
//
// Each case sends N items and is timed from the start signal until the consumer has them all;
// ROUNDS rounds, cases taking turns; the median is printed. In every round each case moves its N
// items twice, through the same worker and the same pipe or channel, and only the second pass is
// timed: the first warms up the JIT of both threads (for every contender alike), so that the
// figures are steady-state throughput rather than start-up. ringbuf.js has no waiting: its
// consumer polls (the worker spins; the main loop yields with setImmediate when the ring is
// empty), and values go through it as hand-framed bytes (TextEncoder), which flatters it.
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { setImmediate } from 'node:timers';
import { TextDecoder, TextEncoder } from 'node:util';
import { Channel } from 'loopthread';
import { RingBuffer } from 'ringbuf.js';
import { benchOptions, inRegime, saveResults } from './machine.mjs';

const require = createRequire(import.meta.url);
const entry = require.resolve('loopthread');
const ringbufEntry = require.resolve('ringbuf.js');

const { quick, regimes } = benchOptions();
const ROUNDS = quick ? 3 : 5;
/** Passes of n items per round and case: the first warms up, the last is timed. */
const PASSES = 2;
const RING_BYTES = 1 << 20;
const PAYLOADS = [
  { label: 'small value (8-char string)', kind: 'small', n: 100_000 },
  { label: '64 KiB Uint8Array', kind: 'big', n: 3_000 },
];
const SMALL = 'abcdefgh';
const BIG = new Uint8Array(64 * 1024).fill(7);

// One worker script for every role; it reports { ready } then { done }.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { Channel } = require(workerData.entry);
const { RingBuffer } = require(workerData.ringbufEntry);
const { role, kind, n, handle } = workerData;
const PASSES = ${PASSES};
const value = kind === 'small' ? 'abcdefgh' : new Uint8Array(64 * 1024).fill(7);
const enc = new TextEncoder();
const dec = new TextDecoder();
function frame(v) {
  const bytes = typeof v === 'string' ? enc.encode(v) : v;
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, true);
  out.set(bytes, 4);
  return out;
}
async function main() {
  const go = () => new Promise((r) => parentPort.once('message', r));
  if (role === 'chan-produce') {
    const ch = Channel.connect(handle);
    parentPort.postMessage({ ready: true });
    for (let pass = 0; pass < PASSES; pass++) {
      await go();
      for (let i = 0; i < n; i++) ch.putSync(value);
    }
  } else if (role === 'chan-consume') {
    const ch = Channel.connect(handle);
    parentPort.postMessage({ ready: true });
    for (let pass = 0; pass < PASSES; pass++) {
      let got = 0;
      if (workerData.iter) {
        for (const v of ch.iterateSync()) if (++got === n) break;
      } else {
        for (; got < n; got++) ch.getSync();
      }
      parentPort.postMessage({ done: true });
    }
  } else if (role === 'port-produce') {
    parentPort.postMessage({ ready: true });
    for (let pass = 0; pass < PASSES; pass++) {
      await go();
      for (let i = 0; i < n; i++) parentPort.postMessage(value);
    }
  } else if (role === 'port-consume') {
    let got = 0;
    parentPort.on('message', () => {
      if (++got === n) {
        got = 0;
        parentPort.postMessage({ done: true });
      }
    });
    parentPort.postMessage({ ready: true });
  } else if (role === 'ring-produce') {
    const ring = new RingBuffer(handle, Uint8Array);
    parentPort.postMessage({ ready: true });
    for (let pass = 0; pass < PASSES; pass++) {
      await go();
      for (let i = 0; i < n; i++) {
        const f = frame(value);
        while (ring.availableWrite() < f.length);
        ring.push(f);
      }
    }
  } else if (role === 'ring-consume') {
    const ring = new RingBuffer(handle, Uint8Array);
    parentPort.postMessage({ ready: true });
    const header = new Uint8Array(4);
    const view = new DataView(header.buffer);
    let body = new Uint8Array(64 * 1024);
    for (let pass = 0; pass < PASSES; pass++) {
      for (let i = 0; i < n; i++) {
        while (ring.availableRead() < 4);
        ring.pop(header);
        const len = view.getUint32(0, true);
        if (body.length < len) body = new Uint8Array(len);
        ring.pop(body, len);
        if (kind === 'small') dec.decode(body.subarray(0, len)); else body.slice(0, len);
      }
      parentPort.postMessage({ done: true });
    }
  }
}
main();
`;

function startWorker(workerData) {
  const transferList = workerData.handle?.port === undefined ? [] : [workerData.handle.port];
  return new Worker(workerSource, { eval: true, workerData: { entry, ringbufEntry, ...workerData }, transferList });
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Runs `pass` (which moves n items) PASSES times; returns the seconds the last one took. */
async function timed(pass) {
  let s = 0;
  for (let i = 0; i < PASSES; i++) {
    const t0 = performance.now();
    await pass();
    s = (performance.now() - t0) / 1000;
  }
  return s;
}

/** Each case returns the seconds it took to move n items (steady state: see timed()). */
const CASES = {
  'Channel (loopthread)': {
    async toMain(kind, n) {
      const ch = new Channel({ bytes: kind === 'big', bufferSize: RING_BYTES, role: 'get' });
      const w = startWorker({ role: 'chan-produce', kind, n, handle: ch.createHandle({ role: 'put' }) });
      await once(w, 'message');
      const s = await timed(async () => {
        w.postMessage('go');
        let got = 0;
        for await (const v of ch) {
          void v;
          if (++got === n) break;
        }
      });
      await w.terminate();
      return s;
    },
    async toWorker(kind, n) {
      return chanToWorker(kind, n, true);
    },
  },
  'Channel, worker getSync loop': {
    toMain: null,
    async toWorker(kind, n) {
      return chanToWorker(kind, n, false);
    },
  },
  'MessagePort.postMessage': {
    async toMain(kind, n) {
      const w = startWorker({ role: 'port-produce', kind, n });
      await once(w, 'message');
      let got = 0;
      let done;
      w.on('message', () => {
        if (++got === n) done();
      });
      const s = await timed(async () => {
        got = 0;
        const all = new Promise((resolve) => (done = resolve));
        w.postMessage('go');
        await all;
      });
      await w.terminate();
      return s;
    },
    async toWorker(kind, n) {
      const w = startWorker({ role: 'port-consume', kind, n });
      await once(w, 'message');
      const value = kind === 'small' ? SMALL : BIG;
      const s = await timed(async () => {
        const done = once(w, 'message');
        for (let i = 0; i < n; i++) w.postMessage(value);
        await done;
      });
      await w.terminate();
      return s;
    },
  },
  'ringbuf.js SPSC ring (polling)': {
    async toMain(kind, n) {
      const sab = RingBuffer.getStorageForCapacity(RING_BYTES, Uint8Array);
      const ring = new RingBuffer(sab, Uint8Array);
      const w = startWorker({ role: 'ring-produce', kind, n, handle: sab });
      await once(w, 'message');
      const header = new Uint8Array(4);
      const view = new DataView(header.buffer);
      const dec = new TextDecoder();
      const s = await timed(async () => {
        w.postMessage('go');
        for (let i = 0; i < n; i++) {
          while (ring.availableRead() < 4) await turn();
          ring.pop(header);
          const len = view.getUint32(0, true);
          const body = new Uint8Array(len);
          ring.pop(body, len);
          if (kind === 'small') dec.decode(body);
        }
      });
      await w.terminate();
      return s;
    },
    async toWorker(kind, n) {
      const sab = RingBuffer.getStorageForCapacity(RING_BYTES, Uint8Array);
      const ring = new RingBuffer(sab, Uint8Array);
      const w = startWorker({ role: 'ring-consume', kind, n, handle: sab });
      await once(w, 'message');
      const enc = new TextEncoder();
      const s = await timed(async () => {
        const done = once(w, 'message');
        for (let i = 0; i < n; i++) {
          const bytes = kind === 'small' ? enc.encode(SMALL) : BIG;
          const f = new Uint8Array(4 + bytes.length);
          new DataView(f.buffer).setUint32(0, bytes.length, true);
          f.set(bytes, 4);
          while (ring.availableWrite() < f.length) await turn();
          ring.push(f);
        }
        await done;
      });
      await w.terminate();
      return s;
    },
  },
};

/** The main loop puts with `await put()`; the worker takes with iterateSync (`iter`) or a getSync loop. */
async function chanToWorker(kind, n, iter) {
  const ch = new Channel({ bytes: kind === 'big', bufferSize: RING_BYTES, role: 'put' });
  const w = startWorker({ role: 'chan-consume', kind, n, handle: ch.createHandle({ role: 'get' }), iter });
  await once(w, 'message');
  const value = kind === 'small' ? SMALL : BIG;
  const s = await timed(async () => {
    const done = once(w, 'message');
    for (let i = 0; i < n; i++) await ch.put(value);
    await done;
  });
  await w.terminate();
  return s;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * CPU time of the whole machine (busy and idle, every core) and of this process (all its threads),
 * in ms: the machine is often shared, and the figures mean little without how busy it was.
 */
function cpuTimes() {
  let busy = 0;
  let idle = 0;
  for (const { times } of cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    idle += times.idle;
  }
  const own = process.cpuUsage();
  return { busy, idle, own: (own.user + own.system) / 1000 };
}

function load(from, to) {
  const busy = to.busy - from.busy;
  const total = busy + to.idle - from.idle;
  const others = Math.max(0, busy - (to.own - from.own));
  return { busy: busy / total, others: others / total };
}
const pct = (x) => `${Math.round(x * 100)}%`;
const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(1)} k/s`);

console.log(
  `Channel throughput, ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, Node ${process.version}`,
);
console.log(`median of ${ROUNDS} rounds; items per second (higher is better)`);
const GOALS = { small: { idle: 3, busy: 1.5 }, big: { idle: 1, busy: 1 } };
const results = [];
const targets = [];
for (const regime of regimes) {
  await inRegime(regime, 20 * 60_000, async () => {
    console.log('');
    for (const payload of PAYLOADS) {
      for (const direction of ['toMain', 'toWorker']) {
        const times = Object.fromEntries(Object.keys(CASES).map((name) => [name, []]));
        const cpuFrom = cpuTimes();
        for (let round = 0; round < ROUNDS; round++) {
          for (const [name, c] of Object.entries(CASES)) {
            if (c[direction] !== null) times[name].push(await c[direction](payload.kind, payload.n));
          }
        }
        const label = `${payload.label}, ${direction === 'toMain' ? 'worker -> main loop' : 'main loop -> worker'}`;
        const { busy, others } = load(cpuFrom, cpuTimes());
        console.log(`${label}   (machine ${pct(busy)} busy, ${pct(others)} by other processes)`);
        const base = payload.n / median(times['MessagePort.postMessage']);
        for (const name of Object.keys(CASES)) {
          if (times[name].length === 0) continue;
          const rate = payload.n / median(times[name]);
          results.push({
            regime: regime.key,
            payload: payload.label,
            direction,
            name,
            itemsPerSecond: Math.round(rate),
            machineBusy: busy,
            others,
          });
          console.log(`  ${name.padEnd(32)} ${fmt(rate).padStart(11)}  ${(rate / base).toFixed(2)}x MessagePort`);
        }
        const channel = payload.n / median(times['Channel (loopthread)']);
        targets.push({
          target: `Channel vs MessagePort: ${payload.label}, ${direction === 'toMain' ? 'worker -> main' : 'main -> worker'}`,
          regime: regime.key,
          ratio: channel / base,
          goal: GOALS[payload.kind][regime.key],
        });
        console.log('');
      }
    }
  });
}
console.log('Channel / MessagePort, per regime:');
for (const t of targets.filter((x) => x.regime === regimes[0].key)) {
  const cells = targets
    .filter((x) => x.target === t.target)
    .map((x) => `${x.regime} ${x.ratio.toFixed(2)}x (target ${x.goal}x)`);
  console.log(`  ${t.target.replace('Channel vs MessagePort: ', '')}: ${cells.join(', ')}`);
}
saveResults('channel', { rounds: ROUNDS, results, targets });
