// The loopthread demo (`npm start`): plain synchronous code using async libraries through a
// LoopThread, an event loop in a worker thread of its own that this thread calls into and blocks on.
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { LoopThread, TimeoutError, DataCloneError } from 'loopthread';

const show = (label, value) => console.log(`${label.padEnd(22)} ${value}`);

const loop = new LoopThread({ name: 'demo' });
show('loop thread', `"${loop.name}" (thread id ${loop.threadId})`);

// 1. A module loaded on the loop thread: its async functions become blocking ones here.
const fsp = loop.importSync('node:fs/promises');
const pkg = JSON.parse(fsp.readFile(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
show('fs/promises readFile', `package.json says ${pkg.name}@${pkg.version}`);

// 2. An HTTP server on the loop thread. This thread blocks during each call, so a server here could
//    not answer; one on the loop thread can. (Its log lines come out in order with ours.)
const server = loop.importSync(new URL('./server.mjs', import.meta.url));
const url = server.start();
show('server started', `${url} (on the loop thread)`);

// 3. An inline function travels as source text: it captures nothing, so values go as arguments.
const body = loop.runSync(async (address) => (await fetch(address)).text(), `${url}hello`);
show('fetch (inline fn)', JSON.stringify(body));

// 4. Per-call options: a timeout that also aborts the call's signal on the loop thread.
const started = performance.now();
try {
  loop.with({ timeout: 100 }).runSync(server.slow, 10_000);
} catch (error) {
  const ms = Math.round(performance.now() - started);
  show('timeout', `${error.name} after ${ms} ms (instanceof TimeoutError: ${error instanceof TimeoutError})`);
}

// 5. Errors cross with their class, code, own properties and cause.
try {
  fsp.readFile('/no/such/file');
} catch (error) {
  show('error (fs)', `class ${error.constructor.name}, code ${error.code}: ${error.message}`);
}
try {
  loop.runSync((limit) => {
    throw new RangeError(`more than ${limit}`, { cause: new Error('the root cause') });
  }, 10);
} catch (error) {
  show('error (inline fn)', `${error.constructor.name}: ${error.message}; cause: ${error.cause.message}`);
  // Its stack shows the loop thread's frames, then a marker, then this thread's frames from the call.
  const lines = error.stack.split('\n');
  const marker = lines.findIndex((line) => line.includes('--- above'));
  show('  stack continues', `${lines[marker].trim()}\n${''.padEnd(23)}${lines[marker + 1].trim()}`);
}
try {
  loop.runSync((value) => value, { tag: Symbol('symbols cross neither by copy nor by reference') });
} catch (error) {
  const isDataCloneError = error instanceof DataCloneError;
  show('refused argument', `${error.name} at ${error.path} (instanceof DataCloneError: ${isDataCloneError})`);
}

// 5b. What is not plain data crosses by reference: a FileHandle used from this synchronous code,
//     its readLines() iterated with for...of, and a function of ours called back from the loop thread.
const file = fsp.open(fileURLToPath(new URL('../package.json', import.meta.url)));
show('FileHandle (by ref)', `${file} size ${file.stat().size} bytes`);
let lineCount = 0;
for (const line of file.readLines()) if (line.trim() !== '') lineCount++;
show('  readLines() for...of', `${lineCount} non-empty lines (prefetched in batches)`);
const callbackThread = loop.runSync(
  async (whoAmI) => `the callback ran on thread ${await whoAmI()}`,
  () => threadId,
);
show('callback', `${callbackThread} (this thread: ${threadId})`);

// 6. run() does not block: it returns a Future, which can be awaited or waited for with resultSync().
const future = loop.run(async (ms) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return `ready after ${ms} ms`;
}, 200);
future.addDoneCallback((f) => show('done callback', `future is ${f.state}`));
show('future', `${future.state} (this thread is free to do other work meanwhile)`);
show('await future', await future);
show('run(...).resultSync()', loop.run(async (a, b) => a + b, 2, 3).resultSync());

// 7. Close everything: the server, then the loop thread (calls in flight would get 500 ms).
server.stop();
loop.closeSync({ grace: 500 });
show('closed', `exitError: ${loop.exitError}; a call now throws ${tryCall()}`);

function tryCall() {
  try {
    loop.runSync(() => 1);
    return 'nothing';
  } catch (error) {
    return error.name;
  }
}
