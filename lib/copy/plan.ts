/**
 * Planning a direct copy: the source is planned like an export (one unit per table and source
 * node), the destination is found and each table routed like an import (lib/import/route.ts),
 * with every unit standing in for one object. Nothing is changed anywhere.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { BinaryTypeMismatchError, InvalidOptionError, SegferryError, fromDatabaseError, redact } from '../errors.js';
import { planExport, type ExportPlan, type PlanOptions } from '../export/plan.js';
import type { CompressionOption } from '../format/compress.js';
import { planUnits, type ExportUnit } from '../export/units.js';
import { normalizeFormat, type FormatOptions } from '../format/options.js';
import { findDestination, destinationAddress, type DestSide } from '../import/destination.js';
import { checkTargets, markLoaded, readLedgers } from '../import/preconditions.js';
import type { ImportTablePlan } from '../import/route.js';
import type { SourceTable } from '../import/source.js';
import type { NodeEndpoint } from '../pg/conn.js';
import { displayName, quoteQualified } from '../pg/sql.js';
import { NodeClients } from '../topology/clients.js';
import { routeCopyTable } from './shards.js';
import { truncatingNodes } from '../import/truncate.js';
import type { PlanNode, StaticTopology, TopologyKind } from '../topology/types.js';
import type { S3Options } from '../store/s3.js';
import { stagedState } from './via.js';

/**
 * Formats of a copy: COPY's own text and csv forms, or COPY BINARY; through storage (`via`)
 * also the staged objects' columnar formats, Arrow IPC and Parquet.
 */
export type CopyFormatKind = 'text' | 'csv' | 'binary' | 'arrow' | 'parquet';

/** What to copy, from where, to where. */
export interface CopyPlanOptions {
  /** Source coordinator (or single server) URL. Not needed with a static source topology. */
  source?: string;
  /** Source topology: `auto` (default), `postgres`, `fdw`, `citus`, or a {@link StaticTopology}. */
  sourceTopology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /** Destination coordinator (or single server) URL. Not needed with a static destination topology. */
  target?: string;
  /** Destination topology: `auto` (default), `postgres`, `fdw`, `citus`, or a {@link StaticTopology}. */
  targetTopology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /**
   * Tables: `name`, `schema.name`, `"Quoted Name"`, or pg_dump-style patterns (`sales.order*`),
   * selected on the source as an export selects them (lib/topology/select.ts). Default none:
   * then give `all` or `schemas`.
   */
  tables?: string[];
  /** Every ordinary and partitioned table of the source outside the system schemas and `segferry` (default false). */
  all?: boolean;
  /** Every ordinary and partitioned table of these source schemas, names exact (default none). */
  schemas?: string[];
  /** pg_dump-style patterns of tables to leave out of the selection (default none). */
  excludeTables?: string[];
  /**
   * `text` (default), `csv`, or `binary` (COPY BINARY: no text formatting on the source, no
   * parsing on the destination; only when every column type is the same on both ends and
   * portable, else ERR_BINARY_TYPE_MISMATCH). With `via` also `arrow` or `parquet`: the staged
   * objects are written as `export --format arrow|parquet` writes them and loaded as `import`
   * loads them (a direct copy refuses them: it stages nothing).
   */
  format?: CopyFormatKind;
  /** Columns to copy, in this order (default: all). */
  columns?: string[];
  /** A WHERE condition applied on every source node: trusted SQL, never end-user input. */
  where?: string;
  /** Source tables to treat as replicated (fdw and static sources). */
  replicated?: string[];
  /**
   * How rows reach the destination (default `auto`): `auto` node-direct when the layouts match
   * (same static node names; postgres_fdw with the same nodes and partitioning; Citus → Citus
   * shard to shard with the same shard hash ranges), else through the destination coordinator;
   * `coordinator` always through it (for example when its workers cannot be reached from here;
   * a static destination has none: ERR_INVALID_OPTION).
   */
  route?: 'auto' | 'coordinator';
  /** Create missing destination tables from the source's columns and types (default false). */
  create?: boolean;
  /**
   * Empty each destination table before copying (default false: append). A rerun of an
   * unfinished copy does not empty again (it resumes); once a copy has finished, a run with
   * `truncate` copies afresh.
   */
  truncate?: boolean;
  /**
   * Units copied at once (default: number of source nodes). Memory: each holds the COPY
   * reader's blocks (≈ 3.75 MiB) and one block queued on each destination stream, so about
   * concurrency × (4 + targets) MiB.
   */
  concurrency?: number;
  /**
   * Stage through storage instead of copying directly (default: none, direct): `s3://bucket/prefix`,
   * a directory or a `file://` URL, empty or new. The source is exported there exactly as
   * `exportTables` writes it, and each object is loaded into the destination as soon as it is
   * stored; the prefix ends as a complete export with its manifest.
   */
  via?: string;
  /** S3 client settings for `via` (endpoint, path style, checksum mode, part size). */
  s3?: S3Options;
  /** With `via`: max bytes per object (default: the export's, 1 GiB). */
  segmentSize?: number;
  /**
   * With `via`: compress the staged TEXT, CSV and BINARY objects, `gzip`, `zstd` or `none`
   * (default), as `exportTables` does ({@link PlanOptions.compress}); the loaders decompress them
   * as `importTables` does. A direct copy stores nothing: a codec there is ERR_INVALID_OPTION.
   */
  compress?: CompressionOption;
  /**
   * With `via`: staged object keys end with the format's extension (default false), as
   * {@link PlanOptions.extension}. A direct copy: ERR_INVALID_OPTION.
   */
  extension?: boolean;
  /**
   * With `via` and format `arrow`: record batch body compression, `zstd`, `lz4` or `none`
   * (default), as {@link PlanOptions.arrowCompression}. A direct copy: ERR_INVALID_OPTION.
   */
  arrowCompression?: PlanOptions['arrowCompression'];
  /**
   * With `via`: the digest recorded of each staged object, `crc32` or `sha256`, as
   * {@link PlanOptions.objectChecksum} (default `crc32` where zlib.crc32 exists, else `sha256`).
   * A direct copy: ERR_INVALID_OPTION.
   */
  objectChecksum?: PlanOptions['objectChecksum'];
}

