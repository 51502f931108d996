import type pg from 'pg';
import { FormatError, InvalidOptionError, fromDatabaseError } from '../errors.js';
import { parseCompression, type Compression, type CompressionOption } from '../format/compress.js';
import { normalizeFormat, type FormatKind, type FormatOptions } from '../format/options.js';
import { SESSION_SETTINGS, type NodeEndpoint } from '../pg/conn.js';
import { NodeClients } from '../topology/clients.js';
import { checkFilter } from '../pg/filter.js';
import { displayName } from '../pg/sql.js';
import { objectNames, segmentExtension, segmentKey } from '../manifest/keys.js';
import { planUnits } from './units.js';
import { generatedColumns } from '../topology/catalog.js';
import { capAutoStreams, checkMinRangePages, checkStreams, checkStreamScan, cutRanges, decideStreams, streamMemory, streamsWithoutProbe, type StreamsOption } from './streams.js';
import { probePages } from '../topology/pages.js';
import type { StreamPlan } from '../topology/types.js';
import { COORDINATOR_NODE, discover, type StaticTopology } from '../topology/discover.js';
import type { PlanNode, TablePlan, TopologyKind } from '../topology/types.js';
import type { ClientEncryption } from '../manifest/types.js';
import { parseObjectChecksum, type ObjectChecksum } from '../manifest/digest.js';

/** Default segment size: 1 GiB. */
export const DEFAULT_SEGMENT_SIZE = 1024 * 1024 * 1024;

