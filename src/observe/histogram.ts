/**
 * A fixed-bucket histogram of durations, for percentiles without keeping samples: four buckets
 * per power of two of microseconds (a quarter-octave, so a percentile is within 19% of the true
 * value), from 1 µs to 35 minutes. Recording is a few integer operations and never allocates.
 */

/** Durations in milliseconds: how many, their mean, three percentiles and the largest. */
export interface TimeSummary {
  /** How many durations were recorded. */
  readonly count: number;
  /** Their mean (ms; 0 when none). */
  readonly mean: number;
  /** The median (ms, within 19%). */
  readonly p50: number;
  /** The 90th percentile (ms, within 19%). */
  readonly p90: number;
  /** The 99th percentile (ms, within 19%). */
  readonly p99: number;
  /** The largest (ms, within 19%). */
  readonly max: number;
}

const SUB_BITS = 2;
const SUB = 1 << SUB_BITS;
const BUCKETS = 31 * SUB;
const MAX_US = 0x7fffffff;

export class Histogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #max = 0;

  /** Records one duration of `ms` milliseconds. */
  record(ms: number): void {
    this.#count++;
    this.#sum += ms;
    if (ms > this.#max) this.#max = ms;
    const us = ms >= MAX_US / 1000 ? MAX_US : Math.max(1, (ms * 1000) | 0);
    const exp = 31 - Math.clz32(us);
    const sub = exp >= SUB_BITS ? (us >>> (exp - SUB_BITS)) & (SUB - 1) : (us << (SUB_BITS - exp)) & (SUB - 1);
    (this.#counts[exp * SUB + sub] as number)++;
  }

  /** The upper bound (ms) of the bucket holding the q-quantile (0 < q <= 1), at most the largest value seen. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i] as number;
      if (seen >= rank) {
        const exp = Math.floor(i / SUB);
        const upper = 2 ** exp * (1 + ((i % SUB) + 1) / SUB);
        return Math.min(upper / 1000, this.#max);
      }
    }
    return this.#max;
  }

  summary(): TimeSummary {
    return {
      count: this.#count,
      mean: this.#count === 0 ? 0 : this.#sum / this.#count,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: this.#max,
    };
  }
}
