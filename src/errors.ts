/**
 * The typed errors of loopthread. Every failure that reaches a caller is one of these or the
 * faithful copy of an error thrown by user code on the other thread. Each has a stable `code`
 * (as Node's own errors do), which crosses threads with it.
 */

/**
 * Base class of every error loopthread itself raises.
 *
 * @example
 * ```ts
 * try {
 *   loop.with({ timeout: 100 }).runSync(slow);
 * } catch (error) {
 *   if (error instanceof TimeoutError) retryLater();
 *   else if (error instanceof LoopThreadError) console.error(error.code, error.message);
 *   else throw error; // thrown by slow() itself, copied from the loop thread
 * }
 * ```
 */
export class LoopThreadError extends Error {
  /** A stable string naming the error, as Node's `code`s: test it rather than the message. */
  readonly code: string = 'ERR_LOOPTHREAD';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The LoopThread (or its connection) is closed, or was closed while the call waited. */
export class ClosedError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_CLOSED';
}

/**
 * The serving side closed this connection because a message from it was malformed (not
 * loopthread's protocol: another version, or memory written by something else). Its calls fail
 * with this; the serving thread and its other connections go on. A ClosedError.
 */
export class ProtocolError extends ClosedError {
  override readonly code: string = 'ERR_LOOPTHREAD_PROTOCOL';
}

/**
 * Nobody is left on the other side of a Channel: it is empty and every connection that may put
 * has ended (or full, and every one that may get). A ClosedError, so iterations end on it.
 */
export class DisconnectedError extends ClosedError {
  override readonly code: string = 'ERR_LOOPTHREAD_DISCONNECTED';
}

/** The thread that serves calls stopped unexpectedly: uncaught error, process.exit, out of memory, terminate. */
export class WorkerCrashedError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_WORKER_CRASHED';
  /** The exit code, when the thread reported one. */
  readonly exitCode: number | undefined;
  constructor(message: string, options?: ErrorOptions & { exitCode?: number | undefined }) {
    super(message, options);
    this.exitCode = options?.exitCode;
  }
}

/** A blocking call that could never be served because the calling thread is the one that must serve it. */
export class DeadlockError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_DEADLOCK';
}

/** The loop thread went idle while the call's promise was still pending: it can never settle. */
export class NeverSettledError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_NEVER_SETTLED';
}

/** The call or future was cancelled (Future.cancel, or its AbortSignal). */
export class CancelledError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_CANCELLED';
}

/** A timeout elapsed. Its `name` is `'TimeoutError'`, like the DOMException of `AbortSignal.timeout()`. */
export class TimeoutError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_TIMEOUT';
}

/** A value cannot cross between threads by copy. `path` names where it sits in the arguments or result. */
export class DataCloneError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_DATA_CLONE';
  /** Where the value sits, for example `args[0].user.socket`. */
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}

/** `submitNowait` (deprecated: `trySubmit` returns undefined instead) found the queue full (`maxQueue`). */
export class QueueFullError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_QUEUE_FULL';
}

/**
 * A worker thread cannot start because its entry file is missing, as when loopthread is bundled
 * into an app without its worker files (see "Bundling" in the README). `path` is the missing file.
 */
export class WorkerEntryNotFoundError extends LoopThreadError {
  override readonly code: string = 'ERR_LOOPTHREAD_WORKER_ENTRY_NOT_FOUND';
  /** The missing file. */
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}
