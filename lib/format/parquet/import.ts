import { setImmediate as turn } from 'node:timers/promises';
import { makeData, type Data } from 'apache-arrow';
import { FormatError, SchemaMismatchError } from '../../errors.js';
import { batchCopySource, columnEncoder, type ArrowCopySource, type ArrowDecodeOptions, type BatchFeed, type CopyBatch } from '../arrow/decoder.js';
import { arrayOidOf, arrowSchema, arrowType, columnSpec, isTextForm, OID, type ColumnSpec } from '../arrow/pgtypes.js';
import { pageDecompressor } from './codecs.js';
import { PARQUET_META, type ParquetColumnMeta } from './file.js';
import { byteArray, byteLength, decodeChunk, footerLength, parseFooter, type DecodedColumn, type ParquetFileMeta, type ParquetLeaf } from './reader.js';
import { decimalBytes, leafType, parquetSpec, PT } from './schema.js';
import { listLevels, parquetEncoder } from './to-copy.js';
import type { RStruct } from './thrift.js';

/*
 * Parquet objects into COPY input. The footer is read first (two ranged reads of the tail);
 * then the object is streamed front to back once (so a SHA-256 taken on the way covers every
 * byte) and each row group, when its bytes have arrived, is decoded column by column (values
 * left in their pages, reader.ts) and handed to the Arrow import path's COPY writer
 * (lib/format/arrow/decoder.ts, batchCopySource): COPY BINARY fields are written straight from
 * the decoded pages (to-copy.ts), through Arrow data only for the kinds to-copy.ts leaves out
 * and for COPY TEXT (a column holding text forms, bare objects). Memory: the footer, one row
 * group's bytes and decompressed pages, 4 bytes per value of its byte-array columns and per
 * row, and one output chunk.
 */

/** How a Parquet object is read: its size, a ranged read, and one full stream. */
export interface ParquetObjectSource {
  size: number;
  /** Bytes [start, end) of the object. */
  range(start: number, end: number): Promise<Uint8Array>;
  /** The whole object, front to back. */
  stream(): AsyncIterable<Uint8Array>;
}

/** Options of {@link openParquetObject}. */
export interface ParquetOpenOptions extends ArrowDecodeOptions {
  /**
   * Column types to read a file without segferry's metadata with (a bare import of Parquet
   * written by another tool): derived from the Parquet types when absent.
   */
  foreign?: boolean;
  /**
   * Write COPY BINARY through Arrow data for every column, as before to-copy.ts (default
   * false): the reference the direct encoders are tested against.
   */
  viaArrow?: boolean;
}

/** Read and check the footer of a Parquet object. */
export async function readParquetFooter(src: Pick<ParquetObjectSource, 'size' | 'range'>): Promise<ParquetFileMeta> {
  const n = footerLength(await src.range(src.size - 8, src.size), src.size);
  return parseFooter(await src.range(src.size - 8 - n, src.size - 8), src.size);
}

function parseColumnsMeta(s: string, leaves: ParquetLeaf[]): ParquetColumnMeta[] {
  let v: unknown;
  try { v = JSON.parse(s); } catch { throw new FormatError(`Parquet metadata ${PARQUET_META.columns} is not JSON`); }
  if (!Array.isArray(v) || v.length !== leaves.length) throw new FormatError(`Parquet metadata ${PARQUET_META.columns} does not list every column`);
  return v.map((c: unknown, i) => {
    const o = c as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || o.name !== leaves[i]!.name || typeof o.pgType !== 'string' ||
      !Number.isSafeInteger(o.oid) || (o.oid as number) < 0 || !Number.isSafeInteger(o.typmod) || (o.text !== undefined && o.text !== true)) {
      throw new FormatError(`Parquet metadata ${PARQUET_META.columns} entry ${i} is malformed`);
    }
    return o as unknown as ParquetColumnMeta;
  });
}

/** Logical type struct of a leaf (field 10), if any: [union field id, its struct]. */
function logical(el: RStruct): [number, RStruct] | undefined {
  const lt = el.get(10);
  if (!(lt instanceof Map)) return undefined;
  for (const [k, v] of lt) if (v instanceof Map) return [k, v];
  return undefined;
}

