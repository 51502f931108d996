import { FormatError } from '../../errors.js';

/*
 * Snappy raw block format (google/snappy format_description.txt), as Parquet's SNAPPY codec
 * uses it: a varint of the uncompressed length, then literals and back-references. The
 * encoder is the reference's greedy scheme: 64 KiB blocks, a hash of 4 bytes finds the last
 * position with the same bytes, misses make it skip ahead faster.
 */

const BLOCK = 1 << 16;
const HASH_BITS = 14;
const MAX_OFFSET = BLOCK;

/** Largest compressed size of `n` bytes (the reference's MaxCompressedLength). */
export function snappyMaxLength(n: number): number {
  return 32 + n + Math.floor(n / 6);
}

function hash(v: number): number {
  return Math.imul(v, 0x1e35a7bd) >>> (32 - HASH_BITS);
}

/** Compress bytes into one Snappy block. */
export function snappyCompress(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(snappyMaxLength(src.length));
  let o = 0;
  let n = src.length;
  while (n >= 0x80) {
    out[o++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[o++] = n;
  const table = new Int32Array(1 << HASH_BITS);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let start = 0; start < src.length; start += BLOCK) {
    const end = Math.min(src.length, start + BLOCK);
    o = compressBlock(src, dv, start, end, out, o, table);
  }
  return out.subarray(0, o);
}

function literal(src: Uint8Array, s: number, e: number, out: Uint8Array, o: number): number {
  const n = e - s - 1;
  if (n < 60) out[o++] = n << 2;
  else if (n < 0x100) { out[o++] = 60 << 2; out[o++] = n; }
  else if (n < 0x10000) { out[o++] = 61 << 2; out[o++] = n & 0xff; out[o++] = n >> 8; }
  else if (n < 0x1000000) { out[o++] = 62 << 2; out[o++] = n & 0xff; out[o++] = (n >> 8) & 0xff; out[o++] = n >> 16; }
  else { out[o++] = 63 << 2; out[o++] = n & 0xff; out[o++] = (n >> 8) & 0xff; out[o++] = (n >> 16) & 0xff; out[o++] = n >>> 24; }
  if (e - s <= 32) for (let i = s; i < e; i++) out[o++] = src[i]!;
  else { out.set(src.subarray(s, e), o); o += e - s; }
  return o;
}

function copy(offset: number, len: number, out: Uint8Array, o: number): number {
  while (len >= 68) {
    out[o++] = (63 << 2) | 2; out[o++] = offset & 0xff; out[o++] = offset >> 8;
    len -= 64;
  }
  if (len > 64) {
    out[o++] = (59 << 2) | 2; out[o++] = offset & 0xff; out[o++] = offset >> 8;
    len -= 60;
  }
  if (len >= 12 || offset >= 2048) {
    out[o++] = ((len - 1) << 2) | 2; out[o++] = offset & 0xff; out[o++] = offset >> 8;
  } else {
    out[o++] = ((offset >> 8) << 5) | ((len - 4) << 2) | 1; out[o++] = offset & 0xff;
  }
  return o;
}

// Four bytes are read as one little-endian word (DataView): hashing and comparing a word
// costs a quarter of doing it byte by byte; a match grows four bytes at a time until a word
// differs, then by bytes.
function compressBlock(src: Uint8Array, dv: DataView, start: number, end: number, out: Uint8Array, o: number, table: Int32Array): number {
  table.fill(-1);
  let lit = start;
  let p = start;
  const limit = end - 4;
  let skip = 32;
  while (p <= limit) {
    const v = dv.getUint32(p, true);
    const h = hash(v);
    const c = table[h]!;
    table[h] = p;
    if (c >= start && p - c <= MAX_OFFSET && dv.getUint32(c, true) === v) {
      if (lit < p) o = literal(src, lit, p, out, o);
      let len = 4;
      while (p + len + 4 <= end && dv.getUint32(c + len, true) === dv.getUint32(p + len, true)) len += 4;
      while (p + len < end && src[c + len] === src[p + len]) len++;
      o = copy(p - c, len, out, o);
      p += len;
      lit = p;
      skip = 32;
      if (p - 1 <= limit) table[hash(dv.getUint32(p - 1, true))] = p - 1;
    } else {
      p += skip++ >> 5;
    }
  }
  if (lit < end) o = literal(src, lit, end, out, o);
  return o;
}

/** Decompress one Snappy block (untrusted: every length and offset is checked). */
export function snappyDecompress(src: Uint8Array, expected?: number): Uint8Array {
  let p = 0;
  let n = 0;
  for (let shift = 0; ; shift += 7) {
    if (p >= src.length || shift > 28) throw new FormatError('Snappy block has a bad length');
    const b = src[p++]!;
    n += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) break;
  }
  if (expected !== undefined && n !== expected) throw new FormatError(`Snappy block holds ${n} bytes, the page header says ${expected}`);
  const out = new Uint8Array(n);
  let o = 0;
  const bad = (): never => { throw new FormatError('Snappy block is malformed'); };
  while (p < src.length) {
    const tag = src[p++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let len = tag >> 2;
      if (len >= 60) {
        const k = len - 59;
        if (p + k > src.length) bad();
        len = 0;
        for (let i = 0; i < k; i++) len += src[p + i]! * 2 ** (8 * i);
        p += k;
      }
      len += 1;
      if (p + len > src.length || o + len > n) bad();
      // Short literals and copies byte by byte: cheaper than a subarray and a set.
      if (len <= 32) for (let i = 0; i < len; i++) out[o + i] = src[p + i]!;
      else out.set(src.subarray(p, p + len), o);
      p += len;
      o += len;
      continue;
    }
    let len: number;
    let off: number;
    if (kind === 1) {
      if (p >= src.length) bad();
      len = ((tag >> 2) & 7) + 4;
      off = ((tag >> 5) << 8) | src[p++]!;
    } else if (kind === 2) {
      if (p + 2 > src.length) bad();
      len = (tag >> 2) + 1;
      off = src[p]! | (src[p + 1]! << 8);
      p += 2;
    } else {
      if (p + 4 > src.length) bad();
      len = (tag >> 2) + 1;
      off = (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24)) >>> 0;
      p += 4;
    }
    if (off === 0 || off > o || o + len > n) bad();
    if (off >= len && len > 32) out.copyWithin(o, o - off, o - off + len);
    else for (let i = 0; i < len; i++) out[o + i] = out[o - off + i]!;
    o += len;
  }
  if (o !== n) bad();
  return out;
}
