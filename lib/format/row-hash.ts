import { FormatError } from '../errors.js';
import { BinaryTuples } from '../pg/copy-binary.js';
import type { RowChunk } from '../pg/copy-out.js';

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const F1 = 0x85ebca6b | 0;
const F2 = 0xc2b2ae35 | 0;

const MASK64 = (1n << 64n) - 1n;

/** Name of the row checksum below, as the manifest records it (`checksum.algorithm`). */
export const ROW_HASH_ALGORITHM = 'copy-rowhash64';

/**
 * Order-independent checksum of the rows of a COPY TO STDOUT, computed on the client from the
 * bytes the server sends, so the export needs no second scan. Algorithm `copy-rowhash64`:
 *
 * What is a row: the payload of one CopyData message (the server sends one per row). In text
 * and csv that is the row's line, newline included, in the format options of the export; a
 * csv header line segferry writes into objects is not a row. In binary (the Arrow format) it is
 * the tuple (int16 field count, then each field), without the 19-byte COPY header (signature,
 * flags, extension length, plus that many extension bytes) that precedes the first tuple in
 * the same message; the trailer message (starting with int16 -1) is not a row.
 *
 * Row hash of bytes x[0..n-1] (arithmetic on unsigned 32-bit integers modulo 2^32;
 * rotl(v, r) rotates v left by r bits; le32(j) = x[j] | x[j+1]<<8 | x[j+2]<<16 | x[j+3]<<24):
 * 1. P1 = 0x9E3779B1, P2 = 0x85EBCA77; round(acc, w) = rotl(acc + w * P2, 13) * P1.
 * 2. a = P1, b = P2, j = 0.
 * 3. While j + 8 <= n: a = round(a, le32(j)); b = round(b, le32(j + 4)); j += 8.
 * 4. If j + 4 <= n: a = round(a, le32(j)); j += 4.
 * 5. t = the 0–3 bytes left, little-endian, zero-padded (0 when none): b = round(b, t).
 * 6. b = b xor n; then a = a + b; then b = b + a.
 * 7. Avalanche each lane: h ^= h >>> 16; h *= 0x85EBCA6B; h ^= h >>> 13; h *= 0xC2B2AE35;
 *    h ^= h >>> 16.
 * 8. The row's 64-bit hash is a * 2^32 + b.
 *
 * The checksum of a set of rows is the row count and the sum of their hashes modulo 2^64,
 * printed as an unsigned decimal string: row order and the split over nodes or chunks do not
 * matter, and checksums of parts add up (modulo 2^64) to the whole's. Every step is a
 * bijection of the lane state and injective in its input word, so a row whose bytes change
 * but not its length always changes the sum.
 */
export class RowHasher {
  /** Binary COPY: finds the tuples between each stream's header and trailer. */
  readonly #tuples: BinaryTuples | undefined;
  // The 64-bit sum as two 32-bit halves with carry, kept as int32: no BigInt per row.
  #lo = 0;
  #hi = 0;
  /** Rows hashed so far. */
  rows = 0;

  /** `binary`: the rows come from COPY … (FORMAT binary) (the Arrow format). Default false. */
  constructor(binary = false) {
    if (binary) this.#tuples = new BinaryTuples();
  }

  /** Add every row of a chunk (chunks of several COPY streams may follow each other). */
  update(rc: RowChunk): void {
    const { data, rowEnds } = rc;
    if (this.#tuples) {
      // As the Arrow batch builder reads it: header before the first tuple, trailer last.
      const t = this.#tuples.range(data, rowEnds);
      if (t.to > t.from) this.#hashRows(data, rowEnds, t.from, t.to, t.start);
    } else if (rowEnds.length > 0) {
      this.#hashRows(data, rowEnds, 0, rowEnds.length, 0);
    }
  }

  /** Hash rows from..to-1; row `from` starts at `start`. */
  #hashRows(d: Buffer, rowEnds: Uint32Array, from: number, to: number, start: number): void {
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    let lo = this.#lo;
    let hi = this.#hi;
    let s = start;
    for (let r = from; r < to; r++) {
      // `| 0` keeps the offsets int32 (a Uint32Array read may otherwise become a double).
      const e = (rowEnds[r] as number) | 0;
      let a = P1;
      let b = P2;
      let j = s;
      const e8 = e - 8;
      for (; j <= e8; j += 8) {
        a = (a + Math.imul(dv.getInt32(j, true), P2)) | 0;
        a = Math.imul((a << 13) | (a >>> 19), P1);
        b = (b + Math.imul(dv.getInt32(j + 4, true), P2)) | 0;
        b = Math.imul((b << 13) | (b >>> 19), P1);
      }
      if (j + 4 <= e) {
        a = (a + Math.imul(dv.getInt32(j, true), P2)) | 0;
        a = Math.imul((a << 13) | (a >>> 19), P1);
        j += 4;
      }
      let t = 0;
      if (j < e) {
        t = d[j] as number;
        if (j + 1 < e) {
          t |= (d[j + 1] as number) << 8;
          if (j + 2 < e) t |= (d[j + 2] as number) << 16;
        }
      }
      b = (b + Math.imul(t, P2)) | 0;
      b = Math.imul((b << 13) | (b >>> 19), P1);
      b ^= e - s;
      a = (a + b) | 0;
      b = (b + a) | 0;
      a ^= a >>> 16; a = Math.imul(a, F1); a ^= a >>> 13; a = Math.imul(a, F2); a ^= a >>> 16;
      b ^= b >>> 16; b = Math.imul(b, F1); b ^= b >>> 13; b = Math.imul(b, F2); b ^= b >>> 16;
      const nlo = (lo + b) | 0;
      // Unsigned overflow of the low half: the result is below an addend.
      hi = (hi + a + ((nlo >>> 0) < (b >>> 0) ? 1 : 0)) | 0;
      lo = nlo;
      s = e;
    }
    this.#lo = lo;
    this.#hi = hi;
    this.rows += to - from;
  }

  /** The checksum so far: row count and the decimal sum modulo 2^64. */
  result(): { rows: number; sum: string; algorithm: typeof ROW_HASH_ALGORITHM } {
    return { rows: this.rows, sum: ((BigInt(this.#hi >>> 0) << 32n) | BigInt(this.#lo >>> 0)).toString(), algorithm: ROW_HASH_ALGORITHM };
  }

  /** True between a binary COPY's header and its trailer (a stream that ended early). */
  get inCopy(): boolean {
    return this.#tuples?.inCopy ?? false;
  }
}


/** Add two `copy-rowhash64` sums (decimal strings), modulo 2^64. */
export function addRowHashSums(a: string, b: string): string {
  for (const x of [a, b]) if (!/^\d{1,20}$/.test(x)) throw new FormatError(`not a ${ROW_HASH_ALGORITHM} sum: ${JSON.stringify(String(x).slice(0, 40))}`);
  return ((BigInt(a) + BigInt(b)) & MASK64).toString();
}
