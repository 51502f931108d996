import { FormatError } from '../../errors.js';
import { MAGIC } from './file.js';
import { PT, REP } from './schema.js';
import { ThriftReader, type RStruct, type RValue } from './thrift.js';

/*
 * Reading Parquet files (segferry's own and other writers'): the footer, then one row group
 * at a time. Supported: flat columns and 3-level LISTs of them; data pages v1 and v2; PLAIN,
 * PLAIN_DICTIONARY/RLE_DICTIONARY and RLE (booleans) values; none, snappy, gzip and zstd.
 * Everything read is untrusted: offsets, lengths and counts are checked before use.
 */

/** One leaf column of a file's schema. */
export interface ParquetLeaf {
  /** Top-level column name. */
  name: string;
  physical: number;
  /** FIXED_LEN_BYTE_ARRAY width. */
  typeLength: number;
  maxDef: number;
  maxRep: number;
  /** The leaf's schema element (logical and converted types). */
  element: RStruct;
  /** The column is a LIST of this leaf. */
  list: boolean;
  /** LIST: definition level of an empty list (below it: a NULL list). */
  topDef: number;
}

/** Where one column chunk of a row group is. */
export interface ParquetChunk {
  codec: number;
  start: number;
  end: number;
  values: number;
}

export interface ParquetRowGroup {
  rows: number;
  /** The byte range holding all its column chunks. */
  start: number;
  end: number;
  chunks: ParquetChunk[];
}

/** A file's footer, checked. */
export interface ParquetFileMeta {
  rows: number;
  leaves: ParquetLeaf[];
  groups: ParquetRowGroup[];
  kv: Map<string, string>;
}

const dec = new TextDecoder('utf-8', { fatal: false });
const fail = (what: string): never => { throw new FormatError(`Parquet file is malformed: ${what}`); };

function num(v: RValue | undefined, what: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  return fail(`${what} is missing or not a number`);
}

function str(v: RValue | undefined): string | undefined {
  return v instanceof Uint8Array ? dec.decode(v) : undefined;
}

/** The footer length stored in a file's last 8 bytes (`len`, `PAR1`). */
export function footerLength(tail8: Uint8Array, size: number): number {
  if (tail8.length !== 8 || size < 12) fail('too short for a Parquet file');
  if (!MAGIC.every((b, i) => tail8[4 + i] === b)) fail('no PAR1 magic at its end');
  const n = new DataView(tail8.buffer, tail8.byteOffset, 8).getUint32(0, true);
  if (n > size - 12) fail('its footer length is larger than the file');
  return n;
}

