/**
 * Citus discovery: the coordinator's metadata (pg_dist_partition, pg_dist_shard,
 * pg_dist_placement, pg_dist_node) says which shard table to read on which node. Exporters
 * then read shard tables `<table>_<shardid>` on the workers directly, never through the
 * coordinator. Listed in the topology kinds of discover.ts.
 */
import type pg from 'pg';
import { TopologyError, fromDatabaseError } from '../errors.js';
import { inheritPassword, type NodeEndpoint } from '../pg/conn.js';
import { displayName, parseTableName, quoteQualified, type QualifiedName } from '../pg/sql.js';
import { pickColumns, relationColumns, relationSize, requireRelation } from './catalog.js';
import { NodeClients } from './clients.js';
import {
  COORDINATOR_NODE, type ColumnInfo, type Discovered, type DiscoveredTable, type DiscoverRequest, type Distribution, type PlanNode,
  type RelationRead, type ShardInfo,
} from './types.js';

/**
 * The stable name of a Citus node group in object keys: `coordinator` for group 0,
 * `worker-<groupid>` for the others. Group ids are assigned once by `citus_add_node` and never
 * reused, and a group keeps its id when its primary is replaced, so names survive fail-over
 * and host renames. No underscore: keys are `<table>_<node>_segment.<n>`.
 */
export function citusNodeName(groupId: number): string {
  return groupId === 0 ? COORDINATOR_NODE : `worker-${groupId}`;
}

/** A primary node of a Citus group. */
export interface CitusNode extends PlanNode {
  groupId: number;
}

/**
 * The active primary of every group, by group id. The server segferry is connected to keeps
 * the endpoint the caller gave (its address may differ from the one in pg_dist_node); the
 * others are reached at pg_dist_node's host and port, with the caller's database, user,
 * password and TLS settings.
 */
export async function citusNodes(client: pg.Client, self: NodeEndpoint): Promise<Map<number, CitusNode>> {
  const local = (await client.query<{ g: number }>('SELECT groupid AS g FROM pg_catalog.pg_dist_local_group')).rows[0]?.g ?? 0;
  const rows = (await client.query<{ groupid: number; nodename: string; nodeport: number }>(
    `SELECT groupid, nodename, nodeport FROM pg_catalog.pg_dist_node
      WHERE noderole = 'primary' AND isactive ORDER BY groupid, nodeid`,
  )).rows;
  const out = new Map<number, CitusNode>();
  const add = (groupId: number, endpoint: NodeEndpoint) => out.set(groupId, { name: citusNodeName(groupId), groupId, endpoint });
  for (const r of rows) {
    if (out.has(r.groupid)) continue;
    if (r.groupid === local) {
      add(r.groupid, self);
      continue;
    }
    const e: NodeEndpoint = { host: r.nodename, port: r.nodeport, database: self.database, user: self.user };
    if (self.sslmode !== undefined) e.sslmode = self.sslmode;
    if (self.sslrootcert !== undefined) e.sslrootcert = self.sslrootcert;
    if (self.sslcert !== undefined) e.sslcert = self.sslcert;
    if (self.sslkey !== undefined) e.sslkey = self.sslkey;
    inheritPassword(e, self);
    add(r.groupid, e);
  }
  // The server we talk to holds data of plain (non-Citus) tables even when it is not listed.
  if (!out.has(local)) add(local, self);
  return out;
}

/** One shard and the groups holding an active placement of it. */
export interface CitusShard {
  id: string;
  /** The shard table, schema-qualified, as named on the nodes. */
  relation: QualifiedName;
  min: string | null;
  max: string | null;
  groups: number[];
}

/** How pg_dist_partition describes a table. */
export interface CitusTableInfo {
  /** h hash, n none (reference, Citus local, single shard), a append, r range. */
  method: string;
  /** t: replicated to every node (reference table); s: statement (one placement per shard). */
  repmodel: string;
  column: string | null;
  colocationId: number;
}

/** pg_dist_partition's row for a relation, or undefined when it is not a Citus table. */
export async function citusTableInfo(client: pg.Client, oid: number): Promise<CitusTableInfo | undefined> {
  const r = await client.query<{ method: string; repmodel: string; col: string | null; coloc: number }>(
    `SELECT p.partmethod::text AS method, p.repmodel::text AS repmodel, p.colocationid AS coloc,
            CASE WHEN p.partkey IS NULL OR p.partkey = '' THEN NULL
                 ELSE pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END AS col
       FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = $1::oid`,
    [oid],
  );
  const row = r.rows[0];
  return row ? { method: row.method, repmodel: row.repmodel, column: row.col, colocationId: row.coloc } : undefined;
}

