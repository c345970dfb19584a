/**
 * Marks that override the rule of what crosses by copy and what by reference: `byRef` lends an
 * object that could have been copied, `byValue` copies the own enumerable fields of one that would
 * have been lent. Both mark the object itself (not a wrapper), so it can be used as before.
 */
const forcedRef = new WeakSet<object>();
const forcedValue = new WeakSet<object>();

function mark<T>(set: WeakSet<object>, value: T, what: string): T {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
    throw new TypeError(`${what}() takes an object or a function; primitives always cross by copy`);
  }
  set.add(value);
  return value;
}

/**
 * Sends `value` by reference: the other side gets a proxy, and calls on it come back here.
 * Marks the object itself and returns it.
 *
 * @param value - An object or a function.
 * @throws TypeError if `value` is a primitive.
 * @example
 * ```ts
 * const cache = new Map<string, number>();
 * loop.runSync((c) => c.set('a', 1), byRef(cache)); // sets it in this thread's Map
 * ```
 */
export function byRef<T extends object>(value: T): T {
  forcedValue.delete(value);
  return mark(forcedRef, value, 'byRef');
}

/**
 * Sends a copy of `value`'s own enumerable fields (a plain object), even if it is a class
 * instance; the fields themselves follow the usual rule. Marks the object itself and returns it.
 *
 * @param value - An object or a function.
 * @throws TypeError if `value` is a primitive.
 * @example
 * ```ts
 * const point = new Point(1, 2); // a class instance would be lent
 * loop.runSync((p) => p.x + p.y, byValue(point)); // 3, computed on a copy
 * ```
 */
export function byValue<T extends object>(value: T): T {
  forcedRef.delete(value);
  return mark(forcedValue, value, 'byValue');
}

/**
 * The proxies of objects of another thread (portal/remote.ts marks each it makes). They always go
 * by reference, back to where they came from; known here so that encoding a value needs the
 * lending code only when something is lent.
 */
const remoteProxies = new WeakSet<object>();

export function markRemoteProxy(proxy: object): void {
  remoteProxies.add(proxy);
}

export function isRemoteProxy(value: object): boolean {
  return remoteProxies.has(value);
}

export function isForcedRef(value: object): boolean {
  return forcedRef.has(value);
}

export function isForcedValue(value: object): boolean {
  return forcedValue.has(value);
}
