import { RecordBatchReader, type Data, type RecordBatch, type Schema } from 'apache-arrow';
import { FormatError, SchemaMismatchError, SegferryError, ValueConversionError } from '../../errors.js';
import { quoteIdent } from '../../pg/sql.js';
import { COPY_SIGNATURE } from '../../pg/copy-binary.js';
import { copyTextEscape, numericMaxBytes, PG_EPOCH_DAYS, valueToText, writeNumeric, writeNumericSafe, writeNumericText } from './pgtext.js';
import { OID, specFromField, type ColumnSpec } from './pgtypes.js';

/**
 * Arrow IPC objects back into PostgreSQL COPY input, one record batch at a time.
 *
 * The object is read front to back as the IPC stream it contains (segferry writes the schema
 * message after the file magic, as Arrow C++ does), so memory is bounded by one record batch
 * plus one output window (see {@link openArrowObject}), whatever the object's size. Each Arrow value is turned back into
 * its PostgreSQL BINARY form, using the type recorded in the field metadata; objects with a
 * column that only has a text form of a non-text type (a fallback type, or a value that fell
 * back to text) are loaded through COPY TEXT instead, with the same exact values.
 */

const MAGIC = Buffer.from('ARROW1\0\0', 'latin1');

/** COPY format used to load an object. */
export type ArrowCopyFormat = 'binary' | 'text';

/** Options of {@link openArrowObject}. */
export interface ArrowDecodeOptions {
  /**
   * `auto` (default): BINARY when every column can be written in its type's binary form,
   * else TEXT. `text` forces COPY TEXT (tolerates a destination column of a different but
   * compatible type, e.g. int4 into int8). `binary` fails when an object needs TEXT.
   */
  format?: 'auto' | ArrowCopyFormat;
  /** Size of the output chunks: windows of whole rows of about this size, at least one row (default 1 MiB). */
  chunkBytes?: number;
}

/** An Arrow object opened for loading. */
export interface ArrowCopySource {
  /** The object's Arrow schema. */
  schema: Schema;
  /** How each column maps back to PostgreSQL. */
  specs: ColumnSpec[];
  /** Column names, in COPY order. */
  columns: string[];
  format: ArrowCopyFormat;
  /** The `( … )` options of COPY FROM STDIN for {@link chunks}' output. */
  copyOptions: string;
  /** COPY input: header, rows and trailer (binary) or lines (text). Iterate once. */
  chunks(): AsyncGenerator<Buffer>;
  /** Rows produced so far (all rows once {@link chunks} is done). */
  readonly rows: number;
}

/** Can this column be written in its type's binary form? */
export function binaryCapable(s: ColumnSpec): boolean {
  if (s.kind === 'fallback') return false;
  if (s.demoted) return s.kind === 'decimal' || s.kind === 'numeric' || s.kind === 'text' || s.kind === 'jsonb' || s.kind === 'bytea';
  return true;
}

/** Growable output buffer. */
export class Out {
  b: Buffer;
  /** A DataView of `b` (Buffer#writeInt32BE checks its arguments on every call). */
  dv: DataView;
  len = 0;
  constructor(cap: number) {
    this.b = Buffer.allocUnsafe(cap);
    this.dv = new DataView(this.b.buffer, this.b.byteOffset, this.b.byteLength);
  }
  reserve(n: number): number {
    const need = this.len + n;
    if (need > this.b.length) {
      let cap = this.b.length * 2;
      while (cap < need) cap *= 2;
      const nb = Buffer.allocUnsafe(cap);
      this.b.copy(nb, 0, 0, this.len);
      this.b = nb;
      this.dv = new DataView(nb.buffer, nb.byteOffset, nb.byteLength);
    }
    return this.len;
  }
  int16(v: number): void { const p = this.reserve(2); this.dv.setInt16(p, v); this.len += 2; }
  int32(v: number): void { const p = this.reserve(4); this.dv.setInt32(p, v); this.len += 4; }
  bytes(src: Uint8Array, s: number, e: number): void {
    const n = e - s;
    const p = this.len + n <= this.b.length ? this.len : this.reserve(n);
    if (n <= 32) {
      const b = this.b;
      for (let k = 0; k < n; k++) b[p + k] = src[s + k]!;
    } else {
      this.b.set(src.subarray(s, e), p);
    }
    this.len = p + n;
  }
  take(): Buffer {
    const r = Buffer.from(this.b.subarray(0, this.len));
    this.len = 0;
    return r;
  }
}

