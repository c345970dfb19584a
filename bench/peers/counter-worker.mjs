// The synckit worker: start(n), then next() per item.
import { runAsWorker } from 'synckit';
import { next, start } from './counter.mjs';

runAsWorker(async (op, n) => (op === 'start' ? start(n) : next()));
