import { createHash, type Hash } from 'node:crypto';
import type { RecordBatch } from 'apache-arrow';
import { CopyProtocolError, InternalError, InvalidOptionError, RowTooLargeError } from '../../errors.js';
import type { ParquetColumnSummary } from '../../manifest/types.js';
import type { RowChunk } from '../../pg/copy-out.js';
import type { CopyRead, FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from '../../segment/types.js';
import type { ObjectWriter } from '../../store/types.js';
import { BatchBuilder } from '../arrow/columns.js';
import { columnSpec, type ColumnSpec, type PgColumn } from '../arrow/pgtypes.js';
import { pageCodec, type PageCodec, type ParquetCompression } from './codecs.js';
import { encodeRowGroup, type EncodedRowGroup } from './encode.js';
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
   * plus the largest row: the rows kept while the group is built, its Arrow columns, its
   * encoded pages, and the previous group's bytes while the store takes them.
   */
  rowGroupBytes?: number;
}

interface OpenFile {
  key: string;
  segment: number;
  writer: ObjectWriter;
  hash: Hash;
  bytes: number;
  rows: number;
  footer: FooterBuilder;
  generation: number;
  sources: string[];
}

/**
 * The {@link SegmentWriter} of the Parquet format: cuts COPY BINARY row chunks into Parquet
 * files of at most `cap` bytes, each complete (it opens alone).
 *
 * Rows are built into Arrow columns (the Arrow path's decoders), then encoded as one row
 * group, so its exact size is known before any byte is stored: if the bytes so far, the row
 * group and the footer that would then be needed exceed the cap, the open file gets its
 * footer and the row group starts the next file. A row group too large for an empty file
 * is split by rows (and later groups are built smaller); a single row that cannot fit an
 * empty file raises {@link RowTooLargeError}. At most one row group is being built per
 * object, and one encoded group is in flight to the store.
 */
export class ParquetSegmentWriter implements SegmentWriter {
  readonly #o: ParquetSegmentWriterOptions;
  #codec: PageCodec | undefined;
  #builder: BatchBuilder | undefined;
  #columns: PgColumn[] | undefined;
  #file: OpenFile | undefined;
  #inflight: Promise<void> | undefined;
  #next = 0;
  #pending: string[] = [];
  #source: string | undefined;
  readonly stored: StoredSegment[] = [];
  totalBytes = 0;
  totalRows = 0;
  /** The column specs of the latest COPY (with any text fallbacks), for the manifest summary. */
  specs: ColumnSpec[] = [];

  constructor(o: ParquetSegmentWriterOptions) {
    if (!(o.cap > 0)) throw new InvalidOptionError('segment size must be positive');
    if (o.rowGroupBytes !== undefined && !(Number.isSafeInteger(o.rowGroupBytes) && o.rowGroupBytes > 0)) {
      throw new InvalidOptionError('row group size must be a positive number of bytes');
    }
    this.#o = o;
  }

  get segment(): number {
    return this.#file ? this.#file.segment : this.#next;
  }

