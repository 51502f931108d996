import { FormatError } from '../../errors.js';
import { copyInto, encodedEncoder, putTimestamp, type ColumnEncoder, type FieldWriter, type Out } from '../arrow/decoder.js';
import { numericMaxBytes, PG_EPOCH_DAYS, writeNumeric, writeNumericSafe, writeNumericText } from '../arrow/pgtext.js';
import type { ColumnSpec } from '../arrow/pgtypes.js';
import { byteLength, type DecodedColumn, type ParquetLeaf } from './reader.js';
import { PT } from './schema.js';

/*
 * Decoded Parquet column chunks straight into COPY BINARY fields (the ColumnEncoder contract of
 * lib/format/arrow/decoder.ts), without building Arrow data first: fixed-width values are read
 * from the page bytes, byte arrays copied once from their pages into the output. The bytes are
 * the ones the Arrow path writes for the same column (what that path does is cited per kind);
 * kinds not handled here (foreign time units, list elements held as numeric text, …) return
 * undefined and take the Arrow path.
 */

/** LIST levels of one row group: each row's list validity and element range, each element's validity. */
export interface ListLevels {
  listValid: Uint8Array;
  /** Row r's elements are [offsets[r], offsets[r + 1]). */
  offsets: Int32Array;
  elemValid: Uint8Array;
  /** Elements in all. */
  elems: number;
}

/** Walk a LIST column's repetition and definition levels (checked) into {@link ListLevels}. */
export function listLevels(l: ParquetLeaf, col: DecodedColumn, rows: number): ListLevels {
  const def = col.def!;
  const rep = col.rep!;
  const listValid = new Uint8Array(rows);
  const offsets = new Int32Array(rows + 1);
  const elemValid = new Uint8Array(col.levels);
  let r = -1;
  let e = 0;
  for (let k = 0; k < col.levels; k++) {
    if (rep[k] === 0) {
      r++;
      if (r >= rows) throw new FormatError(`Parquet column ${l.name} has more lists than rows`);
      offsets[r] = e;
      listValid[r] = def[k]! >= l.topDef ? 1 : 0;
      if (def[k]! <= l.topDef) { offsets[r + 1] = e; continue; }
    } else if (r < 0 || def[k]! <= l.topDef) throw new FormatError(`Parquet column ${l.name} has malformed list levels`);
    elemValid[e++] = def[k] === l.maxDef ? 1 : 0;
    offsets[r + 1] = e;
  }
  if (r !== rows - 1) throw new FormatError(`Parquet column ${l.name} has ${r + 1} lists for ${rows} rows`);
  return { listValid, offsets, elemValid, elems: e };
}

const TWO32 = 4294967296;

/** Writes value v (an index among present values) at `p` of `ov`; `sv` views the column's fixed bytes. */
type Put = (ov: DataView, p: number, sv: DataView, v: number) => void;

/**
 * Fixed-width kinds: the field width and its writer from PLAIN little-endian bytes (decoder.ts
 * columnEncoder does the same from Arrow's little-endian slots), or undefined for a layout
 * this file does not read.
 */
