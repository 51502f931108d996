import type pg from 'pg';
import { InternalError, InvalidOptionError } from '../errors.js';
import { columnListSQL, copyOptionsSQL, csvHeaderLine, type FormatKind } from '../format/options.js';
import { checkFilterText } from '../pg/filter.js';
import { quoteQualified, whereSQL } from '../pg/sql.js';
import { TextSegmentWriter } from '../segment/text.js';
import type { CopyColumn, SegmentWriter, SegmentWriterOptions } from '../segment/types.js';
import type { RelationRead, TablePlan } from '../topology/types.js';
import type { ExportPlan } from './plan.js';

// The one place an export depends on its format: a table from format kind to its COPY
// statement and its segment writer.

/** The COPY statement of one read, and the columns its writer is told about. */
export interface CopyStatement {
  sql: string;
  /** The read's columns as the node reports them (formats whose writer needs them). */
  columns?: CopyColumn[];
}

/** What an exporter needs of a format. */
export interface ExportFormat {
  /** COPY sends BINARY rows (the row checksum reads them so). */
  binary: boolean;
  /**
   * `copy` asks the node (Arrow, Parquet: the read's column types), so a stream cannot send its
   * next range's COPY behind a running one (default false).
   */
  asks?: boolean;
  /** The COPY of one read on an exporter's session (may ask the node, e.g. for column types). */
  copy(client: pg.Client, read: RelationRead, table: TablePlan, plan: ExportPlan): Promise<CopyStatement>;
  /** A writer for one unit's objects. */
  writer(o: SegmentWriterOptions, table: TablePlan, plan: ExportPlan): SegmentWriter;
}

/** The SELECT one node runs for one relation. */
export function selectSQL(read: RelationRead, table: TablePlan, filter: string | null): string {
  const cols = read.columns ?? table.columns.map((c) => c.name);
  if (filter) checkFilterText(filter); // a plan built elsewhere must not change the statement's shape
  return `SELECT ${columnListSQL(cols)} FROM ${quoteQualified(read.relation)}${whereSQL(filter, read.pages)}`;
}

/**
 * TEXT and CSV: COPY's own text forms, cut at row ends; csv `header` starts every object.
 * With `compression`, blocks of whole rows compressed (lib/segment/compressed.ts, loaded only
 * then: an uncompressed export does not pay its start-up, issue 17).
 */
async function textFormat(plan?: FormatPlan): Promise<ExportFormat> {
  const compressed = plan?.compression ? (await import('../segment/compressed.js')).CompressedSegmentWriter : undefined;
  return {
    binary: false,
    copy: async (_client, read, table, plan) => ({ sql: `COPY (${selectSQL(read, table, plan.filter)}) TO STDOUT (${copyOptionsSQL(plan.format)})` }),
    writer: (o, table, plan) => {
      const header = plan.format.kind === 'csv' && plan.format.header && table.columns.length > 0
        ? csvHeaderLine(plan.format, table.columns.map((c) => c.name))
        : undefined;
      if (plan.compression) {
        if (!compressed) throw new InternalError('the text format was loaded for a plan without compression');
        return new compressed({ ...o, ...(header ? { header } : {}), compression: plan.compression });
      }
      return new TextSegmentWriter(header ? { ...o, header } : o);
    },
  };
}

/**
 * Arrow: BINARY COPY decoded by each column's type as the node reports it. apache-arrow loads on
 * first use; the body codecs only for `--arrow-compression` (the zstd WebAssembly costs every
 * exporter thread ≈ 0.04 CPU-s to compile).
 */
async function arrowFormat(plan?: FormatPlan): Promise<ExportFormat> {
  const [w, q] = await Promise.all([import('../format/arrow/segment-writer.js'), import('../format/arrow/export-sql.js')]);
  if (plan?.arrowCompression) await (await import('../format/arrow-codecs.js')).registerArrowCodecs(); // lib/format/arrow-codecs.ts
  return {
    binary: true,
    asks: true,
    copy: async (client, read, table, plan) => {
      const columns = await q.describeRead(client, read, table, plan.filter);
      return { sql: `COPY (${q.arrowSelectSQL(read, table, plan.filter, columns)}) TO STDOUT (FORMAT binary)`, columns };
    },
    writer: (o, _table, plan) => new w.ArrowSegmentWriter(plan.arrowCompression ? { ...o, compression: plan.arrowCompression } : o),
  };
}

/**
 * COPY BINARY: the server's binary forms, no text formatting; each object is a complete COPY
 * BINARY stream (header, tuples, trailer) that loads alone. The row checksum hashes tuples.
 */
async function binaryFormat(): Promise<ExportFormat> {
  const { BinarySegmentWriter } = await import('../segment/binary.js');
  return {
    binary: true,
    copy: async (_client, read, table, plan) => ({ sql: `COPY (${selectSQL(read, table, plan.filter)}) TO STDOUT (FORMAT binary)` }),
    writer: (o, _table, plan) => new BinarySegmentWriter(o, plan.compression),
  };
}

/**
 * Parquet: BINARY COPY decoded like Arrow (same SELECT, same type mapping), each object a
 * complete Parquet file. The writer and its codec load on first use.
 */
async function parquetFormat(): Promise<ExportFormat> {
  const [w, q] = await Promise.all([import('../format/parquet/segment-writer.js'), import('../format/arrow/export-sql.js')]);
  return {
    binary: true,
    asks: true,
    copy: async (client, read, table, plan) => {
      const columns = await q.describeRead(client, read, table, plan.filter);
      return { sql: `COPY (${q.arrowSelectSQL(read, table, plan.filter, columns)}) TO STDOUT (FORMAT binary)`, columns };
    },
    writer: (o, _table, plan) => {
      const po: import('../format/parquet/segment-writer.js').ParquetSegmentWriterOptions = { ...o };
      if (plan.format.compression !== undefined) po.compression = plan.format.compression;
      if (plan.format.rowGroupBytes !== undefined) po.rowGroupBytes = plan.format.rowGroupBytes;
      return new w.ParquetSegmentWriter(po);
    },
  };
}

/** What of a plan says which optional modules a format loads. */
type FormatPlan = Pick<ExportPlan, 'arrowCompression' | 'compression'>;

const FORMATS: Record<FormatKind, (plan?: FormatPlan) => Promise<ExportFormat>> = {
  text: textFormat,
  csv: textFormat,
  arrow: arrowFormat,
  binary: binaryFormat,
  parquet: parquetFormat,
};

/**
 * The export side of a format; `plan` (default none: no compression) says which optional
 * modules to load: the compressed writer, Arrow's body codecs. Its writers serve plans with
 * the same `compression` and `arrowCompression`.
 */
export function exportFormat(kind: FormatKind, plan?: FormatPlan): Promise<ExportFormat> {
  const f = FORMATS[kind];
  if (!f) throw new InvalidOptionError(`no exporter for format ${String(kind)}`);
  return f(plan);
}
