/**
 * loopthread's diagnostics channels (node:diagnostics_channel): what it publishes, and the
 * messages' shapes. A message is made only when the channel has subscribers, so an unobserved
 * program pays one boolean check per event.
 */
import diagnostics from 'node:diagnostics_channel';
import { enableDebugLog } from './debug.js';
import { diagnosticsChannels } from './names.js';

/** The message of one call, the same object for its start and its end or error. */
export interface CallMessage {
  /** Who serves it, as errors name it: `LoopThread "name"`, `Portal "name"`. */
  readonly target: string;
  /** The serving thread's id. */
  readonly threadId: number;
  /** Numbers the calls this process observed. */
  readonly id: number;
  /** runSync and blocking stubs (true), or run and Future-returning stubs (false). */
  readonly blocking: boolean;
  /** Milliseconds from start to end, as the caller saw it (set at end or error). */
  duration?: number;
  /** What the call threw (set at error). */
  error?: unknown;
}

/** What the thread channels (`loopthread:thread:start`, `stop`, `crash`) publish. */
export interface ThreadMessage {
  /** A LoopThread's thread, or a pool worker's (spawnThread's too). */
  readonly kind: 'loopthread' | 'pool-worker';
  /** The LoopThread's name, or the pool's. */
  readonly name: string;
  /** The worker's threadId. */
  readonly threadId: number;
  /** At stop: the thread's exit code. */
  readonly exitCode?: number;
  /** At crash: the WorkerCrashedError its callers get. */
  readonly error?: Error;
}

/** What the pool task channels (`loopthread:pool:task:queued`, `started`, `done`) publish. */
export interface TaskMessage {
  /** The pool's name. */
  readonly pool: string;
  /** Numbers the pool's tasks from 1. */
  readonly id: number;
  /** At started: the worker's thread id. */
  threadId?: number;
  /** At started: milliseconds it waited in the queue. */
  waitTime?: number;
  /** At done. */
  status?: 'ok' | 'error' | 'cancelled';
  /** At done, if it failed (or was cancelled: a CancelledError). */
  error?: unknown;
  /** At done: milliseconds it ran on its worker, if it ran to the end. */
  runTime?: number;
}

export const callStart = diagnostics.channel(diagnosticsChannels.callStart);
export const callEnd = diagnostics.channel(diagnosticsChannels.callEnd);
export const callError = diagnostics.channel(diagnosticsChannels.callError);
export const threadStart = diagnostics.channel(diagnosticsChannels.threadStart);
export const threadStop = diagnostics.channel(diagnosticsChannels.threadStop);
export const threadCrash = diagnostics.channel(diagnosticsChannels.threadCrash);
export const taskQueued = diagnostics.channel(diagnosticsChannels.taskQueued);
export const taskStarted = diagnostics.channel(diagnosticsChannels.taskStarted);
export const taskDone = diagnostics.channel(diagnosticsChannels.taskDone);

/** Publishes a thread's lifecycle event, if anyone listens. */
export function threadEvent(channel: diagnostics.Channel, message: ThreadMessage): void {
  if (channel.hasSubscribers) channel.publish(message);
}

enableDebugLog(process.env.LOOPTHREAD_DEBUG);
