/**
 * The replies waiting for a blocking caller's mailbox: published one at a time, each once the
 * caller has consumed the one before (the slot is single). One larger than the slot goes by the
 * port, its marker taking its turn in the mailbox (see bulk.ts).
 */
import type { MessagePort } from 'node:worker_threads';
import { Writer } from '../codec/writer.js';
import { publishWritten, sendBulk, SharedSpare } from '../protocol/bulk.js';
import type { Mailbox } from '../protocol/mailbox.js';
import { changed } from '../shm/wait.js';
import { ownedWriter } from './messages.js';

export class Outbox {
  /** Messages not yet in the mailbox, each with the blocking call it belongs to. */
  private readonly queue: { bytes: Buffer; length: number; parts: ArrayBuffer[]; call: number }[] = [];
  private waiting = false;
  /** Where replies published at once write their large strings (see SharedSpare); never a queued one's. */
  private readonly spare = new SharedSpare();

  constructor(
    private readonly mailbox: Mailbox,
    private readonly port: MessagePort,
    private readonly onBusyChange: (busy: boolean) => void,
  ) {}

  /**
   * Returns true when the message was published at once. `call` is the blocking call it belongs
   * to (a reply's id, a callback's outer call): see drop().
   */
  send(write: (w: Writer) => void, call: number): boolean {
    if (this.queue.length === 0 && this.mailbox.isFree()) {
      const w = new Writer(this.mailbox.data, 0, undefined, [], this.spare);
      let spare: SharedArrayBuffer | undefined;
      try {
        write(w);
      } finally {
        spare = this.spare.done();
      }
      publishWritten(this.port, this.mailbox, w, spare);
      this.mailbox.notify();
      return true;
    }
    const w = ownedWriter();
    write(w);
    this.queue.push({ bytes: w.buf, length: w.pos, parts: w.parts ?? [], call });
    if (this.queue.length === 1) this.onBusyChange(true);
    this.pump();
    return false;
  }

  /**
   * Drops what waits for the mailbox on behalf of `call`, which its caller gave up (it timed out
   * or was cancelled): the caller would drop a late reply, and answer a late callback with a
   * CancelledError nobody waits for. Otherwise a caller that never reads again (blocked
   * elsewhere) would hold these, and a close waiting for the outboxes to empty, for good.
   */
  drop(call: number): void {
    const before = this.queue.length;
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]?.call === call) this.queue.splice(i, 1);
    if (before > 0 && this.queue.length === 0) this.onBusyChange(false);
  }

  private pump(): void {
    while (this.queue.length > 0) {
      if (!this.mailbox.isFree()) {
        if (this.waiting) return;
        this.waiting = true;
        const words = this.mailbox.words;
        Atomics.store(words, this.mailbox.writerSleepsIndex, 1);
        const ack = Atomics.load(words, this.mailbox.ackIndex);
        const wake = this.mailbox.isFree() ? undefined : changed(words, this.mailbox.ackIndex, ack);
        const resume = (): void => {
          Atomics.store(words, this.mailbox.writerSleepsIndex, 0);
          this.waiting = false;
          this.pump();
        };
        if (wake === undefined) setImmediate(resume);
        else void wake.then(resume);
        return;
      }
      const { bytes, length, parts } = this.queue.shift() as (typeof this.queue)[number];
      if (length > this.mailbox.data.length || parts.length > 0) {
        sendBulk(this.port, this.mailbox, bytes, length, parts);
      } else {
        bytes.copy(this.mailbox.data, 0, 0, length);
        this.mailbox.publish(length);
      }
      this.mailbox.notify();
      if (this.queue.length === 0) this.onBusyChange(false);
    }
  }
}
