/**
 * The records of a pool worker's rings, in the codec's bytes. A task's body (what to run and its
 * arguments) is encoded once, when it is submitted; the record header (its sequence number on
 * the worker it goes to) is added when it is handed over.
 */
import { decodeValue } from '../codec/decode.js';
import { encodeOrExplain, encodeValue } from '../codec/encode.js';
import type { Reader, Writer } from '../codec/writer.js';
import { writeOutcome } from '../call/outcome.js';
import type { Status } from '../call/run.js';
import { TargetKind } from '../call/target.js';
import type { Definition } from './targets.js';

/** The first byte of a task ring record. */
export const enum RecordKind {
  /** A record to skip (a hand-over that failed after its room was taken). */
  Nothing = 0,
  /** [u32 seq][body]: a task whose body is in the ring. */
  Task = 1,
  /** [u32 seq]: a task whose body waits on the payload port (large, or with ports beside it). */
  TaskByPort = 2,
  /** [u32 id][u8 TargetKind][string][u32 n][n strings]: what a target id stands for. */
  Define = 3,
}

/** A task record's header: [u8 RecordKind][u32 seq]; its body follows (or waits on the payload port). */
export const TASK_HEADER_BYTES = 5;
/** Where a result record's run time is: after its [u32 seq]. */
export const RESULT_MICROS_AT = 4;

/** How a task's target is applied to its arguments. */
export const enum Mode {
  /** fn(...args) */
  Call = 0,
  /** fn(item) for each argument in turn (a chunk of map()). */
  Chunk = 1,
}

/** Wakes the other side's event loop (sent only when it said it sleeps). */
export const WAKE = 0;

/**
 * Control messages from the main thread to a worker. `drop`: the main thread judged that the task
 * it names, on which the worker's loop went idle, can never settle (see worker-main's onIdle).
 */
export type ToWorker = typeof WAKE | { readonly cancel: number } | { readonly drop: number } | { readonly exit: true };

/**
 * A worker's last words, posted from its 'exit' hook on its notes port, where the main thread reads
 * them even while it is blocked (receiveMessageOnPort): the exit code, and the error if an
 * uncaught one ended it (in the codec's bytes). Neither a terminate() nor running out of memory
 * runs that hook: a thread that ends without last words ended one of those two ways.
 */
export interface LastWords {
  readonly exitCode: number;
  readonly error?: Uint8Array;
}

/** Writes a task's body: a value that cannot be copied throws a DataCloneError naming its argument. */
export function writeBody(w: Writer, mode: Mode, id: number, args: readonly unknown[]): void {
  w.u8(mode);
  w.u32(id);
  w.u32(args.length);
  const start = w.pos;
  try {
    // One by one, not as an array: an array costs the codec a Map of references, which a burst
    // of tasks with primitive arguments would pay for each task.
    for (const arg of args) encodeValue(w, arg);
  } catch {
    // Encoded again one by one, for an error that names the argument (and the path in it).
    w.pos = start;
    for (let i = 0; i < args.length; i++) {
      encodeOrExplain(
        mode === Mode.Chunk ? `item ${i + 1} of the chunk` : `argument ${i + 1}`,
        'to a pool worker',
        () => {
          encodeValue(w, args[i]);
        },
      );
    }
    throw new Error('loopthread: the arguments failed to encode, then encoded one by one');
  }
}

export interface Body {
  mode: Mode;
  id: number;
  args: unknown[];
}

export function readBody(r: Reader): Body {
  const mode = r.u8() as Mode;
  const id = r.u32();
  const n = r.u32();
  const args = new Array<unknown>(n);
  for (let i = 0; i < n; i++) args[i] = decodeValue(r);
  return { mode, id, args };
}

export function writeDefine(w: Writer, id: number, d: Definition): void {
  w.u8(RecordKind.Define);
  w.u32(id);
  w.u8(d.kind);
  if (d.kind === TargetKind.Inline) {
    w.string(d.source);
    w.u32(0);
    return;
  }
  w.string(d.specifier);
  w.u32(d.path.length);
  for (const key of d.path) w.string(key);
}

export function readDefine(r: Reader): [number, Definition] {
  const id = r.u32();
  const kind = r.u8() as TargetKind.Export | TargetKind.Inline;
  const text = r.string();
  const n = r.u32();
  const path: string[] = [];
  for (let i = 0; i < n; i++) path.push(r.string());
  return [id, kind === TargetKind.Inline ? { kind, source: text } : { kind, specifier: text, path }];
}

/**
 * Writes a result: [u32 seq][u32 run time in us][outcome] (see writeOutcome: a value that cannot
 * be copied becomes a DataCloneError, so the caller always hears back).
 */
export function writeResult(w: Writer, seq: number, status: Status, micros: number, value: unknown): void {
  w.u32(seq);
  w.u32(micros);
  writeOutcome(w, status, value);
}

/** Copies bytes into a ring record (a loop for the few bytes of a small record beats a native call). */
export function copyInto(dst: Buffer, at: number, src: Buffer, from: number, to: number): void {
  const n = to - from;
  if (n <= 64) {
    for (let i = 0; i < n; i++) dst[at + i] = src[from + i] as number;
  } else {
    dst.set(src.subarray(from, to), at);
  }
}