/** The PostgreSQL type a Parquet leaf of another writer is read as. */
function foreignScalar(l: ParquetLeaf): { oid: number; typmod: number; pgType: string } {
  const lt = logical(l.element);
  const ct = typeof l.element.get(6) === 'number' ? (l.element.get(6) as number) : -1;
  const scale = typeof l.element.get(7) === 'number' ? (l.element.get(7) as number) : 0;
  const precision = typeof l.element.get(8) === 'number' ? (l.element.get(8) as number) : 0;
  const dec = lt?.[0] === 5 || ct === 5;
  if (dec) {
    const p = lt?.[0] === 5 ? Number(lt[1].get(2)) : precision;
    const s = lt?.[0] === 5 ? Number(lt[1].get(1)) : scale;
    if (p >= 1 && p <= 38 && s >= 0 && s <= p) return { oid: OID.numeric, typmod: ((p << 16) | s) + 4, pgType: `numeric(${p},${s})` };
  }
  const unsupported = () => { throw new FormatError(`Parquet column ${l.name}: its type cannot be imported (physical ${l.physical}, logical ${lt?.[0] ?? 'none'})`); };
  switch (l.physical) {
    case PT.BOOLEAN: return { oid: OID.bool, typmod: -1, pgType: 'boolean' };
    case PT.INT32:
      if (lt?.[0] === 6 || ct === 6) return { oid: OID.date, typmod: -1, pgType: 'date' };
      if (lt?.[0] === 10 && (lt[1].get(2) === false)) return unsupported(); // unsigned
      if (ct >= 11 && ct <= 14) return unsupported();
      if ((lt?.[0] === 10 && Number(lt[1].get(1)) <= 16) || ct === 15 || ct === 16) return { oid: OID.int2, typmod: -1, pgType: 'smallint' };
      if (lt?.[0] === 7 || ct === 7) return unsupported(); // TIME(MILLIS) as int32
      return { oid: OID.int4, typmod: -1, pgType: 'integer' };
    case PT.INT64:
      if (lt?.[0] === 8) return lt[1].get(1) === true ? { oid: OID.timestamptz, typmod: -1, pgType: 'timestamp with time zone' } : { oid: OID.timestamp, typmod: -1, pgType: 'timestamp without time zone' };
      if (ct === 9 || ct === 10) return { oid: OID.timestamptz, typmod: -1, pgType: 'timestamp with time zone' };
      if (lt?.[0] === 7 || ct === 8) return { oid: OID.time, typmod: -1, pgType: 'time without time zone' };
      if (lt?.[0] === 10 && lt[1].get(2) === false) return unsupported();
      return { oid: OID.int8, typmod: -1, pgType: 'bigint' };
    case PT.FLOAT: return { oid: OID.float4, typmod: -1, pgType: 'real' };
    case PT.DOUBLE: return { oid: OID.float8, typmod: -1, pgType: 'double precision' };
    case PT.BYTE_ARRAY:
      if (lt?.[0] === 12 || ct === 19) return { oid: OID.json, typmod: -1, pgType: 'json' };
      if (lt?.[0] === 1 || lt?.[0] === 4 || ct === 0 || ct === 4) return { oid: OID.text, typmod: -1, pgType: 'text' };
      return { oid: OID.bytea, typmod: -1, pgType: 'bytea' };
    case PT.FIXED_LEN_BYTE_ARRAY:
      if ((lt?.[0] === 14) && l.typeLength === 16) return { oid: OID.uuid, typmod: -1, pgType: 'uuid' };
      return { oid: OID.bytea, typmod: -1, pgType: 'bytea' };
    default: return unsupported();
  }
}

function foreignSpec(l: ParquetLeaf): ColumnSpec {
  const s = foreignScalar(l);
  if (!l.list) return columnSpec({ name: l.name, ...s });
  const arr = arrayOidOf(s.oid);
  if (arr === undefined) throw new FormatError(`Parquet column ${l.name}: a list of ${s.pgType} cannot be imported`);
  return columnSpec({ name: l.name, pgType: `${s.pgType}[]`, oid: arr, typmod: s.typmod });
}

/** Microseconds per unit of a foreign INT64 time value (MILLIS: ×1000; NANOS: ÷1000). */
function timeScale(l: ParquetLeaf): number {
  const lt = logical(l.element);
  if (lt && (lt[0] === 8 || lt[0] === 7)) {
    const unit = lt[1].get(2);
    if (unit instanceof Map) {
      if (unit.has(1)) return 1000;
      if (unit.has(3)) return -1000;
    }
    return 1;
  }
  return l.element.get(6) === 9 ? 1000 : 1;
}

