/** A call's outcome in the codec's bytes: [u8 Status][value], the same for a portal reply and a pool result. */
import { encodeOrExplain, encodeValue, type Lending } from '../codec/encode.js';
import type { Writer } from '../codec/writer.js';
import { Status } from './run.js';

/**
 * Writes an outcome. A value that cannot be copied becomes a DataCloneError thrown instead (what
 * was written of it, and any port it put beside the bytes, is taken back), so the caller always
 * hears back.
 */
export function writeOutcome(
  w: Writer,
  status: Status,
  value: unknown,
  lending?: Lending,
  lendInstances = false,
): void {
  const start = w.pos;
  const beside = w.beside?.length ?? 0;
  w.u8(status);
  if (status === Status.Skipped) return;
  try {
    encodeOrExplain(status === Status.Ok ? 'the result' : 'the thrown value', 'back to the caller', () => {
      encodeValue(w, value, lending, lendInstances);
    });
  } catch (error) {
    w.pos = start;
    if (w.beside !== undefined) w.beside.length = beside;
    w.u8(Status.Thrown);
    encodeValue(w, error);
  }
}
