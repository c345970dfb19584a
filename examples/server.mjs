// Loaded on the loop thread by examples/demo.mjs (through loop.importSync), so everything here runs
// there: the HTTP server answers requests even while the main thread is blocked in a call.
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentSignal } from 'loopthread';

let server;

/** Starts the server on 127.0.0.1 with a port the system picks; returns its URL. */
export async function start() {
  server = createServer((request, response) => {
    console.log(`  [loop thread] server: ${request.method} ${request.url}`);
    response.setHeader('content-type', 'text/plain');
    response.end(`hello from the loop thread's server (you asked for ${request.url})`);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { address, port } = server.address();
  return `http://${address}:${port}/`;
}

/** Stops the server, dropping idle keep-alive connections so that it closes at once. */
export async function stop() {
  if (server === undefined) return;
  const closed = new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  server.closeAllConnections();
  await closed;
  server = undefined;
}

/** Sleeps `ms` milliseconds, but stops early when the call's signal aborts (timeout, cancel, close). */
export async function slow(ms) {
  await sleep(ms, undefined, { signal: currentSignal() });
  return `slept ${ms} ms`;
}
