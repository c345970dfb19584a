// A TypeScript module in an ES module package: loaded by type stripping, or by a runner.
import { setTimeout as sleep } from 'node:timers/promises';

interface Pair {
  a: number;
  b: number;
}

export async function add({ a, b }: Pair): Promise<number> {
  await sleep(1);
  return a + b;
}

export function square(x: number): number {
  return x * x;
}
