/**
 * How a connection's waits ended (Channel.stats()): counted only on the paths that wait, so the
 * puts and gets that find room or an item pay nothing.
 */
import { Histogram, type TimeSummary } from './histogram.js';

/** A Channel now, and this connection's waits so far. */
export interface ChannelStats {
  /** Items in the channel now. */
  readonly size: number;
  /** The most items it holds. */
  readonly capacity: number;
  /** Items put and not yet marked done with taskDone(). */
  readonly unfinished: number;
  /** Threads sleeping in a blocking or async get now (all connections). */
  readonly sleepingGetters: number;
  /** Threads sleeping in a blocking or async put now (all connections). */
  readonly sleepingPutters: number;
  /** This connection's blocking waits (putSync, getSync, iterateSync) that ended while spinning. */
  readonly spins: number;
  /** Its blocking waits that slept (and paid a wake-up). */
  readonly sleeps: number;
  /** Its async waits (put, get, for await on a full or empty channel). */
  readonly asyncWaits: number;
  /** How long its blocking waits took, each. */
  readonly waitTime: TimeSummary;
}

export class WaitCounter {
  spins = 0;
  sleeps = 0;
  asyncWaits = 0;
  readonly time = new Histogram();
}
