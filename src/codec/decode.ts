import { BUFFER_KIND, DATAVIEW_KIND, Tag, viewKinds } from './tags.js';
import { corrupt, type Reader } from './writer.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded by the first error, not at start-up (see ARCHITECTURE.md)
const errorSerde = () => require('./error-serde.js') as typeof import('./error-serde.js');

/** Turns the descriptor of a value sent by reference into what stands for it here. */
export type Revive = (descriptor: unknown) => unknown;

/** Decodes one value written by encodeValue. */
export function decodeValue(r: Reader, revive?: Revive): unknown {
  return new Decoding(r, revive).get();
}

class Decoding {
  private readonly refs: unknown[] = [];

  constructor(
    private readonly r: Reader,
    private readonly revive: Revive | undefined,
  ) {}

  get(): unknown {
    const r = this.r;
    const tag = r.u8() as Tag;
    switch (tag) {
      case Tag.Undefined:
        return undefined;
      case Tag.Null:
        return null;
      case Tag.False:
        return false;
      case Tag.True:
        return true;
      case Tag.Int32:
        return r.i32();
      case Tag.Float64:
        return r.f64();
      case Tag.String:
        return r.string();
      case Tag.BigInt: {
        const hex = r.string();
        return hex.startsWith('-') ? -BigInt(`0x${hex.slice(1)}`) : BigInt(`0x${hex}`);
      }
      case Tag.Array: {
        const n = r.count();
        const a: unknown[] = new Array<unknown>(n);
        this.refs.push(a);
        for (let i = 0; i < n; i++) a[i] = this.get();
        return a;
      }
      case Tag.SparseArray: {
        const a: unknown[] = new Array<unknown>(r.u32());
        this.refs.push(a);
        const n = r.count();
        for (let i = 0; i < n; i++) {
          const key = r.string();
          (a as unknown as Record<string, unknown>)[key] = this.get();
        }
        return a;
      }
      case Tag.Object: {
        const n = r.count();
        const o: Record<string, unknown> = {};
        this.refs.push(o);
        for (let i = 0; i < n; i++) {
          const key = r.string();
          const value = this.get();
          if (key === '__proto__')
            Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
          else o[key] = value;
        }
        return o;
      }
      case Tag.Map: {
        const n = r.count();
        const m = new Map<unknown, unknown>();
        this.refs.push(m);
        for (let i = 0; i < n; i++) {
          const k = this.get();
          m.set(k, this.get());
        }
        return m;
      }
      case Tag.Set: {
        const n = r.count();
        const s = new Set<unknown>();
        this.refs.push(s);
        for (let i = 0; i < n; i++) s.add(this.get());
        return s;
      }
      case Tag.Date: {
        const d = new Date(r.f64());
        this.refs.push(d);
        return d;
      }
      case Tag.RegExp: {
        const source = r.string();
        const re = new RegExp(source, r.string());
        this.refs.push(re);
        return re;
      }
      case Tag.ArrayBuffer: {
        const b = r.bytes();
        this.refs.push(b);
        return b;
      }
      case Tag.ResizableArrayBuffer: {
        const maxByteLength = r.f64();
        const bytes = r.bytes();
        const b = new ArrayBuffer(bytes.byteLength, { maxByteLength });
        new Uint8Array(b).set(new Uint8Array(bytes));
        this.refs.push(b);
        return b;
      }
      case Tag.View: {
        const index = r.u8();
        const kind = viewKinds[index];
        if (kind === undefined) throw corrupt('unknown view kind');
        if (index === BUFFER_KIND) {
          const view = Buffer.from(r.bytes());
          this.refs.push(view);
          return view;
        }
        const slot = this.refs.length;
        this.refs.push(undefined);
        const buffer = this.get() as ArrayBuffer;
        const offset = r.f64();
        const length = r.f64();
        const view: ArrayBufferView =
          index === DATAVIEW_KIND
            ? new DataView(buffer, offset, length)
            : new (kind as typeof Uint8Array)(buffer, offset, length);
        this.refs[slot] = view;
        return view;
      }
      case Tag.URL: {
        const url = new URL(r.string());
        this.refs.push(url);
        return url;
      }
      case Tag.URLSearchParams: {
        const params = new URLSearchParams(r.string());
        this.refs.push(params);
        return params;
      }
      case Tag.Error: {
        const { createError, setField, setStack } = errorSerde();
        const ctor = r.string();
        const name = r.string();
        const error = createError(ctor, name, r.string());
        this.refs.push(error);
        setStack(error, this.get());
        const n = r.count();
        for (let i = 0; i < n; i++) {
          const key = r.string();
          setField(error, key, this.get());
        }
        return error;
      }
      case Tag.Boxed: {
        const slot = this.refs.length;
        this.refs.push(undefined);
        const boxed = Object(this.get()) as object;
        this.refs[slot] = boxed;
        return boxed;
      }
      case Tag.BackRef: {
        const i = r.u32();
        if (i >= this.refs.length) throw corrupt('a reference to an object not seen yet');
        return this.refs[i];
      }
      case Tag.Beside: {
        const i = r.u32();
        if (i >= r.beside.length) throw corrupt('an object beside the message that is not there');
        const object = r.beside[i];
        this.refs.push(object);
        return object;
      }
      case Tag.Ref: {
        if (this.revive === undefined) throw new Error('loopthread: a reference where none can be received');
        const slot = this.refs.length;
        this.refs.push(undefined);
        const value = this.revive(this.get());
        this.refs[slot] = value;
        return value;
      }
      default:
        throw corrupt(`unknown tag ${String(tag)}`);
    }
  }
}
