import type { Compression } from '../format/compress.js';
import type { ObjectChecksum, ObjectDigest } from '../manifest/digest.js';
import type { ArrowColumnSummary, ParquetColumnSummary } from '../manifest/types.js';
import type { RowChunk } from '../pg/copy-out.js';
import type { ObjectStore } from '../store/types.js';

// The contract between an exporter and a format's segment writer. A writer cuts one
// (table, node) unit's COPY rows into objects of at most the segment size, never splitting a
// row; the exporter knows nothing else about the format. TEXT/CSV (./text.ts) and Arrow
// (lib/format/arrow/segment-writer.ts) implement it; Parquet or BINARY would be one more.
// Compressed objects (./compressed.ts) are a step of their own: sizes, the cap and the digest
// (CRC-32 or SHA-256, lib/manifest/digest.ts) are always those of the stored bytes.

/** One object a segment writer stored; its digest field (`crc32` or `sha256`) is of the stored bytes. */
export interface StoredSegment extends ObjectDigest {
  key: string;
  segment: number;
  /** Stored bytes (compressed, when the object is). */
  bytes: number;
  rows: number;
  /** Codec of the stored bytes (absent: not compressed). */
  compression?: Compression;
  /** The {@link SegmentWriter.source} labels of the rows it holds, in order of first row (absent when no label was set). */
  sources?: string[];
}

/**
 * A column of one COPY read as the node reports it (RowDescription): what a typed format
 * (Arrow) needs to decode COPY BINARY. Text formats ignore it.
 */
export interface CopyColumn {
  /** Column name in the exported table. */
  name: string;
  /** Declared type (`format_type`). */
  pgType: string;
  /** Base type OID (domains resolved). */
  oid: number;
  /** Base type modifier (-1 when none). */
  typmod: number;
}

/** One COPY read a writer is told about before its rows. */
export interface CopyRead {
  /** Its columns as the node describes them; typed formats (Arrow) need them. */
  columns?: CopyColumn[];
  /**
   * Label of its rows (a Citus shard id): every stored object lists the labels of its rows,
   * and a read whose label differs from the previous read's starts a new object, so an
   * object never mixes shards. Default: none.
   */
  source?: string;
}

/** What a writer adds to the manifest for its unit, per format (empty for TEXT and CSV). */
export interface FormatSummary {
  /** Arrow: each column's PostgreSQL and Arrow type. */
  arrow?: ArrowColumnSummary[];
  /** Parquet: each column's PostgreSQL and Parquet type. */
  parquet?: ParquetColumnSummary[];
}

/** Options every segment writer takes. */
export interface SegmentWriterOptions {
  store: ObjectStore;
  /** Key of segment n. */
  keyOf: (n: number) => string;
  /** Maximum stored object size in bytes (after compression), headers and footers included. */
  cap: number;
  /** Table display name (errors). */
  table: string;
  /** Node name (errors). */
  node: string;
  /** Called after each object is stored. */
  onStored?: (s: StoredSegment) => void;
  /** Cancels the uploads of the open object (passed to {@link ObjectStore.createWriter}). Default: none. */
  signal?: AbortSignal;
  /** Digest of each stored object (lib/manifest/digest.ts). Default: `defaultObjectChecksum()` (`crc32` where zlib.crc32 exists, else `sha256`). */
  checksum?: ObjectChecksum;
}

/**
 * Cuts the row chunks of one or more COPY reads into objects. Call order:
 * (`begin`, `write`…)… then `finish`, or `abort` at any point. Objects are opened lazily,
 * so a unit without rows stores nothing.
 */
export interface SegmentWriter {
  /** Objects stored so far. */
  readonly stored: readonly StoredSegment[];
  /** Stored bytes over all objects so far, including the open one. */
  readonly totalBytes: number;
  /** Rows over all objects so far, including the open one. */
  readonly totalRows: number;
  /** Number of the segment being written (or to be written next). */
  readonly segment: number;
  /**
   * True when `write()` keeps no reference to a chunk's bytes once it resolves, so the caller
   * may reuse the chunk's buffer (lib/pg/copy-out.ts `release`). Default false.
   */
  readonly releasesChunks?: boolean;
  /**
   * For a writer whose `write()` keeps chunks past its return (the columnar writers keep the rows
   * of the batch being built, for a rebuild): from now on, hand each chunk to `release` once
   * nothing in the writer refers to it (exactly once per chunk; chunks written before this call
   * too), so the caller may reuse its buffer. Returns the most COPY bytes it keeps at once, for
   * sizing the caller's free list. Absent: chunks are never handed back.
   */
  deferRelease?(release: (rc: RowChunk) => void): number;
  /** Start one COPY read (see {@link CopyRead}); its chunks follow. */
  begin(read: CopyRead): Promise<void>;
  /** Add a chunk of whole COPY rows; waits while the store is busy. */
  write(rc: RowChunk): Promise<void>;
  /** Store the open object, if any, so that the next row starts a new one (between reads). */
  cut(): Promise<void>;
  /** Store the open object, if any; returns every stored object. */
  finish(): Promise<readonly StoredSegment[]>;
  /** Abort the open object (already stored ones stay). Never throws. */
  abort(): Promise<void>;
  /** What the manifest records for this unit, per format. */
  summary(): FormatSummary;
}
