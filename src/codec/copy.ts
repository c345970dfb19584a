/**
 * Copying bytes into or out of shared memory. TypedArray set() (and Buffer's copy(), which is
 * set() on Node 20) copies to or from a SharedArrayBuffer word by word with relaxed atomics;
 * Buffer's fill() with an array is one memcpy in C++, which costs more to call but is 2.5 times
 * faster for 64 KiB (measured on Node 20: below about 1.5 KiB, set() costs less).
 */

/** From this many bytes on, a copy takes Buffer's fill(). */
export const LARGE_COPY = 2048;

/** Copies `src` into `dst` at `at`; large copies take the memcpy when `dst` is a Buffer. */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array): void {
  if (src.byteLength >= LARGE_COPY && dst instanceof Buffer) dst.fill(src, at, at + src.byteLength);
  else dst.set(src, at);
}
