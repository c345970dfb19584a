/**
 * The replies waiting for a blocking caller's mailbox: published one at a time, each once the
 * caller has consumed the one before (the slot is single). One larger than the slot goes by the
 * port, its marker taking its turn in the mailbox (see bulk.ts).
 */
import type { MessagePort } from 'node:worker_threads';
import { Writer } from '../codec/writer.js';
import { sendBulk } from '../protocol/bulk.js';
import type { Mailbox } from '../protocol/mailbox.js';
import { changed } from '../shm/wait.js';
import { ownedWriter } from './messages.js';

export class Outbox {
  private readonly queue: { bytes: Buffer; length: number }[] = [];
  private waiting = false;

  constructor(
    private readonly mailbox: Mailbox,
    private readonly port: MessagePort,
    private readonly onBusyChange: (busy: boolean) => void,
  ) {}

  /** Returns true when the message was published at once. */
  send(write: (w: Writer) => void): boolean {
    if (this.queue.length === 0 && this.mailbox.isFree()) {
      const w = new Writer(this.mailbox.data);
      write(w);
      if (w.spilled) sendBulk(this.port, this.mailbox, w.buf, w.pos);
      else this.mailbox.publish(w.pos);
      this.mailbox.notify();
      return true;
    }
    const w = ownedWriter();
    write(w);
    this.queue.push({ bytes: w.buf, length: w.pos });
    if (this.queue.length === 1) this.onBusyChange(true);
    this.pump();
    return false;
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
      const { bytes, length } = this.queue.shift() as { bytes: Buffer; length: number };
      if (length > this.mailbox.data.length) {
        sendBulk(this.port, this.mailbox, bytes, length);
      } else {
        bytes.copy(this.mailbox.data, 0, 0, length);
        this.mailbox.publish(length);
      }
      this.mailbox.notify();
      if (this.queue.length === 0) this.onBusyChange(false);
    }
  }
}