/** One unit of a copy: a (table, source node) read piped into its destination node(s). */
export interface CopyUnitPlan {
  /** The export unit id (`<objectName>_<node>`): the ledger key of this unit. */
  id: string;
  table: string;
  sourceNode: string;
  /** Destination nodes it goes to (several for a replicated table on a static destination). */
  targets: string[];
  /** Target nodes whose ledger already records it (skipped). */
  loaded: string[];
  /**
   * A Citus source shard (lib/copy/shards.ts): the shard this unit reads and, shard to shard,
   * the destination shard table (same hash range) it is copied into on each of its `targets`.
   */
  shard?: { source: string; destination?: string };
}

/** A copy plan: plain data without credentials. `segferry copy --dry-run` prints it. */
export interface CopyPlan {
  version: 1;
  /**
   * Ledger id of this copy: a hash of the source, the destination, the tables and the read
   * options. With `via`: the id the staging export's manifest will carry (`copy-via:` and a new
   * UUID, kept in the prefix's checkpoint so that a rerun resumes under it), so that an import
   * of the prefix finds the objects already loaded.
   */
  copyId: string;
  /** With `via`: where objects are staged (no credentials). */
  via?: string;
  /**
   * With `via`: what the staging prefix held when planned: nothing of this copy (`new`), an
   * unfinished run of it (`unfinished`: the export resumes, the loaders load what the ledger
   * lacks), or a finished one (`finished`: only the loads the ledger lacks).
   */
  staged?: 'new' | 'unfinished' | 'finished';
  format: CopyFormatKind;
  /** The source side, planned as an export. */
  source: ExportPlan;
  /** The destination: its kind and nodes. */
  destination: { topology: TopologyKind; coordinator?: PlanNode; nodes: PlanNode[] };
  /** Per table: the route and targets (as an import plan's tables; `objects` are the units). */
  tables: ImportTablePlan[];
  units: CopyUnitPlan[];
  concurrency: number;
  truncate: boolean;
  /** True when no unit of this copy was recorded yet (a fresh start; `truncate` applies). */
  fresh: boolean;
  /**
   * With `truncate`, when an earlier run took another route: nodes whose ledger rows of the
   * copied tables are deleted once every table has been emptied (default none).
   */
  forget?: string[];
  notes: string[];
}

function endpointId(e: NodeEndpoint): string {
  return `${e.host}:${e.port}/${e.database}`;
}

