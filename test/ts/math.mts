// The .mts form: an ES module whatever the package type.
export const triple = (x: number): number => 3 * x;
