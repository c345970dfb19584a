// The ES module entry of loopthread/synckit: the same objects as the CommonJS one.
export { createSyncFn, runAsWorker, TsRunner } from './synckit.js';
export type { AnyFn, Syncify, SynckitOptions } from './synckit.js';
