/* eslint-disable @typescript-eslint/no-deprecated -- the deprecated aliases of 0.1 are still exported (CHANGELOG.md) */
// The ES module entry: the same objects as the CommonJS entry, so that both can be used in one
// program without two copies of the library's state.
export {
  LoopThread,
  LoopThreadCaller,
  LoopThreadConnection,
  Future,
  currentSignal,
  throwIfCancelled,
  byRef,
  byValue,
  release,
  isRemote,
  iterateSync,
  iterate,
  LoopThreadError,
  ClosedError,
  ProtocolError,
  DisconnectedError,
  WorkerCrashedError,
  DeadlockError,
  NeverSettledError,
  CancelledError,
  TimeoutError,
  DataCloneError,
  QueueFullError,
  WorkerEntryNotFoundError,
} from './index.js';
export type {
  LoopThreadHandle,
  LoopThreadOptions,
  CloseOptions,
  CallOptions,
  CallerOptions,
  IterateOptions,
  FutureState,
  WaitOptions,
  Syncified,
  Asyncified,
  SyncFunction,
  AsyncFunction,
  SyncValue,
  AsyncValue,
} from './index.js';
export { Portal } from './index.js';
export type { PortalHandle, PortalOptions, PortalConnection, PortalConnectionLife, PortalClientOf } from './index.js';
export { Channel } from './index.js';
export type {
  ChannelOptions,
  ChannelConnectOptions,
  ChannelHandle,
  ChannelWaitOptions,
  ChannelSyncOptions,
  ChannelPutOptions,
  ChannelCloseOptions,
  TryGetResult,
} from './index.js';
export {
  ThreadPoolExecutor,
  ExecutorCaller,
  toThread,
  defaultExecutor,
  setDefaultExecutor,
  spawnThread,
  spawnThreadWith,
  asCompleted,
  wait,
} from './index.js';
export type {
  ExecutorOptions,
  ShutdownOptions,
  TaskOptions,
  SpawnedThread,
  SpawnOptions,
  TsRunner,
  AsCompletedOptions,
  FuturesWaitOptions,
  ExecutorWaitOptions,
  WaitResult,
  ReturnWhen,
  Completable,
  Completed,
  MapOptions,
  Offloaded,
} from './index.js';
export { diagnosticsChannels } from './index.js';
export type {
  CallMessage,
  ThreadMessage,
  TaskMessage,
  CallStats,
  PoolStats,
  ChannelStats,
  TimeSummary,
} from './index.js';