/** The ledger id: stable for one source, destination, table list and read options. */
export function copyIdOf(plan: ExportPlan, dest: DestSide, format: CopyFormatKind): string {
  const src = plan.coordinator ? [endpointId(plan.coordinator)] : plan.nodes.map((n) => `${n.name}=${endpointId(n.endpoint)}`);
  const dst = dest.coordinator ? [endpointId(dest.coordinator.endpoint)] : [...dest.nodes.values()].map((n) => `${n.name}=${endpointId(n.endpoint)}`);
  const tables = plan.tables.map((t) => `${displayName(t.table)}(${t.columns.map((c) => c.name).join(',')})`);
  const key = JSON.stringify({ src: src.sort(), dst: dst.sort(), tables, filter: plan.filter, format });
  return 'copy:' + createHash('sha256').update(key).digest('hex').slice(0, 32);
}

/** The source side of one table as an import source: each unit is one object named by its id. */
export function sourceTableOf(t: ExportPlan['tables'][number], units: ExportUnit[]): SourceTable {
  const mine = units.filter((u) => u.table === t);
  return {
    table: t.table,
    name: displayName(t.table),
    columns: t.columns,
    distribution: t.distribution,
    nodes: [...new Set(mine.map((u) => u.node))],
    objects: mine.map((u) => ({ key: u.id, node: u.node, segment: 0, bytes: u.reads.reduce((a, r) => a + r.estimatedBytes, 0) })),
  };
}

/**
 * Types whose COPY BINARY form is not portable between clusters: composite values and arrays
 * carry type OIDs, which differ between clusters for user-defined types.
 */
