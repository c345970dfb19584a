/**
 * The entry point of a LoopThread's worker: hosts a portal on this thread's event loop, loads
 * modules for it, and makes sure that every way this thread can end is told to its callers.
 */
// First: marks the thread as running, and covers its death until the handlers below take over.
import { handOver, sayLastWords, type BootData } from './loop-thread-boot.js';
import { writeSync } from 'node:fs';
import { workerData, type MessagePort } from 'node:worker_threads';
import { HostState, Line } from './protocol/line.js';
import { pause } from './shm/wait.js';
import { PortalHost } from './portal/host.js';
import { adoptWaitTable } from './shm/wait-for.js';

export interface LoopThreadData extends BootData {
  port: MessagePort;
  name: string;
  /** Who waits for whom, shared by the threads of the process (see protocol/wait-for). */
  waits: SharedArrayBuffer;
}

const data = workerData as LoopThreadData;
const line = new Line(data.line);
let ended = false;

/**
 * Output goes straight to the process's file descriptors, synchronously, so that it appears in
 * order with the caller's own output even while the caller is blocked (a worker's stdout normally
 * travels by message to the main thread, which a blocked thread never reads).
 */
function writeThrough(stream: NodeJS.WriteStream, fd: number): void {
  const write = (chunk: string | Uint8Array, encoding?: unknown, callback?: unknown): boolean => {
    const done = typeof encoding === 'function' ? encoding : callback;
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk;
    let offset = 0;
    while (offset < bytes.byteLength) {
      try {
        offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
        pause(1);
      }
    }
    if (typeof done === 'function') (done as () => void)();
    return true;
  };
  stream.write = write;
}
writeThrough(process.stdout, 1);
writeThrough(process.stderr, 2);

adoptWaitTable(data.waits);

const host = new PortalHost({
  keepAlive: true,
  inline: true,
  // Loaded by the first import, not at start-up (see ARCHITECTURE.md).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  load: (specifier) => (require('./modules.js') as typeof import('./modules.js')).loadModule(specifier),
  async onCloseRequest(timeout) {
    const deadline = performance.now() + timeout;
    await host.close(timeout);
    // Replies not yet read (a caller blocked elsewhere) get what is left of the close's grace.
    await flushedBy(deadline);
    // The reply to this request goes out right after (published at once, or posted): then leave.
    setImmediate(exitClosed);
  },
});

/** Resolves once every caller has read its replies, or at `deadline` (the user's grace). */
async function flushedBy(deadline: number): Promise<void> {
  const left = deadline - performance.now();
  if (left <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([host.whenFlushed(), new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
  clearTimeout(timer);
}

function exitClosed(): void {
  end(HostState.Closed, 0);
  process.exit(0);
}

function end(state: HostState.Closed | HostState.Crashed, exitCode: number, error?: unknown): void {
  if (ended) return;
  ended = true;
  if (state === HostState.Crashed) sayLastWords(exitCode, error);
  host.shutDown(state, exitCode, error);
}

process.on('uncaughtException', (error) => {
  end(HostState.Crashed, 1, error);
  process.exit(1);
});

process.on('exit', (code) => {
  end(HostState.Crashed, code);
});
handOver();

// The loop has nothing left to do though calls are pending (the host keeps the loop alive while
// it waits for calls, so only pending calls that nothing will settle get here). When no caller
// can act any more, they were answered with NeverSettledError: close.
let answered = false;
process.on('beforeExit', () => {
  if (ended) return;
  if (answered) {
    end(HostState.Closed, 0);
    return;
  }
  const outcome = host.onLoopIdle();
  if (outcome === 'waiting') return;
  answered = true;
  host.refuseCalls();
  line.announce(HostState.Closing);
  // Leave once the callers have read those answers. One that never reads it (blocked elsewhere)
  // sees the thread closed when it comes back; the owner closes the thread meanwhile anyway
  // (onNeverSettled), which bounds this wait by that close's grace.
  void host.whenFlushed().then(exitClosed);
});

host.serve(line, data.port, true);

/** How many connections this thread serves, its owner's among them (tests import it here: see handle.test.ts). */
export function servedConnections(): number {
  return host.connections.size;
}
