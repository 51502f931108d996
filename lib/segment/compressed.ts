import { RowTooLargeError } from '../errors.js';
import { blockCompressor, type BlockCompressor, type Compression } from '../format/compress.js';
import type { RowChunk } from '../pg/copy-out.js';
import { ObjectsWriterBase, SegmentObjects, WRITE_BATCH, lastRowThatFits } from './objects.js';
import type { FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from './types.js';

/**
 * Raw bytes of whole rows compressed as one block (1 MiB). Measured on 32 MB of lineitem-like
 * TEXT rows against one continuous stream: gzip level 6 grows by 0.3% (64 KiB blocks: 5%),
 * zstd level 3 is the same size (±1.5% between 64 KiB and 4 MiB). Memory: one block per writer.
 */
export const COMPRESS_BLOCK = 1024 * 1024;

/** Raw bytes per gzip member or zstd frame: a row larger than a block spans several (zstd readers decode one frame at a time). */
export const FRAME_RAW = 1024 * 1024;

/** Options of {@link CompressedSegmentWriter}. */
export interface CompressedSegmentWriterOptions extends SegmentWriterOptions {
  /** The codec of every stored byte. */
  compression: Compression;
  /** Bytes each object starts with before compression (a csv header line, the COPY BINARY header). Default: none. */
  header?: Buffer;
  /** Bytes each object ends with before compression (the COPY BINARY trailer). Default: none. */
  trailer?: Buffer;
  /**
   * Raw bytes of rows per compressed block. Default: {@link COMPRESS_BLOCK}, or a quarter of the
   * cap when that is smaller (at least 1 KiB), so that small caps still fill their objects.
   */
  blockSize?: number;
}

/** A run of whole rows in one chunk: `data` holds them, `ends` their end offsets relative to `base`. */
interface Piece { data: Buffer; ends: Uint32Array; base: number }

/**
 * The {@link SegmentWriter} of compressed TEXT, CSV and COPY BINARY objects (`--compress`). Rows
 * are gathered into blocks of whole rows, each compressed into complete gzip members or zstd
 * frames; an object is its header's member, blocks, and its trailer's member, so it is one
 * valid stream that decompresses alone (`gzip -dc`, `zstd -dc`) into whole rows. The cap applies
 * to the stored (compressed) bytes: a block that would cross it closes the object and starts the
 * next one; a block over the cap on its own is split by rows and compressed again, and a single
 * row whose compressed form exceeds the cap is ERR_ROW_TOO_LARGE. `bytes`, `totalBytes` and the
 * SHA-256 are of the stored bytes.
 *
 * Memory: one raw block (≤ 1 MiB, or one row larger than that), its compressed form, and up to
 * {@link WRITE_BATCH} of compressed bytes waiting for one store write.
 */
export class CompressedSegmentWriter extends ObjectsWriterBase implements SegmentWriter {
  readonly #o: CompressedSegmentWriterOptions;
  readonly #block: number;
  #codec: BlockCompressor | undefined;
  #headerZ: Buffer | undefined;
  #trailerZ: Buffer | undefined;
  // The block being gathered.
  #pieces: Piece[] = [];
  #blockLen = 0;
  #blockRows = 0;
  /** Rows taken so far (stored, or in the block being gathered). */
  totalRows = 0;

  constructor(o: CompressedSegmentWriterOptions) {
    super(new SegmentObjects(o, o.compression));
    this.#o = o;
    this.#block = o.blockSize ?? Math.min(COMPRESS_BLOCK, Math.max(1024, Math.floor(o.cap / 4)));
  }

  async write(rc: RowChunk): Promise<void> {
    const { data, rowEnds } = rc;
    const last = rowEnds.length - 1;
    let start = 0;
    let ri = 0;
    while (ri <= last) {
      let j = lastRowThatFits(rowEnds, ri, last, start, this.#block - this.#blockLen);
      if (j < ri) {
        if (this.#blockLen > 0) {
          await this.#flushBlock();
          continue;
        }
        j = ri; // one row larger than a block: a block of its own
      }
      const end = rowEnds[j] as number;
      this.#pieces.push({ data: data.subarray(start, end), ends: rowEnds.subarray(ri, j + 1), base: start });
      this.#blockLen += end - start;
      this.#blockRows += j - ri + 1;
      this.totalRows += j - ri + 1;
      if (this.#blockLen >= this.#block) await this.#flushBlock();
      start = end;
      ri = j + 1;
    }
  }

  async #codecReady(): Promise<BlockCompressor> {
    if (!this.#codec) {
      const c = await blockCompressor(this.#o.compression);
      this.#headerZ = this.#o.header ? await c.compress(this.#o.header) : Buffer.alloc(0);
      this.#trailerZ = this.#o.trailer ? await c.compress(this.#o.trailer) : Buffer.alloc(0);
      this.#codec = c;
    }
    return this.#codec;
  }

  /** Compress `raw` into members/frames of at most {@link FRAME_RAW} raw bytes each. */
  async #compress(raw: Buffer): Promise<Buffer[]> {
    const c = await this.#codecReady();
    const out: Buffer[] = [];
    for (let at = 0; at < raw.length; at += FRAME_RAW) out.push(await c.compress(raw.subarray(at, at + FRAME_RAW)));
    return out;
  }

  /** Compress the gathered block and place it. */
  async #flushBlock(): Promise<void> {
    if (this.#blockRows === 0) return;
    const pieces = this.#pieces;
    const rows = this.#blockRows;
    const raw = pieces.length === 1 ? pieces[0]!.data : Buffer.concat(pieces.map((p) => p.data), this.#blockLen);
    this.#pieces = [];
    this.#blockLen = 0;
    this.#blockRows = 0;
    const z = await this.#compress(raw);
    await this.#place(raw, rows, z, () => {
      // Row ends within raw, built only when a block must be split.
      const ends = new Uint32Array(rows);
      let k = 0;
      let off = 0;
      for (const p of pieces) {
        for (let i = 0; i < p.ends.length; i++) ends[k++] = off + (p.ends[i] as number) - p.base;
        off += p.data.length;
      }
      return ends;
    });
  }

  /** Append one compressed block to the open object, or to a new one; split it by rows when it is over the cap alone. */
  async #place(raw: Buffer, rows: number, z: Buffer[], endsOf: () => Uint32Array): Promise<void> {
    const zlen = z.reduce((a, b) => a + b.length, 0);
    const objs = this.objects;
    for (;;) {
      if (zlen <= objs.room(this.#headerZ!.length, this.#trailerZ!.length)) break;
      if (objs.isOpen) {
        await objs.close(this.#trailerZ);
        continue;
      }
      if (rows === 1) {
        const over = this.#headerZ!.length + this.#trailerZ!.length;
        throw new RowTooLargeError(
          `a row of table ${this.#o.table} on node ${this.#o.node} is ${zlen} bytes compressed (${raw.length} raw), larger than the segment size ${this.#o.cap}` +
            (over ? ` minus the ${over} bytes of compressed header and trailer` : ''),
          zlen,
          { table: this.#o.table, node: this.#o.node, hint: 'raise the segment size above the largest row' },
        );
      }
      const ends = endsOf();
      const half = rows >>> 1;
      const cut = ends[half - 1] as number;
      const a = raw.subarray(0, cut);
      const b = raw.subarray(cut);
      await this.#place(a, half, await this.#compress(a), () => ends.subarray(0, half));
      await this.#place(b, rows - half, await this.#compress(b), () => ends.subarray(half).map((e) => e - cut));
      return;
    }
    if (!objs.isOpen) objs.open(this.#headerZ);
    for (const f of z) objs.push(f);
    objs.addRows(rows);
    await objs.flushIfFull();
  }

  /** Compress the gathered rows and store the open object, so the next row starts a new one. */
  async cut(): Promise<void> {
    await this.#flushBlock();
    if (this.objects.isOpen) await this.objects.close(this.#trailerZ);
  }

  async finish(): Promise<readonly StoredSegment[]> {
    await this.cut();
    return this.objects.stored;
  }

  /** Abort the open object (already stored ones stay). Never throws. */
  async abort(): Promise<void> {
    this.#pieces = [];
    this.#blockLen = 0;
    this.#blockRows = 0;
    await this.objects.abort();
  }

  summary(): FormatSummary {
    return {};
  }
}