/** What to export and how. */
export interface PlanOptions {
  /** Coordinator (or single server) URL. Not needed with a static topology. */
  source?: string;
  /**
   * `auto` (default): read the coordinator's catalog (postgres_fdw partitions, Citus).
   * `postgres`: read everything through the one server. `fdw`: postgres_fdw sharding.
   * Or a {@link StaticTopology} naming the nodes.
   */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /**
   * Tables: `name`, `schema.name`, `"Quoted Name"`, or pg_dump-style patterns (`sales.order*`,
   * `?` one character, quoted parts exact; lib/topology/select.ts). Default none: then give
   * `all` or `schemas`.
   */
  tables?: string[];
  /**
   * Every ordinary and partitioned table in the non-system schemas, leaving out segferry's
   * `segferry` schema and tables owned by extensions (default false).
   */
  all?: boolean;
  /** Every ordinary and partitioned table of these schemas, names exact (default none). */
  schemas?: string[];
  /** pg_dump-style patterns of tables to leave out of the selection (default none). */
  excludeTables?: string[];
  /** Format: `text` (default), `csv`, `arrow`, or options. */
  format?: FormatKind | (Partial<FormatOptions> & { kind: FormatKind });
  /** Maximum bytes per object (default 1 GiB), as stored (after compression). Objects never split a row. */
  segmentSize?: number;
  /**
   * Compress TEXT, CSV and BINARY objects: `gzip`, `zstd` or `none` (default). Each object is a
   * complete stream of its codec that decompresses alone (docs/formats.md); the segment size caps
   * the compressed bytes. Arrow objects: ERR_INVALID_OPTION.
   */
  compress?: CompressionOption;
  /**
   * Append the format's file-name extension to object keys (default false): `.txt`, `.csv`,
   * `.bin`, `.arrow`, `.parquet`, then `.gz` / `.zst` when compressed, e.g.
   * `orders_dn1_segment.0.csv.gz`, for tools that infer format or codec from the name. The
   * default keeps `<table>_<node>_segment.<n>`. The manifest records the codec either way.
   */
  extension?: boolean;
  /**
   * Arrow record batch body compression: `zstd` or `lz4` (each body buffer one zstd frame or one
   * LZ4 frame behind the Arrow format's length prefix, readable by any Arrow reader with that
   * codec) or `none` (default). Other formats: ERR_INVALID_OPTION.
   */
  arrowCompression?: 'zstd' | 'lz4' | 'none';
  /**
   * Digest the manifest records of each object's stored bytes (docs/manifest.md, "Object
   * checksums"): `crc32` (CRC-32/ISO-HDLC, as zlib and S3's ChecksumCRC32 compute it; about
   * 0.23 client CPU-s per GB, detects accidental corruption) or `sha256` (cryptographic; about
   * 0.75 CPU-s per GB). Default: `crc32` where the running Node has `zlib.crc32` (Node ≥ 20.15
   * or ≥ 22.2), else `sha256`. DDL objects always carry SHA-256.
   */
  objectChecksum?: ObjectChecksum;
  /** Columns to export, in this order (default: all). */
  columns?: string[];
  /**
   * A WHERE condition applied on every node. It is trusted SQL, run as written on every
   * node: never pass end-user input here.
   */
  where?: string;
  /** Tables to treat as replicated (fdw and static). */
  replicated?: string[];
  /**
   * Streams per node for each table: ctid page ranges of its relation read at once by
   * several sessions sharing one snapshot (docs/streams.md). `auto` (default): one stream per
   * 256 MiB of the relation, at most min(max_parallel_workers, 8); a number N: N streams where
   * the relation has at least N pages. Citus: a worker's shards of the table in
   * min(N, shards) sessions at once, whole shards each, in one snapshot of the worker (auto:
   * one per 256 MiB of its shards, at most 8). One stream where ranges do not apply (PostgreSQL
   * < 14, views, foreign, partitioned or columnar tables, replicated tables); the plan says why
   * in `streams[].note`.
   */
  streams?: StreamsOption;
  /**
   * The smallest page range a (table, node) read in streams is cut into, in heap pages
   * (default 512, 4 MiB of 8 KiB pages; lib/export/streams.ts `rangeCut`): the node's streams
   * take ranges from one queue, shrinking towards the end. Lower it to cut small tables into
   * many ranges (tests); at least 1.
   */
  minRangePages?: number;
  /**
   * How a (table, node)'s streams read their page ranges (docs/streams.md): `auto` (default)
   * reads them as sequential scans with the range as a filter (`seq-filter`, one equal range per
   * stream) when the relation is larger than the node's shared_buffers and it has at most 4
   * streams, else as TID range scans (`tid-range`, ranges taken from a queue).
   * `seq-filter` reads the whole relation once per stream, through PostgreSQL's bulk-read ring:
   * cheaper for the server on tables larger than shared_buffers that are cached by the OS;
   * `tid-range` reads each page once: better for cold tables on slow disks.
   */
  streamScan?: 'auto' | 'seq-filter' | 'tid-range';
  /**
   * Sessions reading at once, over all nodes (default: the sum over nodes of the most streams
   * any table has there, i.e. the number of nodes when every table has one stream). Nodes
   * reading in streams hold one more idle session each for their snapshot.
   */
  concurrency?: number;
  /**
   * Client memory of one reading stream, for the ceiling of `streams: 'auto'` (the streams that
   * read at once hold at most 256 MiB, lib/export/streams.ts `capAutoStreams`). Default: that of
   * an S3 destination, 8.25 MiB (`streamMemory({ s3: true })`); `exportTables` sets it from its
   * destination.
   */
  streamMemory?: number;
  /**
   * Compute an order-independent checksum of every table on every node for `verify` (default
   * true): a 64-bit hash of each row's bytes as COPY sends them, summed (`copy-rowhash64`,
   * lib/format/row-hash.ts, its loop in WebAssembly, or JavaScript where Node has none, e.g.
   * `node --jitless`). Costs client CPU only, about 0.5 s per GB
   * of TEXT in a whole export (0.3 hashed alone in cache, bench/row-hash.ts); no extra scan.
   */
  checksums?: boolean;
}

/**
 * A plan: plain data, serialisable with JSON.stringify, free of credentials.
 * `segferry export --dry-run` prints it.
 */
