/**
 * One worker of a pool, seen from the main thread: its thread, its shared rings, and the tasks
 * handed to it and not yet answered (by sequence number). It knows how to hand over a task, take
 * results, flag a cancel, and tell what became of its tasks when the thread ends; what to do
 * about it is the pool's business.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type WorkerOptions } from 'node:worker_threads';
import { startWorker } from '../worker-entry.js';
import { payloadReader, toPayload, type Payload } from '../codec/payload.js';
import { decodeStandalone } from '../codec/standalone.js';
import { Reader, Writer } from '../codec/writer.js';
import { createShared, CANCEL_MASK, CANCEL_SLOTS, MainWaits, Stamp, views, Word, type Views } from './layout.js';
import type { CancelKind, Status } from '../call/run.js';
import { nativeHandle } from '../shm/native-worker.js';
import { isIdle, wakeIdle, wakeToLoop } from '../shm/idle-park.js';
import { ThreadLiveness } from '../shm/thread-liveness.js';
import { howItEnded, isOutOfMemory, outOfMemory } from '../stopped.js';
import { RingReader, RingWriter } from './ring.js';
import { now, observeWake, SpinPolicy } from '../shm/spin-policy.js';
import { definitionOf } from './targets.js';
import { startThread, type ThreadArgv } from '../modules.js';
import type { Task } from './task-queue.js';
import {
  copyInto,
  RecordKind,
  RESULT_MICROS_AT,
  TASK_HEADER_BYTES,
  WAKE,
  writeDefine,
  type LastWords,
  type ToWorker,
} from './wire.js';
import type { WorkerInit } from './worker-main.js';

/** Tasks whose bodies are larger than this go by message rather than through the ring. */
const MAX_RING_TASK = 16 * 1024;

/** The pool's options for each worker thread it starts. */
export interface ThreadOptions extends Pick<WorkerOptions, 'resourceLimits' | 'env' | 'workerData'> {
  argv: ThreadArgv;
  /** The worker's entry file (worker-main.bundle.js), found when the pool was made. */
  main: string;
  /** What a user's preloads come after (worker-boot.js): see startWorker. */
  boot: string;
}

export interface WorkerEvents {
  /** A result (its value still to be read from `r`). */
  result(task: Task, status: Status, micros: number, r: Reader): void;
  /** The worker asked the main thread to look at its results. */
  wake(): void;
  /**
   * The thread ended. `started` were running (or had run without an answer): the thread took
   * them down with it. `unstarted` never began and can run elsewhere.
   */
  exit(worker: PoolWorker, started: Task[], unstarted: Task[], ending: Ending): void;
}

/** How a worker's thread ended, as far as the facts tell; the same whether the main thread was blocked or not. */
export interface Ending {
  readonly exitCode: number;
  /** The error that ended it (an uncaught one, or running out of memory), if one did. */
  readonly cause: unknown;
  /** Why, to follow "stopped unexpectedly" in a message. */
  readonly why: string;
}

const defineScratch = Buffer.allocUnsafeSlow(64 * 1024);

export class PoolWorker {
  readonly thread: Worker;
  readonly #views: Views;
  readonly #tasks: RingWriter;
  readonly #results: RingReader;
  readonly #reader: Reader;
  readonly #control: MessageChannel['port1'];
  readonly #payload: MessageChannel['port1'];
  readonly #slots: (Task | undefined)[] = new Array<Task | undefined>(CANCEL_SLOTS);
  readonly #defined = new Set<number>();
  #seq = 0;
  #startedSeen = 0;
  #dirty = false;
  /** What the 'error' event said, if it came. */
  #error: unknown;
  readonly #notes: MessageChannel['port1'];
  #lastWords: LastWords | undefined;
  /** terminate() was called on the thread (by the pool, or by whoever holds it). */
  #terminated = false;
  #cancelsSent = 0;
  /** The task the worker was told to give up (see stuckOn). */
  #dropAsked = 0;
  /** Whether the main thread should look for this worker's results a while before sleeping. */
  readonly #budget = new SpinPolicy();
  /** When tasks were last handed over (performance.now()). */
  #publishedAt = 0;
  /** The spin budget when the last tasks were handed over (what an answer is judged against). */
  #spunFor = 0;
  /** Tasks handed over and not yet answered. */
  outstanding = 0;
  /** performance.now() when it last became idle. */
  idleSince = performance.now();
  /** The thread's id (Worker.threadId is -1 once it exited). */
  readonly threadId: number;
  /** Being stopped on purpose (retired, or terminated to stop a task that ignored its signal). */
  stopping = false;
  exited = false;
  /** Its ring had no room for the task at hand in the current pump. */
  full = false;

