import type { NodeEndpoint } from '../pg/conn.js';
import type { QualifiedName } from '../pg/sql.js';

/** How segferry learns a cluster's layout. */
export type TopologyKind = 'postgres' | 'fdw' | 'static' | 'citus';

/** A server that holds table data. Carries no password. */
export interface PlanNode {
  /** Stable name used in object keys: the foreign server's name (fdw), the given name (static), `coordinator`. */
  name: string;
  endpoint: NodeEndpoint;
}

/** A column as exported: its name and PostgreSQL type (`format_type`). */
export interface ColumnInfo {
  name: string;
  type: string;
  notNull?: boolean;
}

/** A Citus shard: its id and the range of its distribution values. */
export interface ShardInfo {
  /** `pg_dist_shard.shardid` (a bigint, kept as a string). */
  id: string;
  /** Lowest value it holds: the int4 hash for hash-distributed tables, the column's text for range/append; absent for single-shard tables. */
  min?: string;
  /** Highest value it holds (inclusive), as `min`. */
  max?: string;
}

/** How a table's rows are spread over the nodes. */
export interface Distribution {
  /**
   * `distributed`: each node holds a disjoint part. `replicated`: every replica holds all rows
   * (exported from one). `single`: one node holds the table.
   */
  kind: 'distributed' | 'replicated' | 'single';
  /** Partitioning or sharding method when known: hash, range, list (fdw), static, citus-hash. */
  method?: string;
  /** Distribution / partition key expression when known. */
  column?: string;
  /** Replicated tables: the nodes holding a full copy, in the order they are tried. */
  replicas?: string[];
  /** Citus: shard count. */
  shardCount?: number;
  /** Citus: every shard of the table with its range, in range order. */
  shards?: ShardInfo[];
}

/** One relation to read on one node. */
export interface RelationRead {
  /** Node name. */
  node: string;
  /** The relation as named on that node. */
  relation: QualifiedName;
  /** Column expressions on that node, in export order (remote names under postgres_fdw `column_name`). */
  columns?: string[];
  /** `pg_relation_size` on that node when planning, in bytes. */
  estimatedBytes: number;
  /** Citus shard id, when the relation is a shard. */
  shardId?: string;
  /** Citus shard hash range [min, max] (inclusive int4 values as strings), hash-distributed tables only. */
  hashRange?: [string, string];
  /**
   * A heap page range [from, to) read by one stream (`to` null: to the end), set on the reads
   * of ctid-range units only (lib/export/units.ts); absent: the whole relation.
   */
  pages?: [number, number | null];
}

/**
 * How a (table, node)'s streams read their page ranges (docs/streams.md): `tid-range`, TID range
 * scans (`ctid >= … AND ctid < …` reading only those pages); `seq-filter`, one sequential scan
 * per stream with its range as a filter (every stream reads every page, through PostgreSQL's
 * bulk-read ring).
 */
export type StreamScan = 'seq-filter' | 'tid-range';

/** How many streams read a table on one node (docs/streams.md). */
export interface StreamPlan {
  node: string;
  /** Streams (ctid page ranges read at once in one snapshot); 1 when ranges do not apply. */
  streams: number;
  /** Heap pages of the relation when planned (`pg_relation_size / block_size`), when probed. */
  pages?: number;
  /**
   * The page ranges the streams take in order from one queue, as the first page of each
   * (strictly increasing, from 0; the last open-ended): lib/export/streams.ts `rangeCut`.
   * Absent in plans written before it: then one equal range per stream.
   */
  ranges?: number[];
  /**
   * How the streams read their ranges (lib/export/streams.ts `chooseScan`); set with more than
   * one stream. Absent (plans written before it): `tid-range`. `seq-filter` has one range per
   * stream.
   */
  scan?: StreamScan;
  /** The node's shared_buffers in pages (NBuffers) when planned, when probed with more than one stream. */
  sharedBuffers?: number;
  /** Why the node reads the table in one stream, when more were asked for or possible. */
  note?: string;
}

/** Everything about one table in a plan. */
export interface TablePlan {
  /** The table as named on the coordinator. */
  table: QualifiedName;
  /** The `<table>` part of object keys (see docs/naming.md). */
  objectName: string;
  columns: ColumnInfo[];
  /** Generated columns (not exported: the destination computes them); absent when none. */
  generated?: ColumnInfo[];
  distribution: Distribution;
  /** Reads in order; several reads on one node go into that node's one sequence of segments. */
  reads: RelationRead[];
  /** Sum of `estimatedBytes`. */
  estimatedBytes: number;
  /** Rough number of segments: estimatedBytes / segmentSize, at least one per node with data. */
  expectedSegments: number;
  /** Streams per node (absent: one stream on every node, as plans before streams). */
  streams?: StreamPlan[];
}

/** A cluster described by the caller: every listed node holds a part of each distributed table. */
export interface StaticTopology {
  /** Data nodes, by name and connection URL. Names become part of object keys. */
  nodes: { name: string; url: string }[];
  /** Tables that hold a full copy on every node (exported from one node). */
  replicated?: string[];
}

/** The coordinator's view of the requested tables. */
export interface Discovered {
  kind: TopologyKind;
  coordinator?: NodeEndpoint;
  nodes: PlanNode[];
  tables: DiscoveredTable[];
}

/** A table and where to read it. */
export interface DiscoveredTable {
  table: QualifiedName;
  columns: ColumnInfo[];
  distribution: Distribution;
  reads: RelationRead[];
}

/** What to discover. */
export interface DiscoverRequest {
  /** Coordinator or single server URL (not needed for a static topology). */
  source?: string;
  /** auto (default), postgres, fdw, citus, or a static node list. */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /** Table names or pg_dump-style patterns (lib/topology/select.ts). */
  tables: string[];
  /** Every ordinary and partitioned table in the non-system schemas (default false). */
  all?: boolean;
  /** Every ordinary and partitioned table of these schemas (default none). */
  schemas?: string[];
  /** Patterns of tables to leave out (default none). */
  excludeTables?: string[];
  /** Column subset, in order (default: all). */
  columns?: string[];
  /** Tables to treat as replicated (static: in addition to the topology's list). */
  replicated?: string[];
}

/** Name of the coordinator when it holds data itself (single server, fdw local partitions). */
export const COORDINATOR_NODE = 'coordinator';
