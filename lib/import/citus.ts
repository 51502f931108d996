/**
 * Citus as an import destination. Through the coordinator, `COPY <table> FROM STDIN` lets
 * Citus route every row; that needs nothing from here. Shard-direct loading skips the
 * coordinator: when the destination table is hash-distributed on a column of the same name
 * and type as the source's, with exactly the same shard hash ranges, every row of a source
 * shard belongs to the destination shard with the same range, so an object (which holds one
 * shard: see docs/topology.md) is loaded straight into that shard's table on every node that
 * holds a placement of it.
 */
import type pg from 'pg';
import { displayName, type QualifiedName } from '../pg/sql.js';
import { citusNodeName, citusShards, citusTableInfo, type CitusShard, type CitusTableInfo } from '../topology/citus.js';
import type { ColumnInfo, Distribution } from '../topology/types.js';

/** A destination table as Citus knows it. */
export interface CitusDestTable {
  info: CitusTableInfo;
  /** Its shards with every active placement's group (hash tables: in hash order). */
  shards: CitusShard[];
}

/** pg_dist_partition and pg_dist_shard of a destination table; undefined when Citus does not manage it. */
export async function citusDestTable(client: pg.Client, oid: number, table: QualifiedName): Promise<CitusDestTable | undefined> {
  const info = await citusTableInfo(client, oid);
  if (!info) return undefined;
  return { info, shards: await citusShards(client, oid, table.schema, info.method === 'h') };
}

/** Where one object goes when loaded shard-direct. */
export interface ShardTarget {
  /** Destination shard id. */
  shardId: string;
  /** The destination shard table, as named on its nodes. */
  relation: QualifiedName;
  /** Destination node names holding a placement of it (all are loaded). */
  nodes: string[];
}

/** Outcome of {@link planShardDirect}: a target per object key, or why the coordinator must route. */
export type ShardDirectPlan =
  | {
    ok: true;
    targets: Map<string, ShardTarget>;
    /**
     * Every shard table of the destination table by node holding a placement of it, including
     * shards no object goes to: what `truncate` empties there (sorted by node).
     */
    shardTables: Map<string, QualifiedName[]>;
  }
  | { ok: false; reason: string };

/**
 * Decide whether a table can be loaded shard-direct into a Citus destination, and map every
 * object to its destination shard. Conditions: the source was hash-distributed by Citus and
 * the manifest records its shard ranges; every object lists exactly one shard; the destination
 * table is hash-distributed on a column with the source's distribution column name and type
 * (Citus hashes with the type's hash function); both have the same set of hash ranges; every
 * destination shard has an active placement on one of `nodes`.
 */
export function planShardDirect(
  dest: { table: QualifiedName; columns: ColumnInfo[]; citus: CitusDestTable | undefined },
  source: { distribution: Distribution; columns?: ColumnInfo[]; objects: { key: string; shards?: string[] }[] },
  nodes: Set<string>,
): ShardDirectPlan {
  const d = source.distribution;
  const no = (reason: string): ShardDirectPlan => ({ ok: false, reason });
  if (d.method !== 'citus-hash' || !d.column || !d.shards || d.shards.length === 0) {
    return no('the source table was not hash-distributed by Citus');
  }
  const name = displayName(dest.table);
  const c = dest.citus;
  if (!c) return no(`the destination table ${name} is not a Citus table (or the target is not the Citus coordinator)`);
  if (c.info.method !== 'h' || !c.info.column) return no(`the destination table ${name} is not hash-distributed`);
  if (c.info.column !== d.column) return no(`the destination is distributed by ${c.info.column}, the source by ${d.column}`);
  const srcType = source.columns?.find((x) => x.name === d.column)?.type;
  if (srcType === undefined) return no(`the distribution column ${d.column} is not among the exported columns`);
  const dstType = dest.columns.find((x) => x.name === c.info.column)?.type;
  if (dstType !== srcType) return no(`the distribution column ${d.column} is ${srcType} in the source and ${dstType ?? 'missing'} in the destination`);
  const range = (min: string | null | undefined, max: string | null | undefined) => `${min ?? ''}..${max ?? ''}`;
  const byRange = new Map(c.shards.map((s) => [range(s.min, s.max), s]));
  const srcRange = new Map(d.shards.map((s) => [s.id, range(s.min, s.max)]));
  const same = c.shards.length === d.shards.length && byRange.size === c.shards.length && [...srcRange.values()].every((r) => byRange.has(r));
  if (!same) return no(`the destination's ${c.shards.length} shards have other hash ranges than the source's ${d.shards.length}`);
  const targets = new Map<string, ShardTarget>();
  for (const o of source.objects) {
    if (!o.shards || o.shards.length !== 1) return no(`object ${o.key} does not hold exactly one source shard`);
    const r = srcRange.get(o.shards[0]!);
    const ds = r === undefined ? undefined : byRange.get(r);
    if (!ds) return no(`object ${o.key} holds shard ${o.shards[0]}, which is not in the manifest's shard list`);
    const placed = ds.groups.map(citusNodeName);
    if (placed.length === 0 || placed.some((n) => !nodes.has(n))) return no(`destination shard ${ds.id} has no active placement on a reachable primary`);
    targets.set(o.key, { shardId: ds.id, relation: ds.relation, nodes: placed });
  }
  // Truncation empties every placement, not only those receiving objects, each on its node.
  const shardTables = new Map<string, QualifiedName[]>();
  for (const ds of c.shards) {
    const placed = ds.groups.map(citusNodeName);
    if (placed.length === 0 || placed.some((n) => !nodes.has(n))) return no(`destination shard ${ds.id} has no active placement on a reachable primary`);
    for (const n of placed) shardTables.set(n, [...(shardTables.get(n) ?? []), ds.relation]);
  }
  return { ok: true, targets, shardTables: new Map([...shardTables].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
}
