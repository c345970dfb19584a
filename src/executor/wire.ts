/**
 * The records of a pool worker's rings, in the codec's bytes. A task's body (what to run and its
 * arguments) is encoded once, when it is submitted; the record header (its sequence number on
 * the worker it goes to) is added when it is handed over.
 */
import type { MessagePort, Transferable } from 'node:worker_threads';
import { decodeValue } from '../codec/decode.js';
import { encodeOrExplain, encodeValue } from '../codec/encode.js';
import { Reader, Writer } from '../codec/writer.js';
import type { Definition } from './targets.js';

export const enum Record {
  /** A record to skip (a hand-over that failed after its room was taken). */
  Nothing = 0,
  /** [u32 seq][body]: a task whose body is in the ring. */
  Task = 1,
  /** [u32 seq]: a task whose body waits on the payload port (large, or with ports beside it). */
  TaskByPort = 2,
  /** [u32 id][u8 kind][string][u32 n][n strings]: what a target id stands for. */
  Define = 3,
}

/** How a task's target is applied to its arguments. */
export const enum Mode {
  /** fn(...args) */
  Call = 0,
  /** fn(item) for each argument in turn (a chunk of map()). */
  Chunk = 1,
}

export const enum Status {
  Ok = 0,
  Thrown = 1,
  /** Cancelled before it started: never ran. */
  Skipped = 2,
}

/** What crosses the payload port: a record's bytes and the objects beside them. */
export interface Payload {
  readonly bytes: ArrayBuffer;
  readonly length: number;
  readonly beside: unknown[];
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
  w.u8(Record.Define);
  w.u32(id);
  if (d.kind === 'source') {
    w.u8(1);
    w.string(d.source);
    w.u32(0);
    return;
  }
  w.u8(0);
  w.string(d.specifier);
  w.u32(d.path.length);
  for (const key of d.path) w.string(key);
}

export function readDefine(r: Reader): [number, Definition] {
  const id = r.u32();
  const kind = r.u8();
  const text = r.string();
  const n = r.u32();
  const path: string[] = [];
  for (let i = 0; i < n; i++) path.push(r.string());
  return [id, kind === 1 ? { kind: 'source', source: text } : { kind: 'module', specifier: text, path }];
}

/**
 * Writes a result: [u32 seq][u8 status][u32 run time in us][value]. A value that cannot be
 * copied becomes a DataCloneError result instead, so the caller always hears back.
 */
export function writeResult(w: Writer, seq: number, status: Status, micros: number, value: unknown): void {
  w.u32(seq);
  w.u8(status);
  w.u32(micros);
  if (status === Status.Skipped) return;
  const start = w.pos;
  try {
    encodeOrExplain(status === Status.Ok ? 'the result' : 'the thrown value', 'back to the caller', () => {
      encodeValue(w, value);
    });
  } catch (error) {
    w.pos = start - 5;
    w.u8(Status.Thrown);
    w.u32(micros);
    w.beside?.splice(0);
    encodeValue(w, error);
  }
}

/** A copy of a writer's bytes for the payload port, with what must be transferred. */
export function toPayload(w: Writer, from: number): [Payload, Transferable[]] {
  const length = w.pos - from;
  const bytes = new ArrayBuffer(length);
  new Uint8Array(bytes).set(w.buf.subarray(from, w.pos));
  const beside = w.beside ?? [];
  const ports = beside.filter((o): o is MessagePort => typeof (o as MessagePort).postMessage === 'function');
  return [{ bytes, length, beside }, [bytes, ...ports]];
}

export function payloadReader(p: Payload): Reader {
  return new Reader(Buffer.from(p.bytes, 0, p.length), 0, p.length, p.beside);
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
