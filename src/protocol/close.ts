/** The times a close allows when its caller names none (all in milliseconds). */

/** How long calls in flight get to finish once their signals abort (the default `grace` of close). */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * Beyond the close timeout: how much longer the owner waits for the thread to answer its close
 * request, and the thread for its last replies to be read, before each goes on without.
 */
export const CLOSE_ANSWER_GRACE_MS = 1_000;
/** After a close was answered (or given up): how long the thread gets to exit by itself before it is terminated. */
export const EXIT_GRACE_MS = 200;
