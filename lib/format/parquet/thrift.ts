import { FormatError } from '../../errors.js';

/*
 * Thrift compact protocol, the encoding of Parquet's footer and page headers
 * (thrift/doc/specs/thrift-compact-protocol.md): a field header holds the field id delta and
 * the type in one byte, integers are zigzag varints, binary is a varint length and bytes,
 * a struct ends with a 0 byte. Only what parquet.thrift uses.
 */

/** Compact protocol type codes. */
export const T = { TRUE: 1, FALSE: 2, BYTE: 3, I16: 4, I32: 5, I64: 6, DOUBLE: 7, BINARY: 8, LIST: 9, SET: 10, MAP: 11, STRUCT: 12 } as const;

/** A value to write: numbers are i32 unless wrapped. */
export type TValue =
  | { t: 'i8'; v: number }
  | { t: 'i32'; v: number }
  | { t: 'i64'; v: number | bigint }
  | { t: 'bool'; v: boolean }
  | { t: 'bin'; v: Uint8Array | string }
  | { t: 'struct'; v: TStruct }
  | { t: 'list'; elem: 'i32' | 'bin' | 'struct'; v: (number | Uint8Array | string | TStruct)[] };

/** A struct: field id → value (undefined fields are skipped). */
export type TStruct = Record<number, TValue | undefined>;

export const i8 = (v: number): TValue => ({ t: 'i8', v });
export const i32 = (v: number): TValue => ({ t: 'i32', v });
export const i64 = (v: number | bigint): TValue => ({ t: 'i64', v });
export const bool = (v: boolean): TValue => ({ t: 'bool', v });
export const bin = (v: Uint8Array | string): TValue => ({ t: 'bin', v });
export const struct = (v: TStruct): TValue => ({ t: 'struct', v });
export const list = (elem: 'i32' | 'bin' | 'struct', v: (number | Uint8Array | string | TStruct)[]): TValue => ({ t: 'list', elem, v });

const utf8 = new TextEncoder();

/** Appends compact-protocol bytes to a growing buffer. */
export class ThriftWriter {
  #u8 = new Uint8Array(256);
  len = 0;

