/**
 * The messages between a client and a host, in the codec's bytes. Every request carries a call id
 * unique on its connection; every reply names the id it answers, so a late reply can never be
 * taken for another call's.
 */
import { decodeValue, type Revive } from '../codec/decode.js';
import { encodeOrExplain, encodeValue, type Lending } from '../codec/encode.js';
import type { RefOp } from './lender.js';
import { MessagePort, type Transferable } from 'node:worker_threads';
import { Reader, Writer } from '../codec/writer.js';

export const enum Kind {
  Call = 1,
  Import = 2,
  Close = 3,
  Cancel = 4,
  Reply = 5,
  /** Host to client: the loop went idle while calls of yours are pending. */
  Idle = 6,
  /** Either way: proxies were dropped; the lent objects they stood for may go. */
  Release = 7,
  /** Host to client, its last message: the serving thread is dying, with its exit code and error. */
  Died = 8,
}

/**
 * What a call runs: an export of a loaded module (by id and property path), inline source, an
 * operation on an object the receiver lent, or a function whose result is entered as a resource
 * (see LoopThread.enterSync; `exit` names its exit method, null for Symbol.asyncDispose).
 */
export type Target =
  | readonly [kind: 0, moduleId: number, path: readonly string[]]
  | readonly [kind: 1, sourceId: number, source: string | undefined]
  | readonly [kind: 2, refId: number, op: RefOp, key: string | null, n: number]
  | readonly [kind: 3, inner: Target, exit: string | null];

export type CancelReason = 'timeout' | 'cancel';

export type Request =
  /** `outer`: the blocking call of the receiver during which this call is made (a callback), or 0. */
  | { kind: Kind.Call; id: number; target: Target; args: unknown[]; outer: number }
  | { kind: Kind.Release; id: 0; released: number[] }
  | { kind: Kind.Import; id: number; specifier: string }
  | { kind: Kind.Close; id: number; timeout: number }
  | { kind: Kind.Cancel; id: number; reason: CancelReason };

export interface Reply {
  kind: Kind.Reply;
  id: number;
  ok: boolean;
  value: unknown;
}

export interface IdleNotice {
  kind: Kind.Idle;
  /** The last request the host had read from this caller: a caller that sent one since ignores the notice. */
  id: number;
}

export interface DiedNotice {
  kind: Kind.Died;
  id: 0;
  exitCode: number;
  /** The uncaught error, if there was one and it could be copied. */
  error: unknown;
}

export type Message = Request | Reply | IdleNotice | DiedNotice;

function header(w: Writer, kind: Kind, id: number): void {
  w.u8(kind);
  w.u32(id);
}

/** Writes a call. A value that cannot be copied throws a DataCloneError naming its argument. */
export function writeCall(
  w: Writer,
  id: number,
  target: Target,
  args: readonly unknown[],
  to: string,
  lending?: Lending,
  outer = 0,
): void {
  header(w, Kind.Call, id);
  w.u32(outer);
  encodeValue(w, target);
  w.u32(args.length);
  for (let i = 0; i < args.length; i++) {
    encodeOrExplain(`argument ${i + 1}`, to, () => {
      encodeValue(w, args[i], lending);
    });
  }
}

/** Pairs of (id, count): references dropped. */
export function writeRelease(w: Writer, released: readonly number[]): void {
  header(w, Kind.Release, 0);
  w.u32(released.length);
  for (const n of released) w.u32(n);
}

export function writeImport(w: Writer, id: number, specifier: string): void {
  header(w, Kind.Import, id);
  w.string(specifier);
}

export function writeClose(w: Writer, id: number, timeout: number): void {
  header(w, Kind.Close, id);
  w.f64(timeout);
}

export function writeIdle(w: Writer, lastRequest: number): void {
  header(w, Kind.Idle, lastRequest);
}

/** The serving thread's last words; an uncopyable error is left out rather than lose the note. */
export function writeDied(w: Writer, exitCode: number, error: unknown): void {
  header(w, Kind.Died, 0);
  w.f64(exitCode);
  const start = w.pos;
  try {
    w.u8(error === undefined ? 0 : 1);
    if (error !== undefined) encodeValue(w, error);
  } catch {
    w.pos = start;
    w.u8(0);
  }
}

export function writeCancel(w: Writer, id: number, reason: CancelReason): void {
  header(w, Kind.Cancel, id);
  w.string(reason);
}

/**
 * Writes a reply. A result that cannot be copied becomes a DataCloneError reply instead, so the
 * caller always hears back.
 */
