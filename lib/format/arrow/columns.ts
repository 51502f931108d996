import { makeData, RecordBatch, Struct, type Data, type DataType, type Schema } from 'apache-arrow';
import { arrowSchema, arrowType, type ColumnSpec } from './pgtypes.js';
import { putDecimal128 } from './decimal.js';
import { decimalBytes } from '../parquet/schema.js';
import { numericToText, valueToText } from './pgtext.js';
import { binaryHeaderEnd, isBinaryTrailer } from '../../pg/copy-binary.js';
import { CopyProtocolError, InternalError, ValueConversionError } from '../../errors.js';

/**
 * Typed Arrow columns filled straight from PostgreSQL BINARY COPY rows.
 *
 * COPY BINARY layout (protocol docs, "Binary Format"): a 19-byte header (11-byte signature,
 * int32 flags, int32 header-extension length + extension), then per row an int16 field count
 * and per field an int32 length (-1 for NULL) and the type's `send` bytes, all big-endian;
 * the file ends with an int16 -1. Arrow wants little-endian values and its own epochs, so
 * each column kind converts on append. Buffers are plain byte arrays grown by doubling.
 */

const INITIAL = 1024;
const utf8 = new TextEncoder();

/** A growable little-endian byte buffer (also the Parquet encoder's output buffer). */
export class Bytes {
  u8: Uint8Array;
  dv: DataView;
  len = 0;
  constructor(cap = INITIAL) {
    this.u8 = new Uint8Array(cap);
    this.dv = new DataView(this.u8.buffer);
  }
  /** Make room for `n` more bytes and return the current length. */
  reserve(n: number): number {
    const need = this.len + n;
    if (need > this.u8.length) {
      let cap = this.u8.length * 2;
      while (cap < need) cap *= 2;
      this.#realloc(cap);
    }
    return this.len;
  }
  /** Grow the capacity to `cap` bytes exactly, when it is less (content kept). */
  presize(cap: number): void {
    if (cap > this.u8.length) this.#realloc(cap);
  }
  #realloc(cap: number): void {
    const u8 = new Uint8Array(cap);
    u8.set(this.u8.subarray(0, this.len));
    this.u8 = u8;
    this.dv = new DataView(u8.buffer);
  }
  /**
   * Take over `prev`'s memory, bytes and all: whoever fills it writes every byte it later
   * takes (NULL slots included), so nothing is cleared.
   */
  adopt(prev: Bytes): void {
    if (prev.u8.length <= this.u8.length) return;
    prev.u8.set(this.u8.subarray(0, this.len)); // what this one holds already (an offsets[0])
    this.u8 = prev.u8;
    this.dv = prev.dv;
  }
  /** The filled bytes (a view from offset 0, so aligned for any typed array). */
  take(): Uint8Array {
    return this.u8.subarray(0, this.len);
  }
}

/** View bytes as the typed array a fixed-width Arrow type stores its values in. */
function typedView(type: DataType, u8: Uint8Array): ArrayBufferView {
  const Ctor = (type as unknown as { ArrayType: { new (b: ArrayBufferLike, o: number, n: number): ArrayBufferView; BYTES_PER_ELEMENT: number } }).ArrayType;
  return new Ctor(u8.buffer, u8.byteOffset, u8.byteLength / Ctor.BYTES_PER_ELEMENT);
}

/** No NULL positions yet (never written: the first NULL grows it). */
const NO_NULLS: Int32Array = new Int32Array(0);

/** One column being filled. `value` returns false when the Arrow type cannot hold the value. */
abstract class Column {
  n = 0;
  nulls = 0;
  // Positions of NULLs (the first `nulls` entries): most columns have few, so validity costs
  // nothing per value. An Int32Array kept from batch to batch (adopt), not a JS array: a JS
  // array grown per row group was promoted to the old generation and, at a list column's
  // NULL element per row, made V8 run a full collection every few row groups (issue 16).
  #nullAt: Int32Array = NO_NULLS;
  /** Bytes every non-NULL value of this column has in COPY BINARY (its `send` form); -1: varies. */
  wire = -1;
  constructor(readonly spec: ColumnSpec) {}

  abstract value(b: Buffer, bv: DataView, off: number, len: number): boolean;

  /**
   * Append the values of `n` rows whose field offsets and lengths in `b` (`bv`: a DataView of
   * the same bytes) are `pos[k]`, `lens[k]` for k = c, c + stride, …; a length of -1 is NULL. Returns the first row the Arrow type cannot
   * hold, or -1. Subclasses on the hot path repeat this loop so that each loop calls one
   * `value` (monomorphic, inlined) instead of one call site serving every column class.
   */
  values(b: Buffer, bv: DataView, pos: Int32Array, lens: Int32Array, n: number, stride: number, c: number): number {
    for (let r = 0, k = c; r < n; r++, k += stride) {
      const len = lens[k]!;
      if (len < 0) this.appendNull();
      else if (!this.value(b, bv, pos[k]!, len)) return r;
    }
    return -1;
  }

  /** The column's buffers, in a fixed order (for sizing the next batch like this one). */
  abstract bufs(): Bytes[];
  protected abstract placeholder(): void;

