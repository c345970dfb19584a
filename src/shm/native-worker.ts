import type { Worker } from 'node:worker_threads';

/** The parts of a Worker's internal native handle loopthread asks. */
export interface NativeWorker {
  /** -1 before the thread starts and after it stops. */
  loopIdleTime(): number;
  getResourceLimits?(): Float64Array;
}

/**
 * The worker's native handle, which answers synchronously whether the thread still runs. A blocked
 * caller's event loop cannot receive the 'exit' event, so this is how it notices a thread killed
 * without a word (terminate, out of memory). Undefined if a Node version hides it: the other
 * checks still apply.
 */
export function nativeHandle(worker: Worker): NativeWorker | undefined {
  const key = Object.getOwnPropertySymbols(worker).find((s) => s.description === 'kHandle');
  const handle = key === undefined ? undefined : (worker as unknown as Record<symbol, unknown>)[key];
  if (
    handle !== null &&
    typeof handle === 'object' &&
    typeof (handle as { loopIdleTime?: unknown }).loopIdleTime === 'function'
  ) {
    return handle as NativeWorker;
  }
  return undefined;
}