export interface ExportPlan {
  version: 1;
  topology: TopologyKind;
  coordinator?: NodeEndpoint;
  nodes: PlanNode[];
  tables: TablePlan[];
  format: FormatOptions;
  /** Codec of the objects (absent: not compressed). */
  compression?: Compression;
  /** Object keys end with the format's extension ({@link PlanOptions.extension}; absent: false). */
  extension?: boolean;
  /** Arrow body compression (absent: none). */
  arrowCompression?: 'zstd' | 'lz4';
  /** Digest of each object ({@link PlanOptions.objectChecksum}); absent in plans written before the option: `sha256`. */
  objectChecksum?: ObjectChecksum;
  segmentSize: number;
  filter: string | null;
  sessionSettings: Record<string, string>;
  concurrency: number;
  checksums: boolean;
  /**
   * Set by exportTables at run time on a single server carrying DDL: the snapshot the
   * exporter imports (`SET TRANSACTION SNAPSHOT`), shared with pg_dump. Never in a printed plan.
   */
  snapshot?: string;
  /**
   * Node name → snapshot id, written by `segferry plan --hold-snapshots` (holdSnapshots) while
   * that command keeps the exporting sessions open: every part's session on the node imports
   * it, so all parts read one state per node (docs/multi-host.md#consistency). Absent: each
   * part (each node's session or streams) takes its own snapshot.
   */
  snapshots?: Record<string, string>;
  /**
   * Client-side encryption of a plan run in parts (`segferry plan --out … --encrypt`,
   * encryptPlan): the export's one data key, wrapped, as the manifest will record it (never
   * the plain key). Every part unwraps it with its own `--encrypt`; `finish` copies it into
   * the manifest. Absent: not encrypted, or a single run making its own data key.
   */
  clientEncryption?: ClientEncryption;
}

/** The digest algorithm of a plan's objects (`sha256` for plans written before the option). */
export function planChecksum(plan: Pick<ExportPlan, 'objectChecksum'>): ObjectChecksum {
  return plan.objectChecksum ?? 'sha256';
}

/** The extension a plan's object keys end with ('' without `extension`). */
export function planExtension(plan: Pick<ExportPlan, 'format' | 'compression' | 'extension'>): string {
  return plan.extension ? segmentExtension(plan.format.kind, plan.compression) : '';
}

// Key naming lives in lib/manifest/keys.ts; re-exported for existing importers.
export { objectNames, segmentKey } from '../manifest/keys.js';

/**
 * Record each table's generated columns (the manifest lists them; the data leaves them out),
 * read on the coordinator, or for a static topology on the node of the table's first read.
 */
async function addGenerated(tables: TablePlan[], coordinator: NodeEndpoint | undefined, nodes: PlanNode[], clients: NodeClients): Promise<void> {
  for (const t of tables) {
    const read = t.reads[0];
    const node = coordinator ? COORDINATOR_NODE : read?.node;
    const endpoint = coordinator ?? nodes.find((n) => n.name === node)?.endpoint;
    if (node === undefined || endpoint === undefined) continue;
    const c = await clients.get({ name: node, endpoint });
    const rel = coordinator ? t.table : read!.relation;
    const g = await generatedColumns(c, rel).catch((e) => { throw fromDatabaseError(e, { node, table: displayName(t.table), action: 'catalog lookup' }); });
    if (g.length > 0) t.generated = g;
  }
}

/**
 * Plan an export: connect to the coordinator (or the static nodes), find every requested
 * table, its columns, how it is distributed, and which relation to read on which node.
 * Data nodes are contacted to check the relations and estimate sizes.
 */
export async function planExport(opts: PlanOptions): Promise<ExportPlan> {
  // One session per node for every question of the plan (catalog, generated columns, pages):
  // a connection (TCP, start-up, SCRAM) costs more than the queries (bench/streams-timeline.ts).
  const { plan, closed } = await planExportClosingLater(opts);
  await closed;
  return plan;
}

/**
 * {@link planExport} for a caller that goes on at once (exportTables): the planning sessions'
 * ends (Terminate, then the server closing its side: 10–25 ms measured, bench/streams-timeline.ts)
 * are not awaited before the plan is returned but handed back in `closed`, which the caller
 * must await before it returns itself. `keep` names plan nodes whose planning session the caller
 * takes over instead (`kept`, by node name; it closes them): only a session opened to that node
 * under its name and endpoint is kept. After a failure every session is closed here, as planExport does.
 */
export async function planExportClosingLater(
  opts: PlanOptions,
  keep?: (plan: ExportPlan) => readonly PlanNode[],
): Promise<{ plan: ExportPlan; closed: Promise<void>; kept: Map<string, Promise<pg.Client>> }> {
  const clients = new NodeClients();
  let plan: ExportPlan;
  const kept = new Map<string, Promise<pg.Client>>();
  try {
    plan = await planWith(opts, clients);
    for (const n of keep?.(plan) ?? []) {
      const c = clients.take(n);
      if (c) kept.set(n.name, c);
    }
  } catch (e) {
    await clients.closeAll();
    throw e;
  }
  return { plan, closed: clients.closeAll(), kept };
}

