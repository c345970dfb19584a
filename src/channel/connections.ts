/**
 * Who is connected to a channel, so that a waiter never waits for ever for a side that is gone
 * (Rust's mpsc "disconnected"). Each connection (a Channel object) has a slot, a word of shared
 * memory of its own holding its role (PUT, GET or both), 0 once it has ended. The channel's header
 * counts the connections that may put and those that may get (PUTTERS, GETTERS: layout.ts). A handle
 * from createHandle() takes its connection's place in those counts when it is made, so that the
 * connection counts before its thread has even started; connect() claims that place.
 *
 * A connection ends once (an exchange on its slot decides who ends it), by whichever comes first:
 * - disconnect();
 * - its Channel object being garbage-collected (nothing can put or get through it any more);
 * - its thread's process 'exit' event: natural end, process.exit(), an uncaught error;
 * - the 'close' of a MessagePort shared with the thread that made its handle: a thread stopped by
 *   worker.terminate() or out of memory runs no JavaScript, but its ports close, and the thread at
 *   the other end sees that when its event loop runs. Each handle carries one end of a port pair:
 *   the maker's end watches the new connection, the new connection's end watches the maker's.
 *
 * When a count reaches 0 the ring's counters move (Ring.wake), so that every waiter, sync or async,
 * in any thread, looks again at once. A count of 0 is a fact of that moment: any live connection
 * may still make a handle that may put (the README says to make handles before waiting on them).
 */
import { MessageChannel, MessagePort } from 'node:worker_threads';
import { ClosedError } from '../errors.js';
import { GETTERS, PUTTERS } from './layout.js';
import { Ring } from './ring.js';
import { atThreadEnd } from '../shm/thread-end.js';

export const PUT = 1;
export const GET = 2;
export const BOTH = PUT | GET;
/** Set in a handle's slot once a thread has connected with it. */
const CLAIMED = 4;

export type ChannelRole = 'put' | 'get' | 'both';

const NAMES: readonly ChannelRole[] = ['both', 'put', 'get', 'both'];

export const roleName = (role: number): ChannelRole => NAMES[role] as ChannelRole;

export function roleBits(role: unknown): number {
  if (role === 'both') return BOTH;
  if (role === 'put') return PUT;
  if (role === 'get') return GET;
  throw new TypeError(`role must be 'put', 'get' or 'both', got ${String(role)}`);
}

/** One connection: what ending it needs, without its Channel object (see `collected`). */
export class Connection {
  /** The end of its handle's port pair that watches its maker (connections from createHandle()). */
  port: MessagePort | undefined;
  onMakerGone: (() => void) | undefined;
  constructor(
    readonly words: Int32Array,
    readonly slot: Int32Array,
  ) {}
}

/** Counts a connection of `role` and returns its slot. */
function reserve(words: Int32Array, role: number): Int32Array {
  const slot = new Int32Array(new SharedArrayBuffer(4));
  slot[0] = role;
  if ((role & PUT) !== 0) Atomics.add(words, PUTTERS, 1);
  if ((role & GET) !== 0) Atomics.add(words, GETTERS, 1);
  return slot;
}

/** Ends the connection of `slot` unless someone did: its role no longer counts. */
function end(words: Int32Array, slot: Int32Array): void {
  const role = Atomics.exchange(slot, 0, 0) & BOTH;
  if (role === 0) return;
  let last = false;
  if ((role & PUT) !== 0 && Atomics.sub(words, PUTTERS, 1) === 1) last = true;
  if ((role & GET) !== 0 && Atomics.sub(words, GETTERS, 1) === 1) last = true;
  if (last) new Ring(words.buffer as SharedArrayBuffer).wake();
}

// ---- this thread's connections ----

const live = new Set<Connection>();
/** Ports watching connections of other threads (or of this one) made from this thread's handles. */
const watching = new Set<MessagePort>();
/** A Channel object dropped without disconnect() ends its connection when it is collected. */
const collected = new FinalizationRegistry<Connection>((c) => {
  endConnection(c);
});
/**
 * Set by the exit hook: this thread's ports close as it goes down, which says nothing about the
 * connections they watch.
 */
let exiting = false;
let hooked = false;

function track(owner: object, c: Connection): Connection {
  if (!hooked) {
    hooked = true;
    atThreadEnd(() => {
      exiting = true;
      for (const each of live) end(each.words, each.slot);
    });
  }
  live.add(c);
  collected.register(owner, c, c);
  return c;
}

/** A new connection of `owner` (a Channel made here, or connected from a handle without a slot). */
export function open(owner: object, words: Int32Array, role: number): Connection {
  return track(owner, new Connection(words, reserve(words, role)));
}

/** Ends a connection of this thread (disconnect(), or its Channel object was collected). */
export function endConnection(c: Connection): void {
  live.delete(c);
  collected.unregister(c);
  end(c.words, c.slot);
  const port = c.port;
  if (port !== undefined && c.onMakerGone !== undefined) {
    // Stop watching the maker first: closing this end closes both. The maker's end then sees the
    // close and finds this connection already ended.
    port.off('close', c.onMakerGone);
    port.close();
  }
}

/** What a handle from createHandle() carries besides the channel's buffer. */
export interface Reservation {
  readonly port: MessagePort;
  /** The new connection's slot. */
  readonly slot: SharedArrayBuffer;
  /** The slot of the connection that made the handle. */
  readonly maker: SharedArrayBuffer;
}

/** Takes a place for a connection of `role` made from a handle of `maker`, and watches it. */
export function makeReservation(maker: Connection, role: number): Reservation {
  const words = maker.words;
  const slot = reserve(words, role);
  const { port1, port2 } = new MessageChannel();
  watching.add(port1);
  port1.once('close', () => {
    watching.delete(port1);
    if (!exiting) end(words, slot);
  });
  port1.unref();
  return { port: port2, slot: slot.buffer as SharedArrayBuffer, maker: maker.slot.buffer as SharedArrayBuffer };
}

/** Connects `owner` with the place a handle reserved; returns the connection and its role. */
export function claim(owner: object, words: Int32Array, r: Reservation): { c: Connection; role: number } {
  if (
    !(r.port instanceof MessagePort) ||
    !(r.slot instanceof SharedArrayBuffer) ||
    !(r.maker instanceof SharedArrayBuffer) ||
    r.slot.byteLength !== 4 ||
    r.maker.byteLength !== 4
  ) {
    throw new TypeError('Channel.connect() needs the handle of a Channel (channel.createHandle())');
  }
  const slot = new Int32Array(r.slot);
  let role: number;
  for (;;) {
    const value = Atomics.load(slot, 0);
    if (value === 0) throw new ClosedError('the connection of this handle has ended');
    if ((value & CLAIMED) !== 0) {
      throw new TypeError('this handle is connected already: make one handle per connection with createHandle()');
    }
    if (Atomics.compareExchange(slot, 0, value, value | CLAIMED) === value) {
      role = value & BOTH;
      break;
    }
  }
  const c = new Connection(words, slot);
  const maker = new Int32Array(r.maker);
  c.port = r.port;
  c.onMakerGone = () => {
    if (!exiting) end(words, maker);
  };
  r.port.once('close', c.onMakerGone);
  r.port.unref();
  return { c: track(owner, c), role };
}

/**
 * For the handle of 0.1 (`channel.handle`), which any thread may connect with at any time without
 * having been counted: both counts stay above 0 for good, so that no waiter is ever told that
 * nobody is left.
 */
export function pin(words: Int32Array): void {
  Atomics.add(words, PUTTERS, 1);
  Atomics.add(words, GETTERS, 1);
}
