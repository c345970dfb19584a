/* eslint-disable @typescript-eslint/no-deprecated -- the deprecated aliases of 0.1 are still exported (CHANGELOG.md) */
export { LoopThread, type CallOptions } from './loop-thread.js';
export type { LoopThreadOptions } from './loop-thread-start.js';
export { LoopThreadCaller, type CallerOptions } from './loop-thread-caller.js';
export { LoopThreadConnection, type LoopThreadHandle } from './loop-thread-connection.js';
export type { CloseOptions } from './lifecycle.js';
export { Future, type FutureState, type WaitOptions } from './future.js';
export { currentSignal, throwIfCancelled } from './call/context.js';
import { wantCallContexts } from './call/context.js';
// Code on this thread loaded the public entry, so it may ask for its call's signal after an await:
// calls run in their context from now on (the serving threads' own code never loads this file).
wantCallContexts();
export { byRef, byValue } from './codec/marks.js';
export { release, isRemote, iterateSync, iterate, type IterateOptions } from './portal/remote.js';
export type {
  Syncified,
  Asyncified,
  SyncFunction,
  AsyncFunction,
  SyncValue,
  AsyncValue,
  Received,
  ReceivedArgs,
} from './portal/proxy.js';
export {
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
} from './errors.js';
export {
  Portal,
  type PortalHandle,
  type PortalOptions,
  type PortalConnection,
  type PortalConnectionLife,
  type PortalClientOf,
} from './portal/portal.js';
export {
  Channel,
  type ChannelOptions,
  type ChannelConnectOptions,
  type ChannelHandle,
  type ChannelWaitOptions,
  type ChannelSyncOptions,
  type ChannelPutOptions,
  type ChannelCloseOptions,
  type TryGetResult,
} from './channel/channel.js';
export { ThreadPoolExecutor, type TaskOptions } from './executor/pool.js';
export type { ExecutorOptions, ShutdownOptions } from './executor/options.js';
export { ExecutorCaller } from './executor/caller.js';
export { toThread, defaultExecutor, setDefaultExecutor } from './executor/to-thread.js';
export { spawnThread, spawnThreadWith, type SpawnedThread, type SpawnOptions } from './executor/spawn-thread.js';
export type { TsRunner } from './modules.js';
export {
  asCompleted,
  wait,
  type AsCompletedOptions,
  type FuturesWaitOptions,
  /** @deprecated The name of FuturesWaitOptions in 0.1. */
  type FuturesWaitOptions as ExecutorWaitOptions,
  type WaitResult,
  type ReturnWhen,
  type Completable,
  type Completed,
} from './executor/wait.js';
export type { MapOptions } from './executor/map.js';
export type { Offloaded } from './executor/targets.js';
export type { CallMessage, ThreadMessage, TaskMessage } from './observe/events.js';
export { diagnosticsChannels } from './observe/names.js';
export type { CallStats } from './observe/call-stats.js';
export type { PoolStats } from './observe/pool-stats.js';
export type { ChannelStats } from './observe/wait-stats.js';
export type { TimeSummary } from './observe/histogram.js';
