/**
 * LZ4 frames (the LZ4 Frame Format Description 1.6, over the LZ4 Block Format), in TypeScript:
 * Arrow IPC body compression LZ4_FRAME (`--arrow-compression lz4`) needs a codec, and the
 * registry's are either native (`lz4-napi`), unmaintained (`lz4js`) or without frames
 * (`lz4-wasm-nodejs`). Written here from the public format descriptions; docs/formats.md gives
 * the measurement behind the choice.
 *
 * Writing: one frame of independent blocks of at most 4 MiB (`lz4`'s own default block size,
 * which every LZ4 frame reader accepts), the content size in the header, no checksums beyond
 * the mandatory header checksum (segferry checks every object's SHA-256). A block that does not
 * shrink is stored raw. The matcher is LZ4's fast greedy one (a 4096-entry hash table, as lz4's
 * default, skipping ahead in incompressible runs).
 *
 * Reading: everything the format allows except preset dictionaries (linked or independent
 * blocks, block and content checksums, content size, skippable frames, several frames one after
 * another), with every length, offset and checksum checked before use: input read from a bucket
 * is untrusted. Memory: the decoded output, at most `maxContent` bytes.
 */
import { DecompressError } from '../errors.js';

/** Largest decoded content accepted by {@link lz4Decompress} by default (32 MiB). */
export const MAX_LZ4_CONTENT = 32 * 1024 * 1024;

const MAGIC = 0x184d2204;
/** Skippable frames: 0x184D2A50 to 0x184D2A5F. */
const SKIPPABLE = 0x184d2a50;
/** Block Maximum Size of the frames written: BD code 7, 4 MiB. */
const BLOCK_CODE = 7;
const BLOCK_MAX = 4 * 1024 * 1024;
/** Block format end rules: the last match starts ≥ 12 bytes before the block end, the last 5 bytes are literals. */
const MFLIMIT = 12;
const LAST_LITERALS = 5;
const MAX_OFFSET = 65535;
/** 4096 entries, lz4's own default (LZ4_MEMORY_USAGE 14): 65536 compressed Arrow columns ~8% smaller, ~20% slower. */
const HASH_LOG = 12;

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