/** The specs of a file: segferry's metadata when present (own objects), else from the Parquet types. */
export function parquetSpecs(meta: ParquetFileMeta, foreign: boolean): ColumnSpec[] {
  const cm = meta.kv.get(PARQUET_META.columns);
  if (cm === undefined || foreign) {
    if (!foreign) throw new SchemaMismatchError(`Parquet object lacks segferry's ${PARQUET_META.columns} metadata: import it as bare objects`);
    return meta.leaves.map(foreignSpec);
  }
  const cols = parseColumnsMeta(cm, meta.leaves);
  return cols.map((c, i) => {
    const leaf = meta.leaves[i]!;
    const s = parquetSpec(columnSpec({ name: c.name, pgType: c.pgType, oid: c.oid, typmod: c.typmod }));
    if (s.kind === 'list' && !leaf.list) s.demoted = true;
    else if (c.text && s.kind !== 'list' && !isTextForm(s)) s.demoted = true;
    // The file must hold what the spec says.
    const want = s.kind === 'list' && !s.demoted ? leafType(s.elem!) : leafType(s);
    if (leaf.list !== (s.kind === 'list' && !s.demoted) || leaf.physical !== want.physical || (want.width !== undefined && leaf.typeLength !== want.width)) {
      throw new SchemaMismatchError(`Parquet column ${c.name} does not have the layout of ${c.pgType}`);
    }
    return s;
  });
}

/** The import-side spec of a column: a list of text elements is loaded as one array literal. */
function importSpec(s: ColumnSpec): ColumnSpec {
  if (s.kind === 'list' && !s.demoted && s.elem!.demoted) return { ...s, demoted: true };
  return s;
}

function bitmapOf(valid: Uint8Array, n: number): { bitmap: Uint8Array | undefined; nulls: number } {
  let nulls = 0;
  for (let i = 0; i < n; i++) if (!valid[i]) nulls++;
  if (nulls === 0) return { bitmap: undefined, nulls };
  const bm = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) if (valid[i]) bm[i >> 3]! |= 1 << (i & 7);
  return { bitmap: bm, nulls };
}

