/**
 * The one spin policy (src/shm/spin-policy.ts): it spins only once a wake-up cost is known, stops
 * after two late answers in a row for a number of waits that doubles each time, and an answer on
 * time brings that number back to the first one.
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { observeWake, SpinPolicy } from '../src/shm/spin-policy.js';

const WAKE_MS = 0.02;
const LATE = 1;
const ON_TIME = 0.001;

/** How many waits a policy spends with spinning off, reporting each as on time. */
function waitsOff(policy: SpinPolicy): number {
  let n = 0;
  while (policy.next() === 0) {
    policy.observe(ON_TIME, 0);
    if (++n > 10_000) throw new Error('spinning never came back');
  }
  return n;
}

function lateTwice(policy: SpinPolicy): void {
  for (let i = 0; i < 2; i++) policy.observe(LATE, policy.next());
}

describe('the spin policy', { skip: availableParallelism() < 2 && 'one core: it never spins' }, () => {
  it('spins for the measured wake-up cost, and backs off after late answers for longer each time', () => {
    const policy = new SpinPolicy();
    assert.equal(policy.next(), 0, 'no wake-up seen yet: it sleeps, as the peers do');
    observeWake(WAKE_MS);
    assert.equal(policy.next(), WAKE_MS);

    lateTwice(policy);
    assert.equal(waitsOff(policy), 16);
    lateTwice(policy);
    assert.equal(waitsOff(policy), 32);
    lateTwice(policy);
    assert.equal(waitsOff(policy), 64);

    // An answer on time: the next back-off is the first one again.
    policy.observe(ON_TIME, policy.next());
    lateTwice(policy);
    assert.equal(waitsOff(policy), 16);
  });

  it('one late answer between answers on time does not stop spinning', () => {
    const policy = new SpinPolicy();
    observeWake(WAKE_MS);
    for (let i = 0; i < 100; i++) {
      policy.observe(i % 2 === 0 ? LATE : ON_TIME, policy.next());
      assert.ok(policy.next() > 0);
    }
  });
});
