// What the machine's CPUs did, for the benches' "was anything else running?" lines.
import { cpus } from 'node:os';

/** Busy and total milliseconds of all CPUs of the machine so far. */
export function machineTimes() {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  return { busy, total };
}
