import { InvalidOptionError } from '../../errors.js';
import type { ParquetColumnSummary } from '../../manifest/types.js';
import type { FormatSummary, SegmentWriterOptions } from '../../segment/types.js';
import { ColumnarSegmentWriter, type ColumnarFile } from '../columnar-writer.js';
import { BatchBuilder, type PlainColumn } from '../arrow/columns.js';
import { columnSpec, type ColumnSpec, type PgColumn } from '../arrow/pgtypes.js';
import { pageCodec, type PageCodec, type ParquetCompression } from './codecs.js';
import { encodePlainRowGroup, EncoderScratch, type EncodedRowGroup } from './encode.js';
import { columnMeta, FooterBuilder, MAGIC, PARQUET_META } from './file.js';
import { parquetSpec, parquetTypeName } from './schema.js';

/** Default COPY BINARY bytes per row group: 32 MiB. */
export const DEFAULT_ROW_GROUP_BYTES = 32 * 1024 * 1024;
/** Rows per row group at most (a row group of tiny rows still ends). */
const MAX_ROW_GROUP_ROWS = 1 << 20;

/** Options of {@link ParquetSegmentWriter} (the cap includes the magic and the footer). */
export interface ParquetSegmentWriterOptions extends SegmentWriterOptions {
  /** Page compression (default `zstd`; `snappy` and `none` selectable). */
  compression?: ParquetCompression;
  /**
   * COPY BINARY bytes of the rows of one row group (default 32 MiB, at most a quarter of the
   * cap so an object holds several row groups). Memory per writer is about four times this,
   * plus the largest row: the rows kept while the group is built, its columns (PLAIN
   * values), its encoded pages, and the previous group's bytes while the store takes them.
   */
  rowGroupBytes?: number;
}

/** Rows [from, to) of built columns, with the specs they were built from. */
interface GroupPart {
  columns: PlainColumn[];
  specs: ColumnSpec[];
  from: number;
  to: number;
}

/** An encoded row group and the specs of its file's schema. */
interface EncodedGroup extends EncodedRowGroup {
  specs: ColumnSpec[];
}

/**
 * The {@link SegmentWriter} of the Parquet format: cuts COPY BINARY row chunks into Parquet
 * files of at most `cap` bytes, each complete (it opens alone).
 *
 * Rows are built into columns by the Arrow path's decoders (the same conversions and text
 * fallbacks) in the `plain` layout: each column's buffer holds its values' PLAIN bytes, which
 * the row group's pages take as they are. A row group is encoded whole, so its exact size is
 * known before any byte is stored: if the bytes so far, the row group and the footer that
 * would then be needed exceed the cap, the open file gets its footer and the row group starts the next file (the lifecycle of
 * lib/format/columnar-writer.ts). A row group too large for an empty file is split by rows
 * (and later groups are built smaller); a single row that cannot fit an empty file raises
 * `RowTooLargeError`. At most one row group is being built per object, and one encoded
 * group is in flight to the store.
 */
export class ParquetSegmentWriter extends ColumnarSegmentWriter<FooterBuilder, GroupPart, EncodedGroup> {
  readonly #opts: ParquetSegmentWriterOptions;
  #codec: PageCodec | undefined;
  /** The encoder's buffers, reused by every row group (docs/memory.md). */
  readonly #scratch = new EncoderScratch();
  /** A row group's bytes are one view of one of the scratch's two output buffers, filled in turn. */
  protected override readonly unitsStay = true;

  constructor(o: ParquetSegmentWriterOptions) {
    super(o, {
      name: 'Parquet', file: 'a Parquet file',
      rowHint: 'raise the segment size above the largest row (plus a few KiB of Parquet footer)',
    });
    if (o.rowGroupBytes !== undefined && !(Number.isSafeInteger(o.rowGroupBytes) && o.rowGroupBytes > 0)) {
      throw new InvalidOptionError('row group size must be a positive number of bytes');
    }
    this.#opts = o;
  }

  protected override async prepare(): Promise<void> {
    this.#codec ??= await pageCodec(this.#opts.compression ?? 'zstd');
  }

  protected newBuilder(columns: PgColumn[]): BatchBuilder {
    const o = this.#opts;
    return new BatchBuilder(columns.map((c) => parquetSpec(columnSpec(c))), {
      maxRows: MAX_ROW_GROUP_ROWS,
      maxBytes: Math.max(1, Math.min(o.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES, Math.floor(o.cap / 4))),
      // A row group is encoded (copied into pages) before the next rows are fed.
      reuseBuffers: true,
      layout: 'plain',
    });
  }

  protected takePart(b: BatchBuilder, specs: ColumnSpec[]): { part: GroupPart; generation: number } | undefined {
    const built = b.takePlain();
    return built && { part: { columns: built.columns, specs, from: 0, to: built.rows }, generation: built.generation };
  }

  protected encode(p: GroupPart): EncodedGroup {
    return { ...encodePlainRowGroup(p.columns, p.specs, p.from, p.to, this.#codec!, this.#scratch), specs: p.specs };
  }

  protected split(p: GroupPart): [GroupPart, GroupPart] {
    const mid = p.from + Math.ceil((p.to - p.from) / 2);
    return [{ ...p, to: mid }, { ...p, from: mid }];
  }

  protected bytesWith(f: ColumnarFile<FooterBuilder>, g: EncodedGroup): number {
    return f.bytes + g.bytes + f.state.bytesWith(g, f.bytes);
  }

  protected first(g: EncodedGroup): { state: FooterBuilder; head: Uint8Array[]; need: number } {
    const footer = new FooterBuilder(g.specs, {
      [PARQUET_META.table]: this.#opts.table,
      [PARQUET_META.columns]: JSON.stringify(columnMeta(g.specs)),
    });
    return { state: footer, head: [MAGIC], need: MAGIC.length + g.bytes + footer.bytesWith(g, MAGIC.length) };
  }

  protected add(f: ColumnarFile<FooterBuilder>, g: EncodedGroup): Uint8Array[] {
    f.state.add(g, f.bytes);
    return [g.data];
  }

  protected footer(f: ColumnarFile<FooterBuilder>): Uint8Array[] {
    return [f.state.footer()];
  }

  summary(): FormatSummary {
    return { parquet: summarizeParquet(this.specs) };
  }
}

/** Manifest summary of column specs: name, PostgreSQL type, Parquet type; `demoted` when a value fell back to text. */
export function summarizeParquet(specs: ColumnSpec[]): ParquetColumnSummary[] {
  return specs.map((s) => {
    const c: ParquetColumnSummary = { name: s.name, pgType: s.pgType, parquetType: parquetTypeName(parquetSpec({ ...s, demoted: false })) };
    if (s.demoted && s.kind !== 'interval') c.demoted = true;
    return c;
  });
}
