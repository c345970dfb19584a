// The names of loopthread's diagnostics channels (events.ts publishes on them).
/** The names of loopthread's diagnostics channels, for `diagnostics_channel.subscribe(name, fn)`. */
export const diagnosticsChannels = Object.freeze({
  /** A call to a LoopThread (or Portal, or connection) begins: CallMessage. */
  callStart: 'loopthread:call:start',
  /** It returned: the same CallMessage, with `duration`. */
  callEnd: 'loopthread:call:end',
  /** It failed (threw, timed out, was cancelled, the thread died): the same CallMessage, with `error` and `duration`. */
  callError: 'loopthread:call:error',
  /** A LoopThread or pool worker thread was started: ThreadMessage. */
  threadStart: 'loopthread:thread:start',
  /** It exited, for whatever reason: ThreadMessage with `exitCode`. */
  threadStop: 'loopthread:thread:stop',
  /** It stopped unexpectedly (threw, exited, ran out of memory, was killed): ThreadMessage with `error`. */
  threadCrash: 'loopthread:thread:crash',
  /** A task was submitted to a pool: TaskMessage. */
  taskQueued: 'loopthread:pool:task:queued',
  /** It was handed to a worker (it runs next there): the same TaskMessage, with `threadId` and `waitTime`. */
  taskStarted: 'loopthread:pool:task:started',
  /** It settled: the same TaskMessage, with `status`, `error` and `runTime`. */
  taskDone: 'loopthread:pool:task:done',
} as const);
