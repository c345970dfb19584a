/**
 * The blocking half of a client: requests through the shared-memory mailbox, a wait for the
 * reply matched by call id (spinning first when the spin policy says it pays, then sleeping in
 * slices that check the serving thread is alive), and the callbacks the other side calls while
 * this thread is blocked, served here and now.
 */
import { Writer } from '../codec/writer.js';
import { CancelKind, Status, type Settled } from '../call/run.js';
import { isThenable } from '../call/target.js';
import { CancelledError, TimeoutError } from '../errors.js';
import { HostState, STATE } from '../protocol/line.js';
import { publishWritten, SharedSpare } from '../protocol/bulk.js';
import { now, observeWake, SpinPolicy } from '../shm/spin-policy.js';
import { waitForChange, Waited } from '../shm/wait.js';
import type { CallMessage, ClientCore } from './client-core.js';
import { MessageKind, ownedWriter, readMessage, WAKE, writeReply, type PortPacket, type Reply } from './messages.js';

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds before the call fails with TimeoutError and its signal on the other side aborts. */
  timeout?: number | undefined;
  /** Aborting it cancels the call (CancelledError here, its signal aborted there). */
  signal?: AbortSignal | undefined;
}

/** Writes one request with its call id. */
export type Write = (w: Writer, id: number) => void;

export class BlockingCalls {
  private seenReply: number;
  private readonly spin = new SpinPolicy();
  /** Where the requests' large strings are written (see SharedSpare). */
  private readonly spare = new SharedSpare();
  /** Ids of the blocking calls this thread is in, innermost last (a callback may call again). */
  private readonly active: number[] = [];
  /** Replies to outer blocking calls that arrived while an inner one waited. */
  private readonly early = new Map<number, Reply>();

  /** Whether a request is being written into the slot (see send). */
  private encoding = false;

  constructor(private readonly core: ClientCore) {
    this.seenReply = core.line.reply.seq();
  }

  /** Sends one request through the blocking mailbox, waiting for room (never forever). */
  private send(write: Write, id: number, deadline: number): void {
    const words = this.core.line.words;
    const mailbox = this.core.line.request;
    while (!mailbox.isFree()) {
      const ack = Atomics.load(words, mailbox.ackIndex);
      if (mailbox.isFree()) break;
      if (!waitForChange(words, mailbox.ackIndex, ack, deadline, this.core.checkAlive, 0, mailbox.writerSleepsIndex)) {
        throw new TimeoutError(`${this.core.name} did not take the request in time (it is busy)`);
      }
    }
    // A getter of an argument may itself call this thread while the arguments are written into the
    // slot: that call must leave the slot (and the spare) to the outer one, so it goes by the port.
    const nested = this.encoding;
    const w = nested ? ownedWriter() : new Writer(mailbox.data, 0, undefined, [], this.spare);
    let spare: SharedArrayBuffer | undefined;
    this.encoding = true;
    try {
      write(w, id);
    } finally {
      this.encoding = nested;
      if (!nested) spare = this.spare.done();
    }
    // Too large for the slot (or nested): the encoded bytes go by the port, uncopied (see bulk.ts).
    publishWritten(this.core.port, mailbox, w, spare, nested);
    if (Atomics.load(words, mailbox.readerSleepsIndex) !== 0) {
      this.core.port.postMessage(WAKE);
      this.core.stats.wakes++;
    }
  }

  /** Sends a request and blocks until its own reply: returns the value or throws the error. */
  roundTrip(write: Write, options: CallOptions, api: (...args: never[]) => unknown): unknown {
    this.core.guard();
    if (options.signal?.aborted === true) {
      throw new CancelledError('the call was cancelled before it started', { cause: options.signal.reason });
    }
    return this.core.blocked(() => this.exchange(write, options, api));
  }

  private exchange(write: Write, options: CallOptions, api: (...args: never[]) => unknown): unknown {
    const id = ++this.core.nextId;
    const timeout = options.timeout;
    this.core.flushReleases();
    let deadline: number;
    const starting = this.core.line.state === HostState.Starting;
    if (starting) {
      // Written while the thread starts (the slot is free until then), the request is there when it
      // begins to serve: it does not wait for this thread to wake and write it. The call's timeout
      // is its own: waiting for the thread to start is the owner's startupTimeout. Without one,
      // the reply is all there is to wait for, and this thread wakes once, for it (the wait's
      // liveness check sees a thread that never starts as the start's own wait would).
      this.send(write, id, Infinity);
      if (timeout !== undefined) this.awaitStart();
      deadline = timeout === undefined ? Infinity : performance.now() + timeout;
    } else {
      deadline = timeout === undefined ? Infinity : performance.now() + timeout;
      this.send(write, id, deadline);
    }
    this.core.lastSent = id;
    this.active.push(id);
    try {
      return this.awaitReply(id, deadline, timeout, api, starting);
    } finally {
      this.active.pop();
      this.early.delete(id);
    }
  }