async function unportableColumns(client: pg.Client, relation: string, columns: string[]): Promise<{ name: string; type: string }[]> {
  const r = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        AND (t.typtype = 'c' OR e.typtype = 'c' OR (e.oid IS NOT NULL AND e.oid >= 16384))`,
    [relation],
  );
  return r.rows.filter((x) => columns.includes(x.name));
}

/**
 * COPY BINARY needs the same type on both ends, column by column (`format_type` names), and
 * types whose binary form is portable. Checked against the destination's columns as found
 * (coordinator, or every static node) and the source's first node of each table.
 */
async function checkBinary(plan: ExportPlan, dest: DestSide, tables: ImportTablePlan[]): Promise<void> {
  for (const tp of tables) {
    const dt = dest.tables.get(tp.table);
    const sets = dt ? [...(dt.nodeColumns.size > 0 ? dt.nodeColumns.entries() : dt.columns ? [['coordinator', dt.columns] as const] : [])] : [];
    for (const [node, cols] of sets) {
      for (const c of tp.columns) {
        const d = cols.find((x) => x.name === c.name);
        if (d && d.type !== c.type) {
          throw new BinaryTypeMismatchError(`--format binary: column ${JSON.stringify(c.name)} of ${tp.table} is ${c.type} on the source but ${d.type} on destination node ${node}`, {
            table: tp.table, node, hint: 'COPY BINARY needs exactly the same column types on both ends: copy with --format text (or csv), or change the destination column',
          });
        }
      }
    }
  }
  const clients = new NodeClients({ nodes: new Map(plan.nodes.map((n) => [n.name, n])), applicationName: 'segferry copy' });
  try {
    for (const t of plan.tables) {
      const read = t.reads[0];
      if (!read) continue;
      const c = await clients.get(read.node);
      const bad = await unportableColumns(c, quoteQualified(read.relation), read.columns ?? t.columns.map((x) => x.name))
        .catch((e) => { throw e instanceof SegferryError ? e : fromDatabaseError(e, { node: read.node, table: displayName(t.table), action: 'catalog lookup' }); });
      if (bad.length > 0) {
        const b = bad[0]!;
        throw new BinaryTypeMismatchError(`--format binary: column ${JSON.stringify(b.name)} of ${displayName(t.table)} is ${b.type}, whose binary form carries type OIDs that differ between clusters`, {
          table: displayName(t.table), node: read.node, hint: 'copy with --format text (or csv)',
        });
      }
    }
  } finally {
    await clients.closeAll();
  }
}

/**
 * Plan a copy: the source as an export (tables, columns, units per node), the destination as an
 * import (tables, routes: node-direct when the layouts match, else the coordinator), the
 * column checks (and, for binary, exact types), and the ledgers: units this copy already
 * committed on a target node are marked `loaded`.
 */
export async function planCopy(opts: CopyPlanOptions): Promise<CopyPlan> {
  const format = opts.format ?? 'text';
  if (format === 'arrow' || format === 'parquet') {
    if (opts.via === undefined) throw new InvalidOptionError(`format ${format} is a format of stored objects: copy through storage (via) with it, or copy directly with text, csv or binary`);
  } else if (format !== 'text' && format !== 'csv' && format !== 'binary') {
    throw new InvalidOptionError(`unknown copy format ${String(format)}: use text, csv or binary (with via also arrow or parquet)`);
  }
  if (opts.route !== undefined && opts.route !== 'auto' && opts.route !== 'coordinator') throw new InvalidOptionError(`unknown copy route ${String(opts.route)}: use auto or coordinator`);
  destinationAddress({ ...(opts.target !== undefined ? { target: opts.target } : {}), ...(opts.targetTopology !== undefined ? { topology: opts.targetTopology } : {}) });
  // A direct copy names COPY BINARY itself; staged objects are the export's binary objects.
  const srcFormat: FormatOptions = normalizeFormat({ kind: opts.via !== undefined ? format : format === 'csv' ? 'csv' : 'text' });
  if ((opts.tables?.length ?? 0) === 0 && opts.all !== true && (opts.schemas?.length ?? 0) === 0) {
    throw new InvalidOptionError('name at least one table, or select with schemas or all');
  }
  const po: Parameters<typeof planExport>[0] = { tables: opts.tables ?? [], format: srcFormat };
  if (opts.all === true) po.all = true;
  if (opts.schemas !== undefined) po.schemas = opts.schemas;
  if (opts.excludeTables !== undefined) po.excludeTables = opts.excludeTables;
  if (opts.via !== undefined && opts.segmentSize !== undefined) po.segmentSize = opts.segmentSize;
  // How objects are stored: checked by planExport, as for an export.
  if (opts.via !== undefined) {
    if (opts.compress !== undefined) po.compress = opts.compress;
    if (opts.extension !== undefined) po.extension = opts.extension;
    if (opts.arrowCompression !== undefined) po.arrowCompression = opts.arrowCompression;
    if (opts.objectChecksum !== undefined) po.objectChecksum = opts.objectChecksum;
  } else {
    const asked = [
      opts.compress !== undefined && opts.compress !== 'none' ? `compress ${opts.compress}` : '',
      opts.extension === true ? 'extension' : '',
      opts.arrowCompression !== undefined && opts.arrowCompression !== 'none' ? `arrowCompression ${opts.arrowCompression}` : '',
      opts.objectChecksum !== undefined ? `objectChecksum ${opts.objectChecksum}` : '',
    ].filter(Boolean);
    if (asked.length > 0) throw new InvalidOptionError(`${asked.join(', ')}: how objects are stored applies to a copy through storage (via) only; a direct copy stores no objects`);
  }
  // Staged: one stream per (table, node), so that a unit is a pair and a resume never renumbers
  // (and so rewrites) objects whose loads are committed (ExportStages.unitStored).
  if (opts.via !== undefined) po.streams = 1;
  if (opts.source !== undefined) po.source = opts.source;
  if (opts.sourceTopology !== undefined) po.topology = opts.sourceTopology;
  if (opts.columns !== undefined) po.columns = opts.columns;
  if (opts.where !== undefined) po.where = opts.where;
  if (opts.replicated !== undefined) po.replicated = opts.replicated;
  if (opts.concurrency !== undefined) po.concurrency = opts.concurrency;
  const source = await planExport(po);
  const units = planUnits(source);
  const srcTables = source.tables.map((t) => sourceTableOf(t, units));
  const replicated = srcTables.filter((t) => t.distribution.kind === 'replicated').map((t) => t.name);
  const dopts: Parameters<typeof findDestination>[0] = {};
  if (opts.target !== undefined) dopts.target = opts.target;
  if (opts.targetTopology !== undefined) dopts.topology = opts.targetTopology;
  const dest = await findDestination(dopts, srcTables.map((t) => t.table), replicated);
  const shardIds = new Map<string, string>();
  const ro = { route: opts.route ?? 'auto', create: opts.create === true, staged: opts.via !== undefined };
  const tables = srcTables.map((st, i) => {
    const r = routeCopyTable(source.tables[i]!, st, dest, ro);
    for (const [k, v] of r.shards ?? []) shardIds.set(k, v);
    return r.table;
  });
  if (format === 'binary') await checkBinary(source, dest, tables);
  await checkTargets(tables, dest);
  const staged = opts.via !== undefined ? await stagedState(opts.via, opts.s3) : undefined;
  const copyId = staged ? staged.copyId : copyIdOf(source, dest, format);
  const notes: string[] = [];
  const used = new Set(tables.flatMap((t) => [...t.targets.map((x) => x.node), ...t.create, ...t.truncate]));
  // One node at a time would cost a connection round trip per node, in series.
  const perNode = await Promise.all([...dest.nodes].map(async ([name, node]) => {
    const n: string[] = [];
    const l = await readLedgers(new Map([[name, node]]), used, copyId, n);
    return { l, n };
  }));
  const ledgers = new Map(perNode.flatMap((x) => [...x.l]));
  notes.push(...perNode.flatMap((x) => x.n));
  const truncate = opts.truncate === true;
  // Units an earlier run committed on nodes this plan does not send them to (the route changed):
  // refused, unless truncate starts afresh and forgets them there too.
  let rerouted: string[] = [];
  // An earlier truncating run that changed route stopped before it finished: its marks say so.
  const marked = truncatingNodes(ledgers, tables);
  if (marked.length > 0 && !truncate) {
    throw new InvalidOptionError(`an earlier run of this copy with truncate stopped while emptying the tables (its marks are on ${marked.join(', ')}): rerun it with truncate (--truncate)`, {
      hint: 'without truncate the rows copied before it could be counted twice or not at all',
    });
  }
  try {
    markLoaded(tables, ledgers);
  } catch (e) {
    if (!truncate || !(e instanceof InvalidOptionError)) throw e;
    rerouted = [...ledgers].filter(([, l]) => tables.some((t) => t.objects.some((o) => l.has(o.key)))).map(([n]) => n).sort();
    notes.push(`an earlier run of this copy took another route: starting afresh, its ledger rows forgotten on ${rerouted.join(', ')}`);
  }
  if (marked.length > 0) {
    rerouted = [...new Set([...rerouted, ...marked])].sort();
    notes.push(`an earlier run of this copy with truncate did not finish: starting afresh, its marks and ledger rows forgotten on ${marked.join(', ')}`);
  }
  const allLoads = tables.flatMap((t) => t.objects.map((o) => ({ n: o.targets.length, done: o.loaded.length })));
  const anyDone = allLoads.some((x) => x.done > 0);
  const allDone = allLoads.every((x) => x.done === x.n);
  // A finished copy run again with truncate starts afresh; an unfinished one resumes.
  // Staged: the prefix says whether this copy ran before (its loads are per object, not per unit).
  const fresh = staged ? staged.state === 'new' : rerouted.length > 0 || !anyDone || (truncate && allDone);
  if (!fresh && truncate && !staged) notes.push('an earlier run of this copy did not finish: resuming it, without truncating again');
  if (fresh && (anyDone || rerouted.length > 0)) for (const t of tables) for (const o of t.objects) o.loaded = [];
  const planUnitsOut: CopyUnitPlan[] = tables.flatMap((t) => t.objects.map((o) => {
    const u: CopyUnitPlan = { id: o.key, table: t.table, sourceNode: o.sourceNode, targets: o.targets, loaded: o.loaded };
    const sh = shardIds.get(o.key);
    if (sh !== undefined) u.shard = o.relation ? { source: sh, destination: displayName(o.relation) } : { source: sh };
    return u;
  }));
  const plan: CopyPlan = {
    version: 1,
    copyId,
    format,
    source,
    destination: { topology: dest.kind, nodes: [...dest.nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) },
    tables,
    units: planUnitsOut,
    concurrency: opts.concurrency ?? source.concurrency,
    truncate: truncate && fresh,
    fresh,
    forget: rerouted,
    notes,
  };
  if (dest.coordinator) plan.destination.coordinator = dest.coordinator;
  if (opts.via !== undefined) plan.via = redact(opts.via);
  if (staged) {
    plan.staged = staged.state;
    if (staged.state !== 'new') notes.push(`${plan.via} holds ${staged.state === 'finished' ? 'a finished' : 'an unfinished'} run of this copy: resuming it${truncate ? ', without truncating again' : ''}`);
  }
  return plan;
}
