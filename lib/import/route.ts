/**
 * Routing: how one table's objects reach the destination. A pure function of the source table
 * (as the manifest or the bare listing describes it), the destination as found (plain data),
 * the requested route and `create`; it opens no connection and throws typed errors.
 */
import { InvalidOptionError, SchemaMismatchError, TableNotFoundError, TopologyError } from '../errors.js';
import { pickDigest, type ObjectDigest } from '../manifest/digest.js';
import type { RowChecksum } from '../manifest/types.js';
import { displayName, type QualifiedName } from '../pg/sql.js';
import type { CatalogColumn } from '../topology/catalog.js';
import { COORDINATOR_NODE, type ColumnInfo, type DiscoveredTable, type Distribution } from '../topology/types.js';
import { planShardDirect } from './citus.js';
import type { DestSide } from './destination.js';
import type { SourceTable } from './source.js';

/**
 * How objects reach the destination.
 * - `coordinator`: `COPY <table> FROM STDIN` on the coordinator (or single server); the engine
 *   routes rows, so it works for any destination with a coordinator.
 * - `direct`: each object is loaded straight into the destination node named like its source
 *   node (backup → restore onto the same layout), in parallel.
 * - `auto` (default): direct for a static destination; for a postgres_fdw destination, direct
 *   when every destination node holds one relation of the table, the node names equal the
 *   source's and the partition method and key agree; for Citus, shard-direct when the
 *   distribution column type and shard hash ranges match; replicated tables and everything
 *   else through the coordinator (see {@link routeTable}).
 */
export type ImportRoute = 'auto' | 'coordinator' | 'direct';

/** Where one table's rows go on one destination node. */
export interface ImportTarget {
  node: string;
  /** The relation as named on that node. */
  relation: QualifiedName;
  /** Column names on that node, in the export's column order. */
  columns: string[];
}

/** One object of the export and where it is loaded; its digest field (`crc32` or `sha256`) is what the manifest records (none for bare objects). */
export interface PlannedObject extends ObjectDigest {
  key: string;
  /** Node of the source cluster it was exported from. */
  sourceNode: string;
  segment: number;
  bytes: number;
  /** Rows the manifest records (absent for bare objects). */
  rows?: number;
  /** Codec of the stored bytes (manifest, or a bare key's `.gz` / `.zst`); absent: not compressed. */
  compression?: 'gzip' | 'zstd';
  /** Destination nodes it is loaded into (several for replicated tables and replicated Citus shards). */
  targets: string[];
  /**
   * Citus shard-direct: the destination shard table it is loaded into on each of its target
   * nodes, instead of the table target's relation.
   */
  relation?: QualifiedName;
  /** Target nodes whose ledger already records it: those loads are skipped. */
  loaded: string[];
}

/** One table of an import plan. */
export interface ImportTablePlan {
  /** `schema.name` in the export. */
  table: string;
  /** The table on the destination (same schema and name). */
  destination: QualifiedName;
  columns: ColumnInfo[];
  /** How the source held it. */
  distribution: Distribution;
  route: 'coordinator' | 'direct';
  /** Why this route was chosen. */
  reason: string;
  /** Where rows go, one entry per destination node that receives objects. */
  targets: ImportTarget[];
  /** Nodes where the table is created first (`create`). */
  create: string[];
  /**
   * With `create`: each column's type as the destination spells it (format_type of the type
   * the manifest names, resolved there at planning; see lib/import/safety.ts). CREATE TABLE
   * uses only these, never the manifest's text.
   */
  createTypes?: string[];
  /**
   * Nodes where the table (the target relation on target nodes) is truncated first (`truncate`),
   * each in one transaction with that node's ledger rows of the table (lib/import/truncate.ts).
   */
  truncate: string[];
  /**
   * Citus shard-direct: the shard tables to empty on each node of `truncate` (every placement
   * there, also of shards that receive no object), instead of a target relation.
   */
  truncateShards?: Record<string, QualifiedName[]>;
  objects: PlannedObject[];
  /** Source figures from the manifest, when recorded. */
  source: { rows?: number; checksum?: RowChecksum };
}

/**
 * Route one table: its targets, the nodes where it is created and truncated, and every
 * object's target nodes (the `loaded` lists stay empty: the ledgers fill them).
 *
 * - Static destination (route `coordinator` refused): each object into the node of its source
 *   node's name; a replicated table (in the manifest or the topology) into every node. A
 *   missing table is created on every node lacking it with `create`, else TableNotFoundError.
 * - Table missing on the coordinator: created there with `create` and a manifest's columns
 *   (route `direct` refused: there are no nodes yet), else TableNotFoundError.
 * - Route `coordinator`, or a replicated table with `auto`: through the coordinator. A
 *   replicated table with `direct`: into every node holding a copy, each truncated.
 * - Citus: shard-direct when the shards match (see {@link planShardDirect}; truncated worker
 *   by worker, every shard placement), else through the coordinator (`direct`: TopologyError).
 * - postgres_fdw: node-direct when every destination node holds one relation, the node names
 *   equal the source's and the partitioning method and key agree (when known); else through
 *   the coordinator (`direct`: TopologyError). Partition bounds are not compared: neither
 *   the manifest nor discovery records them, so direct assumes a restore onto the same layout.
 *   Node-direct tables are truncated node by node, where their ledger rows live.
 *   A single server goes through the coordinator with `auto`.
 */