/** Every shard of a table with its active primary placements; hash shards in hash order. */
export async function citusShards(client: pg.Client, oid: number, schema: string, hash: boolean): Promise<CitusShard[]> {
  const r = await client.query<{ id: string; shard: string; min: string | null; max: string | null; groupid: number | null }>(
    `SELECT s.shardid::text AS id, pg_catalog.shard_name(s.logicalrelid, s.shardid) AS shard,
            s.shardminvalue AS min, s.shardmaxvalue AS max, n.groupid
       FROM pg_catalog.pg_dist_shard s
       LEFT JOIN (pg_catalog.pg_dist_placement pl
                  JOIN pg_catalog.pg_dist_node n ON n.groupid = pl.groupid AND n.noderole = 'primary' AND n.isactive)
              ON pl.shardid = s.shardid AND pl.shardstate = 1
      WHERE s.logicalrelid = $1::oid
      ORDER BY s.shardid, n.groupid`,
    [oid],
  );
  const byId = new Map<string, CitusShard>();
  for (const row of r.rows) {
    let s = byId.get(row.id);
    if (!s) {
      // shard_name quotes like quote_ident and qualifies with the schema only outside the search path.
      s = { id: row.id, relation: parseTableName(row.shard, schema), min: row.min, max: row.max, groups: [] };
      byId.set(row.id, s);
    }
    if (row.groupid !== null && !s.groups.includes(row.groupid)) s.groups.push(row.groupid);
  }
  const shards = [...byId.values()];
  if (hash) shards.sort((a, b) => Number(a.min) - Number(b.min));
  return shards;
}

/** Bytes of each shard table on a node; a shard table missing there maps to undefined. */
async function shardSizes(client: pg.Client, relations: QualifiedName[]): Promise<Map<string, number | undefined>> {
  const names = relations.map(quoteQualified);
  // Shard tables are hidden from pg_class queries on workers; regclass input still finds them.
  const r = await client.query<{ name: string; found: boolean; size: string }>(
    `SELECT u.name, pg_catalog.to_regclass(u.name) IS NOT NULL AS found,
            COALESCE((SELECT sum(pg_catalog.pg_relation_size(t.relid)) FROM pg_catalog.pg_partition_tree(r.oid) t),
                     pg_catalog.pg_relation_size(r.oid), 0)::int8 AS size
       FROM unnest($1::text[]) AS u(name), LATERAL (SELECT pg_catalog.to_regclass(u.name) AS oid) r`,
    [names],
  );
  return new Map(r.rows.map((row) => [row.name, row.found ? Number(row.size) : undefined]));
}

interface Pending {
  table: QualifiedName;
  columns: ColumnInfo[];
  info: CitusTableInfo;
  shards: CitusShard[];
}

/**
 * Discover Citus tables. Hash-distributed tables: one read per shard, on one of its
 * placements. Reference tables: one read on one node (a worker when there is one), every
 * holder listed as a replica. Citus local and single-shard tables: their one shard.
 * Append/range tables: one read per shard. Tables Citus does not manage are read on the
 * server segferry is connected to.
 *
 * Where a shard has several placements, the one on the node with the fewest bytes assigned
 * so far is read (workers before the coordinator), spreading the work over the nodes.
 */
