// An async generator of small items, and the same items one call at a time for the peers, which
// can only call functions: start(n) makes the generator, next() takes its next item.
export async function* count(n) {
  for (let i = 0; i < n; i++) yield i;
}

let current;

export async function start(n) {
  current = count(n);
}

export async function next() {
  const r = await current.next();
  return r.done ? null : r.value;
}
