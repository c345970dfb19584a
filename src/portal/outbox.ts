/**
 * The replies waiting for a blocking caller's mailbox: published one at a time, each once the
 * caller has consumed the one before (the slot is single), in chunks when larger than the slot.
 */
import { Writer } from '../codec/writer.js';
import { nextChunk, type Mailbox } from '../protocol/mailbox.js';
import { changed } from '../shm/wait.js';
import { ownedWriter } from './messages.js';

export class Outbox {
  private readonly queue: { bytes: Buffer; length: number; offset: number }[] = [];
  private waiting = false;

  constructor(
    private readonly mailbox: Mailbox,
    private readonly onBusyChange: (busy: boolean) => void,
  ) {}

  /** Returns true when the message was published at once. */
  send(write: (w: Writer) => void): boolean {
    if (this.queue.length === 0 && this.mailbox.isFree()) {
      const w = new Writer(this.mailbox.data);
      write(w);
      if (!w.spilled) {
        this.mailbox.publish(w.pos, false);
        this.mailbox.notify();
        return true;
      }
      this.queue.push({ bytes: w.buf, length: w.pos, offset: 0 });
    } else {
      const w = ownedWriter();
      write(w);
      this.queue.push({ bytes: w.buf, length: w.pos, offset: 0 });
    }
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
      const head = this.queue[0] as { bytes: Buffer; length: number; offset: number };
      head.offset = nextChunk(this.mailbox, head.bytes, head.offset, head.length);
      this.mailbox.notify();
      if (head.offset >= head.length) {
        this.queue.shift();
        if (this.queue.length === 0) this.onBusyChange(false);
      }
    }
  }
}