/** Arrow data of `n` slots of a scalar spec from present values in slot order (`valid[i]` = slot has a value). */
function scalarData(s: ColumnSpec, l: ParquetLeaf, col: DecodedColumn, vFrom: number, valid: Uint8Array, n: number): Data {
  const type = arrowType(s);
  const { bitmap, nulls } = bitmapOf(valid, n);
  const base = { type, length: n, nullCount: nulls, nullBitmap: bitmap };
  if (isTextForm(s) || s.kind === 'text' || s.kind === 'jsonb' || s.kind === 'bytea') {
    if (!col.pos) throw new SchemaMismatchError(`Parquet column ${s.name} is not a byte array`);
    // Arrow's layout: the values' bytes joined, and offsets.
    const offs = new Int32Array(n + 1);
    const pos = col.pos;
    const src = col.bytes!;
    let total = 0;
    for (let i = 0, v = vFrom; i < n; i++) if (valid[i]) total += byteLength(src, pos[v++]!);
    const data = new Uint8Array(total);
    let at = 0;
    for (let i = 0, v = vFrom; i < n; i++) {
      if (valid[i]) {
        const p = pos[v++]!;
        const len = byteLength(src, p);
        if (len <= 64) for (let k = 0; k < len; k++) data[at + k] = src[p + k]!;
        else data.set(src.subarray(p, p + len), at);
        at += len;
      }
      offs[i + 1] = at;
    }
    return makeData({ ...base, valueOffsets: offs, data } as never);
  }
  const fx = col.fixed!;
  const dv = new DataView(fx.buffer, fx.byteOffset, fx.byteLength);
  let v = vFrom;
  switch (s.kind) {
    case 'bool': {
      const bits = new Uint8Array((n + 7) >> 3);
      for (let i = 0; i < n; i++) if (valid[i] && fx[v++]) bits[i >> 3]! |= 1 << (i & 7);
      return makeData({ ...base, data: bits } as never);
    }
    case 'int2': case 'int4': case 'date': case 'float4': {
      const out = s.kind === 'int2' ? new Int16Array(n) : s.kind === 'float4' ? new Float32Array(n) : new Int32Array(n);
      for (let i = 0; i < n; i++) {
        if (!valid[i]) continue;
        const x = s.kind === 'float4' ? dv.getFloat32(4 * v, true) : dv.getInt32(4 * v, true);
        if (s.kind === 'int2' && (x < -32768 || x > 32767)) throw new FormatError(`Parquet column ${s.name}: ${x} does not fit smallint`);
        out[i] = x;
        v++;
      }
      return makeData({ ...base, data: out } as never);
    }
    case 'int8': case 'float8': case 'timestamp': case 'timestamptz': case 'time': {
      const out = new Uint8Array(8 * n);
      const scale = s.kind === 'timestamp' || s.kind === 'timestamptz' || s.kind === 'time' ? timeScale(l) : 1;
      const odv = new DataView(out.buffer);
      if (scale === 1 && nulls === 0) {
        out.set(fx.subarray(8 * v, 8 * (v + n)));
        v += n;
      } else for (let i = 0; i < n; i++) {
        if (!valid[i]) continue;
        if (scale === 1) for (let b = 0; b < 8; b++) out[8 * i + b] = fx[8 * v + b]!;
        else {
          let x = dv.getBigInt64(8 * v, true);
          if (scale > 0) x *= BigInt(scale);
          else {
            if (x % 1000n !== 0n) throw new FormatError(`Parquet column ${s.name}: a nanosecond value has no exact microsecond form`);
            x /= 1000n;
          }
          odv.setBigInt64(8 * i, x, true);
        }
        v++;
      }
      const typed = s.kind === 'float8' ? new Float64Array(out.buffer) : new BigInt64Array(out.buffer);
      return makeData({ ...base, data: typed } as never);
    }
    case 'decimal': {
      const out = new Uint8Array(16 * n);
      const w = l.physical === PT.INT32 ? 4 : l.physical === PT.INT64 ? 8 : l.typeLength;
      if (w > 16) throw new FormatError(`Parquet column ${s.name}: a decimal wider than 16 bytes`);
      for (let i = 0; i < n; i++) {
        if (!valid[i]) continue;
        const o = 16 * i;
        if (l.physical === PT.FIXED_LEN_BYTE_ARRAY) {
          // big-endian two's complement → little-endian, sign-extended.
          for (let b = 0; b < w; b++) out[o + b] = fx[v * w + w - 1 - b]!;
          const neg = (fx[v * w]! & 0x80) !== 0;
          out.fill(neg ? 0xff : 0, o + w, o + 16);
        } else {
          for (let b = 0; b < w; b++) out[o + b] = fx[v * w + b]!;
          out.fill((fx[v * w + w - 1]! & 0x80) ? 0xff : 0, o + w, o + 16);
        }
        v++;
      }
      return makeData({ ...base, data: new Uint32Array(out.buffer) } as never);
    }
    case 'uuid': {
      const out = new Uint8Array(16 * n);
      if (nulls === 0) out.set(fx.subarray(16 * v, 16 * (v + n)));
      else for (let i = 0; i < n; i++) if (valid[i]) { for (let b = 0; b < 16; b++) out[16 * i + b] = fx[16 * v + b]!; v++; }
      return makeData({ ...base, data: out } as never);
    }
    default:
      throw new SchemaMismatchError(`Parquet column ${s.name}: type ${s.pgType} cannot be read back`);
  }
}

const utf8 = new TextDecoder();
const enc = new TextEncoder();

/** One column's Arrow data for a row group. */
function columnData(spec: ColumnSpec, is: ColumnSpec, l: ParquetLeaf, col: DecodedColumn, rows: number): Data {
  if (!l.list) {
    const valid = new Uint8Array(rows);
    if (col.def) for (let i = 0; i < rows; i++) valid[i] = col.def[i] === l.maxDef ? 1 : 0;
    else valid.fill(1);
    if (col.levels !== rows) throw new FormatError(`Parquet column ${l.name} has ${col.levels} values for ${rows} rows`);
    return scalarData(is, l, col, 0, valid, rows);
  }
  const { listValid, offsets, elemValid, elems: e } = listLevels(l, col, rows);
  if (is.demoted) {
    // Elements held as text (interval): the whole array as its PostgreSQL literal.
    const texts: (string | null)[] = [];
    let v = 0;
    for (let k = 0; k < e; k++) texts.push(elemValid[k] ? utf8.decode(byteArray(col, v++)) : null);
    const valid = listValid;
    const offs = new Int32Array(rows + 1);
    const parts: Uint8Array[] = [];
    let at = 0;
    for (let i = 0; i < rows; i++) {
      if (valid[i]) {
        const items = texts.slice(offsets[i]!, offsets[i + 1]!).map((t) => (t === null ? 'NULL' : `"${t.replace(/[\\"]/g, '\\$&')}"`));
        const b = enc.encode(`{${items.join(',')}}`);
        parts.push(b);
        at += b.length;
      }
      offs[i + 1] = at;
    }
    const data = new Uint8Array(at);
    let p = 0;
    for (const b of parts) { data.set(b, p); p += b.length; }
    const { bitmap, nulls } = bitmapOf(valid, rows);
    return makeData({ type: arrowType(is), length: rows, nullCount: nulls, nullBitmap: bitmap, valueOffsets: offs, data } as never);
  }
  const child = scalarData(spec.elem!, l, col, 0, elemValid, e);
  const { bitmap, nulls } = bitmapOf(listValid, rows);
  return makeData({ type: arrowType(is), length: rows, nullCount: nulls, nullBitmap: bitmap, valueOffsets: offsets, child } as never);
}