  constructor(
    name: string,
    threadOptions: ThreadOptions,
    awake: SharedArrayBuffer,
    private readonly events: WorkerEvents,
  ) {
    const shared = createShared();
    this.#views = views(shared);
    const { words } = this.#views;
    this.#tasks = new RingWriter(words, Word.TaskWrite, Word.TaskRead, this.#views.tasks);
    this.#results = new RingReader(words, Word.ResultWrite, Word.ResultRead, this.#views.results);
    this.#reader = new Reader(this.#views.results, 0, this.#views.results.length);
    const control = new MessageChannel();
    const payload = new MessageChannel();
    const notes = new MessageChannel();
    this.#control = control.port1;
    this.#payload = payload.port1;
    this.#notes = notes.port1;
    const init: WorkerInit = {
      shared,
      ranIndex: Word.Ran,
      awake,
      control: control.port2,
      payload: payload.port2,
      notes: notes.port2,
    };
    const { argv, main, boot, ...rest } = threadOptions;
    this.thread = startThread(argv, (execArgv) => startWorker({ main, boot }, execArgv, { name, ...rest }));
    // Not as workerData, which is the user's: worker-main takes it from parentPort.
    this.thread.postMessage(init, [control.port2, payload.port2, notes.port2]);
    this.threadId = this.thread.threadId;
    this.#liveness = new ThreadLiveness(nativeHandle(this.thread), () => Atomics.load(this.#views.words, Word.Ran));
    // Neither a terminate() nor running out of memory lets the thread leave last words: knowing
    // whether terminate() was called tells the two apart.
    const terminate = this.thread.terminate.bind(this.thread);
    this.thread.terminate = () => {
      this.#terminated = true;
      return terminate();
    };
    // An idle pool never holds the process open; the pool itself does while tasks are unsettled.
    this.thread.unref();
    this.#control.on('message', () => {
      observeWake(now() - (this.#views.stamps[Stamp.MainWoken] as number));
      events.wake();
    });
    // After the listener, which refs the port.
    this.#control.unref();
    this.thread.on('error', (error) => {
      this.#error ??= error;
    });
    this.thread.on('exit', (code) => {
      this.#onExit(code);
    });
  }

