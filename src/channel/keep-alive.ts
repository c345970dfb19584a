/**
 * A pending Atomics.waitAsync does not keep Node's event loop alive. While some async channel
 * operation of this thread waits, one ref'd interval does; when none waits, it is cleared so
 * that the channel never holds a program open by itself.
 */
let waiting = 0;
let timer: ReturnType<typeof setInterval> | undefined;

export function holdLoop(): void {
  if (waiting++ === 0) timer = setInterval(() => undefined, 1 << 30);
}

export function releaseLoop(): void {
  if (--waiting === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}
