import type { ClientEncryption } from '../crypto/envelope.js';
import type { Compression } from '../format/compress.js';
import type { FormatOptions } from '../format/options.js';
import type { ObjectDigest } from './digest.js';
import type { ColumnInfo, Distribution, TopologyKind } from '../topology/types.js';

export { MANIFEST_KEY } from './keys.js';
export type { ObjectChecksum, ObjectDigest } from './digest.js';

/** Current manifest format version. Readers accept this version only. */
export const MANIFEST_VERSION = 1;

/**
 * Order-independent checksum of a set of rows (see docs/manifest.md): the row count and a
 * decimal sum of per-row hashes, under the manifest's session settings.
 */
export interface RowChecksum {
  rows: number;
  /** Unsigned decimal. */
  sum: string;
  /**
   * `copy-rowhash64`: sum modulo 2^64 of a 64-bit hash of each row's bytes as COPY sends them
   * in the manifest's format (lib/format/row-hash.ts). Absent (manifests of earlier versions):
   * exact sum of the first 60 bits of md5(row text), computed by the server.
   */
  algorithm?: 'copy-rowhash64';
}

/** The schema summary of one Arrow column, as recorded in the manifest. */
export interface ArrowColumnSummary {
  name: string;
  pgType: string;
  arrowType: string;
  /** Set when some object holds this column as text because a value did not fit the Arrow type. */
  demoted?: boolean;
}

/** The schema summary of one Parquet column, as recorded in the manifest. */
export interface ParquetColumnSummary {
  name: string;
  pgType: string;
  /** Parquet logical (or physical) type, e.g. `DECIMAL(12,2)`, `TIMESTAMP(MICROS,true)`, `LIST<INT(32,true)>`, `STRING`. */
  parquetType: string;
  /** Set when some object holds this column as text because a value did not fit the Parquet type. */
  demoted?: boolean;
}

/**
 * One stored object. Its digest of the stored bytes is exactly one of `crc32` (8 hex digits,
 * CRC-32/ISO-HDLC) or `sha256` (64 hex digits): see {@link ObjectDigest} and docs/manifest.md.
 */
export interface ManifestObject extends ObjectDigest {
  /** Key relative to the export prefix: `<table>_<node>_segment.<n>`. */
  key: string;
  /** `schema.name` of the table. */
  table: string;
  node: string;
  segment: number;
  bytes: number;
  rows: number;
  /** Citus shard ids whose rows the object holds. */
  shards?: string[];
  /**
   * Codec of the stored bytes (`--compress`): the object is concatenated gzip members or zstd
   * frames; `bytes` and the digest are of the stored (compressed) bytes. Absent: not compressed.
   */
  compression?: Compression;
}

/** What one node contributed to a table. */
export interface ManifestTableNode {
  node: string;
  /** Relations read on that node (schema.name). */
  relations: string[];
  rows: number;
  bytes: number;
  objects: number;
  /** Present when the export computed checksums. */
  checksum?: RowChecksum;
}

/** One exported table. */
export interface ManifestTable {
  schema: string;
  name: string;
  /** The `<table>` part of its object keys. */
  objectName: string;
  columns: ColumnInfo[];
  distribution: Distribution;
  /** The trusted WHERE filter applied on every node, if any. */
  filter: string | null;
  rows: number;
  bytes: number;
  nodes: ManifestTableNode[];
  /** Sum over nodes, when checksums were computed. */
  checksum?: RowChecksum;
  /**
   * Generated columns (`GENERATED ALWAYS AS (…) STORED`): not in the data, which holds only
   * `columns`; the destination computes them. Absent when there are none (and in manifests
   * written before this field existed).
   */
  generated?: ColumnInfo[];
  /**
   * Arrow format: each column's PostgreSQL type and Arrow type. Every object also carries
   * its own schema; `demoted` marks a column some object holds as text (docs/formats.md).
   */
  arrow?: { schema: ArrowColumnSummary[] };
  /**
   * Parquet format: each column's PostgreSQL type and Parquet type. Every object's footer also
   * carries the PostgreSQL types; `demoted` marks a column some object holds as text.
   */
  parquet?: { schema: ParquetColumnSummary[] };
}

