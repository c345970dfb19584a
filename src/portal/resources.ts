/**
 * The resources a LoopThread's caller entered (enterSync / enter): each is entered and exited in
 * one async frame of its own, and those still entered when the host closes are exited last-in
 * first-out.
 */
import { AsyncResource } from 'node:async_hooks';
import { byRef } from '../codec/marks.js';
import type { Fn } from '../call/target.js';

/** A resource entered by enterSync: it is exited by its own frame when `exit` is called. */
interface Entered {
  readonly value: object;
  /** Resolves to what the exit method returned (true suppresses the body's error, as __aexit__). */
  exit(error: unknown): Promise<unknown>;
}

export class EnteredResources {
  readonly #entered: Entered[] = [];

  /**
   * Enters the resource `fn(...args)` resolves to, in an async frame of its own that stays open
   * until the resource is exited: the exit runs in the same frame, so AsyncLocalStorage state
   * set on entering is still there (anyio's rule). Resolves to the resource, lent, once entered.
   */
  enter(fn: Fn, self: unknown, args: unknown[], exitMethod: string | null): Promise<object> {
    return new Promise((entered, failed) => {
      void new AsyncResource('loopthread.enter').runInAsyncScope(async () => {
        let value: unknown;
        try {
          value = await fn.apply(self, args);
          if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
            throw new TypeError(`enterSync: the function returned ${typeof value}, not a resource to enter`);
          }
          const close = exitMethod === null ? undefined : (value as Record<string, unknown>)[exitMethod];
          const v = value as { [Symbol.asyncDispose]?: unknown; [Symbol.dispose]?: unknown };
          if (
            exitMethod === null
              ? typeof v[Symbol.asyncDispose] !== 'function' && typeof v[Symbol.dispose] !== 'function'
              : typeof close !== 'function'
          ) {
            throw new TypeError(
              exitMethod === null
                ? 'enterSync: the resource has no Symbol.asyncDispose or Symbol.dispose method; name its exit method with the `exit` option (for example "close")'
                : `enterSync: the resource has no method '${exitMethod}'`,
            );
          }
        } catch (error) {
          failed(error);
          return;
        }
        const resource = value;
        let requestExit!: (error: unknown) => void;
        const exitRequested = new Promise<unknown>((resolve) => (requestExit = resolve));
        const entry: Entered = {
          value: resource,
          exit: (error) => {
            requestExit(error);
            return exited;
          },
        };
        const exited = (async (): Promise<unknown> => {
          const error = await exitRequested;
          const index = this.#entered.indexOf(entry);
          if (index >= 0) this.#entered.splice(index, 1);
          const r = resource as Record<string | symbol, unknown>;
          const method = (exitMethod === null ? (r[Symbol.asyncDispose] ?? r[Symbol.dispose]) : r[exitMethod]) as Fn;
          return await method.call(resource, error);
        })();
        this.#entered.push(entry);
        entered(byRef(resource));
        await exited.catch(() => undefined);
      });
    });
  }

  /** Exits an entered resource (its exit method sees `error`, the body's error); resolves once it has. */
  exit(value: object, error: unknown): Promise<unknown> {
    const entry = this.#entered.find((e) => e.value === value);
    if (entry === undefined)
      return Promise.reject(new TypeError('this resource is not entered (or was already exited)'));
    return entry.exit(error);
  }

  /** Exits every entered resource, last entered first; an exit that fails does not stop the others. */
  async exitAll(): Promise<void> {
    for (let entry = this.#entered.at(-1); entry !== undefined; entry = this.#entered.at(-1)) {
      this.#entered.pop();
      await entry.exit(undefined).catch((error: unknown) => {
        process.emitWarning(`loopthread: exiting an entered resource failed while closing: ${String(error)}`);
      });
    }
  }
}
