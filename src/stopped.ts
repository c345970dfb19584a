/**
 * One wording for a thread that stopped unexpectedly, whichever part owned it (LoopThread, a Portal's
 * connection, a pool worker): "<who> stopped unexpectedly" followed by how it ended, as far as the
 * facts tell.
 */
import { inspect } from 'node:util';
import { WorkerCrashedError } from './errors.js';

/** Node's error for a worker stopped by its heap limit. */
export function isOutOfMemory(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
}

/** Node's out-of-memory error, for an owner that missed the worker's 'error' event (blocked, or told only by a fact). */
export function outOfMemory(): Error {
  return Object.assign(new Error('Worker terminated due to reaching memory limit: JS heap out of memory'), {
    code: 'ERR_WORKER_OUT_OF_MEMORY',
  });
}

/** How a thread ended, worded to follow "stopped unexpectedly": what it threw, its exit code, or neither. */
export function howItEnded(cause: unknown, exitCode: number | undefined): string {
  if (isOutOfMemory(cause)) return ': it ran out of memory (ERR_WORKER_OUT_OF_MEMORY)';
  if (cause instanceof Error) return `: ${cause.name}: ${cause.message}`;
  if (cause !== undefined) return `: it threw ${inspect(cause, { depth: 1, breakLength: Infinity })}`;
  if (exitCode !== undefined) return ` (process.exit(${String(exitCode)}))`;
  return ' (terminated, or out of memory)';
}

/** The error every waiter of a thread that stopped unexpectedly gets; `how` when the owner knows more than cause and code. */
export function stoppedUnexpectedly(
  who: string,
  cause: unknown,
  exitCode: number | undefined,
  how = howItEnded(cause, exitCode),
): WorkerCrashedError {
  return new WorkerCrashedError(`${who} stopped unexpectedly${how}`, { cause, exitCode });
}
