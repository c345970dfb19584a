/**
 * When this thread ends (its loop runs out, process.exit, an uncaught error), the parts that other
 * threads wait on tell them at once, blocked ones too: one 'exit' listener for all of them, with
 * the error that ended the thread if one did. A thread stopped by terminate() or by the heap limit
 * runs no code at all: nothing is told then, which each part documents.
 */
/** `thrown`: the uncaught error that ends the thread, if one does (boxed: `throw undefined` counts). */
export type Ending = (exitCode: number, thrown: { error: unknown } | undefined) => void;

const endings = new Set<Ending>();
/** The last uncaught error, while it may still end the thread. */
let uncaught: { error: unknown } | undefined;

function onUncaught(error: unknown): void {
  uncaught = { error };
  // Still running on the next turn: an 'uncaughtException' handler kept the thread alive, and
  // this error is not what ends it.
  setImmediate(() => {
    uncaught = undefined;
  });
}

function onExit(exitCode: number): void {
  for (const end of [...endings]) end(exitCode, uncaught);
}

/** Calls `end(exitCode, thrown)` when this thread ends; returns what removes it again. */
export function atThreadEnd(end: Ending): () => void {
  if (endings.size === 0) {
    process.on('uncaughtExceptionMonitor', onUncaught);
    process.on('exit', onExit);
  }
  endings.add(end);
  return () => {
    if (!endings.delete(end) || endings.size > 0) return;
    process.off('uncaughtExceptionMonitor', onUncaught);
    process.off('exit', onExit);
  };
}