  private awaitReply(
    id: number,
    deadline: number,
    timeout: number | undefined,
    api: (...args: never[]) => unknown,
    starting: boolean,
  ): unknown {
    const words = this.core.line.words;
    const mailbox = this.core.line.reply;
    // What the spin policy learns from this call: only from a plain one (one wait, no callbacks),
    // not from the first, whose answer may wait for the thread to start.
    const began = now();
    const budget = starting ? 0 : this.spin.next();
    let waits = 0;
    let waited: Waited = Waited.Spun;
    for (;;) {
      const early = this.early.get(id);
      if (early !== undefined) {
        this.early.delete(id);
        if (early.status === Status.Ok) return early.value;
        throw stitch(early.value, this.core.name, api);
      }
      waited =
        mailbox.seq() !== this.seenReply
          ? Waited.Spun
          : waitForChange(
              words,
              mailbox.seqIndex,
              this.seenReply,
              deadline,
              starting ? this.startCheck : this.core.checkAlive,
              waits++ === 0 ? budget : 0,
              mailbox.readerSleepsIndex,
            );
      if (waited === Waited.TimedOut) {
        this.core.cancelRemote(id, CancelKind.Timeout);
        throw new TimeoutError(`the call to ${this.core.name} timed out after ${String(timeout)} ms`);
      }
      if (waited === Waited.Slept) this.core.stats.sleeps++;
      else this.core.stats.spins++;
      this.seenReply = mailbox.seq();
      mailbox.markTaken();
      const slot = mailbox.peek();
      let reply: Reply | CallMessage;
      try {
        if (slot.onPort) {
          const { bytes, parts, spare } = this.core.bulk.take(this.core.port, (p) => {
            this.core.receive(p as PortPacket);
          });
          reply = readMessage(bytes, 0, bytes.length, undefined, this.core.reviveSync, parts, spare) as
            Reply | CallMessage;
        } else {
          // Read in place: no view of the slot is made per call.
          const end = Math.min(slot.length, mailbox.data.length);
          reply = readMessage(mailbox.data, 0, end, undefined, this.core.reviveSync) as Reply | CallMessage;
        }
      } finally {
        mailbox.consume();
      }
      if (reply.kind === MessageKind.Call) {
        this.serveWhileBlocked(reply);
        waits = 2;
        continue;
      }
      if (reply.id !== id) {
        // An outer call's reply (its callback, running here, did not wait for it), or a late
        // reply to a call that timed out: that one is dropped.
        if (this.active.includes(reply.id)) this.early.set(reply.id, reply);
        continue;
      }
      if (waits <= 1) {
        const answeredAt = mailbox.publishedAt();
        if (waited === Waited.Slept) observeWake(now() - answeredAt);
        if (!starting) this.spin.observe(answeredAt - began, budget);
      }
      // Other blocking callers kept the host's cores busy: spinning would take one from them.
      if (this.core.line.crowded) {
        this.spin.backOff();
        this.core.stats.crowded++;
      }
      if (reply.status === Status.Ok) return reply.value;
      throw stitch(reply.value, this.core.name, api);
    }
  }

  /**
   * Blocks until the serving side serves this line: its thread started, and a handle's line came
   * to it. Its probe, its owner's end, or its refusal of the line ends the wait.
   */
  private awaitStart(): void {
    const words = this.core.line.words;
    while (Atomics.load(words, STATE) === (HostState.Starting as number)) {
      waitForChange(words, STATE, HostState.Starting, Infinity, this.startCheck);
    }
  }

  /**
   * The liveness check of a wait that began while the line was not served yet. A line refused is
   * never written on: the refusal comes by the port, which a blocked thread reads itself. Once
   * served, the port is left alone (a large reply comes by it, read by the wait that takes it).
   */
  private readonly startCheck = (): number => {
    if (this.core.line.state !== HostState.Starting) return this.core.checkAlive();
    this.core.pump();
    if (this.core.died !== undefined) throw this.core.goneError();
    return this.core.checkAlive();
  };

  /**
   * A callback called while this thread is blocked in a call: it runs here and now, and its
   * result goes back through the blocking channel. It must not return a promise (this thread's
   * event loop cannot run until the blocking call returns).
   */
  private serveWhileBlocked(m: CallMessage): void {
    let status: Settled = Status.Thrown;
    let value: unknown;
    if (!this.active.includes(m.outer)) {
      value = new CancelledError(
        'the blocking call during which this callback was called is over (it timed out or was cancelled)',
      );
    } else {
      try {
        value = this.core.perform(m);
        status = Status.Ok;
        if (isThenable(value)) {
          status = Status.Thrown;
          value = new TypeError(
            'a callback called while its thread is blocked in a call must return synchronously, and this one ' +
              'returned a promise (that thread cannot run its event loop until the call returns); ' +
              'use run() instead of runSync() to keep the calling thread free',
          );
        }
      } catch (error) {
        value = error;
      }
    }
    this.send(
      (w) => {
        writeReply(w, m.id, status, value, this.core.remotes.lending);
      },
      m.id,
      Infinity,
    );
  }
}

/** Appends the caller's own frames to an error from the other thread, so both halves show. */
function stitch(error: unknown, name: string, api: (...args: never[]) => unknown): unknown {
  if (!(error instanceof Error) || typeof error.stack !== 'string') return error;
  const here: { stack?: string } = {};
  Error.captureStackTrace(here, api);
  const frames = (here.stack ?? '').split('\n').slice(1).join('\n');
  Object.defineProperty(error, 'stack', {
    value: `${error.stack}\n    --- above: on ${name}; below: the blocking call ---\n${frames}`,
    writable: true,
    configurable: true,
  });
  return error;
}