/** Parse and check a footer (the FileMetaData bytes) of a file of `size` bytes. */
export function parseFooter(meta: Uint8Array, size: number): ParquetFileMeta {
  const fm = new ThriftReader(meta).struct();
  const schema = fm.get(2);
  if (!Array.isArray(schema) || schema.length < 1) fail('no schema');
  const els = schema as RStruct[];
  const leaves: ParquetLeaf[] = [];
  const root = els[0]!;
  const n = num(root.get(5) ?? 0, 'root num_children');
  let i = 1;
  const next = (): RStruct => (i < els.length ? els[i++]! : fail('schema ends early'));
  for (let c = 0; c < n; c++) {
    const top = next();
    const name = str(top.get(4)) ?? fail('a column has no name');
    const rep = num(top.get(3) ?? REP.OPTIONAL, 'repetition');
    if (rep === REP.REPEATED) fail(`column ${name} is a repeated field outside a LIST: not supported`);
    const topDef = rep === REP.OPTIONAL ? 1 : 0;
    if (top.get(1) !== undefined) {
      leaves.push({ name, physical: num(top.get(1), 'type'), typeLength: num(top.get(2) ?? 0, 'type_length'), maxDef: topDef, maxRep: 0, element: top, list: false, topDef });
      continue;
    }
    // A group: only LIST's 3-level form (optional group (LIST) { repeated group list { elem } }).
    if (num(top.get(5) ?? 0, 'num_children') !== 1) fail(`column ${name} is a group that is not a LIST: not supported`);
    const mid = next();
    if (num(mid.get(3) ?? 0, 'repetition') !== REP.REPEATED || mid.get(1) !== undefined || num(mid.get(5) ?? 0, 'num_children') !== 1) {
      fail(`column ${name} is not a 3-level LIST: not supported`);
    }
    const leaf = next();
    if (leaf.get(1) === undefined) fail(`column ${name} is a nested group: not supported`);
    const leafDef = num(leaf.get(3) ?? REP.OPTIONAL, 'repetition') === REP.OPTIONAL ? 1 : 0;
    leaves.push({ name, physical: num(leaf.get(1), 'type'), typeLength: num(leaf.get(2) ?? 0, 'type_length'), maxDef: topDef + 1 + leafDef, maxRep: 1, element: leaf, list: true, topDef });
  }
  if (i !== els.length) fail('schema has elements beyond its columns');
  for (const l of leaves) {
    if (l.physical < 0 || l.physical > 7) fail(`column ${l.name} has unknown type ${l.physical}`);
    if (l.physical === PT.FIXED_LEN_BYTE_ARRAY && !(l.typeLength > 0 && l.typeLength <= 1 << 20)) fail(`column ${l.name} has a bad type_length`);
  }
  const dataEnd = size - 8 - meta.length;
  const groups: ParquetRowGroup[] = [];
  let total = 0;
  for (const g of (fm.get(4) ?? []) as RStruct[]) {
    const cols = (g.get(1) ?? []) as RStruct[];
    if (cols.length !== leaves.length) fail('a row group does not have one chunk per column');
    const rows = num(g.get(3), 'num_rows');
    if (rows < 0) fail('negative num_rows');
    total += rows;
    const chunks = cols.map((cc): ParquetChunk => {
      if (cc.get(1) !== undefined) fail('column chunks in other files are not supported');
      const md = cc.get(3) as RStruct | undefined;
      if (!(md instanceof Map)) fail('a column chunk has no metadata');
      const m = md as RStruct;
      const dataOff = num(m.get(9), 'data_page_offset');
      const dictOff = m.get(11) === undefined ? undefined : num(m.get(11), 'dictionary_page_offset');
      const start = dictOff !== undefined && dictOff > 0 && dictOff < dataOff ? dictOff : dataOff;
      const len = num(m.get(7), 'total_compressed_size');
      const end = start + len;
      if (start < 4 || len < 0 || end > dataEnd) fail('a column chunk lies outside the file');
      return { codec: num(m.get(4), 'codec'), start, end, values: num(m.get(5), 'num_values') };
    });
    const start = chunks.length ? Math.min(...chunks.map((c) => c.start)) : 4;
    const end = chunks.length ? Math.max(...chunks.map((c) => c.end)) : 4;
    groups.push({ rows, start, end, chunks });
  }
  if (total !== num(fm.get(3), 'num_rows')) fail('row groups do not add up to num_rows');
  for (let k = 1; k < groups.length; k++) if (groups[k]!.start < groups[k - 1]!.end) fail('row groups overlap or are out of order');
  const kv = new Map<string, string>();
  for (const e of (fm.get(5) ?? []) as RStruct[]) {
    const k = str(e.get(1));
    const v = str(e.get(2));
    if (k !== undefined && v !== undefined) kv.set(k, v);
  }
  return { rows: total, leaves, groups, kv };
}

/** The values of one column chunk, decoded. */
export interface DecodedColumn {
  /** Definition levels (undefined when maxDef is 0: every value present). */
  def: Uint8Array | undefined;
  rep: Uint8Array | undefined;
  levels: number;
  /** Present values: fixed width, PLAIN bytes (BOOLEAN: one byte per value). */
  fixed?: Uint8Array;
  /** Present values: byte arrays as offsets into `data`. */
  offsets?: Int32Array;
  data?: Uint8Array;
  count: number;
}