function rd32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** XXH32 (xxHash specification) of `b[start, end)`, as an unsigned 32-bit number. */
export function xxh32(b: Uint8Array, seed = 0, start = 0, end = b.length): number {
  let i = start;
  let acc: number;
  if (end - start >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    for (const last = end - 16; i <= last; i += 16) {
      v1 = Math.imul(rotl((v1 + Math.imul(rd32(b, i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(rd32(b, i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(rd32(b, i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(rd32(b, i + 12), P2)) | 0, 13), P1);
    }
    acc = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    acc = (seed + P5) | 0;
  }
  acc = (acc + (end - start)) | 0;
  for (; i + 4 <= end; i += 4) acc = Math.imul(rotl((acc + Math.imul(rd32(b, i), P3)) | 0, 17), P4);
  for (; i < end; i++) acc = Math.imul(rotl((acc + Math.imul(b[i]!, P5)) | 0, 11), P1);
  acc ^= acc >>> 15;
  acc = Math.imul(acc, P2);
  acc ^= acc >>> 13;
  acc = Math.imul(acc, P3);
  acc ^= acc >>> 16;
  return acc >>> 0;
}

/** Worst-case size of one block's compressed form (LZ4_compressBound). */
function blockBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/**
 * The compressor's hash table, reused across calls (synchronous, one event loop). Entries hold
 * `position + base`; each block gets a base above every entry stored so far, so stale entries
 * read as positions before the block and are never matched, without clearing 16 KiB per block.
 */
const table = new Int32Array(1 << HASH_LOG);
/** One above the largest entry stored in {@link table}. */
let tableNext = 1; // 0 is an empty entry

/**
 * Compress `data` into one LZ4 frame (see the module comment for its settings), readable by
 * `lz4 -d` and by every LZ4 frame reader.
 */
export function lz4CompressFrame(data: Uint8Array): Buffer {
  const n = data.length;
  const blocks = Math.max(1, Math.ceil(n / BLOCK_MAX));
  const out = Buffer.allocUnsafe(4 + 11 + blocks * 4 + blockBound(n) + blocks * 16 + 4);
  out.writeUInt32LE(MAGIC, 0);
  // FLG: version 01, independent blocks, content size present; BD: block maximum size code.
  out[4] = 0x40 | 0x20 | 0x08;
  out[5] = BLOCK_CODE << 4;
  out.writeBigUInt64LE(BigInt(n), 6);
  out[14] = (xxh32(out, 0, 4, 14) >>> 8) & 0xff;
  let op = 15;
  for (let s = 0; s < n; s += BLOCK_MAX) {
    const e = Math.min(n, s + BLOCK_MAX);
    const size = compressBlock(data, s, e, out, op + 4);
    if (size > 0 && size < e - s) {
      out.writeUInt32LE(size, op);
      op += 4 + size;
    } else {
      // Incompressible: stored raw, flagged by the size word's high bit.
      out.writeUInt32LE((0x80000000 | (e - s)) >>> 0, op);
      out.set(data.subarray(s, e), op + 4);
      op += 4 + e - s;
    }
  }
  out.writeUInt32LE(0, op); // EndMark
  return out.subarray(0, op + 4);
}

/** Writes one independent block of `src[start, end)` at `out[o]`; returns its compressed size. */
function compressBlock(src: Uint8Array, start: number, end: number, out: Uint8Array, o: number): number {
  const o0 = o;
  let anchor = start;
  if (end - start > MFLIMIT) {
    if (tableNext > 0x3fffffff - BLOCK_MAX) {
      table.fill(0);
      tableNext = 1;
    }
    const base = tableNext - start;
    tableNext += end - start;
    const mflimit = end - MFLIMIT;
    const matchlimit = end - LAST_LITERALS;
    let ip = start;
    let misses = 0;
    while (ip <= mflimit) {
      const seq = rd32(src, ip);
      const h = Math.imul(seq, -1640531535) >>> (32 - HASH_LOG);
      let ref = table[h]! - base;
      table[h] = ip + base;
      if (ref < start || ip - ref > MAX_OFFSET || rd32(src, ref) !== seq) {
        // LZ4's acceleration: the longer nothing matched, the bigger the steps.
        ip += 1 + (misses++ >> 6);
        continue;
      }
      misses = 0;
      let m = ip;
      while (m > anchor && ref > start && src[m - 1] === src[ref - 1]) { m--; ref--; }
      let len = ip - m + 4;
      let p = ip + 4;
      let q = ref + len;
      // Four bytes at a time, then the last few one by one.
      while (p + 4 <= matchlimit && rd32(src, p) === rd32(src, q)) { p += 4; q += 4; }
      while (p < matchlimit && src[p] === src[q]) { p++; q++; }
      len += p - ip - 4;
      o = writeSequence(out, o, src, anchor, m - anchor, m - ref, len);
      ip = m + len;
      anchor = ip;
      if (ip - 2 >= start && ip <= mflimit) table[Math.imul(rd32(src, ip - 2), -1640531535) >>> (32 - HASH_LOG)] = ip - 2 + base;
    }
  }
  o = writeSequence(out, o, src, anchor, end - anchor, 0, 0);
  return o - o0;
}

/** One sequence: token, literal length, literals, then (unless `len` is 0, the last) offset and match length. */
function writeSequence(out: Uint8Array, o: number, src: Uint8Array, lit: number, litLen: number, offset: number, len: number): number {
  const tokenAt = o++;
  let token = litLen >= 15 ? 0xf0 : litLen << 4;
  if (litLen >= 15) o = writeLength(out, o, litLen - 15);
  if (litLen > 16) out.set(src.subarray(lit, lit + litLen), o);
  else for (let i = 0; i < litLen; i++) out[o + i] = src[lit + i]!;
  o += litLen;
  if (len > 0) {
    out[o++] = offset & 0xff;
    out[o++] = offset >>> 8;
    const ml = len - 4;
    token |= ml >= 15 ? 15 : ml;
    if (ml >= 15) o = writeLength(out, o, ml - 15);
  }
  out[tokenAt] = token;
  return o;
}

function writeLength(out: Uint8Array, o: number, n: number): number {
  for (; n >= 255; n -= 255) out[o++] = 255;
  out[o++] = n;
  return o;
}

/**
 * Decode an LZ4 stream: one or more frames (skippable frames are skipped), as `lz4 -d` reads
 * them, into at most `maxContent` bytes (default {@link MAX_LZ4_CONTENT}).
 * @throws DecompressError when the input is not LZ4 frames, is truncated or corrupt, fails a
 *   checksum, uses a preset dictionary, or decodes to more than `maxContent` bytes.
 */
export function lz4Decompress(input: Uint8Array, maxContent = MAX_LZ4_CONTENT): Buffer {
  const dec = { out: Buffer.alloc(0), op: 0, max: maxContent };
  let ip = 0;
  if (input.length < 4) throw new DecompressError('not an LZ4 frame (too short)');
  while (ip < input.length) {
    need(input, ip, 4);
    const magic = rd32(input, ip) >>> 0;
    if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE) {
      need(input, ip, 8);
      const skip = rd32(input, ip + 4) >>> 0;
      need(input, ip + 8, skip);
      ip += 8 + skip;
      continue;
    }
    if (magic !== MAGIC) throw new DecompressError('not an LZ4 frame (bad magic number)');
    ip = decodeFrame(input, ip + 4, dec);
  }
  return dec.out.subarray(0, dec.op);
}

interface Decoding {
  /** Output so far (grown as needed, never past `max`). */
  out: Buffer;
  op: number;
  max: number;
}

function need(b: Uint8Array, at: number, n: number): void {
  if (at + n > b.length) throw new DecompressError('LZ4 frame is truncated');
}

/** Make room for `n` more output bytes, within the bound. */
function reserve(d: Decoding, n: number): void {
  if (d.op + n > d.max) throw new DecompressError(`LZ4 content exceeds the ${d.max}-byte limit`);
  if (d.op + n <= d.out.length) return;
  const grown = Buffer.allocUnsafe(Math.min(d.max, Math.max(d.op + n, d.out.length * 2)));
  d.out.copy(grown, 0, 0, d.op);
  d.out = grown;
}

/** Decode the frame whose descriptor starts at `ip` (after the magic number); returns the offset after it. */
function decodeFrame(src: Uint8Array, ip: number, d: Decoding): number {
  need(src, ip, 3);
  const flg = src[ip]!;
  const bd = src[ip + 1]!;
  if (flg >> 6 !== 1) throw new DecompressError(`LZ4 frame version ${flg >> 6} is not supported`);
  if (flg & 0x02 || bd & 0x8f) throw new DecompressError('LZ4 frame descriptor has reserved bits set');
  if (flg & 0x01) throw new DecompressError('LZ4 frames with a preset dictionary are not supported');
  const code = (bd >> 4) & 7;
  if (code < 4) throw new DecompressError(`LZ4 frame has an invalid block maximum size code ${code}`);
  const blockMax = 1 << (2 * code + 8);
  const independent = (flg & 0x20) !== 0;
  const blockChecksums = (flg & 0x10) !== 0;
  const contentChecksum = (flg & 0x04) !== 0;
  const descLen = flg & 0x08 ? 10 : 2;
  need(src, ip, descLen + 1);
  if (src[ip + descLen] !== ((xxh32(src, 0, ip, ip + descLen) >>> 8) & 0xff)) throw new DecompressError('LZ4 frame header checksum mismatch');
  let size: number | undefined;
  if (flg & 0x08) {
    const s = Buffer.from(src.buffer, src.byteOffset + ip + 2, 8).readBigUInt64LE(0);
    if (s > BigInt(d.max - d.op)) throw new DecompressError(`LZ4 frame declares ${s} bytes of content, over the ${d.max}-byte limit`);
    size = Number(s);
    reserve(d, size);
  }
  ip += descLen + 1;
  const frameStart = d.op;
  for (;;) {
    need(src, ip, 4);
    const word = rd32(src, ip) >>> 0;
    ip += 4;
    if (word === 0) break;
    const raw = word >= 0x80000000;
    const n = word & 0x7fffffff;
    if (n > blockMax) throw new DecompressError(`LZ4 block of ${n} bytes exceeds the frame's ${blockMax}-byte maximum`);
    need(src, ip, n + (blockChecksums ? 4 : 0));
    if (blockChecksums && (rd32(src, ip + n) >>> 0) !== xxh32(src, 0, ip, ip + n)) throw new DecompressError('LZ4 block checksum mismatch');
    // With a declared size the output is already there, and nothing may go past it.
    if (size === undefined) reserve(d, raw ? n : Math.min(blockMax, d.max - d.op));
    const limit = Math.min(size === undefined ? d.out.length : frameStart + size, d.op + blockMax);
    if (raw) {
      if (d.op + n > limit) throw new DecompressError('LZ4 frame decodes past its declared content size');
      d.out.set(src.subarray(ip, ip + n), d.op);
      d.op += n;
    } else {
      d.op = decodeBlock(src, ip, ip + n, d.out, d.op, limit, independent ? d.op : frameStart);
    }
    ip += n + (blockChecksums ? 4 : 0);
  }
  if (size !== undefined && d.op - frameStart !== size) throw new DecompressError(`LZ4 frame decoded to ${d.op - frameStart} bytes, its header says ${size}`);
  if (contentChecksum) {
    need(src, ip, 4);
    if ((rd32(src, ip) >>> 0) !== xxh32(d.out, 0, frameStart, d.op)) throw new DecompressError('LZ4 content checksum mismatch');
    ip += 4;
  }
  return ip;
}

/** Offset after the length that {@link readLength} read last (a second result, without an allocation). */
let lengthEnd = 0;

/** The extension bytes of a literal or match length at `ip` (each 255 means another follows). */
function readLength(src: Uint8Array, ip: number, end: number, what: string): number {
  let n = 0;
  let b: number;
  do {
    if (ip >= end) throw new DecompressError(`LZ4 block ends inside a ${what}`);
    b = src[ip++]!;
    n += b;
  } while (b === 255);
  lengthEnd = ip;
  return n;
}

/**
 * Decode one block of `src[ip, end)` into `out` from `op`, writing below `limit`, with matches
 * reaching back no further than `windowStart`; returns the new output offset.
 */
function decodeBlock(src: Uint8Array, ip: number, end: number, out: Uint8Array, op: number, limit: number, windowStart: number): number {
  for (;;) {
    if (ip >= end) throw new DecompressError('LZ4 block ends inside a sequence');
    const token = src[ip++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      lit += readLength(src, ip, end, 'literal length');
      ip = lengthEnd;
    }
    if (ip + lit > end) throw new DecompressError('LZ4 literals run past the block end');
    if (op + lit > limit) throw new DecompressError('LZ4 block decodes past its maximum size');
    if (lit > 16) out.set(src.subarray(ip, ip + lit), op);
    else for (let i = 0; i < lit; i++) out[op + i] = src[ip + i]!;
    ip += lit;
    op += lit;
    if (ip === end) return op; // the last sequence has literals only
    if (ip + 2 > end) throw new DecompressError('LZ4 block ends inside a match offset');
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || op - offset < windowStart) throw new DecompressError(`LZ4 match offset ${offset} points before the start of the data`);
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      len += readLength(src, ip, end, 'match length');
      ip = lengthEnd;
    }
    if (op + len > limit) throw new DecompressError('LZ4 block decodes past its maximum size');
    let from = op - offset;
    if (offset >= len && len > 32) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      // Overlapping (offset < length) repeats the last `offset` bytes: copy byte by byte.
      for (const stop = op + len; op < stop;) out[op++] = out[from++]!;
    }
  }
}
