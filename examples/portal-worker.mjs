// The worker side of portal-progress.mjs: a synchronous caller of the main thread's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { Portal } from 'loopthread';

const log = (what) => console.log(`       worker ${what}`);

const main = Portal.connect(workerData.handle);
log('calls slowSquare(7) on the main loop and blocks');
const square = main.slowSquareSync(7); // this thread waits; the main loop keeps running
log(`got ${square}`);
parentPort.postMessage(`7 squared is ${square}`);
