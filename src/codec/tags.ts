/** One byte in front of every encoded value says what follows. */
export const enum Tag {
  Undefined = 0,
  Null = 1,
  False = 2,
  True = 3,
  Int32 = 4,
  Float64 = 5,
  String = 6,
  BigInt = 7,
  Array = 8,
  Object = 9,
  Map = 10,
  Set = 11,
  Date = 12,
  RegExp = 13,
  ArrayBuffer = 14,
  View = 15,
  Error = 16,
  BackRef = 17,
  Boxed = 18,
  /** An object that travelled beside the bytes (see Writer.beside), by its index there. */
  Beside = 19,
  /** A value that crosses by reference: a descriptor (plain data) that the connection interprets. */
  Ref = 20,
}

/** The kinds of ArrayBuffer views, in a fixed order shared by both sides. */
export const viewKinds = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
  Buffer,
] as const;