  /** Start with the capacities the previous batch ended with: no regrowth, no copying. */
  presize(prev: Column): void {
    const a = this.bufs();
    const b = prev.bufs();
    for (let i = 0; i < a.length; i++) a[i]!.presize(b[i]!.u8.length);
    if (prev.nulls > this.#nullAt.length) this.#nullAt = new Int32Array(prev.nulls);
    if (this instanceof ListColumn && prev instanceof ListColumn) this.child.presize(prev.child);
  }

  /**
   * Grow every buffer to `f` times what it holds (plus a little): a builder's first batch,
   * extrapolated from its first rows, so it is not grown by doubling (each doubling copies
   * the column so far and leaves the old buffer to the GC).
   */
  extrapolate(f: number): void {
    for (const b of this.bufs()) b.presize(Math.ceil(b.len * f) + 64);
    const k = Math.ceil(this.nulls * f);
    if (this.nulls > 0 && k > this.#nullAt.length) this.#nullAt = grown(this.#nullAt, k, this.nulls);
    if (this instanceof ListColumn) this.child.extrapolate(f);
  }

  /** Reuse the previous batch's buffers (see BatchBuilderOptions.reuseBuffers). */
  adopt(prev: Column): void {
    const a = this.bufs();
    const b = prev.bufs();
    if (prev.constructor !== this.constructor || a.length !== b.length) return this.presize(prev);
    for (let i = 0; i < a.length; i++) a[i]!.adopt(b[i]!);
    // The taken batch's validity was built when it was taken.
    if (prev.#nullAt.length > this.#nullAt.length) this.#nullAt = prev.#nullAt;
    if (this instanceof ListColumn && prev instanceof ListColumn) this.child.adopt(prev.child);
  }
  protected abstract build(length: number, nullCount: number, nullBitmap: Uint8Array | undefined): Data;

  appendNull(): void {
    this.placeholder();
    this.markNull();
  }

  /** Record row `n` as NULL and count it (its placeholder already written). */
  protected markNull(): void {
    const k = this.nulls;
    if (k === this.#nullAt.length) this.#nullAt = grown(this.#nullAt, Math.max(64, 2 * k), k);
    this.#nullAt[k] = this.n;
    this.nulls = k + 1;
    this.n++;
  }

  /** The validity bitmap (undefined without NULLs). */
  #bitmap(): Uint8Array | undefined {
    if (this.nulls === 0) return undefined;
    const bitmap = new Uint8Array((this.n + 7) >> 3).fill(0xff);
    if (this.n & 7) bitmap[bitmap.length - 1] = (1 << (this.n & 7)) - 1;
    const at = this.#nullAt;
    for (let k = 0; k < this.nulls; k++) {
      const i = at[k]!;
      bitmap[i >> 3]! &= ~(1 << (i & 7));
    }
    return bitmap;
  }

  finish(): Data {
    return this.build(this.n, this.nulls, this.#bitmap());
  }

  /** The column as a {@link PlainColumn} (a builder of the `plain` layout). */
  plain(): PlainColumn {
    return { length: this.n, nulls: this.nulls, validity: this.#bitmap(), values: EMPTY, ...this.plainData() };
  }
  /** What {@link plain} adds to the slot count and validity. */
  protected abstract plainData(): Partial<PlainColumn>;
}

const EMPTY = new Uint8Array(0);

/**
 * A column built in the `plain` layout (BatchBuilderOptions.layout): the Parquet PLAIN
 * encoding of its non-NULL values, in slot order, so a Parquet page takes them as they are.
 * Fixed-width values are the Parquet physical type's bytes (int2 as INT32, a decimal as
 * INT32/INT64 or big-endian FIXED_LEN_BYTE_ARRAY, see lib/format/parquet/schema.ts), booleans
 * one bit each, variable-width values a 4-byte little-endian length and the bytes. NULL slots
 * take no room.
 */
export interface PlainColumn {
  /** Slots: rows, or a list column's elements. */
  length: number;
  nulls: number;
  /** Validity bit per slot, LSB first (undefined: no NULL). */
  validity: Uint8Array | undefined;
  /** PLAIN bytes of the non-NULL values (empty for a list: see `child`). */
  values: Uint8Array;
  /**
   * Variable width: `length + 1` offsets into `values`, slot k's bytes (its length word
   * included) being [offsets[k], offsets[k + 1]) (equal for NULL). List: each row's first
   * element in `child`, and the end.
   */
  offsets?: Int32Array;
  /** List: the elements. */
  child?: PlainColumn;
}

/** How a fixed-width column turns a field's `send` bytes into its Arrow value. */
const enum Op { I16, I32, I64, Date, Timestamp, Time, Interval, Uuid, Decimal }
/** Arrow value width of each {@link Op}. */
const WIDTH = [2, 4, 8, 4, 8, 8, 16, 16, 16];
/** COPY BINARY width of each {@link Op}; -1: varies. */
const WIRE = [2, 4, 8, 4, 8, 8, 16, 16, -1];

const TWO32 = 4294967296;
/** µs offset 1970 → 2000, split in 32-bit halves (0x00035D01_3B37E000) to avoid BigInt per value. */
const EPOCH_HI = 0x35d01;
const EPOCH_LO = 0x3b37e000;
const NS_MAX = 2n ** 63n - 1n;

/**
 * Fixed-width values: integers and floats (the byte-reversed PostgreSQL value, bit for bit),
 * dates, timestamps, times, intervals, uuids and decimals. One class with one conversion
 * switch, so the hot loop's call of {@link FixedColumn.put} is monomorphic (inlined) for
 * every kind. A NULL's slot is written as zeros (the buffer may be a previous batch's).
 */
class FixedColumn extends Column {
  #buf = new Bytes();
  readonly #op: Op;
  /** Bytes per value written: the Arrow width, or the Parquet one (`plain`). */
  readonly #w: number;
  readonly #scale: number;
  /** The `plain` layout: NULLs take no slot, values are written as Parquet's PLAIN. */
  readonly #plain: boolean;
  constructor(spec: ColumnSpec, op: Op, plain: boolean) {
    super(spec);
    this.#op = op;
    this.#plain = plain;
    this.#w = plain ? plainWidth(op, spec) : WIDTH[op]!;
    this.wire = WIRE[op]!;
    this.#scale = spec.scale ?? 0;
  }
  bufs(): Bytes[] { return [this.#buf]; }

  /** Write the value at `bv[off..]` at `dv[p..p+width)`; false (nothing written) when the Arrow type cannot hold it. */
  put(bv: DataView, off: number, dv: DataView, p: number): boolean {
    switch (this.#op) {
      case Op.I16: dv.setInt16(p, bv.getInt16(off), true); return true;
      // Two int32 halves, not one float64: a float load may change a NaN's bits.
      case Op.I32: dv.setInt32(p, bv.getInt32(off), true); return true;
      case Op.I64:
        dv.setInt32(p, bv.getInt32(off + 4), true);
        dv.setInt32(p + 4, bv.getInt32(off), true);
        return true;
      case Op.Date: {
        // ±infinity (INT32_MIN/MAX) stay; PostgreSQL's range stays far inside int32 after the shift.
        const d = bv.getInt32(off);
        dv.setInt32(p, d === 0x7fffffff || d === -0x80000000 ? d : d + 10957, true);
        return true;
      }
      case Op.Timestamp: {
        const hi = bv.getInt32(off);
        const lo = bv.getUint32(off + 4);
        if ((hi === 0x7fffffff && lo === 0xffffffff) || (hi === -0x80000000 && lo === 0)) {
          // ±infinity: kept as INT64_MAX / INT64_MIN.
          dv.setUint32(p, lo, true);
          dv.setInt32(p + 4, hi, true);
          return true;
        }
        let lo2 = lo + EPOCH_LO;
        let hi2 = hi + EPOCH_HI;
        if (lo2 >= TWO32) { lo2 -= TWO32; hi2 += 1; }
        // The last ~30 years of PostgreSQL's range do not fit int64 µs since 1970, and the
        // extremes are reserved for infinity.
        if (hi2 > 0x7fffffff || (hi2 === 0x7fffffff && lo2 === 0xffffffff)) return false;
        dv.setUint32(p, lo2, true);
        dv.setInt32(p + 4, hi2, true);
        return true;
      }
      case Op.Time: {
        // µs since midnight; Arrow's Time64 excludes PostgreSQL's 24:00:00.
        const hi = bv.getInt32(off);
        const lo = bv.getUint32(off + 4);
        if (hi * TWO32 + lo >= 86_400_000_000) return false;
        dv.setUint32(p, lo, true);
        dv.setInt32(p + 4, hi, true);
        return true;
      }
      case Op.Interval: return putInterval(bv, off, dv, p);
      case Op.Uuid:
        // The 16 bytes as they are, 4 at a time (a subarray per value would allocate).
        for (let j = 0; j < 16; j += 4) dv.setInt32(p + j, bv.getInt32(off + j, true), true);
        return true;
      case Op.Decimal: return putDecimal128(bv, off, dv, p, this.#scale);
    }
  }

  /**
   * {@link put} for the `plain` layout: int2 widened to INT32, a decimal as its Parquet
   * physical value (the low 4 or 8 bytes of the Decimal128, little-endian, or its low bytes
   * big-endian), the rest as Arrow has them (the same bytes as Parquet's PLAIN).
   */
  putPlain(bv: DataView, off: number, dv: DataView, p: number): boolean {
    switch (this.#op) {
      case Op.I16: dv.setInt32(p, bv.getInt16(off), true); return true;
      case Op.Decimal: {
        if (!putDecimal128(bv, off, DEC, 0, this.#scale)) return false;
        const w = this.#w;
        if (w === 4 || w === 8) {
          dv.setUint32(p, DEC.getUint32(0, true), true);
          if (w === 8) dv.setUint32(p + 4, DEC.getUint32(4, true), true);
        } else {
          for (let b = 0; b < w; b++) dv.setUint8(p + b, DEC8[w - 1 - b]!);
        }
        return true;
      }
      default: return this.put(bv, off, dv, p);
    }
  }

  value(_b: Buffer, bv: DataView, off: number): boolean {
    const buf = this.#buf;
    const p = buf.reserve(this.#w);
    if (!(this.#plain ? this.putPlain(bv, off, buf.dv, p) : this.put(bv, off, buf.dv, p))) return false;
    buf.len = p + this.#w;
    this.n++;
    return true;
  }

  override values(b: Buffer, bv: DataView, pos: Int32Array, lens: Int32Array, n: number, stride: number, c: number): number {
    if (this.#plain) return this.#plainValues(b, bv, pos, lens, n, stride, c);
    const w = this.#w;
    const buf = this.#buf;
    buf.reserve(w * n);
    const dv = buf.dv;
    let p = buf.len;
    for (let r = 0, k = c; r < n; r++, k += stride, p += w) {
      if (lens[k]! < 0) {
        buf.u8.fill(0, p, p + w);
        this.markNull();
      } else if (this.put(bv, pos[k]!, dv, p)) this.n++;
      else {
        buf.len = p;
        return r;
      }
    }
    buf.len = p;
    return -1;
  }

  /** The loop of {@link values} for the `plain` layout: a NULL writes nothing. */
  #plainValues(_b: Buffer, bv: DataView, pos: Int32Array, lens: Int32Array, n: number, stride: number, c: number): number {
    const w = this.#w;
    const buf = this.#buf;
    buf.reserve(w * n);
    const dv = buf.dv;
    let p = buf.len;
    const op = this.#op;
    if (op === Op.I32 || op === Op.I64) {
      // Integers and floats (the byte-reversed value, never refused): no conversion switch per value.
      for (let r = 0, k = c; r < n; r++, k += stride) {
        if (lens[k]! < 0) this.markNull();
        else {
          const off = pos[k]!;
          if (op === Op.I32) dv.setInt32(p, bv.getInt32(off), true);
          else {
            dv.setInt32(p, bv.getInt32(off + 4), true);
            dv.setInt32(p + 4, bv.getInt32(off), true);
          }
          this.n++;
          p += w;
        }
      }
      buf.len = p;
      return -1;
    }
    for (let r = 0, k = c; r < n; r++, k += stride) {
      if (lens[k]! < 0) this.markNull();
      else if (this.putPlain(bv, pos[k]!, dv, p)) {
        this.n++;
        p += w;
      } else {
        buf.len = p;
        return r;
      }
    }
    buf.len = p;
    return -1;
  }
  protected placeholder(): void {
    if (this.#plain) return;
    const p = this.#buf.reserve(this.#w);
    this.#buf.u8.fill(0, p, p + this.#w);
    this.#buf.len = p + this.#w;
  }
  protected plainData(): Partial<PlainColumn> {
    return { values: this.#buf.take() };
  }
  protected build(length: number, nullCount: number, nullBitmap: Uint8Array | undefined): Data {
    const type = arrowType(this.spec);
    const data = typedView(type, this.#buf.take());
    return makeData({ type, length, nullCount, nullBitmap, data } as never);
  }
}

/** Scratch of one Decimal128 (the `plain` layout keeps only its low bytes). */
const DEC = new DataView(new ArrayBuffer(16));
const DEC8 = new Uint8Array(DEC.buffer);

/** Bytes of a value of `op` in the `plain` layout: the Parquet physical width (schema.ts leafType). */
function plainWidth(op: Op, spec: ColumnSpec): number {
  if (op === Op.I16) return 4;
  if (op !== Op.Decimal) return WIDTH[op]!;
  const p = spec.precision!;
  return p <= 9 ? 4 : p <= 18 ? 8 : decimalBytes(p);
}

/** interval → MonthDayNano: months, days, then µs × 1000 as int64 (false when that overflows). */
function putInterval(bv: DataView, off: number, dv: DataView, p: number): boolean {
  const hi = bv.getInt32(off);
  if (hi >= -2048 && hi < 2048) {
    // |µs| < 2^43: µs × 1000 < 2^53 stays exact in a double.
    const ns = (hi * TWO32 + bv.getUint32(off + 4)) * 1000;
    const nhi = Math.floor(ns / TWO32);
    dv.setUint32(p + 8, ns - nhi * TWO32, true);
    dv.setInt32(p + 12, nhi, true);
  } else {
    const ns = bv.getBigInt64(off) * 1000n;
    if (ns > NS_MAX || ns < -NS_MAX - 1n) return false;
    dv.setBigInt64(p + 8, ns, true);
  }
  dv.setInt32(p, bv.getInt32(off + 12), true); // months
  dv.setInt32(p + 4, bv.getInt32(off + 8), true); // days
  return true;
}

class BoolColumn extends Column {
  #bits = new Bytes(INITIAL / 8);
  override wire = 1;
  /** The `plain` layout: NULLs take no bit. */
  readonly #plain: boolean;
  constructor(spec: ColumnSpec, plain: boolean) {
    super(spec);
    this.#plain = plain;
  }
  // The loop of Column.values, repeated here so its call of `value` is monomorphic.
  override values(b: Buffer, bv: DataView, pos: Int32Array, lens: Int32Array, n: number, stride: number, c: number): number {
    for (let r = 0, k = c; r < n; r++, k += stride) {
      if (lens[k]! < 0) this.appendNull();
      else this.value(b, bv, pos[k]!);
    }
    return -1;
  }

  bufs(): Bytes[] { return [this.#bits]; }
  value(b: Buffer, _bv: DataView, off: number): boolean {
    const i = this.#plain ? this.n - this.nulls : this.n;
    this.#grow(i);
    if (b[off]) this.#bits.u8[i >> 3]! |= 1 << (i & 7);
    this.n++;
    return true;
  }
  /** Room (zeroed) for bit `i`. */
  #grow(i: number): void {
    const need = (i >> 3) + 1;
    if (need > this.#bits.len) {
      this.#bits.reserve(need - this.#bits.len);
      this.#bits.u8.fill(0, this.#bits.len, need);
      this.#bits.len = need;
    }
  }
  protected placeholder(): void {
    if (!this.#plain) this.#grow(this.n);
  }
  protected build(length: number, nullCount: number, nullBitmap: Uint8Array | undefined): Data {
    return makeData({ type: arrowType(this.spec), length, nullCount, nullBitmap, data: this.#bits.take() } as never);
  }
  protected plainData(): Partial<PlainColumn> {
    // Exactly the bytes of the values' bits (a column of NULLs only has none).
    return { values: this.#bits.take().subarray(0, (this.n - this.nulls + 7) >> 3) };
  }
}

/** How a variable-width column turns the field bytes into the Arrow value bytes. */
type VarMode = 'raw' | 'jsonb' | 'numeric' | 'demoted';

class VarColumn extends Column {
  #offsets = new Bytes();
  #data = new Bytes();
  bufs(): Bytes[] { return [this.#offsets, this.#data]; }
  readonly #mode: VarMode;
  /** Bytes before each value: 4 in the `plain` layout (its length, little-endian), else 0. */
  readonly #pre: number;
  constructor(spec: ColumnSpec, mode: VarMode, plain: boolean) {
    super(spec);
    this.#mode = mode;
    this.#pre = plain ? 4 : 0;
    this.#offsets.reserve(4);
    this.#offsets.len = 4; // offsets[0] = 0
  }
  value(b: Buffer, _bv: DataView, off: number, len: number): boolean {
    switch (this.#mode) {
      case 'raw': this.#bytes(b, off, len); break;
      case 'jsonb':
        if (len < 1) throw new CopyProtocolError(`column ${this.spec.name}: a jsonb value without its version byte`);
        this.#bytes(b, off + 1, len - 1); // skip the jsonb version byte (1)
        break;
      case 'numeric': this.#text(numericToText(b, off)); break;
      case 'demoted': this.#text(valueToText(this.spec.oid, b, off, len)); break;
    }
    this.n++;
    return true;
  }
  override values(b: Buffer, bv: DataView, pos: Int32Array, lens: Int32Array, n: number, stride: number, c: number): number {
    const mode = this.#mode;
    if (mode !== 'raw' && mode !== 'jsonb') {
      for (let r = 0, k = c; r < n; r++, k += stride) {
        const len = lens[k]!;
        if (len < 0) this.appendNull();
        else this.value(b, bv, pos[k]!, len);
      }
      return -1;
    }
    // jsonb: skip the version byte (1) of each value.
    const skip = mode === 'jsonb' ? 1 : 0;
    let total = 0;
    for (let r = 0, k = c; r < n; r++, k += stride) {
      const len = lens[k]!;
      if (len >= 0) {
        if (len < skip) throw new CopyProtocolError(`column ${this.spec.name}: a jsonb value without its version byte`);
        total += len - skip + this.#pre;
      }
    }
    const d = this.#data;
    const o = this.#offsets;
    // Arrow's Utf8/Binary offsets are int32.
    if (d.len + total > 0x7fffffff) throw new ValueConversionError(`column ${this.spec.name}: more than 2 GiB in one record batch`);
    d.reserve(total);
    o.reserve(4 * n);
    const u8 = d.u8;
    const ddv = d.dv;
    const odv = o.dv;
    let q = d.len;
    let op = o.len;
    const pre = this.#pre;
    for (let r = 0, k = c; r < n; r++, k += stride) {
      const len = lens[k]! - skip;
      if (len < 0) this.markNull();
      else {
        const off = pos[k]! + skip;
        if (pre) {
          ddv.setInt32(q, len, true);
          q += 4;
        }
        // Short values 4 bytes at a time through DataViews: Buffer#copy allocates a view per
        // call and only pays from about 150 bytes on (measured on Node 20).
        if (len < 160) {
          // Eight bytes a loop turn (two words): 15-25% less than one word per turn.
          let j = 0;
          for (; j + 8 <= len; j += 8) {
            ddv.setInt32(q + j, bv.getInt32(off + j, true), true);
            ddv.setInt32(q + j + 4, bv.getInt32(off + j + 4, true), true);
          }
          if (j + 4 <= len) {
            ddv.setInt32(q + j, bv.getInt32(off + j, true), true);
            j += 4;
          }
          for (; j < len; j++) u8[q + j] = b[off + j]!;
        } else b.copy(u8, q, off, off + len);
        q += len;
        this.n++;
      }
      odv.setInt32(op, q, true);
      op += 4;
    }
    d.len = q;
    o.len = op;
    return -1;
  }
  #bytes(b: Buffer, off: number, len: number): void {
    const d = this.#data;
    const pre = this.#pre;
    let p = d.len + pre + len <= d.u8.length ? d.len : d.reserve(pre + len);
    if (pre) {
      d.dv.setInt32(p, len, true);
      p += 4;
    }
    if (len <= 32) {
      const u8 = d.u8;
      for (let k = 0; k < len; k++) u8[p + k] = b[off + k]!;
    } else {
      b.copy(d.u8, p, off, off + len);
    }
    d.len = p + len;
    this.#end();
  }
  #text(s: string): void {
    const max = s.length * 3;
    const pre = this.#pre;
    const d = this.#data;
    const p = d.reserve(pre + max);
    const { written } = utf8.encodeInto(s, d.u8.subarray(p + pre, p + pre + max));
    if (pre) d.dv.setInt32(p, written, true);
    d.len += pre + written;
    this.#end();
  }
  #end(): void {
    const o = this.#offsets;
    const p = o.len + 4 <= o.u8.length ? o.len : o.reserve(4);
    // Arrow's Utf8/Binary offsets are int32.
    if (this.#data.len > 0x7fffffff) throw new ValueConversionError(`column ${this.spec.name}: more than 2 GiB in one record batch`);
    o.dv.setInt32(p, this.#data.len, true);
    o.len = p + 4;
  }
  protected placeholder(): void {
    this.#end();
  }
  protected build(length: number, nullCount: number, nullBitmap: Uint8Array | undefined): Data {
    const o = this.#offsets.take();
    return makeData({
      type: arrowType(this.spec), length, nullCount, nullBitmap,
      valueOffsets: new Int32Array(o.buffer, 0, o.byteLength / 4), data: this.#data.take(),
    } as never);
  }
  protected plainData(): Partial<PlainColumn> {
    const o = this.#offsets.take();
    return { values: this.#data.take(), offsets: new Int32Array(o.buffer, 0, o.byteLength / 4) };
  }
}

// Offsets and lengths of the elements of one run's arrays (list elements are never lists).
let elemPos: Int32Array = new Int32Array(1024);
let elemLens: Int32Array = new Int32Array(1024);
const onePos = new Int32Array(1);
const oneLen = new Int32Array(1);

/** One-dimensional arrays with lower bound 1 as Arrow lists. */
class ListColumn extends Column {
  #offsets = new Bytes();
  readonly child: Column;

  bufs(): Bytes[] { return [this.#offsets]; }
  constructor(spec: ColumnSpec, plain: boolean) {
    super(spec);
    this.child = makeColumn(spec.elem!, plain);
    this.#offsets.reserve(4);
    this.#offsets.len = 4;
  }
  value(b: Buffer, bv: DataView, off: number, len: number): boolean {
    onePos[0] = off;
    oneLen[0] = len;
    return this.values(b, bv, onePos, oneLen, 1, 1, 0) < 0;
  }
  /**
   * Frame the arrays of the run and collect their elements' offsets and lengths, then hand
   * all elements to the child column's own loop at once (no call per element).
   */
  override values(b: Buffer, bv: DataView, pos: Int32Array, lens: Int32Array, n: number, stride: number, c: number): number {
    const child = this.child;
    const wire = child.wire;
    const o = this.#offsets;
    let op = o.reserve(4 * n);
    const odv = o.dv;
    let total = 0;
    let end = child.n; // the child's length once this run's elements are in
    for (let r = 0, k = c; r < n; r++, k += stride) {
      const len = lens[k]!;
      if (len < 0) {
        this.markNull();
        odv.setInt32(op, end, true);
        op += 4;
        continue;
      }
      // array_send: int32 ndim, int32 has-nulls, int32 element oid, (int32 dim, int32 lbound) × ndim, elements.
      const off = pos[k]!;
      const stop = off + len;
      if (len < 12) throw arrayError(this.spec.name);
      const ndim = bv.getInt32(off);
      if (ndim !== 0) {
        if (ndim !== 1 || len < 20 || bv.getInt32(off + 16) !== 1) return r;
        const count = bv.getInt32(off + 12);
        // Every element needs at least its length word.
        if (count < 0 || count > (len - 20) / 4) throw arrayError(this.spec.name);
        if (total + count > elemPos.length) {
          const cap = Math.max(2 * elemPos.length, total + count);
          elemPos = grown(elemPos, cap, total);
          elemLens = grown(elemLens, cap, total);
        }
        let p = off + 20;
        for (let i = 0; i < count; i++, total++) {
          if (p + 4 > stop) throw arrayError(this.spec.name);
          const l = bv.getInt32(p);
          p += 4;
          elemPos[total] = p;
          elemLens[total] = l;
          if (l >= 0) {
            if (p + l > stop || (wire >= 0 && l !== wire)) throw fieldError(child.spec.name, l, wire);
            p += l;
          }
        }
        if (p !== stop) throw arrayError(this.spec.name);
        end += count;
      }
      odv.setInt32(op, end, true);
      op += 4;
      this.n++;
    }
    o.len = op;
    return child.values(b, bv, elemPos, elemLens, total, 1, 0) < 0 ? -1 : 0;
  }
  #end(): void {
    const p = this.#offsets.reserve(4);
    this.#offsets.dv.setInt32(p, this.child.n, true);
    this.#offsets.len += 4;
  }
  protected placeholder(): void {
    this.#end();
  }
  protected build(length: number, nullCount: number, nullBitmap: Uint8Array | undefined): Data {
    const o = this.#offsets.take();
    return makeData({
      type: arrowType(this.spec), length, nullCount, nullBitmap,
      valueOffsets: new Int32Array(o.buffer, 0, o.byteLength / 4), child: this.child.finish(),
    } as never);
  }
  protected plainData(): Partial<PlainColumn> {
    const o = this.#offsets.take();
    return { offsets: new Int32Array(o.buffer, 0, o.byteLength / 4), child: this.child.plain() };
  }
}

/** A copy of `a`'s first `keep` entries with room for `cap`. */
function grown(a: Int32Array, cap: number, keep: number): Int32Array {
  const g = new Int32Array(cap);
  g.set(a.subarray(0, keep));
  return g;
}

function fieldError(name: string, len: number, wire: number): CopyProtocolError {
  return new CopyProtocolError(wire >= 0 && len !== wire
    ? `COPY BINARY value of column ${name} has ${len} bytes, expected ${wire}`
    : `COPY BINARY value of column ${name} (${len} bytes) runs past its row`);
}

function arrayError(name: string): CopyProtocolError {
  return new CopyProtocolError(`COPY BINARY array of column ${name} does not match its length`);
}

/** The column of a spec; `plain`: the Parquet PLAIN layout (see {@link PlainColumn}). */
function makeColumn(s: ColumnSpec, plain: boolean): Column {
  if (s.demoted) return new VarColumn(s, 'demoted', plain);
  switch (s.kind) {
    case 'bool': return new BoolColumn(s, plain);
    case 'int2': return new FixedColumn(s, Op.I16, plain);
    case 'int4': case 'float4': return new FixedColumn(s, Op.I32, plain);
    case 'int8': case 'float8': return new FixedColumn(s, Op.I64, plain);
    case 'time': return new FixedColumn(s, Op.Time, plain);
    case 'decimal': return new FixedColumn(s, Op.Decimal, plain);
    case 'timestamp': case 'timestamptz': return new FixedColumn(s, Op.Timestamp, plain);
    case 'date': return new FixedColumn(s, Op.Date, plain);
    case 'interval': return new FixedColumn(s, Op.Interval, plain);
    case 'uuid': return new FixedColumn(s, Op.Uuid, plain);
    case 'list': return new ListColumn(s, plain);
    case 'numeric': return new VarColumn(s, 'numeric', plain);
    case 'jsonb': return new VarColumn(s, 'jsonb', plain);
    default: return new VarColumn(s, 'raw', plain); // text, bytea, fallback (read as ::text)
  }
}

/** What one COPY stream's rows are fed through: a slice of a chunk per row. */
export interface BuiltBatch {
  batch: RecordBatch;
  rows: number;
  /** Bumped whenever a column falls back to text: a new object must start. */
  generation: number;
}

/** What {@link BatchBuilder.takePlain} returns: a batch's columns in the `plain` layout. */
export interface PlainBatch {
  columns: PlainColumn[];
  rows: number;
  /** As {@link BuiltBatch.generation}. */
  generation: number;
}

/** Options of {@link BatchBuilder}. */
export interface BatchBuilderOptions {
  /** Rows per record batch (default 65536). */
  maxRows?: number;
  /** COPY bytes per record batch (default 4 MiB); a batch ends after the row that reaches it. */
  maxBytes?: number;
  /** Schema-level metadata of every object. */
  schemaMetadata?: Record<string, string>;
  /**
   * Build each batch in the previous batch's column buffers (default false): fewer large
   * allocations (and the garbage collections they trigger), but a batch's data is overwritten
   * by the next `take()`. Only for callers that are done with a batch (encoded and copied)
   * before they feed rows for the next one.
   */
  reuseBuffers?: boolean;
  /**
   * `arrow` (default): Arrow columns, taken as a record batch ({@link BatchBuilder.take}).
   * `plain`: each column's buffers hold the Parquet PLAIN encoding of its non-NULL values
   * ({@link PlainColumn}, taken by {@link BatchBuilder.takePlain}), so the Parquet encoder
   * copies or compresses them as they are instead of converting Arrow values a second time.
   */
  layout?: 'arrow' | 'plain';
}

/** Default rows per record batch. */
export const DEFAULT_BATCH_ROWS = 65_536;
/** Default COPY bytes per record batch. */
export const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * A builder's first batch is sized from its first 1/16 of `maxBytes`, then from its first
 * quarter (see BatchBuilder#presize): by then doubling has copied only that much, and the
 * shares of the columns are known.
 */
const PRESIZE_AFTER = 16;
/** Each presizing makes room for at most this many times the bytes so far (a small table stays small). */
const PRESIZE_STEP = 4;
/** Batches under this many COPY bytes are grown by doubling: copying them costs little. */
const PRESIZE_MIN_BYTES = 1 << 20;

/** Tuples `rowEnds[from..to)` of one chunk; the first starts at `start` (after a COPY header). */
interface Run {
  data: Buffer;
  rowEnds: Uint32Array;
  from: number;
  to: number;
  start: number;
}

/**
 * Parses COPY BINARY rows into typed columns and cuts them into record batches.
 *
 * Work is done per run of tuples (the rows of one chunk that go into the batch), not per row:
 * one pass over the run finds every field's offset and length (and checks the framing), then
 * each column converts its fields of the whole run in one loop of its own.
 *
 * When a value does not fit its column's Arrow type (see {@link ColumnSpec.demoted}), that
 * column switches to the value's exact text form for the rest of this builder's life, the
 * current batch is rebuilt from its retained rows, and `generation` changes so the writer
 * starts a new object (one schema per IPC file). The builder keeps the current batch's row
 * bytes for that: memory is about twice `maxBytes` plus one row, plus 8 bytes per field of
 * one chunk's rows for the field offsets (at most twice the chunk's size) and 8 bytes per
 * array element of one chunk's rows (list columns; also at most twice the chunk's size, one
 * scratch shared by all builders of the thread).
 */
export class BatchBuilder {
  specs: ColumnSpec[];
  schema: Schema;
  generation = 0;
  maxRows: number;
  maxBytes: number;
  rows = 0;
  bytes = 0;
  #cols: Column[] = [];
  #wire = new Int32Array(0);
  // The current batch's runs, kept for a rebuild.
  #runs: Run[] = [];
  // Field offsets and lengths of one run, row-major (reused).
  #pos = new Int32Array(0);
  #lens = new Int32Array(0);
  #inCopy = false;
  readonly #meta: Record<string, string>;
  readonly #reuse: boolean;
  readonly #plain: boolean;
  /** The previous batch's columns, whose buffers the next rows go into (reuseBuffers). */
  #recycle: Column[] | undefined;
  /** The first batch is presized when it reaches `maxBytes / #presizeAt` (0: sized for a whole batch, see #presize). */
  #presizeAt = PRESIZE_AFTER;

  constructor(specs: ColumnSpec[], o: BatchBuilderOptions = {}) {
    this.specs = specs.map((s) => ({ ...s }));
    this.maxRows = o.maxRows ?? DEFAULT_BATCH_ROWS;
    this.maxBytes = o.maxBytes ?? DEFAULT_BATCH_BYTES;
    this.#meta = o.schemaMetadata ?? {};
    this.#reuse = o.reuseBuffers ?? false;
    this.#plain = o.layout === 'plain';
    this.schema = arrowSchema(this.specs, this.#meta);
    this.#setCols(this.#make());
  }

  /** New columns for the current specs. */
  #make(): Column[] {
    return this.specs.map((s) => makeColumn(s, this.#plain));
  }

  #setCols(cols: Column[]): void {
    this.#cols = cols;
    this.#wire = Int32Array.from(cols, (c) => c.wire);
  }

  /** True when the current batch has reached its row or byte target. */
  get full(): boolean {
    return this.rows >= this.maxRows || this.bytes >= this.maxBytes;
  }

  /** True between a COPY stream's header and its trailer. */
  get inCopy(): boolean {
    return this.#inCopy;
  }

  /**
   * Feed rows `from`.. of a chunk until the batch is full. Returns the index of the next row
   * to feed (rowEnds.length when the chunk is used up). The COPY header and trailer are
   * recognised and skipped.
   */
  feed(data: Buffer, rowEnds: Uint32Array, from: number): number {
    const old = this.#recycle;
    if (old) {
      this.#recycle = undefined;
      if (old.length === this.#cols.length && this.rows === 0) this.#cols.forEach((c, i) => c.adopt(old[i]!));
    }
    let i = from;
    while (i < rowEnds.length) {
      let s = i === 0 ? 0 : rowEnds[i - 1]!;
      if (!this.#inCopy) {
        const e = rowEnds[i]!;
        s = binaryHeaderEnd(data, s, e);
        this.#inCopy = true;
        if (s === e) {
          i++;
          continue;
        }
      }
      // The run: tuples up to the trailer, the chunk's end or the batch's limits.
      const first = i;
      const start = s;
      let rows = this.rows;
      let bytes = this.bytes;
      let trailer = false;
      while (i < rowEnds.length) {
        const e = rowEnds[i]!;
        if (isBinaryTrailer(data, s, e)) {
          trailer = true;
          break;
        }
        rows++;
        bytes += e - s;
        i++;
        s = e;
        if (rows >= this.maxRows || bytes >= this.maxBytes) break;
      }
      if (i > first) {
        const run: Run = { data, rowEnds, from: first, to: i, start };
        this.#runs.push(run);
        this.rows = rows;
        this.bytes = bytes;
        let bad = this.#parse(run);
        while (bad >= 0) {
          this.#demote(bad);
          bad = this.#replay();
        }
        if (this.#presizeAt > 0 && bytes >= this.maxBytes / this.#presizeAt) this.#presize();
      }
      if (trailer) {
        this.#inCopy = false;
        i++;
        continue;
      }
      if (this.full) break;
    }
    return i;
  }

  /** Parse a run into the columns; returns the index of a column that cannot hold one of its values, or -1. */
  #parse(run: Run): number {
    const { data: b, rowEnds, from, to } = run;
    const cols = this.#cols;
    const wire = this.#wire;
    const nf = cols.length;
    const n = to - from;
    if (this.#pos.length < n * nf) {
      this.#pos = new Int32Array(n * nf);
      this.#lens = new Int32Array(n * nf);
    }
    const pos = this.#pos;
    const lens = this.#lens;
    const bv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let s = run.start;
    for (let r = 0, k = 0; r < n; r++) {
      const e = rowEnds[from + r]!;
      const f = e - s >= 2 ? bv.getInt16(s) : -1;
      if (f !== nf || e - s < 2 + 4 * nf) throw new CopyProtocolError(`COPY row has ${f} fields, expected ${nf}`);
      let p = s + 2;
      for (let c = 0; c < nf; c++, k++) {
        // int32 length, big-endian; -1 is NULL.
        if (p + 4 > e) throw new CopyProtocolError('COPY row ends inside a field length');
        const len = bv.getInt32(p);
        p += 4;
        pos[k] = p;
        lens[k] = len;
        if (len >= 0) {
          // Bounds first: a bad length must not make a column read another row's bytes.
          const w = wire[c]!;
          if (p + len > e || (w >= 0 && len !== w)) throw fieldError(cols[c]!.spec.name, len, w);
          p += len;
        }
      }
      if (p !== e) throw new CopyProtocolError('COPY row length does not match its fields');
      s = e;
    }
    for (let c = 0; c < nf; c++) {
      if (cols[c]!.values(b, bv, pos, lens, n, nf, c) >= 0) return c;
    }
    return -1;
  }

  /**
   * Size the first batch's columns from its first rows (see {@link PRESIZE_AFTER}): each
   * buffer gets its share so far times the batch's expected length, plus an eighth, but at
   * most {@link PRESIZE_STEP} times its bytes so far (at 1/16 of the batch: room for 4.5/16;
   * at 1/4: for the whole batch), so a table smaller than a batch is not given a batch's room.
   * A batch ends at `maxBytes` of COPY (plus one row) or `maxRows`, and PLAIN or Arrow values
   * take no more bytes than their COPY fields, so the columns' capacity stays within about
   * 1.125 × maxBytes (doubling reaches up to 2×), unless the first rows hold the longest
   * values, which costs address space the batch never touches.
   */
  #presize(): void {
    this.#presizeAt = this.#presizeAt > PRESIZE_STEP ? this.#presizeAt / PRESIZE_STEP : 0;
    if (this.maxBytes < PRESIZE_MIN_BYTES) {
      this.#presizeAt = 0;
      return;
    }
    const f = 1.125 * Math.min(this.maxBytes / this.bytes, this.maxRows / this.rows, PRESIZE_STEP);
    if (f > 1.25) for (const c of this.#cols) c.extrapolate(f);
  }

  #demote(c: number): void {
    this.specs[c] = { ...this.specs[c]!, demoted: true };
    this.generation++;
    this.schema = arrowSchema(this.specs, this.#meta);
  }

  /** Rebuild the batch from its retained runs with the current specs. */
  #replay(): number {
    this.#setCols(this.#make());
    for (const run of this.#runs) {
      const bad = this.#parse(run);
      if (bad >= 0) return bad;
    }
    return -1;
  }

  /** Take the current batch (undefined when empty) and start the next. */
  take(): BuiltBatch | undefined {
    if (this.#plain) throw new InternalError('a builder of the plain layout is taken with takePlain');
    if (this.rows === 0) return undefined;
    const children = this.#cols.map((c) => c.finish());
    const type = new Struct(this.schema.fields);
    const batch = new RecordBatch(this.schema, makeData({ type, length: this.rows, nullCount: 0, children }));
    const out: BuiltBatch = { batch, rows: this.rows, generation: this.generation };
    this.#restart();
    return out;
  }

  /** Take the current batch of a `plain` layout builder (undefined when empty) and start the next. */
  takePlain(): PlainBatch | undefined {
    if (!this.#plain) throw new InternalError('an Arrow builder is taken with take');
    if (this.rows === 0) return undefined;
    const out: PlainBatch = { columns: this.#cols.map((c) => c.plain()), rows: this.rows, generation: this.generation };
    this.#restart();
    return out;
  }

  /** New columns for the next batch, in the taken one's buffers (reuseBuffers) or sized like them. */
  #restart(): void {
    const prev = this.#cols;
    this.#presizeAt = 0;
    this.#setCols(this.#make());
    // Reused buffers are taken over when the next rows come: the caller still encodes this batch.
    if (this.#reuse) this.#recycle = prev;
    else this.#cols.forEach((c, i) => c.presize(prev[i]!));
    this.#runs = [];
    this.rows = 0;
    this.bytes = 0;
  }
}

/** Specs need a text cast in the export query when their type has no native mapping. */
export function needsTextCast(s: ColumnSpec): boolean {
  return s.kind === 'fallback';
}

