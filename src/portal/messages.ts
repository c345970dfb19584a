/**
 * The messages between a client and a host, in the codec's bytes. Every request carries a call id
 * unique on its connection; every reply names the id it answers, so a late reply can never be
 * taken for another call's.
 */
import type { MessagePort, Transferable } from 'node:worker_threads';
import { decodeValue, type Revive } from '../codec/decode.js';
import { encodeValue, explainRefusal, type Lending } from '../codec/encode.js';
import { toPayload, type Payload } from '../codec/payload.js';
import { corrupt, Reader, Writer } from '../codec/writer.js';
import { writeOutcome } from '../call/outcome.js';
import { CancelKind, Status, type Settled } from '../call/run.js';
import { asTarget, type Target } from '../call/target.js';
import { ProtocolError } from '../errors.js';

export type { Target } from '../call/target.js';

export const enum MessageKind {
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

export type Request =
  /** `outer`: the blocking call of the receiver during which this call is made (a callback), or 0. */
  | { kind: MessageKind.Call; id: number; target: Target; args: unknown[]; outer: number }
  | { kind: MessageKind.Release; id: 0; released: number[] }
  | { kind: MessageKind.Import; id: number; specifier: string }
  | { kind: MessageKind.Close; id: number; timeout: number }
  | { kind: MessageKind.Cancel; id: number; reason: CancelKind };

export interface Reply {
  kind: MessageKind.Reply;
  id: number;
  status: Settled;
  value: unknown;
}

export interface IdleNotice {
  kind: MessageKind.Idle;
  /** The last request the host had read from this caller: a caller that sent one since ignores the notice. */
  id: number;
}

export interface DiedNotice {
  kind: MessageKind.Died;
  id: 0;
  exitCode: number;
  /** The uncaught error, if there was one and it could be copied. */
  error: unknown;
}

export type Message = Request | Reply | IdleNotice | DiedNotice;

/**
 * A connection's first message on its port: the shared memory it made for itself (see
 * PortalHost.accept), so that a handle never connected costs its serving side no line.
 */
export interface LineMessage {
  line: SharedArrayBuffer;
}

function header(w: Writer, kind: MessageKind, id: number): void {
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
  header(w, MessageKind.Call, id);
  w.u32(outer);
  encodeValue(w, target);
  w.u32(args.length);
  for (let i = 0; i < args.length; i++) {
    // Not through encodeOrExplain: a closure and a label per argument, on every call.
    try {
      encodeValue(w, args[i], lending);
    } catch (error) {
      throw explainRefusal(error, `argument ${i + 1}`, to);
    }
  }
}

/** Pairs of (id, count): references dropped. */
export function writeRelease(w: Writer, released: readonly number[]): void {
  header(w, MessageKind.Release, 0);
  w.u32(released.length);
  for (const n of released) w.u32(n);
}

export function writeImport(w: Writer, id: number, specifier: string): void {
  header(w, MessageKind.Import, id);
  w.string(specifier);
}

export function writeClose(w: Writer, id: number, timeout: number): void {
  header(w, MessageKind.Close, id);
  w.f64(timeout);
}

export function writeIdle(w: Writer, lastRequest: number): void {
  header(w, MessageKind.Idle, lastRequest);
}

/** The serving thread's last words; an uncopyable error is left out rather than lose the note. */
export function writeDied(w: Writer, exitCode: number, error: unknown): void {
  header(w, MessageKind.Died, 0);
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

export function writeCancel(w: Writer, id: number, reason: CancelKind): void {
  header(w, MessageKind.Cancel, id);
  w.u8(reason);
}

/** Writes a reply: its outcome (see writeOutcome: a result that cannot be copied becomes a DataCloneError). */
export function writeReply(w: Writer, id: number, status: Settled, value: unknown, lending?: Lending): void {
  header(w, MessageKind.Reply, id);
  // A result is the one place class instances are lent (see encodeValue).
  writeOutcome(w, status, value, lending, true);
}

/**
 * Reads one message. The bytes come from the peer, so nothing in them is trusted: a message that
 * is not one of ours, in whole or in part, throws a corrupt-message LoopThreadError (never
 * anything else, whatever the bytes), and the reader drops that connection.
 */
export function readMessage(
  buf: Buffer,
  start: number,
  end: number,
  beside?: readonly unknown[],
  revive?: Revive,
  parts?: readonly ArrayBuffer[],
  spare?: SharedArrayBuffer,
): Message {
  const r = new Reader(buf, start, end, beside, parts, spare);
  const kind = r.u8() as MessageKind;
  const id = r.u32();
  switch (kind) {
    case MessageKind.Call: {
      const outer = r.u32();
      const target = asTarget(decodeValue(r));
      if (target === undefined) throw corrupt('a call without a valid target');
      const n = r.count();
      const args = new Array<unknown>(n);
      for (let i = 0; i < n; i++) args[i] = decodeValue(r, revive);
      return { kind, id, target, args, outer };
    }
    case MessageKind.Release: {
      const n = r.count();
      const released = new Array<number>(n);
      for (let i = 0; i < n; i++) released[i] = r.u32();
      return { kind, id: 0, released };
    }
    case MessageKind.Import:
      return { kind, id, specifier: r.string() };
    case MessageKind.Close:
      return { kind, id, timeout: r.f64() };
    case MessageKind.Cancel: {
      const reason = r.u8() as CancelKind;
      if (reason !== CancelKind.Cancel && reason !== CancelKind.Timeout)
        throw corrupt(`cancel reason ${String(reason)}`);
      return { kind, id, reason };
    }
    case MessageKind.Reply: {
      const status = r.u8() as Settled;
      if (status !== Status.Ok && status !== Status.Thrown) throw corrupt(`reply status ${String(status)}`);
      return { kind, id, status, value: decodeValue(r, revive) };
    }
    case MessageKind.Idle:
      return { kind, id };
    case MessageKind.Died: {
      const exitCode = r.f64();
      return { kind, id: 0, exitCode, error: r.u8() === 1 ? decodeValue(r) : undefined };
    }
    default:
      throw corrupt(`kind ${String(kind)}`);
  }
}

/** A message in a heap buffer of its own (one that waits in a queue), with its parts. */
export function ownedWriter(): Writer {
  return new Writer(Buffer.allocUnsafeSlow(512), 0, undefined, []);
}

/** Port messages are encoded here, then copied out by `packet` before the next one. */
const scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** The writer encoding into the scratch now, if any (a getter run by the encoder may send another message). */
let scratchOwner: Writer | undefined;

/** A message for a MessagePort; MessagePorts and SharedArrayBuffers in it travel beside the bytes. */
export function portWriter(): Writer {
  if (scratchOwner !== undefined) return new Writer(Buffer.allocUnsafeSlow(512), 0, [], []);
  scratchOwner = new Writer(scratch, 0, [], []);
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
export type PortPacket = string | Payload;

/** A string, or a Payload whose length lies within its bytes, and whose parts are ArrayBuffers. */
export function isPortPacket(p: unknown): p is PortPacket {
  if (typeof p === 'string') return true;
  const q = p as Partial<Payload> | null;
  return (
    typeof q === 'object' &&
    q !== null &&
    q.bytes instanceof ArrayBuffer &&
    Array.isArray(q.beside) &&
    Array.isArray(q.parts) &&
    q.parts.every((b) => b instanceof ArrayBuffer) &&
    Number.isInteger(q.length) &&
    (q.length as number) >= 0 &&
    (q.length as number) <= q.bytes.byteLength
  );
}

export function packet(w: Writer): [PortPacket, Transferable[]] {
  releaseWriter(w);
  if ((w.beside ?? []).length === 0 && (w.parts ?? []).length === 0 && w.pos <= STRING_PACKET_BYTES) {
    return [w.buf.toString('latin1', 0, w.pos), []];
  }
  // A large message, or one with objects beside it: its buffer is transferred, never the scratch.
  return toPayload(w, 0, w.buf !== scratch);
}

/** Writes a message with `write` and posts it on `port` (an encoding error throws, and nothing is posted). */
export function postOn(port: MessagePort, write: (w: Writer) => void): void {
  const w = portWriter();
  try {
    write(w);
  } catch (error) {
    releaseWriter(w);
    throw error;
  }
  const [p, transfer] = packet(w);
  port.postMessage(p, transfer);
}

/** Tells a peer why the serving side ends its connection (its last words on the port), if it is still there. */
export function postRefusal(port: MessagePort, cause: unknown): void {
  const why = cause instanceof Error ? cause.message : String(cause);
  const error = new ProtocolError(`the connection was closed by its serving side for a malformed message: ${why}`);
  try {
    postOn(port, (w) => {
      writeDied(w, 0, error);
    });
  } catch {
    // The peer is gone already.
  }
}

export function readPacket(p: PortPacket, revive?: Revive): Message {
  if (typeof p === 'string') {
    const bytes = Buffer.from(p, 'latin1');
    return readMessage(bytes, 0, bytes.length, undefined, revive);
  }
  return readMessage(Buffer.from(p.bytes, 0, p.length), 0, p.length, p.beside, revive, p.parts);
}