  async begin(read: CopyRead): Promise<void> {
    if (!read.columns) throw new InternalError('the Parquet writer needs the columns of each read');
    if (read.source !== undefined && this.#source !== undefined && read.source !== this.#source) await this.cut();
    this.#source = read.source;
    this.#codec ??= await pageCodec(this.#o.compression ?? 'zstd');
    const columns = read.columns;
    const same = this.#columns !== undefined && this.#columns.length === columns.length &&
      this.#columns.every((c, i) => c.name === columns[i]!.name && c.oid === columns[i]!.oid && c.typmod === columns[i]!.typmod);
    if (same && this.#builder) {
      if (this.#builder.inCopy) throw new CopyProtocolError('previous COPY stream did not end with its trailer');
      return;
    }
    if (this.#builder) await this.#flush();
    if (this.#file) await this.#close();
    this.#columns = columns;
    const o = this.#o;
    this.#builder = new BatchBuilder(columns.map((c) => parquetSpec(columnSpec(c))), {
      maxRows: MAX_ROW_GROUP_ROWS,
      maxBytes: Math.max(1, Math.min(o.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES, Math.floor(o.cap / 4))),
      // A row group is encoded (copied into pages) before the next rows are fed.
      reuseBuffers: true,
    });
    this.specs = this.#builder.specs;
  }

  async write(rc: RowChunk): Promise<void> {
    const b = this.#builder;
    if (!b) throw new InternalError('begin must be called before write');
    if (this.#source !== undefined && !this.#pending.includes(this.#source)) this.#pending.push(this.#source);
    let i = 0;
    while (i < rc.rowEnds.length) {
      i = b.feed(rc.data, rc.rowEnds, i);
      if (b.full) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    const b = this.#builder!;
    const specs = b.specs.map((s) => ({ ...s }));
    const built = b.take();
    this.specs = b.specs;
    const sources = this.#pending;
    this.#pending = [];
    if (!built) return;
    await this.#place(built.batch, specs, built.generation, 0, built.rows, sources);
  }

  async #place(batch: RecordBatch, specs: ColumnSpec[], generation: number, from: number, to: number, sources: string[]): Promise<void> {
    if (this.#file && this.#file.generation !== generation) await this.#close();
    const g = encodeRowGroup(batch, specs, from, to, this.#codec!);
    const cap = this.#o.cap;
    for (;;) {
      const f = this.#file;
      if (f) {
        if (f.bytes + g.bytes + f.footer.bytesWith(g, f.bytes) <= cap) break;
        await this.#close();
        continue;
      }
      const footer = this.#newFooter(specs);
      const need = MAGIC.length + g.bytes + footer.bytesWith(g, MAGIC.length);
      if (need <= cap) {
        await this.#open(footer, generation);
        break;
      }
      if (to - from <= 1) {
        throw new RowTooLargeError(
          `a row of table ${this.#o.table} on node ${this.#o.node} needs ${need} bytes as a Parquet file, more than the segment size ${cap}`,
          need,
          { table: this.#o.table, node: this.#o.node, hint: 'raise the segment size above the largest row (plus a few KiB of Parquet footer)' },
        );
      }
      // Too large for any object: split by rows, and build smaller row groups from now on.
      const bld = this.#builder!;
      bld.maxBytes = Math.max(1, Math.floor(bld.maxBytes / 2));
      bld.maxRows = Math.max(1, Math.min(bld.maxRows, Math.ceil((to - from) / 2)));
      const mid = from + Math.ceil((to - from) / 2);
      await this.#place(batch, specs, generation, from, mid, sources);
      await this.#place(batch, specs, generation, mid, to, sources);
      return;
    }
    const f = this.#file!;
    for (const x of sources) if (!f.sources.includes(x)) f.sources.push(x);
    f.footer.add(g, f.bytes);
    f.rows += g.rows;
    this.totalRows += g.rows;
    await this.#append(f, rowGroupBytes(g));
  }

  #newFooter(specs: ColumnSpec[]): FooterBuilder {
    return new FooterBuilder(specs, this.#codec!.id, {
      [PARQUET_META.table]: this.#o.table,
      [PARQUET_META.columns]: JSON.stringify(columnMeta(specs)),
    });
  }

  async #append(f: OpenFile, u8: Uint8Array): Promise<void> {
    const buf = Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    f.hash.update(buf);
    f.bytes += buf.length;
    this.totalBytes += buf.length;
    // One write in flight: the next row group is built while the store takes this one.
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

  async #open(footer: FooterBuilder, generation: number): Promise<void> {
    const segment = this.#next++;
    const key = this.#o.keyOf(segment);
    const f: OpenFile = {
      key, segment, writer: this.#o.store.createWriter(key, this.#o.signal ? { signal: this.#o.signal } : {}), hash: createHash('sha256'),
      bytes: 0, rows: 0, footer, generation, sources: [],
    };
    this.#file = f;
    await this.#append(f, Buffer.from(MAGIC));
  }

  async #close(): Promise<void> {
    const f = this.#file!;
    await this.#append(f, f.footer.footer());
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

  async cut(): Promise<void> {
    if (this.#builder) {
      if (this.#builder.inCopy) throw new InternalError('cut inside a COPY stream');
      await this.#flush();
    }
    if (this.#file) await this.#close();
  }

  async finish(): Promise<StoredSegment[]> {
    if (this.#builder) {
      if (this.#builder.inCopy) throw new CopyProtocolError('COPY stream ended without its trailer');
      await this.#flush();
    }
    if (this.#file) await this.#close();
    return this.stored;
  }

  async abort(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    await this.#drain().catch(() => {});
    if (f) await f.writer.abort();
  }

  summary(): FormatSummary {
    return { parquet: summarizeParquet(this.specs) };
  }
}

/** One buffer of a row group's pages. */
function rowGroupBytes(g: EncodedRowGroup): Buffer {
  const parts: Uint8Array[] = [];
  for (const c of g.chunks) parts.push(...c.pages);
  return Buffer.concat(parts, g.bytes);
}

/** Manifest summary of column specs: name, PostgreSQL type, Parquet type; `demoted` when a value fell back to text. */
export function summarizeParquet(specs: ColumnSpec[]): ParquetColumnSummary[] {
  return specs.map((s) => {
    const c: ParquetColumnSummary = { name: s.name, pgType: s.pgType, parquetType: parquetTypeName(parquetSpec({ ...s, demoted: false })) };
    if (s.demoted && s.kind !== 'interval') c.demoted = true;
    return c;
  });
}
