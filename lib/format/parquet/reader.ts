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

/**
 * The values of one column chunk, decoded without copying value bytes: fixed-width values are
 * one contiguous run (a view of the page when the chunk has one PLAIN page), byte arrays are
 * positions into `bytes`, where each value is preceded by its 4-byte little-endian length
 * (PLAIN's own layout, dictionary values included). Read by {@link byteLength} and
 * {@link byteArray}.
 */
export interface DecodedColumn {
  /** Definition levels (undefined when maxDef is 0: every value present). */
  def: Uint8Array | undefined;
  rep: Uint8Array | undefined;
  levels: number;
  /** Present values: fixed width, PLAIN bytes (BOOLEAN: one byte per value). */
  fixed?: Uint8Array;
  /** Present values of a BYTE_ARRAY column: value k starts at `pos[k]` of `bytes`. */
  pos?: Int32Array;
  bytes?: Uint8Array;
  count: number;
}

/** Length of the byte array starting at `p` of `b` (its PLAIN length prefix, checked when decoded). */
export function byteLength(b: Uint8Array, p: number): number {
  return (b[p - 4]! | (b[p - 3]! << 8) | (b[p - 2]! << 16) | (b[p - 1]! << 24)) >>> 0;
}

/** Present value k of a BYTE_ARRAY column. */
export function byteArray(col: DecodedColumn, k: number): Uint8Array {
  const p = col.pos![k]!;
  return col.bytes!.subarray(p, p + byteLength(col.bytes!, p));
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

/**
 * PLAIN byte arrays from `p`: checks every length against the page and puts each value's start
 * (plus `base`, where this page's bytes begin in the chunk's value bytes) into `pos` from `at`.
 */
function plainByteArrays(u8: Uint8Array, p: number, end: number, count: number, pos: Int32Array, at: number, base: number): void {
  let q = p;
  for (let k = 0; k < count; k++) {
    if (q + 4 > end) fail('PLAIN byte array past its page');
    const n = byteLength(u8, q + 4);
    q += 4;
    if (n > end - q) fail('PLAIN byte array past its page');
    pos[at + k] = base + q;
    q += n;
  }
}

/** PLAIN fixed-width values (BOOLEAN: unpacked to one byte each) of `count` values from `p`. */
function plainFixed(leaf: ParquetLeaf, u8: Uint8Array, p: number, end: number, count: number): Uint8Array {
  if (leaf.physical === PT.BOOLEAN) {
    if (p + ((count + 7) >> 3) > end) fail('PLAIN booleans past their page');
    const out = new Uint8Array(count);
    for (let k = 0; k < count; k++) out[k] = (u8[p + (k >> 3)]! >> (k & 7)) & 1;
    return out;
  }
  const w = widthOf(leaf);
  if (p + w * count > end) fail('PLAIN values past their page');
  return u8.subarray(p, p + w * count);
}

/** Fixed width in bytes of a leaf's PLAIN values (BOOLEAN: 1 after decoding). */
function widthOf(leaf: ParquetLeaf): number {
  const t = leaf.physical;
  return t === PT.BOOLEAN ? 1 : t === PT.INT32 || t === PT.FLOAT ? 4 : t === PT.INT64 || t === PT.DOUBLE ? 8 : t === PT.INT96 ? 12 : leaf.typeLength;
}

type Decompress = (u8: Uint8Array, size: number) => Uint8Array;

/** Join byte runs (none copied when there is one). */
function join(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/**
 * Decode one column chunk from the bytes of its row group (`buf` starts at file offset `base`).
 * `decompress` is the page decompressor of the chunk's codec. Value bytes are not copied:
 * byte arrays stay in their (decompressed) pages, joined into one buffer only when the chunk
 * has several pages holding values (a dictionary and PLAIN pages, or several PLAIN pages).
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
  // Fixed width: each page's values; byte arrays: the pages holding value bytes (sections of
  // the joined `bytes`, `vbase` long so far) and every present value's start in it.
  const fixeds: Uint8Array[] = [];
  let fixedLen = 0;
  const sections: Uint8Array[] = [];
  let vbase = 0;
  const pos = isVar ? new Int32Array(levels) : undefined;
  let count = 0;
  let lv = 0;
  // The dictionary: fixed values, or (byte arrays) each entry's start in the joined bytes.
  let dict: { fixed?: Uint8Array; pos?: Int32Array; n: number } | undefined;
  const section = (page: Uint8Array, from: number): number => {
    const b = vbase - from;
    sections.push(page.subarray(from));
    vbase += page.length - from;
    return b;
  };
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
      if (isVar) {
        const dp = new Int32Array(n);
        plainByteArrays(page, 0, page.length, n, dp, 0, section(page, 0));
        dict = { pos: dp, n };
      } else dict = { fixed: plainFixed(leaf, page, 0, page.length, n), n };
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
        if (q + 4 > page.length) fail('repetition levels past their page');
        const len = byteLength(page, q + 4);
        q += 4;
        if (q + len > page.length) fail('repetition levels past their page');
        readHybrid(page, q, q + len, bitWidth(leaf.maxRep), rep.subarray(lv, lv + n), n);
        q += len;
      }
      if (def) {
        if (q + 4 > page.length) fail('definition levels past their page');
        const len = byteLength(page, q + 4);
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
      const md = leaf.maxDef;
      for (let k = 0; k < n; k++) if (d[k] === md) present++;
    }
    if (enc === 0) {
      if (isVar) plainByteArrays(page, q, page.length, present, pos!, count, section(page, q));
      else { const v = plainFixed(leaf, page, q, page.length, present); fixeds.push(v); fixedLen += v.length; }
    } else if (enc === 2 || enc === 8) {
      if (!dict) fail('dictionary-encoded page without a dictionary');
      const d = dict!;
      if (q >= page.length && present > 0) fail('dictionary indices missing');
      const bw = present > 0 ? page[q++]! : 0;
      if (bw > 32) fail('bad dictionary index width');
      const ids = new Uint32Array(present);
      if (present > 0) readHybrid(page, q, page.length, bw, ids, present);
      const dn = d.n;
      for (let k = 0; k < present; k++) if (ids[k]! >= dn) fail('dictionary index out of range');
      if (d.fixed) {
        const out = new Uint8Array(present * w);
        const df = d.fixed;
        if (w === 4 || w === 8) {
          // Whole words: one aligned copy per value instead of `w` byte copies.
          const dw = new Int32Array(df.buffer.slice(df.byteOffset, df.byteOffset + df.length));
          const ow = new Int32Array(out.buffer);
          if (w === 4) for (let k = 0; k < present; k++) ow[k] = dw[ids[k]!]!;
          else for (let k = 0; k < present; k++) { const a = 2 * ids[k]!; ow[2 * k] = dw[a]!; ow[2 * k + 1] = dw[a + 1]!; }
        } else {
          for (let k = 0; k < present; k++) {
            const a = ids[k]! * w;
            for (let b = 0; b < w; b++) out[k * w + b] = df[a + b]!;
          }
        }
        fixeds.push(out);
        fixedLen += out.length;
      } else {
        const dp = d.pos!;
        const at = count;
        for (let k = 0; k < present; k++) pos![at + k] = dp[ids[k]!]!;
      }
    } else if (enc === 3 && leaf.physical === PT.BOOLEAN) {
      if (q + 4 > page.length) fail('RLE booleans past their page');
      const len = byteLength(page, q + 4);
      const out = new Uint8Array(present);
      readHybrid(page, q + 4, Math.min(page.length, q + 4 + len), 1, out, present);
      fixeds.push(out);
      fixedLen += out.length;
    } else {
      throw new FormatError(`Parquet encoding ${enc} of column ${leaf.name} is not supported (PLAIN and dictionary encodings are)`);
    }
    count += present;
    lv += n;
  }
  const out: DecodedColumn = { def, rep, levels, count };
  if (isVar) {
    out.pos = pos!.subarray(0, count);
    out.bytes = sections.length === 0 ? new Uint8Array(0) : join(sections, vbase);
  } else {
    out.fixed = fixeds.length === 0 ? new Uint8Array(0) : join(fixeds, fixedLen);
  }
  return out;
}