export function writeReply(w: Writer, id: number, ok: boolean, value: unknown, lending?: Lending): void {
  const start = w.pos;
  header(w, Kind.Reply, id);
  w.u8(ok ? 1 : 0);
  try {
    encodeOrExplain(ok ? 'the result' : 'the thrown value', 'back to the caller', () => {
      encodeValue(w, value, lending, true);
    });
  } catch (error) {
    w.pos = start;
    header(w, Kind.Reply, id);
    w.u8(0);
    encodeValue(w, error);
  }
}

export function readMessage(
  buf: Buffer,
  start: number,
  end: number,
  beside?: readonly unknown[],
  revive?: Revive,
): Message {
  const r = new Reader(buf, start, end, beside);
  const kind = r.u8() as Kind;
  const id = r.u32();
  switch (kind) {
    case Kind.Call: {
      const outer = r.u32();
      const target = decodeValue(r) as Target;
      const n = r.u32();
      const args = new Array<unknown>(n);
      for (let i = 0; i < n; i++) args[i] = decodeValue(r, revive);
      return { kind, id, target, args, outer };
    }
    case Kind.Release: {
      const n = r.u32();
      const released = new Array<number>(n);
      for (let i = 0; i < n; i++) released[i] = r.u32();
      return { kind, id: 0, released };
    }
    case Kind.Import:
      return { kind, id, specifier: r.string() };
    case Kind.Close:
      return { kind, id, timeout: r.f64() };
    case Kind.Cancel:
      return { kind, id, reason: r.string() as CancelReason };
    case Kind.Reply: {
      const ok = r.u8() === 1;
      return { kind, id, ok, value: decodeValue(r, revive) };
    }
    case Kind.Idle:
      return { kind, id };
    case Kind.Died: {
      const exitCode = r.f64();
      return { kind, id: 0, exitCode, error: r.u8() === 1 ? decodeValue(r) : undefined };
    }
    default:
      throw new Error(`loopthread: corrupt message (kind ${String(kind)})`);
  }
}

/** A message in a heap buffer of its own (one that waits in a queue). */
export function ownedWriter(): Writer {
  return new Writer(Buffer.allocUnsafeSlow(512));
}

/** Port messages are encoded here, then copied out by `packet` before the next one. */
const scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** The writer encoding into the scratch now, if any (a getter run by the encoder may send another message). */
let scratchOwner: Writer | undefined;

/** A message for a MessagePort; MessagePorts and SharedArrayBuffers in it travel beside the bytes. */
export function portWriter(): Writer {
  if (scratchOwner !== undefined) return new Writer(Buffer.allocUnsafeSlow(512), 0, []);
  scratchOwner = new Writer(scratch, 0, []);
  return scratchOwner;
}

/** Done with a writer from portWriter, whether its message was sent or not. */
export function releaseWriter(w: Writer): void {
  if (scratchOwner === w) scratchOwner = undefined;
}

/** Up to this size a message travels as a string: posting a string costs a fraction of a typed array. */
const STRING_PACKET_BYTES = 1024 * 1024;

/** Posted by a blocking caller whose host sleeps: a request waits in the mailbox. */
export const WAKE = '';

/** What goes over a MessagePort: the bytes as a latin1 string, or in a transferred buffer. */
export type PortPacket =
  | string
  | {
      bytes: ArrayBuffer;
      length: number;
      beside: unknown[];
    };

export function packet(w: Writer): [PortPacket, Transferable[]] {
  releaseWriter(w);
  const beside = w.beside ?? [];
  if (beside.length === 0 && w.pos <= STRING_PACKET_BYTES) return [w.buf.toString('latin1', 0, w.pos), []];
  // A large message, or one with objects beside it: its buffer is transferred, never the scratch.
  let own = w.buf;
  if (own === scratch) {
    own = Buffer.allocUnsafeSlow(w.pos);
    scratch.copy(own, 0, 0, w.pos);
  }
  const bytes = own.buffer as ArrayBuffer;
  const ports = beside.filter((o): o is MessagePort => o instanceof MessagePort);
  return [{ bytes, length: w.pos, beside }, [bytes, ...ports]];
}

export function readPacket(p: PortPacket, revive?: Revive): Message {
  if (typeof p === 'string') {
    const bytes = Buffer.from(p, 'latin1');
    return readMessage(bytes, 0, bytes.length, undefined, revive);
  }
  return readMessage(Buffer.from(p.bytes, 0, p.length), 0, p.length, p.beside, revive);
}
