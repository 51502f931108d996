import type { Data, RecordBatch } from 'apache-arrow';
import { InternalError, ValueConversionError } from '../../errors.js';
import type { ColumnSpec } from '../arrow/pgtypes.js';
import { Bytes, type PlainColumn } from '../arrow/columns.js';
import { CODEC, UNCOMPRESSED, type PageCodec } from './codecs.js';
import { isList, leafType, PT, type LeafType } from './schema.js';
import { bin, encodeStruct, i32, i64, list, struct, type TStruct } from './thrift.js';

/*
 * Row groups of Parquet from columns built from COPY BINARY by lib/format/arrow/columns.ts:
 * in the `plain` layout (the segment writer's: values already PLAIN, see
 * {@link encodePlainRowGroup}) or as Arrow record batches ({@link encodeRowGroup}); both give
 * the same bytes. One column chunk per column (LIST: its element leaf), one
 * data page per chunk, preceded by a dictionary page when the dictionary pays. Data pages
 * are version 1: repetition levels, definition levels (both RLE/bit-packed hybrid with a
 * 4-byte length), then the values (PLAIN, or RLE_DICTIONARY indices). Offsets are relative
 * to the row group's start until the file places it (see {@link chunkMeta}).
 */

/** Parquet Encoding enum. */
const ENC = { PLAIN: 0, RLE: 3, RLE_DICTIONARY: 8 } as const;
/** PageType enum. */
const PAGE = { DATA_PAGE: 0, DICTIONARY_PAGE: 2 } as const;

/** Statistics bounds are written only up to this many bytes (a longer bound is left out). */
const MAX_STAT_BYTES = 64;
/** A dictionary is given up past this many bytes of distinct values. */
const MAX_DICT_BYTES = 1 << 20;
/**
 * After this many values, a dictionary is given up when more than 90% of them were distinct
 * (it would almost surely end past half the values distinct, and the full check costs a hash
 * of every value).
 */
const DICT_PROBE = 4096;

/**
 * A column whose compressed pages kept at least this share of their bytes is written
 * UNCOMPRESSED from its next chunk on (random keys, uuids, hashes, compressed bytea): zstd
 * would cost its CPU for nothing.
 */