/** Bytes of an object stream taken range by range, in order (bytes before a range are dropped). */
class Cursor {
  #it: AsyncIterator<Uint8Array>;
  #bufs: Uint8Array[] = [];
  #start = 0; // file offset of #bufs[0][0]
  #len = 0;
  constructor(src: AsyncIterable<Uint8Array>) {
    this.#it = src[Symbol.asyncIterator]();
  }
  async take(start: number, end: number): Promise<Uint8Array> {
    while (this.#start + this.#len < end) {
      const r = await this.#it.next();
      if (r.done) throw new FormatError('Parquet object is shorter than its footer says');
      this.#bufs.push(r.value);
      this.#len += r.value.length;
    }
    const all = this.#bufs.length === 1 ? this.#bufs[0]! : Buffer.concat(this.#bufs);
    const out = all.slice(start - this.#start, end - this.#start);
    const rest = all.subarray(end - this.#start);
    this.#bufs = rest.length > 0 ? [rest] : [];
    this.#start = end;
    this.#len = rest.length;
    return out;
  }
  async drain(): Promise<void> {
    for (;;) if ((await this.#it.next()).done) return;
  }
  /** Stop reading the object (a load stopped early). */
  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

/**
 * Open a Parquet object for COPY FROM: reads the footer, then streams the object once,
 * decoding row group by row group. `columns`, `copyOptions` and `chunks()` as for Arrow objects.
 */
export async function openParquetObject(src: ParquetObjectSource, opts: ParquetOpenOptions = {}): Promise<ArrowCopySource & { meta: ParquetFileMeta }> {
  const meta = await readParquetFooter(src);
  const specs = parquetSpecs(meta, opts.foreign === true);
  const isSpecs = specs.map(importSpec);
  const schema = arrowSchema(isSpecs);
  const decompressors = new Map<number, (u8: Uint8Array, size: number) => Uint8Array>();
  for (const g of meta.groups) for (const c of g.chunks) if (!decompressors.has(c.codec)) decompressors.set(c.codec, await pageDecompressor(c.codec));
  // Row groups go to the Arrow import path's COPY writer (batchCopySource) as batches whose
  // columns encode straight from the decoded pages (to-copy.ts), no Arrow data in between.
  const cur = new Cursor(src.stream());
  let g = 0;
  const feed: BatchFeed = {
    async next(): Promise<IteratorResult<CopyBatch>> {
      for (; g < meta.groups.length; g++) {
        const grp = meta.groups[g]!;
        const buf = await cur.take(grp.start, grp.end);
        const rows = grp.rows;
        const cols: DecodedColumn[] = [];
        for (const [i, l] of meta.leaves.entries()) {
          const c = grp.chunks[i]!;
          cols.push(decodeChunk(l, c, buf, grp.start, decompressors.get(c.codec)!));
          // Let the loader send what is already encoded while the next column decodes: a row
          // group decodes for a while, and the COPY must not starve meanwhile.
          await turn();
        }
        if (rows === 0) continue;
        g++;
        const data = (c: number) => columnData(specs[c]!, isSpecs[c]!, meta.leaves[c]!, cols[c]!, rows);
        // COPY BINARY straight from the decoded pages; kinds not handled there through Arrow data.
        const batch: CopyBatch = {
          numRows: rows,
          encoder: (c, s) => (opts.viaArrow ? undefined : parquetEncoder(s, meta.leaves[c]!, cols[c]!, rows, timeScale(meta.leaves[c]!))) ?? columnEncoder(s, data(c)),
          data,
        };
        return { done: false, value: batch };
      }
      return { done: true, value: undefined };
    },
    end: () => cur.drain(), // the rest (footer): the caller's hash covers every byte
    close: () => cur.close(),
  };
  const source = batchCopySource(schema, feed, opts);
  return Object.assign(source, { meta });
}

export { decimalBytes };
