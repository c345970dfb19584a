/**
 * A pending Atomics.waitAsync does not keep Node's event loop alive. While some async channel
 * operation of this thread waits, one interval is ref'd and does; when none waits, it is unref'd
 * so that the channel never holds a program open by itself. The interval is made once and only
 * ref'd and unref'd after that, which costs far less than making and clearing one per wait.
 */
let waiting = 0;
let timer: ReturnType<typeof setInterval> | undefined;

export function holdLoop(): void {
  if (waiting++ === 0) {
    timer ??= setInterval(() => undefined, 1 << 30);
    timer.ref();
  }
}

export function releaseLoop(): void {
  if (--waiting === 0) timer?.unref();
}