async function planWith(opts: PlanOptions, clients: NodeClients): Promise<ExportPlan> {
  const format = normalizeFormat(typeof opts.format === 'string' ? { kind: opts.format } : opts.format ?? {});
  const segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  const compression = parseCompression(opts.compress);
  const objectChecksum = parseObjectChecksum(opts.objectChecksum);
  if (compression && (format.kind === 'arrow' || format.kind === 'parquet')) {
    throw new InvalidOptionError(`--compress applies to text, csv and binary objects; ${format.kind === 'arrow' ? 'Arrow objects are IPC files (--arrow-compression compresses their bodies)' : 'Parquet compresses its pages (--parquet-compression)'} that readers open directly`);
  }
  if (!Number.isSafeInteger(segmentSize) || segmentSize < 1024 || segmentSize > 5 * 1024 ** 4) {
    throw new InvalidOptionError(`segment size ${segmentSize} is out of range (1 KiB to 5 TiB, default 1 GiB)`);
  }
  if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
    throw new InvalidOptionError('concurrency must be a whole number of at least 1');
  }
  if (opts.where !== undefined && opts.where.trim() === '') throw new InvalidOptionError('the where filter is empty');
  const req: Parameters<typeof discover>[0] = { tables: opts.tables ?? [] };
  if (opts.all !== undefined) req.all = opts.all;
  if (opts.schemas !== undefined) req.schemas = opts.schemas;
  if (opts.excludeTables !== undefined) req.excludeTables = opts.excludeTables;
  if (opts.source !== undefined) req.source = opts.source;
  if (opts.topology !== undefined) req.topology = opts.topology;
  if (opts.columns !== undefined) req.columns = opts.columns;
  if (opts.replicated !== undefined) req.replicated = opts.replicated;
  const streamsAsked = checkStreams(opts.streams ?? 'auto');
  if (opts.minRangePages !== undefined) checkMinRangePages(opts.minRangePages);
  if (opts.streamScan !== undefined) checkStreamScan(opts.streamScan);
  const d = await discover(req, clients);
  if (format.kind === 'binary' && d.nodes[0]) {
    // COPY BINARY objects hold that server's binary forms: the manifest says which server made them.
    const c = await clients.get(d.nodes[0]);
    format.serverVersion = (await c.query<{ v: string }>('SELECT current_setting(\'server_version\') AS v')).rows[0]!.v;
  }
  const names = objectNames(d.tables.map((t) => t.table));
  const tables: TablePlan[] = d.tables.map((t, i) => {
    const est = t.reads.reduce((a, r) => a + r.estimatedBytes, 0);
    // Citus shards start a new object each (see exportNode), so they count one by one.
    const perNode = new Map<string, number>();
    for (const r of t.reads) {
      const k = r.shardId === undefined ? r.node : `${r.node}\0${r.shardId}`;
      perNode.set(k, (perNode.get(k) ?? 0) + r.estimatedBytes);
    }
    let expected = 0;
    for (const b of perNode.values()) expected += Math.max(1, Math.ceil(b / segmentSize));
    return { ...t, objectName: names[i]!, estimatedBytes: est, expectedSegments: expected };
  });
  // Unit ids are the units' key stems: two tables must never share one.
  const owners = new Map<string, string>();
  for (const u of planUnits({ tables }).filter((x) => !x.stream)) {
    const other = owners.get(u.id);
    if (other !== undefined && other !== displayName(u.table.table)) {
      throw new InvalidOptionError(`tables ${other} and ${displayName(u.table.table)} would write the same object names (${segmentKey(u.table.objectName, u.node, 0)}): node names with underscores make them ambiguous; export them separately`);
    }
    owners.set(u.id, displayName(u.table.table));
  }
  // A table without (data) columns still has rows: TEXT and CSV write one empty line per row.
  // An Arrow record batch without columns carries no row count that readers agree on.
  for (const t of tables) {
    if (t.columns.length === 0 && (format.kind === 'arrow' || format.kind === 'parquet')) {
      throw new FormatError(`table ${displayName(t.table)} has no columns: the ${format.kind === 'arrow' ? 'Arrow' : 'Parquet'} format cannot carry its row count`, {
        table: displayName(t.table), hint: 'export it as text or csv, which write one empty line per row',
      });
    }
    if (new Set(t.columns.map((c) => c.name)).size !== t.columns.length) throw new InvalidOptionError(`a column of ${displayName(t.table)} is named twice: such an export cannot be imported`);
  }
  await addGenerated(tables, d.coordinator, d.nodes, clients);
  await planStreams(tables, d.nodes, streamsAsked, clients);
  if (streamsAsked === 'auto') capAutoStreams(tables, opts.streamMemory ?? streamMemory({ s3: true }));
  cutRanges(tables, opts.minRangePages, opts.streamScan);
  // One boolean expression, checked on the first node of every table before any COPY (lib/pg/filter.ts).
  if (opts.where !== undefined) await checkFilter(opts.where, tables.flatMap((t) => t.reads.slice(0, 1).flatMap((r) => d.nodes.filter((n) => n.name === r.node).map((n) => ({ node: n.name, endpoint: n.endpoint, relation: r.relation })))));
  const plan: ExportPlan = {
    version: 1,
    topology: d.kind,
    nodes: d.nodes,
    tables,
    format,
    segmentSize,
    filter: opts.where ?? null,
    sessionSettings: { ...SESSION_SETTINGS },
    concurrency: opts.concurrency ?? defaultConcurrency(tables, d.nodes),
    checksums: opts.checksums ?? true,
    objectChecksum,
  };
  if (d.coordinator) plan.coordinator = d.coordinator;
  if (compression) plan.compression = compression;
  if (opts.arrowCompression !== undefined && opts.arrowCompression !== 'none') {
    if (opts.arrowCompression !== 'zstd' && opts.arrowCompression !== 'lz4') {
      throw new InvalidOptionError(`unknown Arrow compression ${JSON.stringify(opts.arrowCompression)}: use zstd, lz4 or none`);
    }
    if (format.kind !== 'arrow') throw new InvalidOptionError('--arrow-compression applies to --format arrow; use --compress for text, csv and binary');
    plan.arrowCompression = opts.arrowCompression;
  }
  if (opts.extension) {
    segmentExtension(format.kind, compression); // a format without one fails here, before any COPY
    plan.extension = true;
  }
  return plan;
}

