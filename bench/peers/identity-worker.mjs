// The synckit worker: a trivial async identity function.
import { runAsWorker } from 'synckit';

runAsWorker(async (value) => value);
