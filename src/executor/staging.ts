/**
 * Where task bodies are encoded when they are submitted: consecutive slices of shared heap
 * chunks, so that a burst of small tasks costs no allocation each (a burst's garbage is what
 * limits it). A chunk is dropped (and collected once its tasks are done) when it fills up.
 */
import { Writer } from '../codec/writer.js';
import { Mode, writeBody } from './wire.js';

const CHUNK_BYTES = 64 * 1024;

let chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
let used = 0;
/** Reused for every body: objects that must travel beside the bytes (ports, shared buffers). */
const beside: unknown[] = [];
/** Reused for every body (reset before each). */
const writer = new Writer(chunk, 0, beside);

/** Where the last staged body is: bytes [start, end) of buf, and what travels beside them. */
export const staged: { buf: Buffer; start: number; end: number; beside: unknown[] | undefined } = {
  buf: chunk,
  start: 0,
  end: 0,
  beside: undefined,
};

/** Encodes a task's body into `staged`; throws a DataCloneError for an argument that cannot be copied. */
export function stage(mode: Mode, id: number, args: readonly unknown[]): void {
  if (used > CHUNK_BYTES - 1024) {
    chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
    used = 0;
  }
  const w = writer;
  w.buf = chunk;
  w.pos = used;
  w.spilled = false;
  try {
    writeBody(w, mode, id, args);
  } catch (error) {
    beside.length = 0;
    throw error;
  }
  staged.beside = beside.length === 0 ? undefined : beside.splice(0);
  staged.buf = w.buf;
  staged.start = used;
  staged.end = w.pos;
  // A body too large for what was left of the chunk moved to a buffer of its own.
  if (!w.spilled) used = (w.pos + 7) & ~7;
}