  #room(n: number): void {
    if (this.len + n <= this.#u8.length) return;
    let cap = this.#u8.length * 2;
    while (cap < this.len + n) cap *= 2;
    const u8 = new Uint8Array(cap);
    u8.set(this.#u8.subarray(0, this.len));
    this.#u8 = u8;
  }

  byte(b: number): void {
    this.#room(1);
    this.#u8[this.len++] = b & 0xff;
  }

  varint(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v < 2 ** 31) {
      while (v >= 0x80) {
        this.byte((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      this.byte(v);
      return;
    }
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }

  zigzag(v: number | bigint): void {
    if (typeof v === 'number' && Number.isSafeInteger(v) && Math.abs(v) < 2 ** 30) {
      this.varint(v >= 0 ? v * 2 : -v * 2 - 1);
      return;
    }
    const x = BigInt(v);
    this.varint(BigInt.asUintN(64, (x << 1n) ^ (x >> 63n)));
  }

  bytes(b: Uint8Array | string): void {
    const u = typeof b === 'string' ? utf8.encode(b) : b;
    this.varint(u.length);
    this.#room(u.length);
    this.#u8.set(u, this.len);
    this.len += u.length;
  }

  struct(s: TStruct): void {
    let last = 0;
    const ids = Object.keys(s).map(Number).sort((a, b) => a - b);
    for (const id of ids) {
      const f = s[id];
      if (f === undefined) continue;
      const type = f.t === 'bool' ? (f.v ? T.TRUE : T.FALSE) : TYPE[f.t];
      const d = id - last;
      if (d > 0 && d <= 15) this.byte((d << 4) | type);
      else {
        this.byte(type);
        this.zigzag(id);
      }
      last = id;
      this.#value(f);
    }
    this.byte(0);
  }

  #value(f: TValue): void {
    switch (f.t) {
      case 'i8': this.byte(f.v); break;
      case 'i32': case 'i64': this.zigzag(f.v); break;
      case 'bool': break; // carried in the field header
      case 'bin': this.bytes(f.v); break;
      case 'struct': this.struct(f.v); break;
      case 'list': {
        const et = TYPE[f.elem];
        const n = f.v.length;
        if (n < 15) this.byte((n << 4) | et);
        else {
          this.byte(0xf0 | et);
          this.varint(n);
        }
        for (const e of f.v) {
          if (f.elem === 'i32') this.zigzag(e as number);
          else if (f.elem === 'bin') this.bytes(e as Uint8Array | string);
          else this.struct(e as TStruct);
        }
        break;
      }
    }
  }

  take(): Uint8Array {
    return this.#u8.slice(0, this.len);
  }
}

const TYPE = { i8: T.BYTE, i32: T.I32, i64: T.I64, bin: T.BINARY, struct: T.STRUCT, bool: T.TRUE, list: T.LIST } as const;

/** Encode one struct. */
export function encodeStruct(s: TStruct): Uint8Array {
  const w = new ThriftWriter();
  w.struct(s);
  return w.take();
}

/** A decoded value: i32/i64 as number when safe (else bigint), binary as bytes, structs by field id. */
export type RValue = number | bigint | boolean | Uint8Array | RStruct | RValue[];
/** A decoded struct: field id → value. */
export type RStruct = Map<number, RValue>;

/** Reads compact-protocol structs from untrusted bytes; every read is bounds-checked. */
export class ThriftReader {
  pos: number;
  #depth = 0;
  constructor(readonly u8: Uint8Array, pos = 0, readonly end = u8.length) {
    this.pos = pos;
  }

  #fail(what: string): never {
    throw new FormatError(`Parquet metadata is malformed: ${what}`);
  }

  byte(): number {
    if (this.pos >= this.end) this.#fail('unexpected end');
    return this.u8[this.pos++]!;
  }

  varint(): bigint | number {
    let shift = 0;
    let n = 0;
    for (;;) {
      const b = this.byte();
      if (shift < 28) n |= (b & 0x7f) << shift;
      else {
        // Long values: redo in BigInt.
        let x = BigInt(n >>> 0);
        let s = BigInt(shift);
        let c = b;
        for (;;) {
          x |= BigInt(c & 0x7f) << s;
          if (!(c & 0x80)) return x;
          s += 7n;
          if (s > 70n) this.#fail('varint too long');
          c = this.byte();
        }
      }
      if (!(b & 0x80)) return n >>> 0;
      shift += 7;
    }
  }

  zigzag(): number | bigint {
    const v = this.varint();
    if (typeof v === 'number') return (v >>> 1) ^ -(v & 1);
    const x = (v >> 1n) ^ -(v & 1n);
    return Number.isSafeInteger(Number(x)) ? Number(x) : BigInt.asIntN(64, x);
  }

  binary(): Uint8Array {
    const n = Number(this.varint());
    if (n > this.end - this.pos) this.#fail('binary runs past the end');
    const b = this.u8.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  #value(type: number): RValue {
    switch (type) {
      case T.TRUE: return true;
      case T.FALSE: return false;
      case T.BYTE: return this.byte();
      case T.I16: case T.I32: case T.I64: return this.zigzag();
      case T.DOUBLE: {
        if (this.end - this.pos < 8) this.#fail('double runs past the end');
        const v = Buffer.from(this.u8.buffer, this.u8.byteOffset + this.pos, 8).readDoubleLE(0);
        this.pos += 8;
        return v;
      }
      case T.BINARY: return this.binary();
      case T.LIST: case T.SET: {
        const h = this.byte();
        let n = h >> 4;
        if (n === 15) n = Number(this.varint());
        const et = h & 0x0f;
        if (n > this.end - this.pos) this.#fail('list longer than its bytes');
        const out: RValue[] = [];
        for (let i = 0; i < n; i++) out.push(et === T.TRUE || et === T.FALSE ? this.byte() === 1 : this.#value(et));
        return out;
      }
      case T.MAP: {
        const n = Number(this.varint());
        if (n === 0) return [];
        const kv = this.byte();
        const out: RValue[] = [];
        for (let i = 0; i < n; i++) out.push([this.#value(kv >> 4), this.#value(kv & 0x0f)]);
        return out;
      }
      case T.STRUCT: return this.struct();
      default: return this.#fail(`unknown type ${type}`);
    }
  }

  struct(): RStruct {
    if (++this.#depth > 32) this.#fail('nested too deeply');
    const m: RStruct = new Map();
    let last = 0;
    for (;;) {
      const h = this.byte();
      if (h === 0) break;
      const d = h >> 4;
      const id = d === 0 ? Number(this.zigzag()) : last + d;
      last = id;
      m.set(id, this.#value(h & 0x0f));
    }
    this.#depth--;
    return m;
  }
}