function fixedPut(s: ColumnSpec, l: ParquetLeaf, timeUnit: number): { width: number; put: Put } | undefined {
  const t = l.physical;
  switch (s.kind) {
    case 'int2': return t !== PT.INT32 ? undefined : {
      width: 2,
      put: (ov, p, sv, v) => {
        const x = sv.getInt32(4 * v, true);
        if (x < -32768 || x > 32767) throw new FormatError(`Parquet column ${s.name}: ${x} does not fit smallint`);
        ov.setInt16(p, x);
      },
    };
    case 'int4': case 'float4':
      return t !== (s.kind === 'int4' ? PT.INT32 : PT.FLOAT) ? undefined : { width: 4, put: (ov, p, sv, v) => ov.setInt32(p, sv.getInt32(4 * v, true)) };
    case 'date': return t !== PT.INT32 ? undefined : {
      width: 4,
      put: (ov, p, sv, v) => {
        const x = sv.getInt32(4 * v, true);
        ov.setInt32(p, x === 0x7fffffff || x === -0x80000000 ? x : x - PG_EPOCH_DAYS);
      },
    };
    // Two int32 halves, not one float64: a float load may change a NaN's bits.
    case 'int8': case 'float8': case 'time':
      if (t !== (s.kind === 'float8' ? PT.DOUBLE : PT.INT64) || (s.kind === 'time' && timeUnit !== 1)) return undefined;
      return { width: 8, put: (ov, p, sv, v) => { ov.setInt32(p, sv.getInt32(8 * v + 4, true)); ov.setInt32(p + 4, sv.getInt32(8 * v, true)); } };
    case 'timestamp': case 'timestamptz': return t !== PT.INT64 || timeUnit !== 1 ? undefined : {
      width: 8,
      put: (ov, p, sv, v) => putTimestamp(ov, p, sv.getUint32(8 * v, true), sv.getInt32(8 * v + 4, true)),
    };
    case 'bool': return t !== PT.BOOLEAN ? undefined : { width: 1, put: (ov, p, sv, v) => ov.setUint8(p, sv.getUint8(v) ? 1 : 0) };
    case 'uuid': return t !== PT.FIXED_LEN_BYTE_ARRAY || l.typeLength !== 16 ? undefined : {
      width: 16,
      put: (ov, p, sv, v) => { for (let k = 0; k < 16; k += 4) ov.setInt32(p + k, sv.getInt32(16 * v + k, true), true); },
    };
    default: return undefined;
  }
}

