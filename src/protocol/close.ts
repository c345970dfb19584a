/** The times a close allows when its caller names none (all in milliseconds). */

/** How long calls in flight get to finish once their signals abort (the default `grace` of close). */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * Beyond the close timeout: how much longer the owner waits for the thread to answer its close
 * request and exit (resource exits and iteration ends run after the calls' grace), before it
 * terminates it. The thread itself leaves right after its answer; it waits for its last replies
 * to be read only within the close's grace.
 */
export const CLOSE_ANSWER_GRACE_MS = 1_000;
