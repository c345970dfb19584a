// A TypeScript synckit worker (loaded natively, or by tsRunner 'tsx'), in the package scope of loopthread
// (so that it finds loopthread/synckit by the package name).
import { runAsWorker } from 'loopthread/synckit';

runAsWorker(async (name: string): Promise<string> => `hello ${name}`);