export async function discoverCitus(client: pg.Client, coord: NodeEndpoint, req: DiscoverRequest, tables: QualifiedName[]): Promise<Discovered> {
  const q = async <T>(p: Promise<T>, table: string | undefined, action: string): Promise<T> =>
    p.catch((e) => { throw fromDatabaseError(e, { node: COORDINATOR_NODE, ...(table ? { table } : {}), action }); });
  const groups = await q(citusNodes(client, coord), undefined, 'read pg_dist_node');
  const local = [...groups.values()].find((n) => n.endpoint === coord)!;
  const out: (DiscoveredTable | Pending)[] = [];
  for (const t of tables) {
    const name = displayName(t);
    const rel = await requireRelation(client, t, local.name);
    const cols = pickColumns(await q(relationColumns(client, rel.oid), name, 'catalog lookup'), req.columns, name, local.name);
    const columns: ColumnInfo[] = cols.map(({ name: n, type, notNull }) => ({ name: n, type, notNull: notNull ?? false }));
    const info = await q(citusTableInfo(client, rel.oid), name, 'read pg_dist_partition');
    if (!info) {
      out.push({
        table: t,
        columns,
        distribution: { kind: 'single', replicas: [local.name] },
        reads: [{ node: local.name, relation: t, columns: columns.map((c) => c.name), estimatedBytes: await q(relationSize(client, t), name, 'size') }],
      });
      continue;
    }
    if (!['h', 'n', 'a', 'r'].includes(info.method)) {
      throw new TopologyError(`table ${name} has Citus distribution method ${JSON.stringify(info.method)}, which segferry does not know`, { table: name });
    }
    const shards = await q(citusShards(client, rel.oid, t.schema, info.method === 'h'), name, 'read pg_dist_shard');
    if (shards.length === 0) throw new TopologyError(`Citus table ${name} has no shards`, { table: name });
    for (const s of shards) {
      if (s.groups.length === 0) {
        throw new TopologyError(`shard ${s.id} of table ${name} has no active placement on an active primary node`, {
          table: name, hint: 'check pg_dist_placement and pg_dist_node (citus_check_cluster_node_health) on the coordinator',
        });
      }
      for (const g of s.groups) {
        if (!groups.has(g)) throw new TopologyError(`shard ${s.id} of table ${name} is placed on group ${g}, which has no active primary`, { table: name });
      }
    }
    out.push({ table: t, columns, info, shards });
  }

  // Sizes of every placement, one query per node; this also checks every node is reachable.
  const wanted = new Map<number, QualifiedName[]>();
  for (const p of out) {
    if (!('shards' in p)) continue;
    for (const s of p.shards) for (const g of s.groups) wanted.set(g, [...(wanted.get(g) ?? []), s.relation]);
  }
  const sizes = new Map<number, Map<string, number | undefined>>();
  const clients = new NodeClients();
  try {
    for (const [g, rels] of [...wanted].sort((a, b) => a[0] - b[0])) {
      const node = groups.get(g)!;
      const c = node === local ? client : await clients.get(node);
      sizes.set(g, await shardSizes(c, rels).catch((e) => { throw fromDatabaseError(e, { node: node.name, action: 'shard sizes' }); }));
    }
  } finally {
    await clients.closeAll();
  }

  const load = new Map<number, number>();
  const pick = (s: CitusShard, table: string): { group: number; size: number; holders: number[] } => {
    const key = quoteQualified(s.relation);
    const holders = s.groups.filter((g) => sizes.get(g)?.get(key) !== undefined);
    if (holders.length === 0) {
      throw new TopologyError(`shard table ${displayName(s.relation)} of ${table} is in the metadata but on none of its nodes (${s.groups.map(citusNodeName).join(', ')})`, {
        table, sqlState: '42P01',
      });
    }
    const rank = (g: number) => [g === 0 ? 1 : 0, load.get(g) ?? 0, g] as const;
    const best = [...holders].sort((a, b) => {
      const x = rank(a);
      const y = rank(b);
      return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
    })[0]!;
    const size = sizes.get(best)!.get(key)!;
    load.set(best, (load.get(best) ?? 0) + size);
    return { group: best, size, holders };
  };

  const result: DiscoveredTable[] = [];
  for (const p of out) {
    if (!('shards' in p)) {
      result.push(p);
      continue;
    }
    const name = displayName(p.table);
    const colNames = p.columns.map((c) => c.name);
    const { info, shards } = p;
    const hash = info.method === 'h';
    const reads: RelationRead[] = [];
    const holders = new Set<number>();
    for (const s of shards) {
      const chosen = pick(s, name);
      for (const g of chosen.holders) holders.add(g);
      const r: RelationRead = { node: citusNodeName(chosen.group), relation: s.relation, columns: colNames, estimatedBytes: chosen.size, shardId: s.id };
      if (hash && s.min !== null && s.max !== null) r.hashRange = [s.min, s.max];
      reads.push(r);
    }
    const shardInfos: ShardInfo[] = shards.map((s) => {
      const si: ShardInfo = { id: s.id };
      if (s.min !== null) si.min = s.min;
      if (s.max !== null) si.max = s.max;
      return si;
    });
    let distribution: Distribution;
    if (info.method === 'n' && info.repmodel === 't') {
      // Reference table: one shard, every holder has all rows.
      const first = reads[0]!.node;
      const replicas = [first, ...[...holders].sort((a, b) => a - b).map(citusNodeName).filter((n) => n !== first)];
      distribution = { kind: 'replicated', method: 'citus-reference', replicas, shardCount: 1, shards: shardInfos };
    } else if (info.method === 'n') {
      distribution = { kind: 'single', method: info.colocationId === 0 ? 'citus-local' : 'citus-single-shard', replicas: [...holders].map(citusNodeName), shardCount: 1, shards: shardInfos };
    } else {
      distribution = { kind: 'distributed', method: hash ? 'citus-hash' : info.method === 'r' ? 'citus-range' : 'citus-append', shardCount: shards.length, shards: shardInfos };
      if (info.column !== null) distribution.column = info.column;
    }
    result.push({ table: p.table, columns: p.columns, distribution, reads });
  }

  const used = new Set(result.flatMap((t) => t.reads.map((r) => r.node)));
  const nodes: PlanNode[] = [...groups.values()]
    .filter((n) => used.has(n.name))
    .map((n) => ({ name: n.name, endpoint: n.endpoint }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { kind: 'citus', coordinator: coord, nodes, tables: result };
}