export function routeTable(st: SourceTable, dest: Pick<DestSide, 'kind' | 'nodes' | 'replicated' | 'tables'>, route: ImportRoute, create: boolean): ImportTablePlan {
  if (dest.kind === 'static' && route === 'coordinator') {
    throw new InvalidOptionError('a static destination has no coordinator: use route direct (or auto), or give the coordinator as target');
  }
  const dt = dest.tables.get(st.name);
  const names = (cols: ColumnInfo[]) => cols.map((c) => c.name);
  const base = (r: 'coordinator' | 'direct', reason: string, columns: ColumnInfo[]): ImportTablePlan => {
    const tp: ImportTablePlan = {
      table: st.name,
      destination: st.table,
      columns,
      distribution: st.distribution,
      route: r,
      reason,
      targets: [],
      create: [],
      truncate: [],
      objects: st.objects.map((o) => {
        const p: PlannedObject = { key: o.key, sourceNode: o.node, segment: o.segment, bytes: o.bytes, targets: [], loaded: [], ...pickDigest(o) };
        if (o.rows !== undefined) p.rows = o.rows;
        if (o.compression !== undefined) p.compression = o.compression;
        return p;
      }),
      source: {},
    };
    if (st.rows !== undefined) tp.source.rows = st.rows;
    if (st.checksum) tp.source.checksum = st.checksum;
    return tp;
  };
  const bareColumns = (cols: CatalogColumn[] | undefined): ColumnInfo[] => {
    if (!cols) {
      throw new TableNotFoundError(`table ${st.name} not found on the destination; bare objects carry no column list, so it must exist`, {
        table: st.name, sqlState: '42P01',
      });
    }
    return cols.map((c) => ({ name: c.name, type: c.type, notNull: c.notNull ?? false }));
  };
  const srcNodes = [...new Set(st.objects.map((o) => o.node))];

  if (dest.kind === 'static') {
    const all = [...dest.nodes.keys()];
    const missing = dt?.missingOn ?? all;
    const columns = st.columns ?? bareColumns(dt?.columns);
    const replicated = st.distribution.kind === 'replicated' || dest.replicated.has(st.name);
    const tp = base('direct', replicated ? 'replicated: loaded into every node' : 'static destination: each object into the node of its name', columns);
    const targetNodes = replicated ? all : srcNodes;
    for (const n of targetNodes) {
      if (!dest.nodes.has(n)) {
        throw new TopologyError(`objects of ${st.name} come from node ${n}, which the static destination does not have (it has ${all.join(', ')})`, {
          node: n, table: st.name,
          hint: 'a static destination is loaded node-direct: name its nodes as the source\'s, or load through a coordinator (target URL)',
        });
      }
    }
    if (missing.length > 0) {
      if (create && st.columns) {
        // Created on every node that lacks it, so the table exists cluster-wide.
        tp.create = missing;
      } else {
        const where = missing.find((n) => targetNodes.includes(n));
        if (where !== undefined) {
          throw new TableNotFoundError(`table ${st.name} not found on node ${where}`, {
            node: where, table: st.name, sqlState: '42P01', hint: st.columns ? 'create it, or pass create (--create)' : 'create it first',
          });
        }
      }
    }
    tp.targets = targetNodes.map((n) => ({ node: n, relation: st.table, columns: names(columns) }));
    for (const o of tp.objects) o.targets = replicated ? [...all] : [o.sourceNode];
    tp.truncate = all.filter((n) => !missing.includes(n) || tp.create.includes(n));
    return tp;
  }

  // A destination reached through its coordinator.
  if (!dt || !dt.discovered) {
    if (!create || !st.columns) {
      throw new TableNotFoundError(`table ${st.name} not found on the destination coordinator`, {
        node: COORDINATOR_NODE, table: st.name, sqlState: '42P01',
        hint: st.columns ? 'create it, or pass create (--create) to create it from the manifest\'s columns' : 'create it first',
      });
    }
    if (route === 'direct') {
      throw new TopologyError(`table ${st.name} does not exist on the destination, so it has no nodes to load directly; it can be created on the coordinator (route auto or coordinator)`, { table: st.name });
    }
    const tp = base('coordinator', 'created on the coordinator', st.columns);
    tp.create = [COORDINATOR_NODE];
    tp.truncate = [COORDINATOR_NODE];
    tp.targets = [{ node: COORDINATOR_NODE, relation: st.table, columns: names(st.columns) }];
    for (const o of tp.objects) o.targets = [COORDINATOR_NODE];
    return tp;
  }
  const d = dt.discovered;
  const columns = st.columns ?? bareColumns(dt.columns);
  const coordinatorPlan = (reason: string) => {
    const tp = base('coordinator', reason, columns);
    tp.targets = [{ node: COORDINATOR_NODE, relation: d.table, columns: names(columns) }];
    tp.truncate = [COORDINATOR_NODE];
    for (const o of tp.objects) o.targets = [COORDINATOR_NODE];
    return tp;
  };
  if (route === 'coordinator') return coordinatorPlan('requested');
  const replicated = st.distribution.kind === 'replicated';
  if (replicated) {
    if (route === 'auto') return coordinatorPlan('replicated: loaded once through the coordinator');
    // Forced direct: into every node holding a copy.
    const replicas = d.distribution.replicas ?? d.reads.map((r) => r.node);
    const first = d.reads[0]!;
    const tp = base('direct', 'replicated: loaded into every replica', columns);
    tp.targets = replicas.map((n) => ({ node: n, relation: first.relation, columns: remoteNames(columns, d, first.columns) }));
    // The coordinator reaches one copy only: empty each.
    tp.truncate = [...replicas];
    for (const o of tp.objects) o.targets = [...replicas];
    return tp;
  }
  if (dest.kind === 'citus') {
    const sd = planShardDirect({ table: d.table, columns: d.columns, citus: dt.citus }, st, new Set(dest.nodes.keys()));
    if (!sd.ok) {
      if (route === 'direct') throw new TopologyError(`table ${st.name} cannot be loaded shard-direct: ${sd.reason}`, { table: st.name, hint: 'use route coordinator (or auto)' });
      return coordinatorPlan(sd.reason);
    }
    const tp = base('direct', 'same distribution column type and shard hash ranges as the source: each object into its shard on the workers', columns);
    for (const o of tp.objects) {
      const t = sd.targets.get(o.key)!;
      o.targets = [...t.nodes];
      o.relation = t.relation;
    }
    // Shard tables have the distributed table's columns; loads name each object's shard table.
    tp.targets = [...new Set(tp.objects.flatMap((o) => o.targets))].sort().map((n) => ({ node: n, relation: d.table, columns: names(columns) }));
    // Each worker empties its shard tables in one transaction with its own ledger rows: a
    // TRUNCATE through the coordinator would commit apart from the workers' ledgers.
    tp.truncateShards = Object.fromEntries(sd.shardTables);
    tp.truncate = [...sd.shardTables.keys()];
    return tp;
  }
  // Node-direct needs: one relation per destination node, node names equal to the source's,
  // and (when both are known) the same partitioning method.
  const perNode = new Map<string, typeof d.reads>();
  for (const r of d.reads) perNode.set(r.node, [...(perNode.get(r.node) ?? []), r]);
  const srcAll = [...new Set([...st.nodes, ...srcNodes])].sort();
  const destAll = [...perNode.keys()].sort();
  let why = '';
  if (dest.kind !== 'fdw' && route === 'auto') why = 'the destination is a single server';
  else if ([...perNode.values()].some((rs) => rs.length > 1)) why = `a destination node holds several partitions of ${st.name}`;
  else if (srcAll.join(',') !== destAll.join(',')) why = `source nodes (${srcAll.join(', ')}) and destination nodes (${destAll.join(', ')}) differ`;
  else if (st.distribution.method && d.distribution.method && st.distribution.method !== d.distribution.method) {
    why = `partitioned by ${d.distribution.method} on the destination but ${st.distribution.method} on the source`;
  } else if (st.distribution.column && d.distribution.column && st.distribution.column !== d.distribution.column) {
    why = `partition keys differ (${st.distribution.column} / ${d.distribution.column})`;
  }
  if (why) {
    if (route === 'direct') {
      throw new TopologyError(`table ${st.name} cannot be loaded node-direct: ${why}`, { table: st.name, hint: 'use route coordinator (or auto)' });
    }
    return coordinatorPlan(why);
  }
  const tp = base('direct', 'same nodes and layout as the source: each object into its node', columns);
  tp.targets = destAll.map((n) => {
    const r = perNode.get(n)![0]!;
    return { node: n, relation: r.relation, columns: remoteNames(columns, d, r.columns) };
  });
  // Each node empties its relation with its own ledger rows (not through the coordinator).
  tp.truncate = [...destAll];
  for (const o of tp.objects) o.targets = [o.sourceNode];
  return tp;
}

/** Column names on a node's relation for the exported columns (postgres_fdw `column_name`). */
function remoteNames(columns: ColumnInfo[], d: DiscoveredTable, readColumns: string[] | undefined): string[] {
  return columns.map((c) => {
    const i = d.columns.findIndex((x) => x.name === c.name);
    if (i < 0) {
      throw new SchemaMismatchError(`table ${displayName(d.table)} on the destination has no column ${JSON.stringify(c.name)} (exported as ${c.type})`, {
        table: displayName(d.table), node: COORDINATOR_NODE,
      });
    }
    return readColumns?.[i] ?? c.name;
  });
}