  /** The seq of the task running now or last started. */
  get started(): number {
    return Atomics.load(this.#views.words, Word.Started);
  }

  /** Whether the worker waits for tasks, idle in its loop or parked (a task handed to it then costs a wake-up). */
  get sleeping(): boolean {
    return isIdle(this.#views.words, Word.WorkerSleeps);
  }

  get ready(): boolean {
    return Atomics.load(this.#views.words, Word.Ready) !== 0;
  }

  /** Hands a task over (visible to the worker after flush()); false if its ring has no room now. */
  hand(task: Task): boolean {
    const body = task.end - task.start;
    const byPort = body > MAX_RING_TASK || task.beside !== undefined;
    if (!this.#defined.has(task.target) && !this.#define(task.target)) return false;
    const seq = this.#seq + 1;
    const pos = this.#tasks.reserve(byPort ? TASK_HEADER_BYTES : TASK_HEADER_BYTES + body);
    if (pos < 0) return false;
    const data = this.#tasks.data;
    data[pos] = RecordKind.Nothing;
    data.writeUInt32LE(seq, pos + 1);
    this.#dirty = true;
    if (byPort) {
      // Posted before the record is published: the worker finds it waiting when it reads the record.
      const [p, transfer] = toPayload(new Writer(task.buf, task.end, task.beside), task.start);
      this.#payload.postMessage(p, transfer);
      data[pos] = RecordKind.TaskByPort;
    } else {
      data[pos] = RecordKind.Task;
      copyInto(data, pos + TASK_HEADER_BYTES, task.buf, task.start, task.end);
    }
    this.#seq = seq;
    task.seq = seq;
    task.owner = this;
    task.state = 'handed';
    this.#slots[seq & CANCEL_MASK] = task;
    this.outstanding++;
    this.#dirty = true;
    return true;
  }

  #define(id: number): boolean {
    const w = new Writer(defineScratch);
    writeDefine(w, id, definitionOf(id));
    if (w.pos > this.#tasks.maxRecord) throw new RangeError('the inline function is too large to send');
    const pos = this.#tasks.reserve(w.pos);
    if (pos < 0) return false;
    copyInto(this.#tasks.data, pos, w.buf, 0, w.pos);
    this.#defined.add(id);
    return true;
  }

  /** Publishes the tasks handed over since the last flush and wakes the worker if it sleeps. */
  flush(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#publishedAt = performance.now();
    this.#spunFor = this.#budget.next();
    this.#tasks.publish();
    const words = this.#views.words;
    if (isIdle(words, Word.WorkerSleeps)) {
      this.#views.stamps[Stamp.WorkerWoken] = now();
      wakeIdle(words, Word.WorkerSleeps, this.#postWake);
    }
  }

  /** When this worker last woke the main thread (on the clock threads share). */
  get mainWokenAt(): number {
    return this.#views.stamps[Stamp.MainWoken] as number;
  }

  /** Tells the worker how the main thread now waits (and so how to wake it for results). */
  set mainWaits(value: MainWaits) {
    Atomics.store(this.#views.words, Word.MainSleeps, value);
  }

  /**
   * For a main thread blocked in resultSync, which cannot receive the 'exit' event: if the thread
   * is found to have stopped, its end is handled now (and the event ignored when it comes).
   */
  checkAlive(): void {
    if (this.exited) return;
    // Last words: it is ending (its tasks are lost), though the thread may not be gone yet.
    if (this.#readLastWords() !== undefined) {
      this.#onExit(undefined);
      return;
    }
    if (this.#liveness.stopped()) this.#onExit(undefined);
  }

  #readLastWords(): LastWords | undefined {
    this.#lastWords ??= receiveMessageOnPort(this.#notes)?.message as LastWords | undefined;
    return this.#lastWords;
  }

  /** What the facts tell of its end; `exitCode` is the 'exit' event's, if this comes from there. */
  #ending(exitCode: number | undefined): Ending {
    const words = this.#readLastWords();
    if (words?.error !== undefined) {
      const cause = decodeStandalone(words.error);
      return { exitCode: words.exitCode, cause, why: howItEnded(cause, undefined) };
    }
    if (words !== undefined) {
      return { exitCode: words.exitCode, cause: undefined, why: howItEnded(undefined, words.exitCode) };
    }
    // No last words: it was terminated, or ran out of memory (Node ends both with exit code 1),
    // or it died starting, before it could leave any.
    const code = exitCode ?? 1;
    const error = this.#error;
    if (this.#terminated) {
      const how = this.stopping ? ': a task ignored its signal past terminateAfter' : '';
      return { exitCode: code, cause: error, why: ` (terminated${how})` };
    }
    if (isOutOfMemory(error) || (error === undefined && this.ready)) {
      const cause = error ?? outOfMemory();
      return { exitCode: code, cause, why: howItEnded(cause, undefined) };
    }
    if (error !== undefined) return { exitCode: code, cause: error, why: howItEnded(error, undefined) };
    return {
      exitCode: code,
      cause: undefined,
      why: ' while it started, without last words (out of memory, or a failing preload)',
    };
  }

  /** Whether the thread is gone, for a main thread too blocked to receive 'exit'; `ready` is the fact it writes. */
  readonly #liveness: ThreadLiveness;

  /** How long the main thread should keep looking for this worker's results before it sleeps (ms). */
  get spinMs(): number {
    return this.#budget.next();
  }

  /** Takes every result there is; returns how many. */
  collect(): number {
    this.markStarted();
    let n = 0;
    const ring = this.#results;
    if (this.outstanding === 1 && ring.next()) {
      // One task out, answered: how long after handing it over this thread had the answer (its own
      // wake-up included), less the task's own run time. Bursts say nothing about this: their
      // answers queue behind one another.
      const runMs = ring.data.readUInt32LE(ring.start + RESULT_MICROS_AT) / 1000;
      this.#budget.observe(performance.now() - this.#publishedAt - runMs, this.#spunFor);
    }
    // One reader for all the ring's records (a burst's garbage is what limits it).
    const r = this.#reader;
    while (ring.next()) {
      r.pos = ring.start;
      try {
        this.#deliver(r);
      } finally {
        ring.consume();
      }
      n++;
    }
    for (let m = receiveMessageOnPort(this.#payload); m !== undefined; m = receiveMessageOnPort(this.#payload)) {
      this.#deliver(payloadReader(m.message as Payload));
      n++;
    }
    return n;
  }

  /** Marks the futures of the tasks the worker has started since the last look as running. */
  markStarted(): void {
    const started = this.started;
    for (let seq = this.#startedSeen + 1; seq <= started; seq++) {
      const task = this.#slots[seq & CANCEL_MASK];
      if (task?.seq === seq && task.owner === this) task.control.running();
    }
    if (started > this.#startedSeen) this.#startedSeen = started;
  }

  #deliver(r: Reader): void {
    const seq = r.u32();
    const micros = r.u32();
    const status = r.u8() as Status;
    const slot = seq & CANCEL_MASK;
    const task = this.#slots[slot];
    if (task?.seq !== seq || task.owner !== this) return;
    this.#slots[slot] = undefined;
    if (--this.outstanding === 0) this.idleSince = performance.now();
    this.events.result(task, status, micros, r);
  }

  /** The tasks handed over that have not begun. */
  unstarted(): Task[] {
    const out: Task[] = [];
    for (let seq = Math.max(this.started + 1, this.#seq - CANCEL_SLOTS + 1); seq <= this.#seq; seq++) {
      const task = this.#slots[seq & CANCEL_MASK];
      if (task?.seq === seq && task.owner === this) out.push(task);
    }
    return out;
  }

  /** The task that has begun and not finished, if any. */
  running(): Task | undefined {
    const task = this.#slots[this.started & CANCEL_MASK];
    return task?.seq === this.started && task.owner === this && task.state === 'handed' ? task : undefined;
  }

  /** Flags a handed task as cancelled: it is skipped if not started, and its signal aborts if it is. */
  cancel(task: Task, kind: CancelKind): void {
    const slot = task.seq & CANCEL_MASK;
    Atomics.store(this.#views.reasons, slot, kind);
    Atomics.store(this.#views.cancelled, slot, task.seq);
    if (task.seq <= this.started) {
      this.#cancelsSent++;
      this.#post({ cancel: task.seq });
    }
  }

  /**
   * The seq of the running task whose promise the worker's loop went idle on while only a cancel
   * from this thread could still settle it (see worker-main's onIdle), or 0. A notice counts only
   * once the worker has handled every cancel sent to it, since a cancel may settle the task.
   */
  stuckOn(): number {
    const words = this.#views.words;
    if (Atomics.load(words, Word.Heard) !== this.#cancelsSent) return 0;
    const seq = Atomics.load(words, Word.Idle);
    if (seq === 0 || seq === this.#dropAsked) return 0;
    const task = this.#slots[seq & CANCEL_MASK];
    return task?.seq === seq && task.owner === this ? seq : 0;
  }

  /**
   * A cancelled task that has not stopped `grace` ms later has its thread terminated. Only the
   * task itself is stopped: not yet begun, it will be skipped when its turn comes (looked at again
   * after another grace period, in case it began meanwhile).
   */
  killAfter(task: Task, grace: number): void {
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      if (task.state !== 'handed' || task.owner !== this || this.exited) return;
      if (this.started === task.seq) this.kill();
      else timer = setTimeout(check, grace);
    };
    timer = setTimeout(check, grace);
    const previous = task.cleanup;
    task.cleanup = () => {
      previous?.();
      clearTimeout(timer);
    };
  }

  readonly #postWake = (): void => {
    this.#control.postMessage(WAKE);
  };

  /** Sends a control message; a worker parked for tasks goes back to its loop to read it. */
  #post(message: ToWorker): void {
    this.#control.postMessage(message);
    wakeToLoop(this.#views.words, Word.WorkerSleeps);
  }

  /** Tells the worker to give up the task it is stuck on: it answers NeverSettledError. */
  drop(seq: number): void {
    this.#dropAsked = seq;
    this.#post({ drop: seq });
  }

  /** Asks an idle worker to leave. */
  retire(): void {
    this.stopping = true;
    this.thread.ref();
    this.#post({ exit: true });
  }

  /** Stops the thread at once (a task ignored its signal past its grace period). */
  kill(): void {
    this.stopping = true;
    this.thread.ref();
    void this.thread.terminate();
  }

  #onExit(code: number | undefined): void {
    if (this.exited) return;
    this.exited = true;
    // Found gone from facts (a blocked caller's probe), not by the 'exit' event: the pool still
    // counts the thread until that event, so it must come before this loop may end (a pool's
    // close waits for it, and an unref'd thread would not keep the loop open for it).
    if (code === undefined) this.thread.ref();
    // What it answered before it went still counts.
    this.collect();
    const last = this.started;
    const started: Task[] = [];
    const unstarted: Task[] = [];
    for (let seq = Math.max(1, this.#seq - CANCEL_SLOTS + 1); seq <= this.#seq; seq++) {
      const task = this.#slots[seq & CANCEL_MASK];
      if (task?.seq !== seq || task.owner !== this) continue;
      this.#slots[seq & CANCEL_MASK] = undefined;
      (seq <= last ? started : unstarted).push(task);
    }
    this.outstanding = 0;
    const ending = this.#ending(code);
    this.#control.close();
    this.#payload.close();
    this.#notes.close();
    this.events.exit(this, started, unstarted, ending);
  }
}