/** Decoder of the RLE/bit-packed hybrid into `out` (n values). */
function readHybrid(u8: Uint8Array, p: number, end: number, width: number, out: Uint8Array | Uint32Array, n: number): number {
  let k = 0;
  const vb = (width + 7) >> 3;
  while (k < n) {
    if (p >= end) fail('RLE data ends early');
    let h = 0;
    let shift = 0;
    for (;;) {
      if (p >= end || shift > 28) fail('bad RLE run header');
      const b = u8[p++]!;
      h += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
      shift += 7;
    }
    if (h % 2 === 0) {
      const run = h / 2;
      if (p + vb > end) fail('RLE value runs past its page');
      let v = 0;
      for (let b = 0; b < vb; b++) v += u8[p + b]! * 2 ** (8 * b);
      p += vb;
      const m = Math.min(run, n - k);
      out.fill(v, k, k + m);
      k += m;
    } else {
      const groups = (h - 1) / 2;
      const bytes = groups * width;
      if (p + bytes > end) fail('bit-packed run past its page');
      const m = Math.min(groups * 8, n - k);
      if (width <= 24) {
        // An accumulator of under 32 bits: fewer than `width` pending bits plus one byte.
        const mask = (1 << width) - 1;
        let acc = 0;
        let nb = 0;
        let q = p;
        for (let j = 0; j < m; j++) {
          while (nb < width) { acc |= u8[q++]! << nb; nb += 8; }
          out[k + j] = acc & mask;
          acc >>>= width;
          nb -= width;
        }
      } else {
        let bit = p * 8;
        for (let j = 0; j < m; j++) {
          let v = 0;
          for (let b = 0; b < width; b++, bit++) if ((u8[bit >> 3]! >> (bit & 7)) & 1) v |= 1 << b;
          out[k + j] = v >>> 0;
        }
      }
      k += m;
      p += bytes;
    }
  }
  return p;
}

function bitWidth(max: number): number {
  let w = 0;
  while (max >= 2 ** w && w < 32) w++;
  return w;
}

/** PLAIN values: returns fixed bytes or byte-array offsets for `count` values. */
function readPlain(leaf: ParquetLeaf, u8: Uint8Array, p: number, end: number, count: number): { fixed?: Uint8Array; offsets?: Int32Array; data?: Uint8Array } {
  const t = leaf.physical;
  if (t === PT.BOOLEAN) {
    if (p + ((count + 7) >> 3) > end) fail('PLAIN booleans past their page');
    const out = new Uint8Array(count);
    for (let k = 0; k < count; k++) out[k] = (u8[p + (k >> 3)]! >> (k & 7)) & 1;
    return { fixed: out };
  }
  if (t === PT.BYTE_ARRAY) {
    const offsets = new Int32Array(count + 1);
    const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    let q = p;
    let total = 0;
    for (let k = 0; k < count; k++) {
      if (q + 4 > end) fail('PLAIN byte array past its page');
      const n = dv.getUint32(q, true);
      q += 4;
      if (n > end - q) fail('PLAIN byte array past its page');
      q += n;
      total += n;
    }
    const data = new Uint8Array(total);
    q = p;
    let o = 0;
    for (let k = 0; k < count; k++) {
      const n = dv.getUint32(q, true);
      q += 4;
      // Short values byte by byte: cheaper than a subarray and a set.
      if (n <= 64) for (let i = 0; i < n; i++) data[o + i] = u8[q + i]!;
      else data.set(u8.subarray(q, q + n), o);
      q += n;
      o += n;
      offsets[k + 1] = o;
    }
    return { offsets, data };
  }
  const w = t === PT.INT32 || t === PT.FLOAT ? 4 : t === PT.INT64 || t === PT.DOUBLE ? 8 : t === PT.INT96 ? 12 : leaf.typeLength;
  if (p + w * count > end) fail('PLAIN values past their page');
  return { fixed: u8.slice(p, p + w * count) };
}

/** Fixed width in bytes of a leaf's PLAIN values (BOOLEAN: 1 after decoding). */
function widthOf(leaf: ParquetLeaf): number {
  const t = leaf.physical;
  return t === PT.BOOLEAN ? 1 : t === PT.INT32 || t === PT.FLOAT ? 4 : t === PT.INT64 || t === PT.DOUBLE ? 8 : t === PT.INT96 ? 12 : leaf.typeLength;
}

