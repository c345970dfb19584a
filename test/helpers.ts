/** What several test files need: waiting with a watchdog, and catching what a call throws or rejects with. */
import assert from 'node:assert/strict';
import type { MessagePort, Transferable } from 'node:worker_threads';

/** A watchdog fired: what was awaited was still pending (a hang, reported instead of suffered). */
export class StillPending extends Error {}

/** Awaits `promise`, failing with StillPending if it has not settled within `ms` ms (a watchdog, not a sleep). */
export async function within<T>(promise: PromiseLike<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new StillPending(`${what} was still pending after ${String(ms)} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

/** The reason `promise` rejects with, failing if it fulfils or stays pending for `ms` ms. */
export async function rejectionWithin(promise: PromiseLike<unknown>, what: string, ms: number): Promise<unknown> {
  try {
    await within(promise, what, ms);
  } catch (error) {
    if (error instanceof StillPending) throw error;
    return error;
  }
  return assert.fail(`${what} fulfilled instead of rejecting`);
}

/** What `fn` throws; fails the test if it returns. */
export function thrown(fn: () => unknown, what = 'the call'): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return assert.fail(`${what} returned instead of throwing`);
}

/**
 * The line (loopthread's own shared memory) that a connection made through `port` sends first,
 * for a test that reads its words: call before connecting, read after.
 */
export function lineSentOn(port: MessagePort): () => SharedArrayBuffer {
  let line: SharedArrayBuffer | undefined;
  const post = port.postMessage.bind(port);
  port.postMessage = (message: unknown, transfer?: readonly Transferable[]) => {
    line ??= (message as { line?: SharedArrayBuffer } | null)?.line;
    post(message, transfer);
  };
  return () => line ?? assert.fail('no line was sent on the port');
}