/**
 * Give every table its streams per node (TablePlan.streams). Nodes are asked about their
 * relations (version, kind, access method, pages) only where more than one stream is possible.
 */
async function planStreams(tables: TablePlan[], nodes: readonly PlanNode[], asked: StreamsOption, clients: NodeClients): Promise<void> {
  const ask: { t: TablePlan; node: string; i: number }[] = [];
  for (const t of tables) {
    const sps: StreamPlan[] = [];
    const byNode = new Map<string, TablePlan['reads']>();
    for (const r of t.reads) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
    for (const [node, reads] of byNode) {
      const settled = streamsWithoutProbe(t, node, reads, asked);
      if (!settled) ask.push({ t, node, i: sps.length });
      sps.push(settled ?? { node, streams: 1 });
    }
    t.streams = sps;
  }
  for (const node of nodes) {
    const mine = ask.filter((a) => a.node === node.name);
    if (mine.length === 0) continue;
    const probe = await probePages(await clients.get(node), node.name, mine.map((a) => a.t.reads.find((r) => r.node === node.name)!.relation));
    mine.forEach((a, k) => {
      const read = a.t.reads.find((r) => r.node === node.name)!;
      a.t.streams![a.i] = decideStreams(node.name, read, probe, probe.relations[k]!, asked);
    });
  }
}

/** Sum over nodes of the most streams any table has there (at least one per node). */
export function defaultConcurrency(tables: readonly Pick<TablePlan, 'streams'>[], nodes: readonly PlanNode[]): number {
  let sum = 0;
  for (const n of nodes) sum += Math.max(1, ...tables.flatMap((t) => (t.streams ?? []).filter((s) => s.node === n.name).map((s) => s.streams)));
  return Math.max(1, sum);
}
