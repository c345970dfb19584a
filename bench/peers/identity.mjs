// A trivial async identity function, the module that make-synchronized and loopthread load.
export async function identity(value) {
  return value;
}
