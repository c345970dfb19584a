import { createError, setField, setStack } from './error-serde.js';
import { Tag, viewKinds } from './tags.js';
import type { Reader } from './writer.js';

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
        const n = r.u32();
        const a: unknown[] = new Array<unknown>(n);
        this.refs.push(a);
        for (let i = 0; i < n; i++) a[i] = this.get();
        return a;
      }
      case Tag.Object: {
        const n = r.u32();
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
        const n = r.u32();
        const m = new Map<unknown, unknown>();
        this.refs.push(m);
        for (let i = 0; i < n; i++) {
          const k = this.get();
          m.set(k, this.get());
        }
        return m;
      }
      case Tag.Set: {
        const n = r.u32();
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
      case Tag.View: {
        const kind = viewKinds[r.u8()];
        const bytes = r.bytes();
        let view: ArrayBufferView;
        if (kind === Buffer) view = Buffer.from(bytes);
        else if (kind === DataView) view = new DataView(bytes);
        else if (kind === undefined) throw new Error('loopthread: corrupt message (unknown view kind)');
        else view = new (kind as typeof Uint8Array)(bytes);
        this.refs.push(view);
        return view;
      }
      case Tag.Error: {
        const ctor = r.string();
        const name = r.string();
        const error = createError(ctor, name, r.string());
        this.refs.push(error);
        setStack(error, this.get());
        const n = r.u32();
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
      case Tag.BackRef:
        return this.refs[r.u32()];
      case Tag.Beside: {
        const object = r.beside[r.u32()];
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
        throw new Error(`loopthread: corrupt message (unknown tag ${String(tag)})`);
    }
  }
}
