/**
 * The shared memory of one connection between a client thread and the thread that serves it:
 * a few state words and two single-slot mailboxes, one per direction.
 *
 *   word 0  host state (HostState)         word 1  async-reply counter (bumped after each port reply)
 *   word 2  exit code, when the host died   word 3  once the serving thread runs JS: its OS thread id, or -1 (THREAD_RAN)
 *   words 4-9 request mailbox              words 10-15 reply mailbox
 *   bytes 64-95  per mailbox: when its writer last published, when its reader took that (ms, on
 *                the clock all threads share)
 *   word 24 (byte 96)  1 if the host's last blocking reply was sent while other blocking callers
 *                      kept the cores busy (CROWDED)
 *   bytes 128.. request data, then reply data
 */
import { MAILBOX_WORDS, Mailbox } from './mailbox.js';

export const enum HostState {
  Starting = 0,
  Running = 1,
  Closing = 2,
  Closed = 3,
  Crashed = 4,
  /** This connection only: the host refused it for a malformed message (its last words say which). */
  Refused = 5,
}

export const STATE = 0;
export const ASYNC_SEQ = 1;
export const EXIT_CODE = 2;
/**
 * Set to 1 by the serving thread as the first thing it runs. With the worker's native handle this
 * turns "no event loop" into a fact: before this word is set the thread has not started yet;
 * after it, it has stopped.
 */
export const THREAD_RAN = 3;
/**
 * Set by the host with each blocking reply: 1 when, as it answered, it served more blocking callers
 * (waiting for their answers, or between their calls) than the cores can run beside its own thread.
 * Spinning for an answer then takes a core from a thread that the answer waits for: the caller does
 * not spin for a while (SpinPolicy.backOff). A fact of the moment, written by the side that sees every
 * caller, where a caller's own samples of a crowded machine (wake-ups that include run-queue waits,
 * answers that come within such an inflated budget) would not tell it.
 */
const CROWDED = 24;
const REQUEST_BASE = 4;
const REPLY_BASE = REQUEST_BASE + MAILBOX_WORDS;
const HEADER_BYTES = 128;

/** Big enough that a 64 KiB string and most real payloads cross in one piece. */
export const DEFAULT_CAPACITY = 256 * 1024;

export class Line {
  readonly sab: SharedArrayBuffer;
  readonly words: Int32Array;
  readonly request: Mailbox;
  readonly reply: Mailbox;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.words = new Int32Array(sab, 0, HEADER_BYTES / Int32Array.BYTES_PER_ELEMENT);
    const stamps = new Float64Array(sab, 64, 4);
    const capacity = (sab.byteLength - HEADER_BYTES) / 2;
    this.request = new Mailbox(this.words, REQUEST_BASE, Buffer.from(sab, HEADER_BYTES, capacity), stamps, 0);
    this.reply = new Mailbox(this.words, REPLY_BASE, Buffer.from(sab, HEADER_BYTES + capacity, capacity), stamps, 2);
  }

  static create(capacity = DEFAULT_CAPACITY): Line {
    return new Line(new SharedArrayBuffer(HEADER_BYTES + 2 * capacity));
  }

  /** Whether `sab` has a line's shape (a header, then two mailboxes of one size), as a peer's first message must. */
  static fits(sab: unknown): sab is SharedArrayBuffer {
    return (
      sab instanceof SharedArrayBuffer && sab.byteLength > HEADER_BYTES && (sab.byteLength - HEADER_BYTES) % 2 === 0
    );
  }

  get state(): HostState {
    return Atomics.load(this.words, STATE);
  }

  /** 0 until the serving thread runs JavaScript, then its OS thread id or -1 (see THREAD_RAN). */
  get threadRanAs(): number {
    return Atomics.load(this.words, THREAD_RAN);
  }

  /** Whether the host's last blocking reply came while it served more blocking callers than cores (see CROWDED). */
  get crowded(): boolean {
    return Atomics.load(this.words, CROWDED) !== 0;
  }

  set crowded(value: boolean) {
    Atomics.store(this.words, CROWDED, value ? 1 : 0);
  }

  /** The exit code announced with HostState.Crashed or Closed. */
  get exitCode(): number {
    return Atomics.load(this.words, EXIT_CODE);
  }

  /**
   * Sets the host state and wakes every waiter on this line, whatever word it waits on; Running,
   * only those waiting for the start (a caller waiting for its reply need not wake for it).
   */
  announce(state: HostState, exitCode = 0): void {
    Atomics.store(this.words, EXIT_CODE, exitCode);
    Atomics.store(this.words, STATE, state);
    if (state === HostState.Running) Atomics.notify(this.words, STATE);
    else this.wakeAll();
  }

  wakeAll(): void {
    Atomics.add(this.words, ASYNC_SEQ, 1);
    for (let i = 0; i < REPLY_BASE + MAILBOX_WORDS; i++) Atomics.notify(this.words, i);
  }
}

const END_STATE = 0;
const END_CODE = 1;

/**
 * A LoopThread's end as its owner tells it, shared by every connection made from its handles: a
 * worker terminated, or stopped with its owning thread, writes nothing on their lines. The owner
 * holds this one small buffer instead of every handle's line; a connection copies what it says
 * onto its own line when it looks at its liveness (`adoptInto`).
 */
export class EndWord {
  readonly words: Int32Array;

  constructor(readonly sab = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT)) {
    this.words = new Int32Array(sab);
  }

  /** Tells the end; the first one told stays. */
  tell(state: HostState.Closed | HostState.Crashed, exitCode = 0): void {
    if (Atomics.load(this.words, END_STATE) !== 0) return;
    Atomics.store(this.words, END_CODE, exitCode);
    Atomics.store(this.words, END_STATE, state);
  }

  /** The end told, if any, announced on `line`, unless the line says an end of its own (the serving thread's words). */
  adoptInto(line: Line): void {
    const state = Atomics.load(this.words, END_STATE) as HostState;
    if (state === HostState.Starting) return;
    const own = line.state;
    if (own === HostState.Closed || own === HostState.Crashed || own === HostState.Refused) return;
    line.announce(state, Atomics.load(this.words, END_CODE));
  }
}