const NO_GAIN = 0.9;
/** A chunk of fewer page bytes than this says nothing of its column's gain (frame overheads). */
const GAIN_MIN_BYTES = 64 * 1024;
/** A column written uncompressed is compressed again every this many chunks, to measure again. */
const GAIN_RETRY = 16;
/** The Arrow builders' growable buffer, with the writes the Parquet encoding needs. */
export class Out extends Bytes {
  byte(b: number): void {
    // Run headers and RLE values come a byte at a time: no call while there is room.
    if (this.len >= this.u8.length) this.reserve(1);
    this.u8[this.len++] = b;
  }
  varint(v: number): void {
    while (v >= 0x80) {
      this.byte((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.byte(v);
  }
  u32(v: number): void {
    const p = this.reserve(4);
    this.dv.setUint32(p, v, true);
    this.len += 4;
  }
  bytes(src: Uint8Array, s = 0, e = src.length): void {
    const n = e - s;
    const p = this.reserve(n);
    if (n <= 16) for (let k = 0; k < n; k++) this.u8[p + k] = src[s + k]!;
    else this.u8.set(src.subarray(s, e), p);
    this.len += n;
  }
}

/**
 * RLE/bit-packed hybrid (Parquet Encodings.md): runs of 8 or more equal values as RLE runs,
 * the rest bit-packed in groups of 8, LSB first. The last group is padded with zeros;
 * readers stop at the page's value count.
 */
export function encodeHybrid(out: Out, v: ArrayLike<number>, n: number, width: number): void {
  const vb = (width + 7) >> 3;
  let i = 0;
  while (i < n) {
    let run = 1;
    while (i + run < n && v[i + run] === v[i]) run++;
    if (run >= 8) {
      out.varint(run * 2);
      const x = v[i]!;
      for (let k = 0; k < vb; k++) out.byte((x >>> (8 * k)) & 0xff);
      i += run;
      continue;
    }
    // Bit-packed groups until a run of 8 starts at a group boundary.
    let j = i;
    for (;;) {
      j += 8;
      if (j >= n) break;
      let r = 1;
      while (r < 8 && j + r < n && v[j + r] === v[j]) r++;
      if (r >= 8) break;
    }
    const groups = Math.ceil((Math.min(j, n) - i) / 8);
    out.varint(groups * 2 + 1);
    const p = out.reserve(groups * width);
    const u8 = out.u8;
    const end = Math.min(i + groups * 8, n);
    if (width <= 24) {
      let q = p;
      let k = i;
      if (width <= 8) {
        // Whole groups of 8 values: two words of 4 values (4·width ≤ 32 bits each), written
        // as width bytes; with an odd width the middle byte holds half of each.
        const half = width >> 1;
        const odd = width & 1;
        const mid = 4 * width - 4;
        for (; k + 8 <= end; k += 8) {
          const lo = v[k]! | (v[k + 1]! << width) | (v[k + 2]! << (2 * width)) | (v[k + 3]! << (3 * width));
          const hi = v[k + 4]! | (v[k + 5]! << width) | (v[k + 6]! << (2 * width)) | (v[k + 7]! << (3 * width));
          for (let b = 0; b < half; b++) u8[q++] = lo >>> (8 * b);
          if (odd) {
            u8[q++] = (lo >>> mid) | (hi << 4);
            for (let b = 0; b < half; b++) u8[q++] = hi >>> (8 * b + 4);
          } else {
            for (let b = 0; b < half; b++) u8[q++] = hi >>> (8 * b);
          }
        }
      }
      // An accumulator of under 32 bits: fewer than 8 pending bits plus one value.
      let acc = 0;
      let nb = 0;
      for (; k < end; k++) {
        acc |= v[k]! << nb;
        nb += width;
        while (nb >= 8) { u8[q++] = acc & 0xff; acc >>>= 8; nb -= 8; }
      }
      if (nb > 0) u8[q++] = acc;
      u8.fill(0, q, p + groups * width);
    } else {
      u8.fill(0, p, p + groups * width);
      let bit = 0;
      for (let k = i; k < end; k++) {
        const x = v[k]!;
        for (let b = 0; b < width; b++, bit++) if ((x >>> b) & 1) u8[p + (bit >> 3)]! |= 1 << (bit & 7);
      }
    }
    out.len = p + groups * width;
    i = Math.min(i + groups * 8, n);
  }
}

function bitWidth(max: number): number {
  let w = 0;
  while (max >= 1 << w && w < 32) w++;
  return Math.max(w, 1);
}

/**
 * A built column, whichever the layout: Arrow data (values at their slots, NULLs included) or
 * a {@link PlainColumn} (`plain`: the PLAIN bytes of the non-NULL values only).
 */
interface Source {
  plain: boolean;
  /** Slots, and NULL ones among them. */
  length: number;
  nulls: number;
  validity: Uint8Array | undefined;
  /** Value bytes: Arrow's values buffer, or PLAIN bytes. */
  values: Uint8Array;
  /** Variable width and lists: offsets per slot (see PlainColumn.offsets). */
  offsets: Int32Array | undefined;
  child: Source | undefined;
}

function arrowSource(d: Data): Source {
  if (d.offset !== 0) throw new InternalError('Parquet encoder needs unsliced Arrow data');
  const v = d.values as ArrayBufferView | undefined;
  return {
    plain: false, length: d.length, nulls: d.nullCount, validity: validity(d), values: v ? u8of(v) : new Uint8Array(0),
    offsets: d.valueOffsets as Int32Array | undefined, child: d.children[0] ? arrowSource(d.children[0]) : undefined,
  };
}

function plainSource(c: PlainColumn): Source {
  return { plain: true, length: c.length, nulls: c.nulls, validity: c.nulls > 0 ? c.validity : undefined, values: c.values, offsets: c.offsets, child: c.child && plainSource(c.child) };
}

/** One leaf column of a row group, before encoding. */
interface Leaf {
  spec: ColumnSpec;
  type: LeafType;
  src: Source;
  /** Slot range of `src` the row group covers. */
  from: number;
  to: number;
  /** Non-NULL values in [from, to). */
  count: number;
  /** `plain` fixed width and booleans: index of the value of the first non-NULL slot from `from` on. */
  first: number;
  /** Bytes before each variable-width value in `src.values`: 4 (plain: its length) or 0. */
  pre: number;
  /** Definition levels (undefined: every level is maxDef), repetition levels (lists). */
  def: Uint8Array | undefined;
  rep: Uint8Array | undefined;
  levels: number;
  maxDef: number;
  maxRep: number;
  nulls: number;
  path: string[];
  /**
   * The slots that hold values, in order, found with the levels (see {@link presentSlots});
   * undefined: every slot holds one, or they are not needed (PLAIN fixed widths).
   */
  slots: Int32Array | undefined;
}

/** The validity bitmap of `d`, or undefined when every slot holds a value. */
function validity(d: Data): Uint8Array | undefined {
  const bm = d.nullBitmap;
  return d.nullCount === 0 || !bm || bm.length === 0 ? undefined : bm;
}

/** Set bits of `bm` in [0, s) (every slot when there is no bitmap). */
function setBefore(bm: Uint8Array | undefined, s: number): number {
  if (!bm) return s;
  let n = 0;
  for (let i = 0; i < s; i++) n += (bm[i >> 3]! >> (i & 7)) & 1;
  return n;
}

/** A leaf of slots [from, to) of `src`. */
function leafFrom(spec: ColumnSpec, src: Source, from: number, to: number, def: Uint8Array | undefined, rep: Uint8Array | undefined,
  levels: number, maxDef: number, nulls: number, path: string[], slots: Int32Array | undefined): Leaf {
  // A whole column (the usual case) needs no count of its bits.
  const before = from === 0 ? 0 : setBefore(src.validity, from);
  const count = from === 0 && to === src.length ? to - src.nulls : setBefore(src.validity, to) - before;
  return {
    spec, type: leafType(spec), src, from, to, count, first: src.plain ? before : from, pre: src.plain ? 4 : 0,
    def, rep, levels, maxDef, maxRep: maxDef === 3 ? 1 : 0, nulls, path, slots,
  };
}

function leafOf(spec: ColumnSpec, d: Source, from: number, to: number, sc: EncoderScratch): Leaf {
  if (!isList(spec)) {
    const n = to - from;
    let def: Uint8Array | undefined;
    let slots: Int32Array | undefined;
    let nulls = 0;
    const bm = d.validity;
    if (bm) {
      def = sc.u8(0, n);
      // Byte arrays and Arrow fixed widths read their values by slot: found in the same pass
      // (each slot written, kept when it holds a value: no branch).
      if (leafType(spec).arrowWidth === 0 || !d.plain) {
        slots = sc.i32(0, n);
        let m = 0;
        for (let i = 0; i < n; i++) {
          const s = from + i;
          const b = (bm[s >> 3]! >> (s & 7)) & 1;
          def[i] = b;
          slots[m] = s;
          m += b;
        }
        nulls = n - m;
        slots = slots.subarray(0, m);
      } else {
        for (let i = 0; i < n; i++) {
          const s = from + i;
          const b = (bm[s >> 3]! >> (s & 7)) & 1;
          def[i] = b;
          nulls += b ^ 1;
        }
      }
    }
    return leafFrom(spec, d, from, to, def, undefined, n, 1, nulls, [spec.name], slots);
  }
  // 3-level LIST: def 0 = NULL array, 1 = empty, 2 = NULL element, 3 = element; rep 1 = same row.
  const offs = d.offsets!;
  const child = d.child!;
  const cFrom = offs[from]!;
  const cTo = offs[to]!;
  const cap = (to - from) + (cTo - cFrom);
  const def = sc.u8(0, cap);
  const rep = sc.u8(1, cap);
  let k = 0;
  let nulls = 0;
  const rows = d.validity;
  const elems = child.validity;
  // With NULL elements, the elements that hold values (see presentSlots), found here.
  const slots = elems ? sc.i32(0, cTo - cFrom) : undefined;
  let m = 0;
  for (let r = from; r < to; r++) {
    if (rows && !((rows[r >> 3]! >> (r & 7)) & 1)) { rep[k] = 0; def[k++] = 0; nulls++; continue; }
    const s = offs[r]!;
    const e = offs[r + 1]!;
    if (s === e) { rep[k] = 0; def[k++] = 1; nulls++; continue; }
    // rep is 0 (a new row) at the first element, 1 for the rest.
    rep[k] = 0;
    for (let j = k + 1; j < k + e - s; j++) rep[j] = 1;
    if (!slots) {
      for (let j = s; j < e; j++) def[k++] = 3;
      continue;
    }
    for (let j = s; j < e; j++, k++) {
      // def 3 (a value) or 2 (NULL): each slot written, kept when it holds a value.
      const b = (elems![j >> 3]! >> (j & 7)) & 1;
      def[k] = 2 + b;
      slots[m] = j;
      m += b;
      nulls += b ^ 1;
    }
  }
  return leafFrom(spec.elem!, child, cFrom, cTo, def.subarray(0, k), rep.subarray(0, k), k, 3, nulls, [spec.name, 'list', 'element'], slots?.subarray(0, m));
}

/** The slots of a leaf that hold values, in order (undefined: all of them). */
function presentSlots(l: Leaf, sc: EncoderScratch): Int32Array | undefined {
  if (l.slots) return l.slots;
  const bm = l.src.validity;
  if (!bm) return undefined;
  const out = sc.i32(0, l.to - l.from);
  let n = 0;
  for (let i = l.from; i < l.to; i++) if ((bm[i >> 3]! >> (i & 7)) & 1) out[n++] = i;
  return out.subarray(0, n);
}

function u8of(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function dvOf(v: ArrayBufferView): DataView {
  return new DataView(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Copy bytes [a, b) of `src` to `dst` at `p`: four at a time through DataViews (short values,
 * the common case, cost a third of a byte loop), long ones with one native copy.
 */
function copyBytes(src: Uint8Array, sdv: DataView, a: number, b: number, dst: Uint8Array, dv: DataView, p: number): void {
  if (b - a > 256) { dst.set(src.subarray(a, b), p); return; }
  for (; a + 4 <= b; a += 4, p += 4) dv.setUint32(p, sdv.getUint32(a, true), true);
  for (; a < b; a++) dst[p++] = src[a]!;
}

/**
 * PLAIN values of the given slots (all of the leaf's values when undefined). A `plain` leaf's
 * values are PLAIN already: one copy.
 */
function plainValues(l: Leaf, slots: Int32Array | undefined, out: Out): number {
  const t = l.type;
  const src = l.src;
  const count = slots ? slots.length : l.count;
  if (src.plain && t.arrowWidth === 0) {
    const offs = src.offsets!;
    const data = src.values;
    if (!slots) {
      out.bytes(data, offs[l.from]!, offs[l.to]!);
      return count;
    }
    const sdv = dvOf(data);
    let total = 0;
    for (let k = 0; k < count; k++) total += offs[slots[k]! + 1]! - offs[slots[k]!]!;
    let p = out.reserve(total);
    const dst = out.u8;
    const dv = out.dv;
    for (let k = 0; k < count; k++) {
      const a = offs[slots[k]!]!;
      const b = offs[slots[k]! + 1]!;
      copyBytes(data, sdv, a, b, dst, dv, p);
      p += b - a;
    }
    out.len = p;
    return count;
  }
  if (src.plain && t.physical !== PT.BOOLEAN) {
    if (slots) throw new InternalError('plain fixed-width values are copied whole');
    const w = plainWidth(t);
    out.bytes(src.values, l.first * w, (l.first + count) * w);
    return count;
  }
  if (t.physical === PT.BOOLEAN) {
    const bits = src.values;
    // A plain leaf's bits are its values' (l.first on); Arrow's are its slots'.
    const from = l.first;
    const nb = (count + 7) >> 3;
    const p = out.reserve(nb);
    const dst = out.u8;
    if (!slots && (from & 7) === 0) {
      // Byte-aligned start: the bits are the PLAIN bits (the last byte's spare bits cleared).
      dst.set(bits.subarray(from >> 3, (from >> 3) + nb), p);
      if (count & 7) dst[p + nb - 1]! &= (1 << (count & 7)) - 1;
    } else {
      dst.fill(0, p, p + nb);
      for (let k = 0; k < count; k++) {
        const s = slots ? slots[k]! : from + k;
        if ((bits[s >> 3]! >> (s & 7)) & 1) dst[p + (k >> 3)]! |= 1 << (k & 7);
      }
    }
    out.len = p + nb;
    return count;
  }
  if (t.arrowWidth === 0) {
    const offs = src.offsets!;
    const data = src.values;
    const sdv = dvOf(data);
    let total = 4 * count;
    if (slots) for (let k = 0; k < count; k++) total += offs[slots[k]! + 1]! - offs[slots[k]!]!;
    else total += offs[l.to]! - offs[l.from]!;
    // One reserve for the page: u8 and dv stay the same buffer through the loop.
    let p = out.reserve(total);
    const dst = out.u8;
    const dv = out.dv;
    for (let k = 0; k < count; k++) {
      const s = slots ? slots[k]! : l.from + k;
      const a = offs[s]!;
      const b = offs[s + 1]!;
      dv.setUint32(p, b - a, true);
      copyBytes(data, sdv, a, b, dst, dv, p + 4);
      p += 4 + b - a;
    }
    out.len = p;
    return count;
  }
  const sv = src.values;
  const sdv = dvOf(sv);
  const aw = t.arrowWidth;
  const w = plainWidth(t);
  const p = out.reserve(w * count);
  const dst = out.u8;
  const dv = out.dv;
  if (aw === 2) {
    for (let k = 0; k < count; k++) dv.setInt32(p + 4 * k, sdv.getInt16(2 * (slots ? slots[k]! : l.from + k), true), true);
  } else if (t.order === 'signed-bytes') {
    // Decimal128 little-endian → FIXED_LEN_BYTE_ARRAY big-endian of its low w bytes.
    for (let k = 0; k < count; k++) {
      const s = (slots ? slots[k]! : l.from + k) * 16;
      const o = p + k * w;
      for (let b = 0; b < w; b++) dst[o + b] = sv[s + w - 1 - b]!;
    }
  } else if (!slots && aw === w) {
    dst.set(sv.subarray(l.from * w, l.to * w), p);
  } else if (w === 4 || w === 8) {
    // INT32/INT64/FLOAT/DOUBLE (or a decimal's low 4/8 bytes): words, not bytes (no float
    // reads: a NaN's payload must pass through untouched).
    for (let k = 0; k < count; k++) {
      const s = (slots ? slots[k]! : l.from + k) * aw;
      const o = p + k * w;
      dv.setUint32(o, sdv.getUint32(s, true), true);
      if (w === 8) dv.setUint32(o + 4, sdv.getUint32(s + 4, true), true);
    }
  } else {
    for (let k = 0; k < count; k++) copyBytes(sv, sdv, (slots ? slots[k]! : l.from + k) * aw, (slots ? slots[k]! : l.from + k) * aw + w, dst, dv, p + k * w);
  }
  out.len = p + w * count;
  return count;
}

/**
 * A `plain` leaf's PLAIN values where they lie in its column, when they are one stretch (what
 * {@link plainValues} would copy whole): byte arrays, and fixed widths other than BOOLEAN.
 */
function plainStretch(l: Leaf): Uint8Array | undefined {
  const src = l.src;
  const t = l.type;
  if (!src.plain || t.physical === PT.BOOLEAN) return undefined;
  if (t.arrowWidth === 0) return src.values.subarray(src.offsets![l.from]!, src.offsets![l.to]!);
  const w = plainWidth(t);
  return src.values.subarray(l.first * w, (l.first + l.count) * w);
}

/** Bytes of one PLAIN fixed-width value: 4/8 for INT32/INT64/FLOAT/DOUBLE, the FLBA width. */
function plainWidth(t: LeafType): number {
  return t.physical === PT.INT32 || t.physical === PT.FLOAT ? 4 : t.physical === PT.INT64 || t.physical === PT.DOUBLE ? 8 : t.width!;
}

/** Min and max of PLAIN fixed-width values (physical order), as PLAIN bytes. */
function fixedStats(t: LeafType, plain: Uint8Array, count: number): [Uint8Array, Uint8Array] | undefined {
  if (count === 0) return undefined;
  const dv = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  if (t.physical === PT.BOOLEAN) {
    let any0 = false;
    let any1 = false;
    for (let k = 0; k < count; k++) ((plain[k >> 3]! >> (k & 7)) & 1 ? (any1 = true) : (any0 = true));
    return [Uint8Array.of(any0 ? 0 : 1), Uint8Array.of(any1 ? 1 : 0)];
  }
  if (t.physical === PT.INT32) {
    let mi = dv.getInt32(0, true);
    let ma = mi;
    for (let k = 1; k < count; k++) {
      const x = dv.getInt32(4 * k, true);
      if (x < mi) mi = x; else if (x > ma) ma = x;
    }
    return [le32(mi), le32(ma)];
  }
  if (t.physical === PT.INT64) {
    // Signed 64-bit order as (signed high word, unsigned low word).
    let mk = 0;
    let xk = 0;
    let mh = dv.getInt32(4, true);
    let ml = dv.getUint32(0, true);
    let xh = mh;
    let xl = ml;
    for (let k = 1; k < count; k++) {
      const h = dv.getInt32(8 * k + 4, true);
      const lo = dv.getUint32(8 * k, true);
      if (h < mh || (h === mh && lo < ml)) { mk = k; mh = h; ml = lo; }
      else if (h > xh || (h === xh && lo > xl)) { xk = k; xh = h; xl = lo; }
    }
    return [plain.slice(8 * mk, 8 * mk + 8), plain.slice(8 * xk, 8 * xk + 8)];
  }
  if (t.physical === PT.FLOAT || t.physical === PT.DOUBLE) {
    const w = t.physical === PT.FLOAT ? 4 : 8;
    let mi = Infinity;
    let ma = -Infinity;
    let seen = false;
    for (let k = 0; k < count; k++) {
      const x = w === 4 ? dv.getFloat32(4 * k, true) : dv.getFloat64(8 * k, true);
      if (Number.isNaN(x)) continue; // NaN is left out of bounds (parquet.thrift ColumnOrder)
      seen = true;
      if (x < mi) mi = x;
      if (x > ma) ma = x;
    }
    if (!seen) return undefined;
    // A zero bound is written as -0 (min) and +0 (max), as the format asks.
    if (mi === 0) mi = -0;
    if (ma === 0) ma = 0;
    const b = new DataView(new ArrayBuffer(2 * w));
    if (w === 4) { b.setFloat32(0, mi, true); b.setFloat32(4, ma, true); } else { b.setFloat64(0, mi, true); b.setFloat64(8, ma, true); }
    const u = new Uint8Array(b.buffer);
    return [u.slice(0, w), u.slice(w)];
  }
  // FIXED_LEN_BYTE_ARRAY: unsigned bytes, or signed big-endian (decimal).
  const w = t.width!;
  const signed = t.order === 'signed-bytes';
  let mk = 0;
  let xk = 0;
  for (let k = 1; k < count; k++) {
    if (cmpFixed(plain, dv, k * w, mk * w, w, signed) < 0) mk = k;
    else if (cmpFixed(plain, dv, k * w, xk * w, w, signed) > 0) xk = k;
  }
  return [plain.slice(mk * w, mk * w + w), plain.slice(xk * w, xk * w + w)];
}

/**
 * Compare two big-endian values of `w` bytes at `a` and `b`: unsigned, or two's complement
 * (`signed`, the first byte carries the sign). Four bytes at a time: big-endian words
 * compare as the bytes do.
 */
function cmpFixed(u8: Uint8Array, dv: DataView, a: number, b: number, w: number, signed: boolean): number {
  let i = 0;
  if (w >= 4) {
    const x = signed ? dv.getInt32(a) : dv.getUint32(a);
    const y = signed ? dv.getInt32(b) : dv.getUint32(b);
    if (x !== y) return x < y ? -1 : 1;
    for (i = 4; i + 4 <= w; i += 4) {
      const p = dv.getUint32(a + i);
      const q = dv.getUint32(b + i);
      if (p !== q) return p < q ? -1 : 1;
    }
  } else if (signed) {
    const x = dv.getInt8(a);
    const y = dv.getInt8(b);
    if (x !== y) return x < y ? -1 : 1;
    i = 1;
  }
  for (; i < w; i++) {
    const x = u8[a + i]!;
    const y = u8[b + i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function le32(x: number): Uint8Array {
  const u = new Uint8Array(4);
  new DataView(u.buffer).setInt32(0, x, true);
  return u;
}

/** Compare bytes [as, ae) and [bs, be) of one array, unsigned lexicographic; four bytes at a time (big-endian words order as their bytes do). */
function cmpBytes(u8: Uint8Array, dv: DataView, as: number, ae: number, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x = dv.getUint32(as + i);
    const y = dv.getUint32(bs + i);
    if (x !== y) return x < y ? -1 : 1;
  }
  for (; i < n; i++) {
    const x = u8[as + i]!;
    const y = u8[bs + i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return (ae - as) - (be - bs);
}

/** The `n` < 4 bytes at `a` as a little-endian number: one masked word read where the array has room. */
function tailWord(u8: Uint8Array, dv: DataView, a: number, n: number): number {
  if (a + 4 <= u8.length) return dv.getUint32(a, true) & ((1 << (8 * n)) - 1);
  let x = 0;
  for (let i = 0; i < n; i++) x |= u8[a + i]! << (8 * i);
  return x;
}

/** Bytes [as, ae) and [bs, be) of one array are equal. */
function sameBytes(u8: Uint8Array, dv: DataView, as: number, ae: number, bs: number, be: number): boolean {
  const n = ae - as;
  if (be - bs !== n) return false;
  let i = 0;
  for (; i + 4 <= n; i += 4) if (dv.getUint32(as + i, true) !== dv.getUint32(bs + i, true)) return false;
  return i === n || tailWord(u8, dv, as + i, n - i) === tailWord(u8, dv, bs + i, n - i);
}

/**
 * Min and max of byte-array slots (unsigned lexicographic), raw bytes; undefined when every
 * value is longer than MAX_STAT_BYTES (then both bounds would be, and be left out: one pass
 * over the lengths instead of comparing values, e.g. a jsonb column of documents).
 */
function varStats(l: Leaf, slots: ArrayLike<number> | undefined, count: number): [Uint8Array, Uint8Array] | undefined {
  if (count === 0) return undefined;
  const offs = l.src.offsets!;
  const data = l.src.values;
  const dv = dvOf(data);
  const pre = l.pre;
  let short = false;
  for (let k = 0; k < count && !short; k++) {
    const s = slots ? slots[k]! : l.from + k;
    short = offs[s + 1]! - offs[s]! - pre <= MAX_STAT_BYTES;
  }
  if (!short) return undefined;
  let ms = offs[slots ? slots[0]! : l.from]! + pre;
  let me = offs[(slots ? slots[0]! : l.from) + 1]!;
  let xs = ms;
  let xe = me;
  for (let k = 1; k < count; k++) {
    const s = slots ? slots[k]! : l.from + k;
    const a = offs[s]! + pre;
    const b = offs[s + 1]!;
    if (cmpBytes(data, dv, a, b, ms, me) < 0) { ms = a; me = b; }
    else if (cmpBytes(data, dv, a, b, xs, xe) > 0) { xs = a; xe = b; }
  }
  return [data.slice(ms, me), data.slice(xs, xe)];
}

/** Hash of bytes [a, b): four at a time (multiply-rotate), mixed so that the top bits depend on every byte. */
function hashBytes(u8: Uint8Array, dv: DataView, a: number, b: number): number {
  let h = b - a;
  for (; a + 4 <= b; a += 4) h = Math.imul(((h << 5) | (h >>> 27)) ^ dv.getUint32(a, true), 0x9e3779b1);
  h = Math.imul(((h << 5) | (h >>> 27)) ^ tailWord(u8, dv, a, b - a), 0x9e3779b1);
  return Math.imul(h ^ (h >>> 15), 0x85ebca6b);
}

/**
 * A dictionary of byte-array slots: distinct values in order of first appearance and each
 * slot's index (and the bytes of its PLAIN page), or undefined when it does not pay (more
 * than half the values distinct, or more than 1 MiB of distinct values). The values are hashed in place (no strings) into an
 * open-addressing table of first slots.
 */
function dictionary(l: Leaf, slots: Int32Array | undefined, count: number, sc: EncoderScratch): { ids: Int32Array; firsts: Int32Array; n: number; bytes: number } | undefined {
  if (count < 16) return undefined;
  const offs = l.src.offsets!;
  const data = l.src.values;
  const dv = dvOf(data);
  const pre = l.pre;
  let bits = 6;
  while (1 << bits < count) bits++;
  const shift = 32 - bits;
  const mask = (1 << bits) - 1;
  const table = sc.i32(1, 1 << bits).fill(-1); // → index into firsts
  const firsts = sc.i32(2, Math.floor(count / 2) + 1);
  // Each entry's hash and length: a probe compares bytes only when both match, and not even
  // then for values of up to 4 bytes (for one length, the hash of at most one word is a
  // bijection: multiply by odd constants, xor-shift).
  const hashes = sc.i32(3, firsts.length);
  const lens = sc.i32(4, firsts.length);
  const ids = sc.i32(5, count);
  let n = 0;
  let bytes = 0;
  for (let k = 0; k < count; k++) {
    // Nearly all distinct so far: hashing the rest (at least half the values) to find out
    // that it does not pay was a third of the encoder's time on key-like text columns.
    if (k === DICT_PROBE && n * 10 > k * 9) return undefined;
    const s = slots ? slots[k]! : l.from + k;
    const a = offs[s]! + pre;
    const b = offs[s + 1]!;
    const h = hashBytes(data, dv, a, b);
    const len = b - a;
    let pos = h >>> shift;
    for (;;) {
      const e = table[pos]!;
      if (e < 0) {
        if (n >= firsts.length) return undefined;
        bytes += len + 4;
        if (bytes > MAX_DICT_BYTES) return undefined;
        firsts[n] = s;
        hashes[n] = h;
        lens[n] = len;
        table[pos] = n;
        ids[k] = n++;
        break;
      }
      if (hashes[e] === h && lens[e] === len) {
        const f = firsts[e]!;
        if (len <= 4 || sameBytes(data, dv, offs[f]! + pre, offs[f + 1]!, a, b)) {
          ids[k] = e;
          break;
        }
      }
      pos = (pos + 1) & mask;
    }
  }
  return { ids, firsts: firsts.subarray(0, n), n, bytes };
}

/** One encoded column chunk: its pages (headers included) and what the footer says of it. */
export interface EncodedChunk {
  /** The chunk's pages, headers included, as one view of the row group's `data`. */
  pages: Uint8Array[];
  /** Offset of the chunk in the row group's `data`. */
  start: number;
  /** The chunk's CompressionCodec (ColumnMetaData.codec: per chunk, see EncoderScratch.codecOf). */
  codec: number;
  /** Page body bytes before and after compression (headers left out). */
  bodyBytes: number;
  storedBodyBytes: number;
  bytes: number;
  /** Offset of the data page from the chunk's start (after a dictionary page). */
  dataOffset: number;
  hasDictionary: boolean;
  uncompressed: number;
  levels: number;
  physical: number;
  path: string[];
  encodings: number[];
  stats: TStruct;
}

/** One encoded row group: every chunk's bytes in order. */
export interface EncodedRowGroup {
  rows: number;
  bytes: number;
  /** Sum of the uncompressed page sizes (RowGroup.total_byte_size). */
  uncompressed: number;
  chunks: EncodedChunk[];
  /** The row group's bytes as stored: every chunk's pages in order (a view of the encoder's output, see encodeRowGroup). */
  data: Uint8Array;
}

/**
 * The page's body may come in parts (the levels, then PLAIN values left where they lie): it is
 * copied (UNCOMPRESSED) or compressed from the parts straight into the row group's output.
 */
function viaParts(codec: PageCodec): boolean {
  return codec.id === CODEC.UNCOMPRESSED || codec.compressView !== undefined;
}

/**
 * A page of `body` followed by `tail` (only where {@link viaParts}: values left where they
 * lie), header then data, appended to the row group's output `out`.
 */
function page(header: TStruct, body: Uint8Array, codec: PageCodec, out: GroupOut, tail?: Uint8Array): { head: number; data: number; uncompressed: number } {
  const parts = tail ? [body, tail] : [body];
  const n = body.length + (tail?.length ?? 0);
  // Compressed pages are views of the codec's memory, valid until its next call: copied below.
  const data = codec.id === CODEC.UNCOMPRESSED ? parts : [codec.compressView ? codec.compressView(parts) : codec.compress(body)];
  let stored = 0;
  for (const d of data) stored += d.length;
  if (n > 0x7fffffff || stored > 0x7fffffff) throw new ValueConversionError('a Parquet page would exceed 2 GiB: lower the row group size');
  const head = encodeStruct({ ...header, 2: i32(n), 3: i32(stored) });
  out.bytes(head);
  for (const d of data) out.bytes(d);
  return { head: head.length, data: stored, uncompressed: head.length + n };
}

/**
 * The page-body buffer: every page is copied or compressed out of it into the row group's
 * output, so one buffer serves every page in turn. It is asked for each page's estimated size
 * (exactly, plus an eighth: growing by doubling would overshoot up to twice), so it seldom
 * grows (growing copies, and leaves garbage).
 */
class Bodies {
  readonly #o = new Out();
  get(size: number): Out {
    const o = this.#o;
    o.len = 0;
    o.presize(size + (size >> 3));
    return o;
  }
}

/**
 * A row group's bytes as they are stored: each column chunk's pages, header then data, one
 * after another. A writer's scratch keeps two and fills them in turn, so the previous group's
 * bytes stay untouched while the store takes them and the writer hands the group to the store
 * without copying it (lib/format/columnar-writer.ts). Grown by half (copying the group so far)
 * when a page does not fit; a buffer starts at the size of the other one's last group (or a
 * quarter of the group's PLAIN bytes, the first time), so it seldom grows after the first group.
 */
class GroupOut extends Out {
  override reserve(n: number): number {
    const need = this.len + n;
    if (need > this.u8.length) this.presize(Math.max(need + (need >> 2), this.u8.length + (this.u8.length >> 1)));
    return this.len;
  }
}

/**
 * What an encoder reuses from one row group to the next (a writer keeps one; default: new per
 * row group): the page-body buffer, the levels, the present slots and the dictionary tables of
 * one column chunk at a time, the two row-group output buffers (see GroupOut), and each
 * column's codec history. Memory: the largest page body so far (levels only where the PLAIN
 * values are copied or compressed from the built column), plus about 30 bytes per value of
 * the largest column chunk so far (2 bytes of levels, 4 of slots, up to 24 of dictionary
 * tables), plus two output buffers of up to about 1½ times the largest row group's stored
 * bytes (or a quarter of its PLAIN bytes, whichever is more).
 */
export class EncoderScratch {
  readonly bodies = new Bodies();
  /** The row groups' output buffers, filled in turn (see GroupOut). */
  readonly #outs = [new GroupOut(0), new GroupOut(0)];
  #turn = 0;
  readonly #u8: Uint8Array[] = [];
  readonly #i32: Int32Array[] = [];
  /** Per column: chunks still to write uncompressed before measuring again (0: compress). */
  readonly #plainFor: number[] = [];

  /**
   * The codec of column `col`'s next chunk: `codec`, or UNCOMPRESSED while the column's last
   * measured chunk kept ≥ 90% of its bytes under compression ({@link measured}); one chunk in
   * 16 of such a column is compressed again, so a column that starts to compress wins it back.
   */
  codecOf(col: number, codec: PageCodec): PageCodec {
    const k = this.#plainFor[col] ?? 0;
    if (k === 0 || codec.id === CODEC.UNCOMPRESSED) return codec;
    this.#plainFor[col] = k - 1;
    return UNCOMPRESSED;
  }

  /** Record what compression did to a chunk of column `col` (a chunk written uncompressed says nothing). */
  measured(col: number, c: EncodedChunk): void {
    if (c.codec === CODEC.UNCOMPRESSED || c.bodyBytes < GAIN_MIN_BYTES) return;
    this.#plainFor[col] = c.storedBodyBytes >= NO_GAIN * c.bodyBytes ? GAIN_RETRY - 1 : 0;
  }

  /**
   * The output buffer of the next row group, emptied: the one not filled last. `plainBytes`
   * (the group's PLAIN bytes, or 0) sizes it the first time.
   */
  group(plainBytes: number): GroupOut {
    const other = this.#outs[this.#turn]!;
    this.#turn = 1 - this.#turn;
    const out = this.#outs[this.#turn]!;
    out.len = 0;
    const guess = other.len > 0 ? other.len + (other.len >> 3) : plainBytes >> 2;
    out.presize(Math.max(guess, 1 << 16));
    return out;
  }

  /** Scratch bytes number `k`, `n` long (contents left over: callers write before they read). */
  u8(k: number, n: number): Uint8Array {
    let a = this.#u8[k];
    if (!a || a.length < n) a = this.#u8[k] = new Uint8Array(Math.max(n, 2 * (a?.length ?? 0)));
    return a.subarray(0, n);
  }

  /** Scratch int32s number `k`, `n` long (as {@link u8}). */
  i32(k: number, n: number): Int32Array {
    let a = this.#i32[k];
    if (!a || a.length < n) a = this.#i32[k] = new Int32Array(Math.max(n, 2 * (a?.length ?? 0)));
    return a.subarray(0, n);
  }
}

/** Levels as a v1 data page holds them: a 4-byte length, then the RLE/bit-packed hybrid. */
function levels(body: Out, v: Uint8Array | undefined, n: number, max: number): void {
  const at = body.reserve(4);
  body.len += 4;
  if (v) encodeHybrid(body, v, n, bitWidth(max));
  else if (n > 0) {
    // Every level is max: one RLE run.
    body.varint(n * 2);
    body.byte(max);
  }
  body.dv.setUint32(at, body.len - at - 4, true);
}

/** Bytes of `n` bit-packed values of `width` bits, plus room for run headers: a body's estimate. */
function packedBytes(n: number, width: number): number {
  return Math.ceil((n * width) / 8) + 16;
}

function encodeLeaf(l: Leaf, codec: PageCodec, sc: EncoderScratch, out: GroupOut): EncodedChunk {
  const t = l.type;
  const bodies = sc.bodies;
  // Slots matter to byte arrays (offsets per slot) and to Arrow fixed widths (values per slot).
  const slots = t.arrowWidth === 0 || !l.src.plain ? presentSlots(l, sc) : undefined;
  const count = l.count;
  const dict = t.arrowWidth === 0 ? dictionary(l, slots, count, sc) : undefined;
  // PLAIN values that stay where they lie (the page's tail) take no room in the body.
  const tail = !dict && viaParts(codec) ? plainStretch(l) : undefined;
  let size = 8 + (l.maxRep > 0 ? packedBytes(l.levels, 1) : 0) + (l.def ? packedBytes(l.levels, bitWidth(l.maxDef)) : 8);
  if (dict) size += 1 + packedBytes(count, bitWidth(dict.n - 1));
  else if (tail) size += 0;
  else if (t.arrowWidth === 0) size += (l.src.plain ? 0 : 4 * count) + (l.src.offsets![l.to]! - l.src.offsets![l.from]!);
  else if (t.physical === PT.BOOLEAN) size += (count + 7) >> 3;
  else size += count * plainWidth(t);
  const body = bodies.get(size);
  if (l.maxRep > 0) levels(body, l.rep, l.levels, l.maxRep);
  levels(body, l.def, l.levels, l.maxDef);

  const stats: TStruct = { 3: i64(l.nulls) };
  const start = out.len;
  let uncompressed = 0;
  let encodings: number[] = [ENC.PLAIN, ENC.RLE];
  let bounds: [Uint8Array, Uint8Array] | undefined;
  let dataEnc: number = ENC.PLAIN;
  let dictBytes = 0;
  let bodyBytes = 0;
  let storedBodyBytes = 0;
  if (dict) {
    const dv = new Out(dict.bytes);
    plainValues(l, dict.firsts, dv);
    const dp = page({ 1: i32(PAGE.DICTIONARY_PAGE), 7: struct({ 1: i32(dict.n), 2: i32(ENC.PLAIN) }) }, dv.take(), codec, out);
    dictBytes = dp.head + dp.data;
    bodyBytes += dp.uncompressed - dp.head;
    storedBodyBytes += dp.data;
    uncompressed += dp.uncompressed;
    const w = bitWidth(dict.n - 1);
    body.byte(w);
    encodeHybrid(body, dict.ids, count, w);
    dataEnc = ENC.RLE_DICTIONARY;
    encodings = [ENC.PLAIN, ENC.RLE, ENC.RLE_DICTIONARY];
    bounds = varStats(l, dict.firsts, dict.n);
  } else if (tail) {
    // Copied (or compressed) from where they lie, after the levels: one copy fewer.
    bounds = t.arrowWidth === 0 ? varStats(l, slots, count) : fixedStats(t, tail, count);
  } else {
    const at = body.len;
    plainValues(l, t.arrowWidth === 0 && l.src.plain ? undefined : slots, body);
    bounds = t.arrowWidth === 0 ? varStats(l, slots, count) : fixedStats(t, body.u8.subarray(at, body.len), count);
  }
  if (bounds && bounds[0].length <= MAX_STAT_BYTES && bounds[1].length <= MAX_STAT_BYTES) {
    stats[5] = bin(bounds[1]);
    stats[6] = bin(bounds[0]);
  }
  const dp = page({
    1: i32(PAGE.DATA_PAGE),
    5: struct({ 1: i32(l.levels), 2: i32(dataEnc), 3: i32(ENC.RLE), 4: i32(ENC.RLE) }),
  }, body.take(), codec, out, tail);
  uncompressed += dp.uncompressed;
  bodyBytes += dp.uncompressed - dp.head;
  storedBodyBytes += dp.data;
  const bytes = out.len - start;
  return {
    pages: [], start, codec: codec.id, bodyBytes, storedBodyBytes, bytes, dataOffset: dictBytes, hasDictionary: dict !== undefined, uncompressed, levels: l.levels,
    physical: t.physical, path: l.path, encodings, stats,
  };
}

/**
 * Encode rows [from, to) of a record batch built from `specs` as one row group. Its bytes
 * (`data`, and each chunk's `pages`) are views of one of the scratch's two output buffers:
 * with a `scratch` kept across row groups, they stay valid until the next row group but one is
 * encoded (store or copy them before that); the default scratch is new per call.
 */
export function encodeRowGroup(batch: RecordBatch, specs: ColumnSpec[], from: number, to: number, codec: PageCodec, scratch = new EncoderScratch()): EncodedRowGroup {
  const out = scratch.group(0);
  const chunks = specs.map((s, i) => encodeColumn(leafOf(s, arrowSource(batch.data.children[i]!), from, to, scratch), i, codec, scratch, out));
  return group(chunks, to - from, out);
}

/**
 * Encode rows [from, to) of columns built in the `plain` layout (BatchBuilderOptions.layout)
 * from `specs` as one row group: the same bytes as {@link encodeRowGroup} of the Arrow batch of
 * the same rows, with the values copied once instead of converted (pages valid as there).
 */
export function encodePlainRowGroup(columns: PlainColumn[], specs: ColumnSpec[], from: number, to: number, codec: PageCodec, scratch = new EncoderScratch()): EncodedRowGroup {
  let plain = 0;
  for (const c of columns) plain += c.values.length + (c.child?.values.length ?? 0);
  const out = scratch.group(plain);
  const chunks = specs.map((s, i) => encodeColumn(leafOf(s, plainSource(columns[i]!), from, to, scratch), i, codec, scratch, out));
  return group(chunks, to - from, out);
}

/** Column `col`'s chunk, with the codec the scratch's history gives it (see EncoderScratch.codecOf). */
function encodeColumn(l: Leaf, col: number, codec: PageCodec, sc: EncoderScratch, out: GroupOut): EncodedChunk {
  const c = encodeLeaf(l, sc.codecOf(col, codec), sc, out);
  sc.measured(col, c);
  return c;
}

function group(chunks: EncodedChunk[], rows: number, out: GroupOut): EncodedRowGroup {
  // Views only now: the buffer may have been replaced (grown) while the group was written.
  for (const c of chunks) c.pages = [out.u8.subarray(c.start, c.start + c.bytes)];
  return {
    rows,
    bytes: out.len,
    uncompressed: chunks.reduce((a, c) => a + c.uncompressed, 0),
    chunks,
    data: out.u8.subarray(0, out.len),
  };
}

/** The footer's ColumnChunk of an encoded chunk placed at file offset `at`. */
export function chunkMeta(c: EncodedChunk, at: number): TStruct {
  const meta: TStruct = {
    1: i32(c.physical),
    2: list('i32', c.encodings),
    3: list('bin', c.path),
    4: i32(c.codec),
    5: i64(c.levels),
    6: i64(c.uncompressed),
    7: i64(c.bytes),
    9: i64(at + c.dataOffset),
    12: struct(c.stats),
  };
  if (c.hasDictionary) meta[11] = i64(at);
  return { 2: i64(at), 3: struct(meta) };
}
