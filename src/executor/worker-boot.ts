/**
 * What a pool worker does before anything that can fail: it takes the pool's values (the first
 * message on parentPort, see worker-main.ts) and writes the fact its owner's liveness probe rests on
 * (Word.Ran). A worker that then dies, in a user's preload or while loopthread's code loads, is seen
 * to have stopped rather than to be still starting, also by a main thread blocked in resultSync,
 * which cannot receive the 'exit' event. Preloaded ahead of a user's preloads (startWorker), run by
 * the worker's starter before it compiles the code (scripts/bundle-boot.mjs), and imported first by
 * worker-main: one module, so it runs once. Only builtins here: nothing else is loaded yet.
 */
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import type { WorkerInit } from './worker-main.js';

/** The pool's values, if they could be taken now (Deno's parentPort gives no message at once). */
export function takeInit(): WorkerInit | undefined {
  if (parentPort === null) return undefined;
  try {
    return receiveMessageOnPort(parentPort)?.message as WorkerInit | undefined;
  } catch {
    return undefined;
  }
}

/** The pool's values, taken by this module's first load; worker-main waits for them if not there yet. */
export const earlyInit = takeInit();
if (earlyInit !== undefined) Atomics.store(new Int32Array(earlyInit.shared), earlyInit.ranIndex, -1);