function viewOf(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Definition levels when some values are NULL (undefined: every row has a value). */
function nullable(col: DecodedColumn): Uint8Array | undefined {
  return col.count === col.levels ? undefined : col.def;
}

/** Fixed-width column: rows in order, `v` counting present values. */
function fixedEncoder(col: DecodedColumn, l: ParquetLeaf, width: number, put: Put): ColumnEncoder {
  const def = nullable(col);
  const md = l.maxDef;
  const sv = viewOf(col.fixed!);
  let v = 0;
  return {
    size(rowLen, n) {
      if (!def) for (let r = 0; r < n; r++) rowLen[r]! += 4 + width;
      else for (let r = 0; r < n; r++) rowLen[r]! += def[r] === md ? 4 + width : 4;
    },
    write(ov, _out, cur, a, b) {
      for (let r = a; r < b; r++) {
        const p = cur[r - a]!;
        if (def && def[r] !== md) {
          ov.setInt32(p, -1);
          cur[r - a] = p + 4;
        } else {
          ov.setInt32(p, width);
          put(ov, p + 4, sv, v++);
          cur[r - a] = p + 4 + width;
        }
      }
    },
  };
}

/** Byte-array column copied as it is (`extra` 1: jsonb's version byte first), as decoder.ts bytesEncoder. */
function bytesEncoder(col: DecodedColumn, l: ParquetLeaf, extra: number): ColumnEncoder {
  const def = nullable(col);
  const md = l.maxDef;
  const pos = col.pos!;
  const src = col.bytes!;
  const sv = viewOf(src);
  let v = 0;
  return {
    size(rowLen, n) {
      for (let r = 0, k = 0; r < n; r++) rowLen[r]! += def && def[r] !== md ? 4 : 4 + extra + byteLength(src, pos[k++]!);
    },
    write(ov, out, cur, a, b) {
      for (let r = a; r < b; r++) {
        let p = cur[r - a]!;
        if (def && def[r] !== md) {
          ov.setInt32(p, -1);
          cur[r - a] = p + 4;
          continue;
        }
        const s = pos[v++]!;
        const len = byteLength(src, s);
        ov.setInt32(p, len + extra);
        p += 4;
        if (extra) out[p++] = 1;
        copyInto(ov, out, p, sv, src, s, len);
        cur[r - a] = p + len;
      }
    },
  };
}

/** numeric held as text (decoder.ts valueWriter: numeric_send of the text). */
function numericTextWriter(col: DecodedColumn): (v: number, o: Out) => void {
  const pos = col.pos!;
  const src = col.bytes!;
  const text = Buffer.from(src.buffer, src.byteOffset, src.byteLength);
  return (v, o) => {
    const s = pos[v]!;
    const t = text.toString('latin1', s, s + byteLength(src, s)); // numeric text is ASCII
    const p = o.reserve(numericMaxBytes(t.length));
    o.len += writeNumericText(o.b, p, t);
  };
}

/**
 * DECIMAL(p, s) unscaled values (INT32, INT64, or big-endian two's complement in a fixed-length
 * array of at most 16 bytes) as numeric_send: by arithmetic below 2^53, else through the digit
 * string (decoder.ts valueWriter's decimal case gives the same bytes).
 */
function decimalWriter(s: ColumnSpec, l: ParquetLeaf, col: DecodedColumn): ((v: number, o: Out) => void) | undefined {
  const w = l.physical === PT.INT32 ? 4 : l.physical === PT.INT64 ? 8 : l.physical === PT.FIXED_LEN_BYTE_ARRAY ? l.typeLength : 0;
  if (w === 0 || w > 16) return undefined;
  const fx = col.fixed!;
  const sv = viewOf(fx);
  const scale = s.scale!;
  const big = l.physical === PT.FIXED_LEN_BYTE_ARRAY;
  return (v, o) => {
    let x: number | undefined;
    let b: bigint | undefined;
    if (l.physical === PT.INT32) x = sv.getInt32(4 * v, true);
    else if (!big) {
      const hi = sv.getInt32(8 * v + 4, true);
      if (hi >= -0x200000 && hi < 0x200000) x = hi * TWO32 + sv.getUint32(8 * v, true);
      else b = sv.getBigInt64(8 * v, true);
    } else if (w <= 6) {
      // Up to 48 bits: exact as a double.
      const a = v * w;
      x = (fx[a]! & 0x80) ? -1 : 0;
      for (let k = 0; k < w; k++) x = x * 256 + fx[a + k]!;
    } else {
      const a = v * w;
      let u = 0n;
      for (let k = 0; k < w; k++) u = (u << 8n) | BigInt(fx[a + k]!);
      b = BigInt.asIntN(8 * w, u);
      if (b >= -(2n ** 53n) + 1n && b < 2n ** 53n) { x = Number(b); b = undefined; }
    }
    if (x !== undefined) {
      const p = o.reserve(numericMaxBytes(20));
      const n = writeNumericSafe(o.b, p, x < 0, Math.abs(x), scale);
      if (n >= 0) { o.len += n; return; }
      b = BigInt(x);
    }
    const neg = b! < 0n;
    const digits = (neg ? -b! : b!).toString();
    const p = o.reserve(numericMaxBytes(digits.length));
    o.len += writeNumeric(o.b, p, neg, digits, scale);
  };
}

/** Writer of value v with its length word, for list elements (decoder.ts fieldWriter over valueWriter); undefined: not handled here. */
function elementWriter(s: ColumnSpec, l: ParquetLeaf, col: DecodedColumn, timeUnit: number): ((v: number, o: Out) => void) | undefined {
  const f = fixedPut(s, l, timeUnit);
  if (f) {
    const sv = viewOf(col.fixed!);
    const { width, put } = f;
    return (v, o) => {
      const p = o.reserve(4 + width);
      o.dv.setInt32(p, width);
      put(o.dv, p + 4, sv, v);
      o.len = p + 4 + width;
    };
  }
  // valueWriter copies text, bytea and json(b) (jsonb with its version byte); numeric text is converted.
  if (l.physical !== PT.BYTE_ARRAY || s.kind === 'numeric' || s.kind === 'decimal') return undefined;
  if (!(s.demoted || s.kind === 'fallback' || s.kind === 'text' || s.kind === 'jsonb' || s.kind === 'bytea')) return undefined;
  const extra = s.kind === 'jsonb' && !s.demoted ? 1 : 0;
  const pos = col.pos!;
  const src = col.bytes!;
  return (v, o) => {
    const a = pos[v]!;
    const len = byteLength(src, a);
    o.int32(len + extra);
    if (extra) { const p = o.reserve(1); o.b[p] = 1; o.len += 1; }
    o.bytes(src, a, a + len);
  };
}

/** A LIST column as PostgreSQL arrays (decoder.ts valueWriter's list case: one dimension, lower bound 1). */
function listEncoder(s: ColumnSpec, l: ParquetLeaf, col: DecodedColumn, rows: number, timeUnit: number): ColumnEncoder | undefined {
  const elem = s.elem!;
  const ew = elementWriter(elem, l, col, timeUnit);
  if (!ew) return undefined;
  const { listValid, offsets, elemValid } = listLevels(l, col, rows);
  let v = 0;
  const w: FieldWriter = (r, o) => {
    const a = offsets[r]!;
    const b = offsets[r + 1]!;
    if (a === b) {
      // An empty array has no dimensions.
      o.int32(0); o.int32(0); o.int32(elem.oid);
      return;
    }
    let hasNull = 0;
    for (let k = a; k < b; k++) if (!elemValid[k]) { hasNull = 1; break; }
    const p = o.reserve(20);
    const dv = o.dv;
    dv.setInt32(p, 1); dv.setInt32(p + 4, hasNull); dv.setInt32(p + 8, elem.oid); dv.setInt32(p + 12, b - a); dv.setInt32(p + 16, 1);
    o.len = p + 20;
    for (let k = a; k < b; k++) {
      if (elemValid[k]) ew(v++, o);
      else o.int32(-1);
    }
  };
  return encodedEncoder(w, (r) => listValid[r] === 1);
}

/**
 * The COPY BINARY encoder of one decoded column chunk of a row group of `rows` rows, for
 * column spec `s` (what the Arrow path would encode it as); `timeUnit` is the microseconds per
 * stored unit of time columns (1 for segferry's own). Undefined when the kind or layout is not
 * handled here: the caller then builds Arrow data and uses decoder.ts's encoder.
 */
export function parquetEncoder(s: ColumnSpec, l: ParquetLeaf, col: DecodedColumn, rows: number, timeUnit: number): ColumnEncoder | undefined {
  if (l.list) return s.kind === 'list' && !s.demoted ? listEncoder(s, l, col, rows, timeUnit) : undefined;
  if (col.levels !== rows) throw new FormatError(`Parquet column ${l.name} has ${col.levels} values for ${rows} rows`);
  const def = nullable(col);
  const md = l.maxDef;
  // decoder.ts columnEncoder: held as text, text, bytea and fallback types are copied; jsonb gets its version byte.
  if (s.demoted || s.kind === 'text' || s.kind === 'bytea' || s.kind === 'fallback' || s.kind === 'jsonb') {
    return l.physical === PT.BYTE_ARRAY ? bytesEncoder(col, l, s.kind === 'jsonb' && !s.demoted ? 1 : 0) : undefined;
  }
  if (s.kind === 'numeric' || s.kind === 'decimal') {
    const w = s.kind === 'numeric' ? (l.physical === PT.BYTE_ARRAY ? numericTextWriter(col) : undefined) : decimalWriter(s, l, col);
    if (!w) return undefined;
    let v = 0;
    return encodedEncoder((_r, o) => w(v++, o), def ? (r) => def[r] === md : () => true);
  }
  const f = fixedPut(s, l, timeUnit);
  return f ? fixedEncoder(col, l, f.width, f.put) : undefined;
}