/** Writes field i of a column (length prefix included) in binary form. */
export type FieldWriter = (i: number, o: Out) => void;

/**
 * Is row i of a column valid? A test for per-row loops: `bm` is {@link validity}(d), read
 * once per column (apache-arrow's `nullCount` getter does work on every call).
 */
function valid(bm: Uint8Array | undefined, d: Data, i: number): boolean {
  if (!bm) return true;
  const j = d.offset + i;
  return ((bm[j >> 3]! >> (j & 7)) & 1) === 1;
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

const TWO32 = 4294967296;
const EPOCH_HI = 0x35d01;
const EPOCH_LO = 0x3b37e000;

/** The binary writer of one column's Data. */
function fieldWriter(s: ColumnSpec, d: Data): FieldWriter {
  const w = valueWriter(s, d);
  const bm = validity(d);
  return (i, o) => {
    if (!valid(bm, d, i)) { o.int32(-1); return; }
    const lp = o.reserve(4);
    o.len += 4;
    w(i, o);
    o.dv.setInt32(lp, o.len - lp - 4);
  };
}

/** Writes the binary value (no length prefix) of non-null row i. */
function valueWriter(s: ColumnSpec, d: Data): FieldWriter {
  const off = d.offset;
  if (s.demoted || s.kind === 'numeric' || s.kind === 'fallback' || s.kind === 'text' || s.kind === 'jsonb' || s.kind === 'bytea') {
    const offs = d.valueOffsets as Int32Array;
    const vals = d.values as Uint8Array;
    const asNumeric = s.kind === 'numeric' || s.kind === 'decimal';
    if (asNumeric) {
      const text = Buffer.from(vals.buffer, vals.byteOffset, vals.byteLength);
      return (i, o) => {
        const t = text.toString('latin1', offs[off + i]!, offs[off + i + 1]!); // numeric text is ASCII
        const p = o.reserve(numericMaxBytes(t.length));
        o.len += writeNumericText(o.b, p, t);
      };
    }
    if (s.kind === 'jsonb' && !s.demoted) {
      return (i, o) => {
        const p = o.reserve(1);
        o.b[p] = 1; // jsonb binary format version
        o.len += 1;
        o.bytes(vals, offs[off + i]!, offs[off + i + 1]!);
      };
    }
    return (i, o) => o.bytes(vals, offs[off + i]!, offs[off + i + 1]!);
  }
  switch (s.kind) {
    case 'bool': {
      const bits = d.values as Uint8Array;
      return (i, o) => {
        const j = off + i;
        const p = o.reserve(1);
        o.b[p] = (bits[j >> 3]! >> (j & 7)) & 1;
        o.len += 1;
      };
    }
    case 'int2': case 'int4': case 'int8': case 'float4': case 'float8': case 'time': {
      const width = s.kind === 'int2' ? 2 : s.kind === 'int4' || s.kind === 'float4' ? 4 : 8;
      const u8 = bytesOf(d.values as ArrayBufferView);
      return (i, o) => {
        const p = o.reserve(width);
        const src = (off + i) * width;
        for (let k = 0; k < width; k++) o.b[p + k] = u8[src + width - 1 - k]!;
        o.len += width;
      };
    }
    case 'decimal': {
      const words = d.values as Uint32Array;
      const scale = s.scale!;
      return (i, o) => {
        const j = (off + i) * 4;
        const w0 = words[j]!, w1 = words[j + 1]!, w2 = words[j + 2]!, w3 = words[j + 3]!;
        // |v| < 2^53 (most values): base-10000 groups by arithmetic, no digit string.
        if (w2 === 0 && w3 === 0 && w1 < 0x200000) {
          const p = o.reserve(numericMaxBytes(20));
          const n = writeNumericSafe(o.b, p, false, w1 * TWO32 + w0, scale);
          if (n >= 0) { o.len += n; return; }
        } else if (w2 === 0xffffffff && w3 === 0xffffffff && w1 >= 0xffe00000) {
          const p = o.reserve(numericMaxBytes(20));
          const n = writeNumericSafe(o.b, p, true, (~w1 >>> 0) * TWO32 + (~w0 >>> 0) + 1, scale);
          if (n >= 0) { o.len += n; return; }
        }
        let digits: string;
        let neg = false;
        if (w2 === 0 && w3 === 0 && w1 < 0x200000) digits = String(w1 * TWO32 + w0);
        else {
          const v = BigInt.asIntN(128, (BigInt(w3) << 96n) | (BigInt(w2) << 64n) | (BigInt(w1) << 32n) | BigInt(w0));
          neg = v < 0n;
          digits = (neg ? -v : v).toString();
        }
        const p = o.reserve(numericMaxBytes(digits.length));
        o.len += writeNumeric(o.b, p, neg, digits, scale);
      };
    }
    case 'date': {
      const v = d.values as Int32Array;
      return (i, o) => {
        const x = v[off + i]!;
        o.int32(x === 0x7fffffff || x === -0x80000000 ? x : x - PG_EPOCH_DAYS);
      };
    }
    case 'timestamp': case 'timestamptz': {
      const v = new Int32Array((d.values as BigInt64Array).buffer, (d.values as BigInt64Array).byteOffset, (d.values as BigInt64Array).length * 2);
      return (i, o) => {
        const lo = v[2 * (off + i)]! >>> 0;
        const hi = v[2 * (off + i) + 1]!;
        const p = o.reserve(8);
        if ((hi === 0x7fffffff && lo === 0xffffffff) || (hi === -0x80000000 && lo === 0)) {
          o.b.writeInt32BE(hi, p);
          o.b.writeUInt32BE(lo, p + 4);
        } else {
          let lo2 = lo - EPOCH_LO;
          let hi2 = hi - EPOCH_HI;
          if (lo2 < 0) { lo2 += TWO32; hi2 -= 1; }
          o.b.writeInt32BE(hi2, p);
          o.b.writeUInt32BE(lo2, p + 4);
        }
        o.len += 8;
      };
    }
    case 'interval': {
      const v = d.values as Int32Array;
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      return (i, o) => {
        const q = (off + i) * 16;
        const months = dv.getInt32(q, true);
        const days = dv.getInt32(q + 4, true);
        // Nanoseconds → microseconds; segferry writes whole microseconds, others are truncated.
        const us = dv.getBigInt64(q + 8, true) / 1000n;
        const p = o.reserve(16);
        o.b.writeBigInt64BE(us, p);
        o.b.writeInt32BE(days, p + 8);
        o.b.writeInt32BE(months, p + 12);
        o.len += 16;
      };
    }
    case 'uuid': {
      const u8 = d.values as Uint8Array;
      return (i, o) => o.bytes(u8, (off + i) * 16, (off + i) * 16 + 16);
    }
    case 'list': {
      const offs = d.valueOffsets as Int32Array;
      const child = d.children[0]!;
      const elem = s.elem!;
      const cw = fieldWriter(elem, child);
      const cbm = validity(child);
      return (i, o) => {
        const a = offs[off + i]!;
        const b = offs[off + i + 1]!;
        const n = b - a;
        if (n === 0) {
          // An empty array has no dimensions.
          o.int32(0); o.int32(0); o.int32(elem.oid);
          return;
        }
        let hasNull = 0;
        if (cbm) for (let k = a; k < b; k++) if (!valid(cbm, child, k)) { hasNull = 1; break; }
        // ndim 1, has-nulls, element oid, dimension n, lower bound 1.
        const p = o.reserve(20);
        const dv = o.dv;
        dv.setInt32(p, 1); dv.setInt32(p + 4, hasNull); dv.setInt32(p + 8, elem.oid); dv.setInt32(p + 12, n); dv.setInt32(p + 16, 1);
        o.len = p + 20;
        for (let k = a; k < b; k++) cw(k, o);
      };
    }
    default:
      throw new ValueConversionError(`column ${s.name}: no binary form for kind ${s.kind}`);
  }
}

/**
 * One column's fields of a record batch in COPY BINARY, written column by column: `size`
 * adds each row's field bytes (length word included) to `rowLen`, then `write` puts the fields
 * of rows [a, b) at `cur[r - a]` of `out`, advancing `cur`. Each column kind has its own
 * loops, so no per-value closure call, NULL test or buffer growth check remains.
 */
export interface ColumnEncoder {
  size(rowLen: Int32Array, n: number): void;
  write(ov: DataView, out: Buffer, cur: Int32Array, a: number, b: number): void;
}

/** Validity bits of a column, or undefined when it has no NULLs. */
function validity(d: Data): Uint8Array | undefined {
  return d.nullCount > 0 && d.nullBitmap && d.nullBitmap.length > 0 ? d.nullBitmap : undefined;
}

/** Add `bytes` (valid rows) or 4 (NULL rows) to each row's length. */
function addSizes(rowLen: Int32Array, n: number, d: Data, bytes: number): void {
  const bm = validity(d);
  if (!bm) {
    for (let r = 0; r < n; r++) rowLen[r]! += bytes;
    return;
  }
  const off = d.offset;
  for (let r = 0; r < n; r++) {
    const j = off + r;
    rowLen[r]! += (bm[j >> 3]! >> (j & 7)) & 1 ? bytes : 4;
  }
}

/** Copy `len` bytes, 4 at a time through DataViews while short (Buffer#copy allocates a view per call). */
export function copyInto(ov: DataView, out: Buffer, q: number, sv: DataView, src: Uint8Array, s: number, len: number): void {
  if (len < 160) {
    let j = 0;
    for (; j + 4 <= len; j += 4) ov.setInt32(q + j, sv.getInt32(s + j, true), true);
    for (; j < len; j++) out[q + j] = src[s + j]!;
  } else out.set(src.subarray(s, s + len), q);
}

function dataView(v: ArrayBufferView): DataView {
  return new DataView(v.buffer, v.byteOffset, v.byteLength);
}

/** Fixed-width values written from the little-endian Arrow slot by `put` (value bytes `width`). */
function fixedEncoder(d: Data, width: number, put: (ov: DataView, p: number, sv: DataView, j: number) => void): ColumnEncoder {
  const sv = dataView(d.values as ArrayBufferView);
  const off = d.offset;
  return {
    size: (rowLen, n) => addSizes(rowLen, n, d, 4 + width),
    write(ov, _out, cur, a, b) {
      const bm = validity(d);
      for (let r = a; r < b; r++) {
        const p = cur[r - a]!;
        const j = off + r;
        if (bm && ((bm[j >> 3]! >> (j & 7)) & 1) === 0) {
          ov.setInt32(p, -1);
          cur[r - a] = p + 4;
        } else {
          ov.setInt32(p, width);
          put(ov, p + 4, sv, j);
          cur[r - a] = p + 4 + width;
        }
      }
    },
  };
}

/** Variable-width values copied from the Arrow value bytes; jsonb gets its version byte (1) back. */
function bytesEncoder(d: Data, jsonb: boolean): ColumnEncoder {
  const offs = d.valueOffsets as Int32Array;
  const vals = d.values as Uint8Array;
  const sv = dataView(vals);
  const off = d.offset;
  const extra = jsonb ? 1 : 0;
  return {
    size(rowLen, n) {
      const bm = validity(d);
      for (let r = 0; r < n; r++) {
        const j = off + r;
        rowLen[r]! += bm && ((bm[j >> 3]! >> (j & 7)) & 1) === 0 ? 4 : 4 + extra + offs[j + 1]! - offs[j]!;
      }
    },
    write(ov, out, cur, a, b) {
      const bm = validity(d);
      for (let r = a; r < b; r++) {
        let p = cur[r - a]!;
        const j = off + r;
        if (bm && ((bm[j >> 3]! >> (j & 7)) & 1) === 0) {
          ov.setInt32(p, -1);
          cur[r - a] = p + 4;
          continue;
        }
        const s = offs[j]!;
        const len = offs[j + 1]! - s;
        ov.setInt32(p, len + extra);
        p += 4;
        if (jsonb) out[p++] = 1;
        copyInto(ov, out, p, sv, vals, s, len);
        cur[r - a] = p + len;
      }
    },
  };
}

/**
 * Any other column (decimal, numeric held as text, lists, intervals): each value is encoded
 * once by `w` (its value, no length word) into a scratch buffer during `size`, then copied.
 * `w` is called for the rows where `present(r)` is true, once each, in row order.
 */
export function encodedEncoder(w: FieldWriter, present: (r: number) => boolean): ColumnEncoder {
  const scratch = new Out(64 * 1024);
  let ends = new Int32Array(0);
  return {
    size(rowLen, n) {
      scratch.len = 0;
      if (ends.length < n + 1) ends = new Int32Array(n + 1);
      for (let r = 0; r < n; r++) {
        const start = scratch.len;
        if (present(r)) {
          w(r, scratch);
          rowLen[r]! += 4 + scratch.len - start;
        } else {
          rowLen[r]! += 4;
          ends[r] = -1 - start; // NULL, keeping where the next value starts
          continue;
        }
        ends[r] = start;
      }
      ends[n] = scratch.len;
    },
    write(ov, out, cur, a, b) {
      const buf = scratch.b;
      const sv = dataView(buf);
      for (let r = a; r < b; r++) {
        const p = cur[r - a]!;
        const e = ends[r]!;
        if (e < 0) {
          ov.setInt32(p, -1);
          cur[r - a] = p + 4;
          continue;
        }
        const next = ends[r + 1]!;
        const len = (next < 0 ? -1 - next : next) - e;
        ov.setInt32(p, len);
        copyInto(ov, out, p + 4, sv, buf, e, len);
        cur[r - a] = p + 4 + len;
      }
    },
  };
}

/**
 * A timestamp's microseconds since 1970 (low and high words) as PostgreSQL's since 2000 at `p`;
 * ±infinity (INT64 max and min) kept as they are.
 */
export function putTimestamp(ov: DataView, p: number, lo: number, hi: number): void {
  if ((hi === 0x7fffffff && lo === 0xffffffff) || (hi === -0x80000000 && lo === 0)) {
    ov.setInt32(p, hi);
    ov.setUint32(p + 4, lo);
    return;
  }
  let lo2 = lo - EPOCH_LO;
  let hi2 = hi - EPOCH_HI;
  if (lo2 < 0) { lo2 += TWO32; hi2 -= 1; }
  ov.setInt32(p, hi2);
  ov.setUint32(p + 4, lo2);
}

/** The column-wise COPY BINARY encoder of one column's Data. */
export function columnEncoder(s: ColumnSpec, d: Data): ColumnEncoder {
  if (s.demoted || s.kind === 'text' || s.kind === 'bytea' || s.kind === 'fallback') return bytesEncoder(d, false);
  switch (s.kind) {
    case 'jsonb': return bytesEncoder(d, true);
    case 'int2': return fixedEncoder(d, 2, (ov, p, sv, j) => ov.setInt16(p, sv.getInt16(2 * j, true)));
    case 'int4': case 'float4': return fixedEncoder(d, 4, (ov, p, sv, j) => ov.setInt32(p, sv.getInt32(4 * j, true)));
    // Two int32 halves, not one float64: a float load may change a NaN's bits.
    case 'int8': case 'float8': case 'time': return fixedEncoder(d, 8, (ov, p, sv, j) => {
      ov.setInt32(p, sv.getInt32(8 * j + 4, true));
      ov.setInt32(p + 4, sv.getInt32(8 * j, true));
    });
    case 'date': return fixedEncoder(d, 4, (ov, p, sv, j) => {
      const x = sv.getInt32(4 * j, true);
      ov.setInt32(p, x === 0x7fffffff || x === -0x80000000 ? x : x - PG_EPOCH_DAYS);
    });
    case 'timestamp': case 'timestamptz': return fixedEncoder(d, 8, (ov, p, sv, j) => putTimestamp(ov, p, sv.getUint32(8 * j, true), sv.getInt32(8 * j + 4, true)));
    case 'bool': {
      const bits = d.values as Uint8Array;
      return fixedEncoder(d, 1, (ov, p, _sv, j) => ov.setUint8(p, (bits[j >> 3]! >> (j & 7)) & 1));
    }
    case 'uuid': return fixedEncoder(d, 16, (ov, p, sv, j) => {
      for (let k = 0; k < 16; k += 4) ov.setInt32(p + k, sv.getInt32(16 * j + k, true), true);
    });
    default: {
      const bm = validity(d);
      return encodedEncoder(valueWriter(s, d), (r) => valid(bm, d, r));
    }
  }
}

/** Writes field i of a column as COPY TEXT (escaped, `\N` for NULL). */
type TextWriter = (i: number) => string;

function textWriter(s: ColumnSpec, d: Data): TextWriter {
  if (s.demoted || s.kind === 'numeric' || s.kind === 'fallback' || s.kind === 'text' || s.kind === 'jsonb') {
    const offs = d.valueOffsets as Int32Array;
    const vals = d.values as Uint8Array;
    const off = d.offset;
    const bm = validity(d);
    return (i) => {
      if (!valid(bm, d, i)) return '\\N';
      return copyTextEscape(Buffer.from(vals.buffer, vals.byteOffset + offs[off + i]!, offs[off + i + 1]! - offs[off + i]!).toString('utf8'));
    };
  }
  // Native columns: binary form first, then the type's text form.
  const w = valueWriter(s, d);
  const o = new Out(256);
  const bm = validity(d);
  return (i) => {
    if (!valid(bm, d, i)) return '\\N';
    o.len = 0;
    w(i, o);
    return copyTextEscape(valueToText(s.oid, o.b, 0, o.len));
  };
}

/** apache-arrow's own failures on bytes it cannot parse (plain Errors) as ERR_FORMAT. */
function unreadable(e: unknown): SegferryError {
  if (e instanceof SegferryError) return e;
  return new FormatError(`Arrow object cannot be read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** Bytes after the 8-byte file magic, from any byte source; the rest is drained by the caller. */
async function* afterMagic(it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  let head: Buffer = Buffer.alloc(0);
  while (head.length < 8) {
    const r = await it.next();
    if (r.done) throw new SchemaMismatchError('object is not an Arrow IPC file (too short)');
    const v = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    // Concatenate only when the magic is split: the first read may be the whole object.
    head = head.length === 0 ? v : Buffer.concat([head, v]);
  }
  if (!head.subarray(0, 6).equals(MAGIC.subarray(0, 6))) throw new SchemaMismatchError('object is not an Arrow IPC file (no ARROW1 magic)');
  if (head.length > 8) yield head.subarray(8);
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}

/**
 * Open an Arrow IPC object (as written by segferry) for COPY FROM. Reads the schema message
 * only; {@link ArrowCopySource.chunks} streams the rest. The whole object is read, footer
 * included, so a hash computed on the way covers every byte. Memory: one record batch, 4 bytes
 * per row of it, its decimal/numeric/list/interval columns in COPY form, and one output window.
 */
export async function openArrowObject(
  source: AsyncIterable<Uint8Array>,
  opts: ArrowDecodeOptions = {},
): Promise<ArrowCopySource> {
  const it = source[Symbol.asyncIterator]();
  const reader = await RecordBatchReader.from(afterMagic(it)).then((r) => r.open()).catch((e: unknown) => { throw unreadable(e); });
  const schema = reader.schema;
  if (!schema) throw new SchemaMismatchError('Arrow object has no schema message after its magic');
  const batches = (reader as AsyncIterable<RecordBatch>)[Symbol.asyncIterator]();
  return batchCopySource(schema, {
    next: () => batches.next().catch((e: unknown) => { throw unreadable(e); }),
    // Read the footer too (see above).
    async end() { for (;;) if ((await it.next()).done) break; },
    async close() { await it.return?.(); },
  }, opts);
}

/**
 * A batch of rows as {@link batchCopySource} encodes it: a record batch, or rows of another
 * source (Parquet row groups) that give each column's COPY BINARY encoder directly and its
 * Arrow data only for COPY TEXT.
 */
export interface CopyBatch {
  readonly numRows: number;
  /** Column c's COPY BINARY encoder (rows in order, as {@link ColumnEncoder} says) for its spec `s`. */
  encoder(c: number, s: ColumnSpec): ColumnEncoder;
  /** Column c as Arrow data (COPY TEXT). */
  data(c: number): Data;
}

/** Record batches for {@link batchCopySource}: the next one, the rest of the object after the last, a close that always runs. */
export interface BatchFeed {
  next(): Promise<IteratorResult<RecordBatch | CopyBatch>>;
  end(): Promise<void>;
  close(): Promise<void>;
}

/**
 * COPY input of record batches of `schema` (segferry's field metadata): what
 * {@link openArrowObject} does after reading the schema, and what Parquet import feeds its
 * decoded row groups into without an IPC round trip. Memory as for {@link openArrowObject}.
 */
export function batchCopySource(schema: Schema, feed: BatchFeed, opts: ArrowDecodeOptions = {}): ArrowCopySource {
  const specs = schema.fields.map((f) => {
    try {
      return specFromField(f);
    } catch (e) {
      throw new SchemaMismatchError(`Arrow field ${f.name} lacks segferry's PostgreSQL type metadata`, { cause: e });
    }
  });
  const canBinary = specs.every(binaryCapable);
  const want = opts.format ?? 'auto';
  if (want === 'binary' && !canBinary) {
    const bad = specs.filter((s) => !binaryCapable(s)).map((s) => s.name);
    throw new SchemaMismatchError(`columns ${bad.join(', ')} are held as text and can only be loaded with COPY TEXT`);
  }
  const format: ArrowCopyFormat = want === 'text' || !canBinary ? 'text' : 'binary';
  const chunkBytes = opts.chunkBytes ?? 1024 * 1024;
  let rows = 0;
  async function* chunks(): AsyncGenerator<Buffer> {
    // Binary output is written into one buffer per window below; `out` holds header and trailer.
    const out = new Out(format === 'binary' ? 64 : Math.min(chunkBytes * 2, 16 * 1024 * 1024));
    let rowLen = new Int32Array(0);
    let cur = new Int32Array(0);
    if (format === 'binary') {
      // Header: signature, int32 flags (0), int32 header extension length (0).
      out.bytes(COPY_SIGNATURE, 0, COPY_SIGNATURE.length);
      out.int32(0);
      out.int32(0);
    }
    try {
      for (;;) {
        const next = await feed.next();
        if (next.done) break;
        const v = next.value;
        const batch: CopyBatch = 'getChildAt' in v
          ? { numRows: v.numRows, data: (c) => v.getChildAt(c)!.data[0]!, encoder: (c, s) => columnEncoder(s, v.getChildAt(c)!.data[0]!) }
          : v;
        const n = batch.numRows;
        if (format === 'binary') {
          // Column by column: every row's length first, then the rows in windows of about
          // chunkBytes (at least one row), each written field by field into its own buffer.
          const encs = specs.map((s, c) => batch.encoder(c, s));
          const nf = encs.length;
          if (rowLen.length < n) rowLen = new Int32Array(n);
          rowLen.fill(2, 0, n); // the int16 field count
          for (const e of encs) e.size(rowLen, n);
          if (out.len > 0) yield out.take(); // the COPY header
          let a = 0;
          while (a < n) {
            let bytes = rowLen[a]!;
            let b = a + 1;
            while (b < n && bytes + rowLen[b]! <= chunkBytes) bytes += rowLen[b++]!;
            const buf = Buffer.allocUnsafe(bytes);
            const ov = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
            if (cur.length < b - a) cur = new Int32Array(b - a);
            for (let r = a, p = 0; r < b; r++) {
              ov.setInt16(p, nf);
              cur[r - a] = p + 2;
              p += rowLen[r]!;
            }
            for (const e of encs) e.write(ov, buf, cur, a, b);
            rows += b - a;
            yield buf;
            a = b;
          }
        } else {
          const ws = specs.map((s, c) => textWriter(s, batch.data(c)));
          for (let i = 0; i < n; i++) {
            const line = ws.map((w) => w(i)).join('\t') + '\n';
            const need = Buffer.byteLength(line);
            const p = out.reserve(need);
            out.b.write(line, p, 'utf8');
            out.len += need;
            rows++;
            if (out.len >= chunkBytes) yield out.take();
          }
        }
      }
      if (format === 'binary') out.int16(-1);
      if (out.len > 0) yield out.take();
      await feed.end();
    } finally {
      await feed.close();
    }
  }
  return {
    schema,
    specs,
    columns: specs.map((s) => s.name),
    format,
    copyOptions: format === 'binary' ? 'FORMAT binary' : 'FORMAT text',
    chunks,
    get rows() { return rows; },
  };
}