/** The manifest: written last, it is the commit point of an export. */
export interface Manifest {
  kind: 'segferry-manifest';
  version: number;
  /** Random id of this export; importers key their ledger on it. */
  id: string;
  createdAt: string;
  completedAt: string;
  /** segferry version that wrote it. */
  writer: string;
  source: {
    topology: TopologyKind;
    /** Coordinator location when there is one (host, port, database; never credentials). */
    coordinator?: { host: string; port: number; database: string };
    nodes: { name: string; host: string; port: number; database: string }[];
  };
  format: FormatOptions;
  /**
   * Codec the export compressed its objects with (`--compress`); each object also names its own.
   * Absent: not compressed.
   */
  compression?: Compression;
  /**
   * Arrow format: body compression of the record batches (`--arrow-compression`); each IPC
   * message says so too. Absent: none.
   */
  arrowCompression?: 'zstd' | 'lz4';
  /** Settings under which the text forms were produced; importers apply them. */
  sessionSettings: Record<string, string>;
  segmentSize: number;
  tables: ManifestTable[];
  objects: ManifestObject[];
  /**
   * Set by `segferry replicate` on the copy it writes: where the export was copied from (a
   * location without credentials), when, and the source manifest's id. Otherwise the copy's
   * manifest equals the source's. Absent on an export's own manifest.
   */
  replicatedFrom?: ReplicatedFrom;
  /** The schema of what was exported (issue 14), when the export carried it. */
  ddl?: ManifestDdl;
  /**
   * True for a schema-only export (`--schema-only`): `ddl` and the tables' columns, no objects
   * (every table's rows are 0). Importing it with `create` creates the schema and loads nothing.
   * Absent otherwise.
   */
  schemaOnly?: boolean;
  /**
   * A data-only export (`--data-only`) of `--all` or `--schema`: sequence values, set after the
   * data as pg_dump --data-only's SEQUENCE SET does (an export with `ddl` keeps them in
   * `ddl.sequences` instead). Absent otherwise.
   */
  sequences?: ManifestSequence[];
  /** With {@link sequences}: materialized views populated at the source, refreshed after the data. */
  matviews?: { schema: string; name: string }[];
  /**
   * A plan run in parts (`segferry finish`): SHA-256 (64 hex digits) of the plan the manifest was
   * finished from, so that finish run again with that plan knows the export as its own
   * (docs/multi-host.md). Absent on other exports, and on finishes of earlier versions.
   */
  planFingerprint?: string;
  /** Server-side encryption requested for the objects, if any. */
  encryption?: { algorithm: string; kmsKeyId?: string };
  /**
   * Client-side encryption (issue 18, docs/encryption.md): every object (segments, DDL objects)
   * is stored encrypted under one data key, recorded here wrapped, never in the clear. Objects'
   * `bytes` and digests describe the stored ciphertext. Absent: objects are stored as written.
   */
  clientEncryption?: ClientEncryption;
}

export type { ClientEncryption } from '../crypto/envelope.js';

/** Where a replicated export came from (docs/replicate.md). */
export interface ReplicatedFrom {
  /** Source location: `s3://bucket/prefix/` or `file:///dir` (never credentials). */
  location: string;
  /** ISO time the copy's manifest was written. */
  at: string;
  /** The source manifest's `id` (the copy keeps the same id, so import ledgers agree). */
  manifestId: string;
}

/** One stored DDL object. */
export interface ManifestDdlObject {
  /** `segferry-ddl-pre-data.sql` or `segferry-ddl-post-data.sql`. */
  key: string;
  bytes: number;
  /** Hex SHA-256 of the object's bytes. */
  sha256: string;
}

/** A sequence's value at export time, applied after the data with setval(). */
export interface ManifestSequence {
  schema: string;
  name: string;
  /** Decimal bigint. */
  lastValue: string;
  isCalled: boolean;
}

/** The schema carried by an export: pg_dump --schema-only, split into sections (docs/manifest.md). */
export interface ManifestDdl {
  /** Types, schemas, tables, sequences, functions, views: run before the data. */
  pre: ManifestDdlObject;
  /** Constraints, indexes, foreign keys, triggers: run after the data. */
  post: ManifestDdlObject;
  /** `pg_dump --version` of the program that dumped it. */
  pgDumpVersion: string;
  /** The source server's `server_version`. */
  serverVersion: string;
  /**
   * `shared`: dumped in the snapshot the data was read in (single server). `before-data`:
   * dumped just before the data was read (static topologies: from the first node).
   */
  snapshot: 'shared' | 'before-data';
  /** What the dump selects: the whole database, some schemas (`--schema`), or named tables. */
  scope: 'database' | 'schemas' | 'tables';
  /** Sequence values (pg_dump --schema-only has none). */
  sequences: ManifestSequence[];
  /** Materialized views that were populated at the source: refreshed after the data. */
  matviews?: { schema: string; name: string }[];
  /**
   * A Citus source: how its selected tables were distributed (hash-distributed and reference
   * tables; others are plain). `import --create` into Citus replays it after pre-data; into a
   * plain server the tables stay plain. Absent for other sources.
   */
  distribution?: ManifestDistribution[];
}

/** One Citus table's distribution, as data (replayed by segferry's own calls, never SQL from storage). */
export interface ManifestDistribution {
  schema: string;
  name: string;
  /**
   * `distributed` (hash, create_distributed_table), `reference` (create_reference_table) or
   * `single-shard` (Citus ≥ 11.3: create_distributed_table(t, NULL); or a table of a
   * distributed schema, citus_schema_distribute).
   */
  kind: 'distributed' | 'reference' | 'single-shard';
  /** `distributed`: the distribution column (one of the table's columns). */
  column?: string;
  /** `distributed`: number of shards. */
  shardCount?: number;
  /** `distributed`, `single-shard`: the source's colocation id; tables sharing it are colocated again. */
  colocationGroup?: number;
  /** `single-shard`: the table's schema is a Citus distributed schema (schema-based sharding); default false. */
  tenantSchema?: boolean;
}
