/**
 * A message's bytes for postMessage: in an ArrayBuffer that is transferred, with the objects beside
 * them and its parts (see Writer.parts), also transferred.
 */
import { MessagePort, type Transferable } from 'node:worker_threads';
import { Reader, type Writer } from './writer.js';

export interface Payload {
  readonly bytes: ArrayBuffer;
  readonly length: number;
  readonly beside: unknown[];
  readonly parts: ArrayBuffer[];
}

/**
 * The bytes `w` wrote from `from` on, with what to transfer (the buffer and the ports beside).
 * `own`: `w.buf` is a heap buffer of its own, at the start of its ArrayBuffer, that nothing else
 * uses: it is transferred as it is instead of copied.
 */
export function toPayload(w: Writer, from: number, own = false): [Payload, Transferable[]] {
  const length = w.pos - from;
  let bytes: ArrayBuffer;
  if (own && from === 0) {
    bytes = w.buf.buffer as ArrayBuffer;
  } else {
    bytes = new ArrayBuffer(length);
    new Uint8Array(bytes).set(w.buf.subarray(from, w.pos));
  }
  const beside = w.beside ?? [];
  const parts = w.parts ?? [];
  const ports = beside.filter((o): o is MessagePort => o instanceof MessagePort);
  return [{ bytes, length, beside, parts }, [bytes, ...ports, ...parts]];
}

export function payloadReader(p: Payload): Reader {
  return new Reader(Buffer.from(p.bytes, 0, p.length), 0, p.length, p.beside, p.parts);
}
