import { CompressionType, type RecordBatch } from 'apache-arrow';
import { InvalidOptionError } from '../../errors.js';
import type { ArrowColumnSummary } from '../../manifest/types.js';
import type { FormatSummary, SegmentWriterOptions } from '../../segment/types.js';
import { ColumnarSegmentWriter, type ColumnarFile } from '../columnar-writer.js';
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

export type { ArrowColumnSummary } from '../../manifest/types.js';

function compressionType(c: ArrowCompression | undefined): CompressionType | null {
  if (c === undefined || c === 'none') return null;
  if (c === 'lz4') return CompressionType.LZ4_FRAME;
  if (c === 'zstd') return CompressionType.ZSTD;
  throw new InvalidOptionError(`unknown Arrow compression ${String(c)}: use none, lz4 or zstd`);
}

/** Footer state of an Arrow object: where its record batches are. */
interface ArrowFile {
  blocks: FileBlockLike[];
}

/** A record batch encoded as an IPC message. */
type EncodedBatch = ReturnType<IpcFileEncoder['batch']>;

/**
 * The {@link SegmentWriter} of the Arrow format: cuts COPY BINARY row chunks into Arrow IPC
 * file objects of at most `cap` bytes. {@link begin} needs the columns of each read.
 *
 * Rows are built into record batches; each batch is encoded to bytes first, so its exact size
 * is known: if it and the footer would cross the cap, the object is finished and the batch
 * starts the next one (the lifecycle of lib/format/columnar-writer.ts). A batch too large for
 * an empty object is split in halves (and later batches are made smaller); a single row that
 * cannot fit an empty object raises `RowTooLargeError`. Every object is a complete IPC
 * file any Arrow reader opens alone. Writes wait for the store to accept each batch before the
 * next is built.
 */
export class ArrowSegmentWriter extends ColumnarSegmentWriter<ArrowFile, RecordBatch, EncodedBatch> {
  readonly #opts: ArrowSegmentWriterOptions;
  readonly #compression: CompressionType | null;
  #encoder: IpcFileEncoder | undefined;
  #encoderGen = -1;

  constructor(o: ArrowSegmentWriterOptions) {
    super(o, {
      name: 'Arrow', file: 'an Arrow IPC file',
      rowHint: 'raise the segment size above the largest row (plus about 1 KiB of Arrow schema and footer)',
    });
    this.#opts = o;
    this.#compression = compressionType(o.compression);
  }

  protected newBuilder(columns: PgColumn[]): BatchBuilder {
    const o = this.#opts;
    const maxBytes = Math.max(1, Math.min(o.batchBytes ?? DEFAULT_BATCH_BYTES, Math.floor(o.cap / 4)));
    return new BatchBuilder(columns.map(columnSpec), {
      maxRows: o.batchRows ?? DEFAULT_BATCH_ROWS,
      maxBytes,
      schemaMetadata: { 'segferry.table': o.table },
      // Safe: a batch is encoded and copied before write() feeds the next rows.
      reuseBuffers: true,
    });
  }

  protected override reset(): void {
    this.#encoderGen = -1;
  }

  protected takePart(b: BatchBuilder): { part: RecordBatch; generation: number } | undefined {
    const built = b.take();
    return built && { part: built.batch, generation: built.generation };
  }

  protected encode(batch: RecordBatch, generation: number): EncodedBatch {
    if (!this.#encoder || this.#encoderGen !== generation) {
      this.#encoder = new IpcFileEncoder(this.builder!.schema, this.#compression);
      this.#encoderGen = generation;
    }
    return this.#encoder.batch(batch);
  }

  protected split(batch: RecordBatch): [RecordBatch, RecordBatch] {
    const h = Math.ceil(batch.numRows / 2);
    return [batch.slice(0, h), batch.slice(h)];
  }

  protected bytesWith(f: ColumnarFile<ArrowFile>, e: EncodedBatch): number {
    return f.bytes + e.bytes + this.#encoder!.footerBytes(f.state.blocks.length + 1);
  }

  protected first(e: EncodedBatch): { state: ArrowFile; head: Uint8Array[]; need: number } {
    const enc = this.#encoder!;
    return { state: { blocks: [] }, head: enc.header.chunks, need: enc.header.bytes + e.bytes + enc.footerBytes(1) };
  }

  protected add(f: ColumnarFile<ArrowFile>, e: EncodedBatch): Uint8Array[] {
    f.state.blocks.push({ offset: f.bytes, metaDataLength: e.metaDataLength, bodyLength: e.bodyLength });
    return e.chunks;
  }

  protected footer(f: ColumnarFile<ArrowFile>): Uint8Array[] {
    return this.#encoder!.footer(f.state.blocks).chunks;
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

