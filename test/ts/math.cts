// The .cts form: a CommonJS module whatever the package type.
const half = (x: number): number => x / 2;
module.exports = { half };
