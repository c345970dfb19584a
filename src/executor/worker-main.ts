/**
 * The entry point of a pool worker. It takes tasks from its ring in order and runs them one at a
 * time, as a thread of Python's ThreadPoolExecutor does (a task that returns a promise is awaited
 * before the next starts), writing each result to the result ring at once. When the ring is
 * empty it spins briefly if there are cores to spare, then parks while its event loop has nothing
 * else to do (the main thread wakes it by notify), then idles in its event loop (timers and I/O of
 * earlier tasks keep running) until the main thread wakes it by message.
 */
// First: it takes the pool's values and says this thread runs before anything else can fail.
import { earlyInit, takeInit } from './worker-boot.js';
import { availableParallelism } from 'node:os';
import { parentPort, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { payloadReader, toPayload, type Payload } from '../codec/payload.js';
import { encodeStandalone } from '../codec/standalone.js';
import { Reader, Writer } from '../codec/writer.js';
import { NeverSettledError } from '../errors.js';
import { CallContext } from '../call/context.js';
import { compileInline, explainCapture } from '../call/compile.js';
import { cancelError, runCall, Status } from '../call/run.js';
import { exportAt, isThenable, TargetKind, type Fn } from '../call/target.js';
import { AWAKE, BELL, CANCEL_MASK, MainWaits, Stamp, views, Word } from './layout.js';
import { RingReader, RingWriter } from './ring.js';
import { now, observeWake, SpinPolicy } from '../shm/spin-policy.js';
import { KeepAlive } from '../shm/keep-alive.js';
import { ParkState, parkIdle } from '../shm/idle-park.js';
import { atThreadEnd } from '../shm/thread-end.js';
import { ownOsThreadId, RAN_UNKNOWN_OS_THREAD } from '../shm/os-thread.js';
import type { Definition } from './targets.js';
import { loadModule } from '../modules.js';
import {
  Mode,
  readBody,
  readDefine,
  RecordKind,
  WAKE,
  writeResult,
  copyInto,
  type LastWords,
  type ToWorker,
} from './wire.js';

export interface WorkerInit {
  shared: SharedArrayBuffer;
  /** The word of `shared` the worker writes before anything that can fail (Word.Ran). */
  ranIndex: number;
  awake: SharedArrayBuffer;
  control: MessagePort;
  payload: MessagePort;
  /** Where the worker leaves its last words (see LastWords). */
  notes: MessagePort;
}

// The pool's own values come as the first message on parentPort, so that workerData is the
// user's (ExecutorOptions.workerData), in preloads too. They are set by start(), below.
let init: WorkerInit;
let words: Int32Array, stamps: Float64Array, cancelled: Int32Array, reasons: Int32Array;
let awake: Int32Array;
let tasks: RingReader;
let results: RingWriter;
let control: MessagePort;
let payload: MessagePort;

const CORES = availableParallelism();
/** Whether to spin for the next task when the ring runs dry (see spin.ts). */
const budget = new SpinPolicy();
/** The ring ran dry after a result: the next task tells how the main thread answered. */
let waitedForTask = false;
/** When the last result went out (performance.now()). */
let lastResult = 0;
/** The spin budget of the last look for tasks (what the next task's arrival is judged against). */
let spunFor = 0;
/** Tasks run since the ring last ran dry, and in the stretch before: only one-task stretches are observed. */
let ranSinceDry = 0;
let lastStretch = 0;
/** A worker draining its ring lets its event loop turn this often (timers and I/O of earlier tasks). */
const YIELD_MS = 10;
/** Results up to this size go through the ring; larger ones by message (they would crowd it). */
const MAX_RING_RESULT = 16 * 1024;

const definitions = new Map<number, Definition>();
const resolved = new Map<number, Fn | Error>();
const modules = new Map<string, Promise<object>>();
const scratch = Buffer.allocUnsafeSlow(64 * 1024);

let isAwake = false;
/** What this thread's idle loop holds of its own: keepAlive's timer (see parkIdle). */
const OWN_RESOURCES = 1;
/** A drain is under way (perhaps paused while a task's promise settles): wakes are not needed. */
let busy = false;
let running: { seq: number; context: TaskContext } | undefined;
/** The highest seq answered: a task given up as never settling may still settle later, unheard. */
let answered = 0;

/** A task's call context that knows whether the task asked for its signal, and whether it aborted. */
class TaskContext extends CallContext {
  asked = false;
  wasAborted = false;

  override get signal(): AbortSignal {
    this.asked = true;
    return super.signal;
  }

  override abort(reason: unknown): void {
    this.wasAborted = true;
    super.abort(reason);
  }
}

/** The task whose promise the drain waits for; `release` ends the wait without it (given up). */
interface Waiting {
  readonly seq: number;
  readonly began: number;
  readonly release: () => void;
}
let awaiting: Waiting | undefined;
/**
 * Keeps this thread's loop alive between tasks. While a task's promise is awaited it does not:
 * only what the task left (timers, I/O, ref'd ports, a Portal call) does, so that 'beforeExit'
 * says when nothing in this thread can settle it any more.
 */
const keepAlive = new KeepAlive();
keepAlive.hold(true);

function cancelReason(seq: number): unknown {
  const slot = seq & CANCEL_MASK;
  if (Atomics.load(cancelled, slot) !== seq) return undefined;
  return cancelError(Atomics.load(reasons, slot), 'the task timed out', 'the task was cancelled');
}

function wakeMain(): void {
  if ((Atomics.load(words, Word.MainSleeps) as MainWaits) === MainWaits.No) return;
  switch (Atomics.exchange(words, Word.MainSleeps, MainWaits.No) as MainWaits) {
    case MainWaits.Loop:
      stamps[Stamp.MainWoken] = now();
      control.postMessage(WAKE);
      return;
    case MainWaits.Blocked:
      stamps[Stamp.MainWoken] = now();
      Atomics.add(awake, BELL, 1);
      Atomics.notify(awake, BELL);
      return;
    case MainWaits.No:
      return;
  }
}

function sendResult(seq: number, status: Status, micros: number, value: unknown): void {
  if (seq <= answered) return;
  answered = seq;
  lastResult = performance.now();
  const w = new Writer(scratch, 0, []);
  writeResult(w, seq, status, micros, value);
  const pos = w.pos <= MAX_RING_RESULT && w.beside?.length === 0 ? results.reserve(w.pos) : -1;
  if (pos >= 0) {
    copyInto(results.data, pos, w.buf, 0, w.pos);
    results.publish();
  } else {
    // The ring is full, or the result is large or carries ports: it goes by message.
    const [p, transfer] = toPayload(w, 0);
    payload.postMessage(p, transfer);
  }
  wakeMain();
}

const microsSince = (start: number): number => Math.min(0xffffffff, Math.round((performance.now() - start) * 1000));

function lookup(ns: object, d: Definition & { kind: TargetKind.Export }): Fn | Error {
  const [value] = exportAt(ns, d.path);
  if (typeof value === 'function') return value as Fn;
  const name = d.path.length === 0 ? 'the module' : `export '${d.path.join('.')}'`;
  return new TypeError(`${name} of ${d.specifier} is not a function`);
}

/** The function of target `id`: at once if known, or a promise while its module loads. */
function resolveTarget(id: number): Fn | Error | Promise<Fn | Error> {
  const known = resolved.get(id);
  if (known !== undefined) return known;
  const d = definitions.get(id);
  if (d === undefined) return new ReferenceError(`target #${id} is unknown in this worker`);
  if (d.kind === TargetKind.Inline) {
    const fn = compileInline(d.source, 'in the pool worker');
    resolved.set(id, fn);
    return fn;
  }
  let loading = modules.get(d.specifier);
  if (loading === undefined) {
    loading = loadModule(d.specifier);
    modules.set(d.specifier, loading);
  }
  return loading.then(
    (ns) => {
      const fn = lookup(ns, d);
      resolved.set(id, fn);
      return fn;
    },
    // A module that fails to load fails each task that needs it, and is tried again by the next.
    (error: unknown) => {
      modules.delete(d.specifier);
      return error instanceof Error ? error : new Error(String(error));
    },
  );
}

/** Runs fn on each item in turn; returns [values, index of the failing item or -1, its error]. */
function runChunk(fn: Fn, items: unknown[]): unknown {
  const values: unknown[] = [];
  const step = (i: number): unknown => {
    for (; i < items.length; i++) {
      let v: unknown;
      try {
        v = fn(items[i]);
      } catch (error) {
        return [values, i, error];
      }
      if (isThenable(v)) {
        const at = i;
        return Promise.resolve(v).then(
          (value) => {
            values.push(value);
            return step(at + 1);
          },
          (error: unknown) => [values, at, error],
        );
      }
      values.push(v);
    }
    return [values, -1, undefined];
  };
  return step(0);
}

/** Runs one task; returns a promise if it has not finished yet. */
function runTask(seq: number, r: Reader): Promise<void> | undefined {
  const { mode, id, args } = readBody(r);
  if (cancelReason(seq) !== undefined) {
    sendResult(seq, Status.Skipped, 0, undefined);
    return undefined;
  }
  // Not news enough to wake the main thread for: it reads the word when a future's state is asked for.
  Atomics.store(words, Word.Started, seq);
  const target = resolveTarget(id);
  // (Given up while its module loaded, it does not run once the module is there.)
  if (target instanceof Promise) return target.then((fn) => (seq > answered ? call(seq, fn, mode, args) : undefined));
  return call(seq, target, mode, args);
}

function call(seq: number, fn: Fn | Error, mode: Mode, args: unknown[]): Promise<void> | undefined {
  const started = performance.now();
  const finish = (status: Status, value: unknown): void => {
    if (running?.seq === seq) running = undefined;
    sendResult(seq, status, microsSince(started), status === Status.Thrown ? explainCapture(value) : value);
  };
  if (fn instanceof Error) {
    finish(Status.Thrown, fn);
    return undefined;
  }
  const context = new TaskContext(() => cancelReason(seq));
  running = { seq, context };
  return runCall(context, () => (mode === Mode.Chunk ? runChunk(fn, args) : fn(...args)), finish);
}

function spinForTasks(): boolean {
  // Spin only if the awake workers and the main thread all have a core of their own.
  const ms = budget.next();
  spunFor = ms;
  if (ms <= 0 || Atomics.load(awake, AWAKE) >= CORES) return false;
  const end = performance.now() + ms;
  for (;;) {
    for (let i = 0; i < 64; i++) if (tasks.ready) return true;
    if (performance.now() > end) return false;
  }
}

/** Takes and runs tasks until the ring is empty; pauses (staying busy) while a task's promise settles. */
function drain(): void {
  busy = true;
  if (!isAwake) {
    isAwake = true;
    Atomics.add(awake, AWAKE, 1);
  }
  const began = performance.now();
  for (;;) {
    while (tasks.next()) {
      const buf = tasks.data;
      const type = buf[tasks.start] as RecordKind;
      const r = new Reader(buf, tasks.start + 1, tasks.end);
      if (type === RecordKind.Nothing) {
        tasks.consume();
        continue;
      }
      if (type === RecordKind.Define) {
        const [id, d] = readDefine(r);
        definitions.set(id, d);
        resolved.delete(id);
        tasks.consume();
        continue;
      }
      const seq = r.u32();
      if (waitedForTask) {
        // How long after its last result this thread had the next task (its own wake-up included).
        // Only after a single task: in a burst the main thread is busy elsewhere, which says nothing
        // about how soon it answers one task at a time.
        waitedForTask = false;
        if (lastStretch === 1) budget.observe(performance.now() - lastResult, spunFor);
      }
      ranSinceDry++;
      let body = r;
      if (type === RecordKind.TaskByPort) {
        const m = receiveMessageOnPort(payload);
        if (m === undefined) throw new Error('loopthread: a task body is missing from the payload port');
        body = payloadReader(m.message as Payload);
      }
      let pending: Promise<void> | undefined;
      try {
        pending = runTask(seq, body);
      } finally {
        tasks.consume();
      }
      if (pending !== undefined) {
        wait(seq, pending);
        return;
      }
      if (performance.now() - began > YIELD_MS) {
        setImmediate(drain);
        return;
      }
    }
    if (ranSinceDry > 0) {
      lastStretch = ranSinceDry;
      ranSinceDry = 0;
      waitedForTask = true;
    }
    if (spinForTasks()) continue;
    Atomics.store(words, Word.WorkerSleeps, ParkState.InLoop);
    if (tasks.ready) {
      Atomics.store(words, Word.WorkerSleeps, ParkState.Awake);
      continue;
    }
    isAwake = false;
    Atomics.sub(awake, AWAKE, 1);
    // While the loop has nothing else to do, wait parked for the rest of the time a drain may hold
    // the loop (see idle-park.ts); then idle in the loop, where timers and I/O of earlier tasks go on.
    const left = began + YIELD_MS - performance.now();
    if (left > 0 && parkIdle(words, Word.WorkerSleeps, left, OWN_RESOURCES)) {
      observeWake(now() - (stamps[Stamp.WorkerWoken] as number));
      isAwake = true;
      Atomics.add(awake, AWAKE, 1);
      continue;
    }
    busy = false;
    return;
  }
}

/** Pauses the drain until the task's promise settles, or the task is given up (see onIdle). */
function wait(seq: number, pending: Promise<void>): void {
  let release!: () => void;
  const givenUp = new Promise<void>((resolve) => {
    release = resolve;
  });
  awaiting = { seq, began: performance.now(), release };
  keepAlive.hold(false);
  void Promise.race([pending, givenUp]).then(() => {
    awaiting = undefined;
    Atomics.store(words, Word.Idle, 0);
    keepAlive.hold(true);
    drain();
  });
}

// This thread's loop has nothing left to do while a task's promise is pending. Other 'beforeExit'
// listeners come after this one and may still act (a Portal client rejects its calls here), so
// look again once they, and what they set off, have had their turn: the resources there are now
// do not keep the loop alive (it just ran dry); one more then means that something was started.
process.prependListener('beforeExit', () => {
  if (awaiting !== undefined) setImmediate(onIdle, awaiting, process.getActiveResourcesInfo());
});

function onIdle(waiting: Waiting, before: readonly string[]): void {
  if (awaiting !== waiting || startedWork(before, process.getActiveResourcesInfo())) return;
  const context = running?.seq === waiting.seq ? running.context : undefined;
  if (context?.asked === true && !context.wasAborted) {
    // The task listens to its signal: a cancel (or a timeout) from the main thread could still
    // settle it. Reading `aborted` looks at the cancel flag first: a cancel not yet read is acted
    // on now, and if it settles nothing the loop runs dry again and this comes back.
    if (context.aborted) return;
    // The main thread decides: it gives it up if it blocks on it, or when it has nothing left to
    // do itself (as a LoopThread's caller does). Until then this thread waits for its word.
    Atomics.store(words, Word.Idle, waiting.seq);
    keepAlive.hold(true);
    wakeMain();
    return;
  }
  // Nothing can settle it: no code of this thread will run again, and a cancel would reach nothing.
  giveUp(waiting);
}

/** Whether `after` holds a resource that `before` did not. */
function startedWork(before: readonly string[], after: readonly string[]): boolean {
  const left = new Map<string, number>();
  for (const r of before) left.set(r, (left.get(r) ?? 0) + 1);
  for (const r of after) {
    const n = left.get(r) ?? 0;
    if (n === 0) return true;
    left.set(r, n - 1);
  }
  return false;
}

/** Answers the awaited task with NeverSettledError (aborting its signal) and goes on with the next. */
function giveUp(waiting: Waiting): void {
  const error = new NeverSettledError(
    'the task can never settle: its worker went idle with its promise still pending ' +
      '(it awaits something that nothing will resolve)',
  );
  if (running?.seq === waiting.seq) running.context.abort(error);
  sendResult(waiting.seq, Status.Thrown, microsSince(waiting.began), error);
  waiting.release();
}

function start(message: WorkerInit): void {
  init = message;
  const shared = views(init.shared);
  ({ words, stamps, cancelled, reasons } = shared);
  awake = new Int32Array(init.awake);
  tasks = new RingReader(words, Word.TaskWrite, Word.TaskRead, shared.tasks);
  results = new RingWriter(words, Word.ResultWrite, Word.ResultRead, shared.results);
  control = init.control;
  payload = init.payload;

  control.on('message', (m: ToWorker) => {
    if (m === WAKE) {
      if (!busy) {
        observeWake(now() - (stamps[Stamp.WorkerWoken] as number));
        drain();
      }
    } else if ('cancel' in m) {
      // An Idle notice no longer holds: the cancel may settle the task, or leave it idle again.
      Atomics.store(words, Word.Idle, 0);
      Atomics.add(words, Word.Heard, 1);
      if (awaiting !== undefined) keepAlive.hold(false);
      // Aborts the running task's signal (a CPU loop sees the flag itself through throwIfCancelled).
      // Reading `aborted` polls the shared cancel flag, which aborts the signal.
      if (running?.seq === m.cancel && running.context.aborted) return;
    } else if ('drop' in m) {
      if (awaiting?.seq === m.drop) giveUp(awaiting);
    } else {
      process.exit(0);
    }
  });
  // Only what tasks leave keeps this loop alive (see keepAlive).
  control.unref();

  // Last words (see LastWords): the error that ends this thread, if one does, and its exit code.
  atThreadEnd((exitCode, thrown) => {
    const note: { exitCode: number; error?: Uint8Array } = { exitCode };
    // A thrown value that cannot be copied: its description then.
    if (thrown !== undefined) {
      note.error = encodeStandalone(thrown.error) ?? encodeStandalone(new Error(String(thrown.error)));
    }
    init.notes.postMessage(note satisfies LastWords);
    // A main thread blocked in resultSync reads them at once.
    Atomics.add(awake, BELL, 1);
    Atomics.notify(awake, BELL);
  });

  // Ready, and the fact the owner's liveness probe rests on: this thread's OS id where known.
  const tid = ownOsThreadId();
  Atomics.store(words, Word.Ran, tid > 0 ? tid : RAN_UNKNOWN_OS_THREAD);
  Atomics.store(words, Word.Ready, tid > 0 ? tid : RAN_UNKNOWN_OS_THREAD);
  drain();
}

// The pool posts its values right after making the worker: they are there already unless this
// thread got ahead of that post.
const port = parentPort;
if (port === null) throw new Error('worker-main.js runs only as a pool worker');
const first = earlyInit ?? takeInit();
if (first !== undefined) start(first);
else port.once('message', start);
