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
  /** An array with holes or named properties: its length, then (key, value) pairs of what it has. */
  SparseArray = 21,
  URL = 22,
  URLSearchParams = 23,
  /** A resizable ArrayBuffer: its maxByteLength, then its bytes. */
  ResizableArrayBuffer = 24,
}

const float16 = (globalThis as { Float16Array?: typeof Float32Array }).Float16Array;

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
  // Node 24 has Float16Array; both sides of a message run in one process, so they agree on this list.
  ...(float16 === undefined ? [] : [float16]),
] as const;

/** The index of Buffer in viewKinds: a Buffer carries its own bytes, not its (pooled) ArrayBuffer. */
export const BUFFER_KIND = 12;
/** The index of DataView in viewKinds: its length is in bytes, not elements. */
export const DATAVIEW_KIND = 11;
