import os from 'node:os';
import { FormatError, PrerequisiteError } from '../errors.js';
import { BinaryTuples } from '../pg/copy-binary.js';
import type { RowChunk } from '../pg/copy-out.js';
import { ROW_HASH_WASM } from './row-hash-wasm.js';

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const F1 = 0x85ebca6b | 0;
const F2 = 0xc2b2ae35 | 0;

const MASK64 = (1n << 64n) - 1n;

// The WebAssembly module's memory (lib/format/row-hash.wat): 4 MiB, fixed, one per thread.
/** Where the row bytes go in the module's memory. */
export const WASM_DATA_AT = 1 << 20;
/** Most row bytes one call takes (the memory's end less 8 bytes: the tail read's slack). */
export const WASM_DATA_MAX = 3 * (1 << 20) - 8;
/** Most row ends one call takes (u32 each, from byte 16 to the row bytes). */
export const WASM_ENDS_MAX = ((1 << 20) - 16) / 4;
/** A long row's pieces: a multiple of 8 bytes (the hash's step), at most WASM_DATA_MAX. */
const WASM_PIECE = WASM_DATA_MAX & ~7;

type RowHashWasm = {
  /** rows(count, base, a0, b0, extra, open, lo, hi): see lib/format/row-hash.wat. */
  rows: (count: number, base: number, a0: number, b0: number, extra: number, open: number, lo: number, hi: number) => void;
  bytes: Uint8Array;
  /** Row ends, copied in host byte order: little-endian hosts only (checked at load). */
  ends: Uint32Array;
  /** Sum low and high half, then lanes a and b after an `open` call. */
  words: Int32Array;
};
let wasm: RowHashWasm | undefined;
// The compiler's ES2023 lib and Node's types declare no WebAssembly: the little used here.
type Wasm = { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: unknown } };

/** Instantiate the module once per thread (a 0.5 KB module: compiled synchronously). */
function rowHashWasm(): RowHashWasm {
  // WebAssembly memory is little-endian; the row ends are copied with a native Uint32Array set.
  if (os.endianness() !== 'LE') throw new FormatError('row checksums need a little-endian host (use --no-checksums)');
  const { Module, Instance } = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;
  const exp = new Instance(new Module(Buffer.from(ROW_HASH_WASM, 'base64'))).exports as { rows: RowHashWasm['rows']; memory: { buffer: ArrayBuffer } };
  const buf = exp.memory.buffer;
  return { rows: exp.rows, bytes: new Uint8Array(buf), ends: new Uint32Array(buf, 16, WASM_ENDS_MAX), words: new Int32Array(buf, 0, 4) };
}

/** This process has WebAssembly: V8 has none under `node --jitless` (`globalThis.WebAssembly` is undefined). */
const HAS_WASM = typeof (globalThis as { WebAssembly?: unknown }).WebAssembly === 'object';

/**
 * Where RowHasher runs its loop unless told: WebAssembly on little-endian hosts that have it;
 * JavaScript on big-endian ones and without WebAssembly (`node --jitless`).
 */
const DEFAULT_ENGINE: 'js' | 'wasm' = os.endianness() === 'LE' && HAS_WASM ? 'wasm' : 'js';

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

  /** Hash in WebAssembly (lib/format/row-hash.wat) rather than JavaScript. */
  readonly #wasm: boolean;

  /**
   * `binary`: the rows come from COPY … (FORMAT binary) (the Arrow and Parquet formats).
   * Default false. `engine`: where the loop runs, with the same sums: `'wasm'` (WebAssembly,
   * the default on little-endian hosts: 1.4–1.7× faster on the bench table's rows in cache,
   * 1.15–1.4× out of cache, ≈ 0.06 CPU-s per million rows less in a TEXT export:
   * bench/analysis.md, the rw session) or `'js'` (the default on big-endian hosts, where the
   * module's row ends would be read in the wrong byte order, and where the process has no
   * WebAssembly, as under `node --jitless`).
   *
   * @throws PrerequisiteError (`ERR_PREREQUISITE`) for `'wasm'` in a process without WebAssembly.
   */
  constructor(binary = false, engine: 'js' | 'wasm' = DEFAULT_ENGINE) {
    if (engine === 'wasm' && !HAS_WASM) {
      throw new PrerequisiteError("the row hash's 'wasm' engine needs WebAssembly, which this Node process does not have (node --jitless)", {
        hint: "use engine 'js' or leave the default, which is 'js' there",
      });
    }
    if (binary) this.#tuples = new BinaryTuples();
    this.#wasm = engine === 'wasm';
  }

  /** Hash rows from..to-1; row `from` starts at `start`. */
  #hashRows(d: Buffer, rowEnds: Uint32Array, from: number, to: number, start: number): void {
    if (this.#wasm) this.#hashRowsWasm(d, rowEnds, from, to, start);
    else this.#hashRowsJs(d, rowEnds, from, to, start);
    this.rows += to - from;
  }

  /** Hash rows from..to-1 in JavaScript; row `from` starts at `start`. */
  #hashRowsJs(d: Buffer, rowEnds: Uint32Array, from: number, to: number, start: number): void {
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

  /**
   * Hash rows from..to-1; row `from` starts at `start`. The rows go into the WebAssembly
   * module's memory in parts of whole rows that fit it (one part for a chunk of copyOut's
   * size); a row longer than the memory's row area goes in pieces.
   */
  #hashRowsWasm(d: Buffer, rowEnds: Uint32Array, from: number, to: number, start: number): void {
    const w = wasm ?? (wasm = rowHashWasm());
    let s = start;
    for (let r = from; r < to;) {
      let k = Math.min(to, r + WASM_ENDS_MAX);
      if ((rowEnds[k - 1] as number) - s > WASM_DATA_MAX) {
        // The rows that fit: the first end past the row area, by bisection.
        let lo = r;
        let hi = k - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if ((rowEnds[mid] as number) - s > WASM_DATA_MAX) hi = mid;
          else lo = mid + 1;
        }
        k = lo;
      }
      if (k === r) {
        this.#longRow(w, d, s, rowEnds[r] as number);
        k = r + 1;
      } else {
        w.bytes.set(d.subarray(s, rowEnds[k - 1]), WASM_DATA_AT);
        w.ends.set(rowEnds.subarray(r, k));
        w.rows(k - r, s, P1, P2, 0, 0, this.#lo, this.#hi);
        this.#takeSum(w);
      }
      s = rowEnds[k - 1] as number;
      r = k;
    }
  }

  /** One row `d[s, e)` longer than the module's row area: its 8-byte steps piece by piece. */
  #longRow(w: RowHashWasm, d: Buffer, s: number, e: number): void {
    let a = P1;
    let b = P2;
    let at = s;
    for (; e - at > WASM_DATA_MAX; at += WASM_PIECE) {
      w.bytes.set(d.subarray(at, at + WASM_PIECE), WASM_DATA_AT);
      w.ends[0] = at + WASM_PIECE;
      w.rows(1, at, a, b, 0, 1, 0, 0);
      a = w.words[2] as number;
      b = w.words[3] as number;
    }
    w.bytes.set(d.subarray(at, e), WASM_DATA_AT);
    w.ends[0] = e;
    w.rows(1, at, a, b, at - s, 0, this.#lo, this.#hi);
    this.#takeSum(w);
  }

  /** The running sum after a closing `rows` call: its low and high halves, words 0 and 1 of the module's memory. */
  #takeSum(w: RowHashWasm): void {
    this.#lo = w.words[0] as number;
    this.#hi = w.words[1] as number;
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