type Decompress = (u8: Uint8Array, size: number) => Uint8Array;

/**
 * Decode one column chunk from the bytes of its row group (`buf` starts at file offset `base`).
 * `decompressor` gives the page decompressor of a codec.
 */
export function decodeChunk(leaf: ParquetLeaf, chunk: ParquetChunk, buf: Uint8Array, base: number, decompress: Decompress): DecodedColumn {
  let p = chunk.start - base;
  const end = chunk.end - base;
  if (p < 0 || end > buf.length) fail('column chunk outside its row group');
  const levels = chunk.values;
  if (levels < 0 || levels > 0x7fffffff) fail('bad num_values');
  const def = leaf.maxDef > 0 ? new Uint8Array(levels) : undefined;
  const rep = leaf.maxRep > 0 ? new Uint8Array(levels) : undefined;
  const w = widthOf(leaf);
  const isVar = leaf.physical === PT.BYTE_ARRAY;
  // Each page's values (fresh arrays), joined at the end unless there is one page.
  const fixeds: Uint8Array[] = [];
  const offs: Int32Array[] = [];
  const datas: Uint8Array[] = [];
  let count = 0;
  let lv = 0;
  let dict: { fixed?: Uint8Array; offsets?: Int32Array; data?: Uint8Array; n: number } | undefined;
  const pushFixed = (src: Uint8Array) => { fixeds.push(src); };
  while (lv < levels) {
    if (p >= end) fail('column chunk ends before its values');
    const r = new ThriftReader(buf, p, end);
    const h = r.struct();
    p = r.pos;
    const type = num(h.get(1), 'page type');
    const usize = num(h.get(2), 'uncompressed_page_size');
    const csize = num(h.get(3), 'compressed_page_size');
    if (csize < 0 || usize < 0 || p + csize > end) fail('page past its column chunk');
    const raw = buf.subarray(p, p + csize);
    p += csize;
    if (type === 2) {
      const dh = h.get(7) as RStruct;
      if (!(dh instanceof Map)) fail('dictionary page without its header');
      const n = num(dh.get(1), 'dictionary num_values');
      if (n < 0 || n > usize + 1) fail('bad dictionary size');
      const page = decompress(raw, usize);
      dict = { ...readPlain(leaf, page, 0, page.length, n), n };
      continue;
    }
    if (type !== 0 && type !== 3) continue; // index pages and unknown pages are skipped
    let n: number;
    let enc: number;
    let page: Uint8Array;
    let q = 0;
    if (type === 0) {
      const dh = h.get(5) as RStruct;
      if (!(dh instanceof Map)) fail('data page without its header');
      n = num(dh.get(1), 'num_values');
      enc = num(dh.get(2), 'encoding');
      page = decompress(raw, usize);
      if (n < 0 || lv + n > levels) fail('pages hold more values than the chunk');
      if (rep) {
        const len = new DataView(page.buffer, page.byteOffset).getUint32(q, true);
        q += 4;
        if (q + len > page.length) fail('repetition levels past their page');
        readHybrid(page, q, q + len, bitWidth(leaf.maxRep), rep.subarray(lv, lv + n), n);
        q += len;
      }
      if (def) {
        if (q + 4 > page.length) fail('definition levels past their page');
        const len = new DataView(page.buffer, page.byteOffset).getUint32(q, true);
        q += 4;
        if (q + len > page.length) fail('definition levels past their page');
        readHybrid(page, q, q + len, bitWidth(leaf.maxDef), def.subarray(lv, lv + n), n);
        q += len;
      }
    } else {
      const dh = h.get(8) as RStruct;
      if (!(dh instanceof Map)) fail('data page v2 without its header');
      n = num(dh.get(1), 'num_values');
      enc = num(dh.get(4), 'encoding');
      const dl = num(dh.get(5), 'definition_levels_byte_length');
      const rl = num(dh.get(6), 'repetition_levels_byte_length');
      const compressed = dh.get(7) !== false;
      if (n < 0 || lv + n > levels || dl < 0 || rl < 0 || rl + dl > raw.length) fail('bad data page v2 header');
      if (rep) readHybrid(raw, 0, rl, bitWidth(leaf.maxRep), rep.subarray(lv, lv + n), n);
      if (def) readHybrid(raw, rl, rl + dl, bitWidth(leaf.maxDef), def.subarray(lv, lv + n), n);
      const body = raw.subarray(rl + dl);
      page = compressed ? decompress(body, usize - rl - dl) : body;
    }
    let present = n;
    if (def) {
      present = 0;
      const d = def.subarray(lv, lv + n);
      for (let k = 0; k < n; k++) if (d[k] === leaf.maxDef) present++;
    }
    if (enc === 0) {
      const v = readPlain(leaf, page, q, page.length, present);
      if (v.fixed) pushFixed(v.fixed);
      else { offs.push(v.offsets!); datas.push(v.data!); }
    } else if (enc === 2 || enc === 8) {
      if (!dict) fail('dictionary-encoded page without a dictionary');
      const d = dict!;
      if (q >= page.length && present > 0) fail('dictionary indices missing');
      const bw = present > 0 ? page[q++]! : 0;
      if (bw > 32) fail('bad dictionary index width');
      const ids = new Uint32Array(present);
      if (present > 0) readHybrid(page, q, page.length, bw, ids, present);
      for (let k = 0; k < present; k++) if (ids[k]! >= d.n) fail('dictionary index out of range');
      if (d.fixed) {
        const out = new Uint8Array(present * w);
        const df = d.fixed;
        for (let k = 0; k < present; k++) {
          const a = ids[k]! * w;
          for (let b = 0; b < w; b++) out[k * w + b] = df[a + b]!;
        }
        pushFixed(out);
      } else {
        const o = new Int32Array(present + 1);
        let total = 0;
        for (let k = 0; k < present; k++) total += d.offsets![ids[k]! + 1]! - d.offsets![ids[k]!]!;
        const data = new Uint8Array(total);
        let at = 0;
        const dd = d.data!;
        for (let k = 0; k < present; k++) {
          const a = d.offsets![ids[k]!]!;
          const b = d.offsets![ids[k]! + 1]!;
          if (b - a <= 64) for (let i = a; i < b; i++) data[at++] = dd[i]!;
          else { data.set(dd.subarray(a, b), at); at += b - a; }
          o[k + 1] = at;
        }
        offs.push(o);
        datas.push(data);
      }
    } else if (enc === 3 && leaf.physical === PT.BOOLEAN) {
      if (q + 4 > page.length) fail('RLE booleans past their page');
      const len = new DataView(page.buffer, page.byteOffset).getUint32(q, true);
      const out = new Uint8Array(present);
      readHybrid(page, q + 4, Math.min(page.length, q + 4 + len), 1, out, present);
      pushFixed(out);
    } else {
      throw new FormatError(`Parquet encoding ${enc} of column ${leaf.name} is not supported (PLAIN and dictionary encodings are)`);
    }
    count += present;
    lv += n;
  }
  const out: DecodedColumn = { def, rep, levels, count };
  if (isVar && offs.length === 1) {
    // One data page (what segferry writes): its arrays as they are.
    out.offsets = offs[0]!;
    out.data = datas[0]!;
  } else if (isVar) {
    // Join the pages' byte arrays.
    const total = datas.reduce((a, d) => a + d.length, 0);
    const data = new Uint8Array(total);
    const offsets = new Int32Array(count + 1);
    let k = 0;
    let at = 0;
    for (let i = 0; i < offs.length; i++) {
      const o = offs[i]!;
      data.set(datas[i]!, at);
      for (let j = 1; j < o.length; j++) offsets[++k] = at + o[j]!;
      at += datas[i]!.length;
    }
    out.offsets = offsets;
    out.data = data;
  } else if (fixeds.length === 1) {
    out.fixed = fixeds[0]!;
  } else {
    const fixed = new Uint8Array(count * w);
    let at = 0;
    for (const f of fixeds) { fixed.set(f, at); at += f.length; }
    out.fixed = fixed;
  }
  return out;
}
