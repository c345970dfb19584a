/**
 * Messages larger than a mailbox's slot. Crossing the slot in chunks cost a handoff between the
 * threads per chunk and three more copies of the whole message (into the slot, out of it, and
 * reassembled); instead the writer's own heap buffer is transferred on the connection's
 * MessagePort, which copies nothing, and the slot carries only a marker. So the message is encoded
 * once and decoded once, as structuredClone does. Bytes and strings too large for the slot travel
 * in parts of their own beside it (see `Writer.parts`), also transferred: a 512 MiB Uint8Array is
 * copied once, into the very buffer the receiver's array ends up over.
 *
 * The packet is posted before its marker is published, and a port keeps its order, as the slot
 * does: the reader of a marker finds its packet either already delivered to its port listener
 * (kept by `BulkInbox.add`) or still in the port's queue.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { corrupt, MAX_MESSAGE_BYTES, type Spare, type Writer } from '../codec/writer.js';
import type { Mailbox } from './mailbox.js';

export interface BulkPacket {
  bulk: ArrayBuffer;
  length: number;
  /** The message's parts (see Writer.parts). */
  parts: ArrayBuffer[];
  /** The writer's spare, if the message has a string in it (see SharedSpare). */
  spare: SharedArrayBuffer | undefined;
}

/** The bytes of a message that came by the port, its parts and spare. */
export interface BulkMessage {
  bytes: Buffer;
  parts: ArrayBuffer[] | undefined;
  spare: SharedArrayBuffer | undefined;
}

/**
 * The spare memory (see codec Spare) of a writer to a mailbox that publishes each message at once: the
 * reader decodes a message whole before it consumes it, and the writer writes the next one only
 * once the slot is free, so the spare is reused only after its reader is done. It is kept from one
 * message to the next while each puts a large string in it, and let go at the first that does not,
 * or when this thread's event loop next turns: a run of blocking calls reuses it, and a thread that
 * made one huge call and went back to its loop does not hold that much memory until its next call.
 */
export class SharedSpare implements Spare {
  private sab: SharedArrayBuffer | undefined;
  private taken = false;
  private letGo: NodeJS.Immediate | undefined;

  take(n: number): Buffer | undefined {
    if (this.taken) return undefined;
    if (this.sab === undefined || this.sab.byteLength < n) this.sab = new SharedArrayBuffer(n);
    this.taken = true;
    return Buffer.from(this.sab, 0, n);
  }

  /** After a message was written (or failed to be): the spare it used, if any; an unused spare is let go. */
  done(): SharedArrayBuffer | undefined {
    if (!this.taken) this.sab = undefined;
    this.taken = false;
    if (this.sab !== undefined && this.letGo === undefined) {
      this.letGo = setImmediate(() => {
        this.letGo = undefined;
        // (A message being written now keeps its own reference; only the next one allocates anew.)
        if (!this.taken) this.sab = undefined;
      }).unref();
    }
    return this.sab;
  }
}

/** Whether `p` is meant as a bulk packet (see `BulkInbox.add` for whether it is a valid one). */
export function isBulk(p: unknown): p is BulkPacket {
  return typeof p === 'object' && p !== null && 'bulk' in p;
}

/**
 * A bulk packet whose fields hold: a length within its buffer and within the message limit, and
 * parts that are ArrayBuffers.
 */
function isValidBulk(p: BulkPacket): boolean {
  const { bulk, length, parts, spare } = p as { bulk: unknown; length: unknown; parts: unknown; spare: unknown };
  return (
    bulk instanceof ArrayBuffer &&
    typeof length === 'number' &&
    Number.isInteger(length) &&
    length >= 0 &&
    length <= bulk.byteLength &&
    length <= MAX_MESSAGE_BYTES &&
    Array.isArray(parts) &&
    parts.every((b) => b instanceof ArrayBuffer) &&
    (spare === undefined || spare instanceof SharedArrayBuffer)
  );
}

/**
 * Writer: publishes what `w` wrote into `mailbox`'s slot, or, when the message cannot be read from
 * the slot alone (it spilled out of it, has parts, used `spare`, or `byPort` says it was written
 * elsewhere), posts it on `port` with a marker in the slot.
 */
export function publishWritten(
  port: MessagePort,
  mailbox: Mailbox,
  w: Writer,
  spare: SharedArrayBuffer | undefined,
  byPort = false,
): void {
  const parts = w.parts ?? [];
  if (byPort || w.spilled || parts.length > 0 || spare !== undefined) {
    sendBulk(port, mailbox, w.buf, w.pos, parts, spare);
  } else {
    mailbox.publish(w.pos);
  }
}

/**
 * Writer: posts the first `length` bytes of `buf` on `port`, with `parts` (all transferred) and
 * `spare` (shared), and publishes a marker for them in `mailbox`.
 */
export function sendBulk(
  port: MessagePort,
  mailbox: Mailbox,
  buf: Buffer,
  length: number,
  parts: ArrayBuffer[] = [],
  spare?: SharedArrayBuffer,
): void {
  let own = buf;
  // Only a buffer that is its whole ArrayBuffer may be transferred (a Writer's spilled buffer is).
  if (buf.byteOffset !== 0 || !(buf.buffer instanceof ArrayBuffer) || buf.buffer.byteLength !== buf.length) {
    own = Buffer.allocUnsafeSlow(length);
    buf.copy(own, 0, 0, length);
  }
  const bytes = own.buffer as ArrayBuffer;
  const packet: BulkPacket = { bulk: bytes, length, parts, spare };
  port.postMessage(packet, [bytes, ...parts]);
  mailbox.publish(0, true);
}

/**
 * Reader: the bulk packets its port listener received ahead of their markers. A writer posts a
 * packet only once the slot is free, so at most one is ever ahead of its marker: a peer that sends
 * more (or a packet that is not one) is refused, and never makes this side hold what it sent.
 */
export class BulkInbox {
  private readonly arrived: BulkPacket[] = [];

  /** From the port's 'message' listener; throws a corrupt-message error for a packet out of turn. */
  add(p: BulkPacket): void {
    if (!isValidBulk(p)) throw corrupt('a malformed bulk packet');
    if (this.arrived.length > 0) throw corrupt('a bulk packet with no marker for it');
    this.arrived.push(p);
  }

  /**
   * The message the marker just read announced. Messages the port delivers before it are given to
   * `other`, in order, as the port's listener would have had them.
   */
  take(port: MessagePort, other: (message: unknown) => void): BulkMessage {
    let p = this.arrived.shift();
    while (p === undefined) {
      const m = receiveMessageOnPort(port);
      if (m === undefined) throw corrupt('a message announced in shared memory is missing on the port');
      if (!isBulk(m.message)) other(m.message);
      else if (isValidBulk(m.message)) p = m.message;
      else throw corrupt('a malformed bulk packet');
    }
    return { bytes: Buffer.from(p.bulk, 0, p.length), parts: p.parts, spare: p.spare };
  }
}
