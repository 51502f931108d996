import { createHash, type Hash } from 'node:crypto';
import { CompressionType, type RecordBatch } from 'apache-arrow';
import { CopyProtocolError, InternalError, InvalidOptionError, RowTooLargeError } from '../../errors.js';
import type { ArrowColumnSummary } from '../../manifest/types.js';
import type { RowChunk } from '../../pg/copy-out.js';
import type { CopyRead, FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from '../../segment/types.js';
import type { ObjectWriter } from '../../store/types.js';
import { BatchBuilder, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS } from './columns.js';
import { IpcFileEncoder, type FileBlockLike } from './ipc.js';
import { arrowType, arrowTypeName, columnSpec, type ColumnSpec, type PgColumn } from './pgtypes.js';

/** Body compression of Arrow record batches. `none` is the default. */
export type ArrowCompression = 'none' | 'lz4' | 'zstd';

/** Options of {@link ArrowSegmentWriter} (the cap includes the IPC header and footer). */
export interface ArrowSegmentWriterOptions extends SegmentWriterOptions {
  /** Rows per record batch (default 65536). */
  batchRows?: number;
  /**
   * COPY bytes per record batch (default 4 MiB, at most a quarter of the cap so an object
   * holds several batches). Memory per writer is about four times this, plus the largest
   * row: the rows kept for a possible rebuild, the built columns, the encoded batch, and the
   * previous encoded batch while the store takes it.
   */
  batchBytes?: number;
  /**
   * Record batch body compression (default `none`). `lz4` and `zstd` need their codecs in
   * apache-arrow's `compressionRegistry`: call `registerArrowCodecs()` (lib/format/arrow-codecs.ts)
   * first, as the export does; readers must support the codec too.
   */
  compression?: ArrowCompression;
}

interface OpenFile {
  key: string;
  segment: number;
  writer: ObjectWriter;
  hash: Hash;
  bytes: number;
  rows: number;
  blocks: FileBlockLike[];
  generation: number;
  /** Source labels of the batches it holds. */
  sources: string[];
}

export type { ArrowColumnSummary } from '../../manifest/types.js';

function compressionType(c: ArrowCompression | undefined): CompressionType | null {
  if (c === undefined || c === 'none') return null;
  if (c === 'lz4') return CompressionType.LZ4_FRAME;
  if (c === 'zstd') return CompressionType.ZSTD;
  throw new InvalidOptionError(`unknown Arrow compression ${String(c)}: use none, lz4 or zstd`);
}

/**
 * The {@link SegmentWriter} of the Arrow format: cuts COPY BINARY row chunks into Arrow IPC
 * file objects of at most `cap` bytes. {@link begin} needs the columns of each read.
 *
 * Rows are built into record batches; each batch is encoded to bytes first, so its exact size
 * is known: if it and the footer would cross the cap, the object is finished and the batch
 * starts the next one. A batch too large for an empty object is split in halves (and later
 * batches are made smaller); a single row that cannot fit an empty object raises
 * {@link RowTooLargeError}. Every object is a complete IPC file any Arrow reader opens alone.
 * Writes wait for the store to accept each batch before the next is built.
 */
export class ArrowSegmentWriter implements SegmentWriter {
  readonly #o: ArrowSegmentWriterOptions;
  readonly #compression: CompressionType | null;
  #builder: BatchBuilder | undefined;
  #columns: PgColumn[] | undefined;
  #encoder: IpcFileEncoder | undefined;
  #encoderGen = -1;
  #file: OpenFile | undefined;
  #inflight: Promise<void> | undefined;
  #next = 0;
  /** Source labels of the rows in the builder, not yet placed. */
  #pending: string[] = [];
  /** Label of the current read's rows (see CopyRead.source). */
  #source: string | undefined;
  readonly stored: StoredSegment[] = [];
  /** Totals over all objects so far, including the open one. */
  totalBytes = 0;
  totalRows = 0;
  /** The column specs of the latest COPY (with any text fallbacks), for the manifest summary. */
  specs: ColumnSpec[] = [];

  constructor(o: ArrowSegmentWriterOptions) {
    if (!(o.cap > 0)) throw new InvalidOptionError('segment size must be positive');
    this.#o = o;
    this.#compression = compressionType(o.compression);
  }

  /** Number of the segment being written (or to be written next). */
  get segment(): number {
    return this.#file ? this.#file.segment : this.#next;
  }

  /** Start a read: a change of source label stores the open object first; the columns are required. */
  async begin(read: CopyRead): Promise<void> {
    if (!read.columns) throw new InternalError('the Arrow writer needs the columns of each read');
    if (read.source !== undefined && this.#source !== undefined && read.source !== this.#source) await this.cut();
    this.#source = read.source;
    await this.beginCopy(read.columns);
  }

  /** Declare the columns of the COPY whose chunks follow (call before each COPY). */
  async beginCopy(columns: PgColumn[]): Promise<void> {
    const same = this.#columns !== undefined && this.#columns.length === columns.length &&
      this.#columns.every((c, i) => c.name === columns[i]!.name && c.oid === columns[i]!.oid && c.typmod === columns[i]!.typmod);
    if (same && this.#builder) {
      if (this.#builder.inCopy) throw new CopyProtocolError('previous COPY stream did not end with its trailer');
      return;
    }
    if (this.#builder) await this.#flush();
    // A new builder has a new schema: never mix it into an object of the previous one.
    if (this.#file) await this.#close();
    this.#encoderGen = -1;
    this.#columns = columns;
    const o = this.#o;
    const maxBytes = Math.max(1, Math.min(o.batchBytes ?? DEFAULT_BATCH_BYTES, Math.floor(o.cap / 4)));
    this.#builder = new BatchBuilder(columns.map(columnSpec), {
      maxRows: o.batchRows ?? DEFAULT_BATCH_ROWS,
      maxBytes,
      schemaMetadata: { 'segferry.table': o.table },
      // Safe: #place encodes and copies a batch (#append) before write() feeds the next rows.
      reuseBuffers: true,
    });
    this.specs = this.#builder.specs;
  }

  /** Add a chunk of whole COPY BINARY rows (the stream's header and trailer included). */
  async write(rc: RowChunk): Promise<void> {
    const b = this.#builder;
    if (!b) throw new InternalError('beginCopy must be called before write');
    if (this.#source !== undefined && !this.#pending.includes(this.#source)) this.#pending.push(this.#source);
    let i = 0;
    while (i < rc.rowEnds.length) {
      i = b.feed(rc.data, rc.rowEnds, i);
      if (b.full) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    const b = this.#builder!;
    const built = b.take();
    this.specs = b.specs;
    const sources = this.#pending;
    this.#pending = [];
    if (!built) return;
    await this.#place(built.batch, built.generation, sources);
  }

  #encoderFor(generation: number): IpcFileEncoder {
    if (!this.#encoder || this.#encoderGen !== generation) {
      this.#encoder = new IpcFileEncoder(this.#builder!.schema, this.#compression);
      this.#encoderGen = generation;
    }
    return this.#encoder;
  }

  async #place(batch: RecordBatch, generation: number, sources: string[]): Promise<void> {
    if (this.#file && this.#file.generation !== generation) await this.#close();
    const enc = this.#encoderFor(generation);
    const e = enc.batch(batch);
    const cap = this.#o.cap;
    for (;;) {
      const f = this.#file;
      if (f) {
        if (f.bytes + e.bytes + enc.footerBytes(f.blocks.length + 1) <= cap) break;
        await this.#close();
        continue;
      }
      const need = enc.header.bytes + e.bytes + enc.footerBytes(1);
      if (need <= cap) {
        await this.#open(enc, generation);
        break;
      }
      if (batch.numRows <= 1) {
        throw new RowTooLargeError(
          `a row of table ${this.#o.table} on node ${this.#o.node} needs ${need} bytes as an Arrow IPC file, more than the segment size ${cap}`,
          need,
          { table: this.#o.table, node: this.#o.node, hint: 'raise the segment size above the largest row (plus about 1 KiB of Arrow schema and footer)' },
        );
      }
      // Too large for any object: split, and build smaller batches from now on.
      const bld = this.#builder!;
      bld.maxBytes = Math.max(1, Math.floor(bld.maxBytes / 2));
      bld.maxRows = Math.max(1, Math.min(bld.maxRows, Math.ceil(batch.numRows / 2)));
      const h = Math.ceil(batch.numRows / 2);
      await this.#place(batch.slice(0, h), generation, sources);
      await this.#place(batch.slice(h), generation, sources);
      return;
    }
    const f = this.#file!;
    for (const x of sources) if (!f.sources.includes(x)) f.sources.push(x);
    f.blocks.push({ offset: f.bytes, metaDataLength: e.metaDataLength, bodyLength: e.bodyLength });
    f.rows += e.rows;
    this.totalRows += e.rows;
    await this.#append(f, e.chunks, e.bytes);
  }

  async #append(f: OpenFile, chunks: Uint8Array[], bytes: number): Promise<void> {
    const buf = Buffer.concat(chunks, bytes);
    f.hash.update(buf);
    f.bytes += bytes;
    this.totalBytes += bytes;
    // One write in flight: the next batch is built while the store takes this one, and is
    // handed over only once the store has accepted the previous one (its backpressure).
    await this.#drain();
    const p = f.writer.write(buf);
    p.catch(() => {}); // observed by #drain
    this.#inflight = p;
  }

  async #drain(): Promise<void> {
    const p = this.#inflight;
    this.#inflight = undefined;
    if (p) await p;
  }

  async #open(enc: IpcFileEncoder, generation: number): Promise<void> {
    const segment = this.#next++;
    const key = this.#o.keyOf(segment);
    const f: OpenFile = {
      key, segment, writer: this.#o.store.createWriter(key, this.#o.signal ? { signal: this.#o.signal } : {}), hash: createHash('sha256'),
      bytes: 0, rows: 0, blocks: [], generation, sources: [],
    };
    this.#file = f;
    await this.#append(f, enc.header.chunks, enc.header.bytes);
  }

  async #close(): Promise<void> {
    const f = this.#file!;
    const tail = this.#encoder!.footer(f.blocks);
    await this.#append(f, tail.chunks, tail.bytes);
    this.#file = undefined;
    const seg: StoredSegment = { key: f.key, segment: f.segment, bytes: f.bytes, rows: f.rows, sha256: f.hash.digest('hex') };
    if (f.sources.length > 0) seg.sources = f.sources;
    try {
      await this.#drain();
      await f.writer.finish();
    } catch (e) {
      await f.writer.abort();
      throw e;
    }
    this.stored.push(seg);
    this.#o.onStored?.(seg);
  }

  /** Write the rows built so far and store the open object, if any, so the next row starts a new one (between COPYs). */
  async cut(): Promise<void> {
    if (this.#builder) {
      if (this.#builder.inCopy) throw new InternalError('cut inside a COPY stream');
      await this.#flush();
    }
    if (this.#file) await this.#close();
  }

  /** Write the last batch and store the open object, if any. */
  async finish(): Promise<StoredSegment[]> {
    if (this.#builder) {
      if (this.#builder.inCopy) throw new CopyProtocolError('COPY stream ended without its trailer');
      await this.#flush();
    }
    if (this.#file) await this.#close();
    return this.stored;
  }

  /** Abort the open object (already stored ones stay). Never throws. */
  async abort(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    await this.#drain().catch(() => {});
    if (f) await f.writer.abort();
  }

  /** Schema summary for the manifest. */
  summary(): FormatSummary {
    return { arrow: summarize(this.specs) };
  }
}

/** Manifest summary of column specs: name, PostgreSQL type and Arrow type. */
export function summarize(specs: ColumnSpec[]): ArrowColumnSummary[] {
  return specs.map((s) => {
    // The native Arrow type; a demoted column is flagged rather than renamed.
    const native = { ...s, demoted: false };
    const c: ArrowColumnSummary = { name: s.name, pgType: s.pgType, arrowType: arrowTypeName(arrowType(native)) };
    if (s.demoted) c.demoted = true;
    return c;
  });
}

