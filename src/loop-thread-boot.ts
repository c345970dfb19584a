/**
 * The first code a LoopThread's worker runs. Preloaded with `--require` ahead of the user's own
 * preloads when execArgv has any, else loaded by loop-thread-main.ts; either way it runs before
 * anything that can fail. It writes the fact the owner's liveness checks rest on (THREAD_RAN: the
 * thread has started, so a missing event loop from now on means it has stopped), and until the
 * main module takes over it leaves the thread's last words should a preload throw or exit.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { HostState, Line, THREAD_RAN } from './protocol/line.js';
import { atThreadEnd } from './shm/thread-end.js';
import { ownOsThreadId, RAN_UNKNOWN_OS_THREAD } from './shm/os-thread.js';

/** What every LoopThread worker finds in workerData, its preloads too. */
export interface BootData {
  line: SharedArrayBuffer;
  /** Where a dying thread leaves its DeathNote for the owner. */
  notes: MessagePort;
  /**
   * The word of `line` the worker's starter sets before it compiles loopthread's code (THREAD_RAN):
   * a thread whose code then fails to load is seen to have stopped, not to be still starting.
   */
  ranIndex: number;
}

/** The last words of a dying loop thread, read by its owner when it finds the thread gone. */
export interface DeathNote {
  /** The uncaught error, encoded by the codec (absent for process.exit, or an uncopyable value). */
  error?: Uint8Array;
  exitCode: number;
}

const data = workerData as BootData;
const line = new Line(data.line);
const tid = ownOsThreadId();
Atomics.store(line.words, THREAD_RAN, tid > 0 ? tid : RAN_UNKNOWN_OS_THREAD);

/** Leaves the thread's last words: the note for the owner, then Crashed on the owner's line. */
export function sayLastWords(exitCode: number, error: unknown): void {
  const note: DeathNote = { exitCode };
  // An uncopyable thrown value is left out: the owner reports the crash without it.
  // Loaded when the thread dies, not at start-up (see ARCHITECTURE.md).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const codec = require('./codec/standalone.js') as typeof import('./codec/standalone.js');
  const bytes = error === undefined ? undefined : codec.encodeStandalone(error);
  if (bytes !== undefined) note.error = bytes;
  data.notes.postMessage(note);
  line.announce(HostState.Crashed, exitCode);
}

// Until the main module takes over, this thread's end is told from here.
const forget = atThreadEnd((code, thrown) => {
  sayLastWords(code, thrown?.error);
});

/** The main module is running and says the last words from now on. */
export function handOver(): void {
  forget();
}
