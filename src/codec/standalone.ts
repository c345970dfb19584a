/**
 * One value in bytes of its own, for a message that carries it beside other fields (a dying
 * thread's last words, posted with its exit code).
 */
import { decodeValue } from './decode.js';
import { encodeValue } from './encode.js';
import { Reader, Writer } from './writer.js';

/** The value's bytes, or undefined if it cannot be copied. */
export function encodeStandalone(value: unknown): Uint8Array | undefined {
  const w = new Writer(Buffer.allocUnsafeSlow(1024));
  try {
    encodeValue(w, value);
  } catch {
    return undefined;
  }
  return w.buf.subarray(0, w.pos);
}

export function decodeStandalone(bytes: Uint8Array): unknown {
  return decodeValue(new Reader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength));
}
