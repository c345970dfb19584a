/**
 * The connecting half of a handle, the same for a LoopThread's and a Portal's: this thread makes
 * the connection's line and sends it as the first message (the serving side serves it from then
 * on), and the client reads the serving side's end from the handle's end word when it checks
 * liveness (a thread terminated, or one whose line was never served, writes nothing on it).
 */
import type { MessagePort } from 'node:worker_threads';
import { ConnectionLife } from '../lifecycle.js';
import { EndWord } from '../protocol/line.js';
import { adoptWaitTable } from '../shm/wait-for.js';
import { openLine, PortalClient, type CallOptions } from './client.js';

/** What a handle carries for the connection, whichever kind it is. */
export interface HandleParts {
  readonly threadId: number;
  readonly port: MessagePort;
  readonly waits: SharedArrayBuffer;
  readonly end?: SharedArrayBuffer;
}

/** Connects through `handle`: the client, named `name`, and the life that closes it. */
export function connectHandle(
  handle: HandleParts,
  name: string,
  options: CallOptions,
  bufferSize?: number,
): { client: PortalClient; life: ConnectionLife } {
  adoptWaitTable(handle.waits);
  const port = handle.port;
  const line = openLine(port, bufferSize);
  // (A handle put together by hand may carry none: its host then says its own end on the line.)
  const end = handle.end instanceof SharedArrayBuffer ? new EndWord(handle.end) : undefined;
  const life = new ConnectionLife(port, name);
  const client = new PortalClient(line, port, name, handle.threadId, {
    onBusy: (busy) => {
      life.onBusy(busy);
    },
    beforeCheck: () => end?.adoptInto(line),
  });
  life.client = client;
  // Calls through references (iterations, lent objects) keep the connection's options too.
  client.refOptions = options;
  return { client, life };
}
