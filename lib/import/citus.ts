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
import type { ManifestObject } from '../manifest/types.js';
import type { NodeEndpoint } from '../pg/conn.js';
import { displayName, type QualifiedName } from '../pg/sql.js';
import { citusNodeName, citusNodes, citusShards, citusTableInfo, type CitusNode } from '../topology/citus.js';
import type { ColumnInfo, Distribution } from '../topology/types.js';

/** Whether the server has the citus extension. */
export async function isCitus(client: pg.Client): Promise<boolean> {
  const r = await client.query(`SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'`);
  return r.rows.length > 0;
}

/** The destination Citus cluster's primaries by group (see {@link citusNodes}). */
export async function citusDestinationNodes(client: pg.Client, self: NodeEndpoint): Promise<Map<number, CitusNode>> {
  return citusNodes(client, self);
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
  | { ok: true; targets: Map<string, ShardTarget>; destinationShards: number }
  | { ok: false; reason: string };

/**
 * Decide whether a table can be loaded shard-direct into a Citus destination, and map every
 * object to its destination shard. Conditions: the source was hash-distributed by Citus and
 * the manifest records its shard ranges; every object lists exactly one shard; the destination
 * table is hash-distributed on a column with the source's distribution column name and type;
 * both have the same set of hash ranges.
 */
export async function planShardDirect(
  client: pg.Client,
  dest: { oid: number; table: QualifiedName; columns: ColumnInfo[] },
  source: { distribution: Distribution; columns: ColumnInfo[]; objects: ManifestObject[] },
  groups: Map<number, CitusNode>,
): Promise<ShardDirectPlan> {
  const d = source.distribution;
  const no = (reason: string): ShardDirectPlan => ({ ok: false, reason });
  if (d.method !== 'citus-hash' || !d.column || !d.shards || d.shards.length === 0) {
    return no('the source table was not hash-distributed by Citus (or its manifest has no shard ranges)');
  }
  const info = await citusTableInfo(client, dest.oid);
  if (!info) return no(`the destination table ${displayName(dest.table)} is not a Citus table`);
  if (info.method !== 'h' || !info.column) return no(`the destination table ${displayName(dest.table)} is not hash-distributed`);
  if (info.column !== d.column) return no(`the destination is distributed by ${info.column}, the source by ${d.column}`);
  const srcType = source.columns.find((c) => c.name === d.column)?.type;
  if (srcType === undefined) return no(`the distribution column ${d.column} is not among the exported columns`);
  const dstType = dest.columns.find((c) => c.name === info.column)?.type;
  if (dstType !== srcType) {
    // The hash function follows the column's type: equal ranges mean nothing across types.
    return no(`the distribution column ${d.column} is ${srcType} in the source and ${dstType ?? 'missing'} in the destination`);
  }
  const shards = await citusShards(client, dest.oid, dest.table.schema, true);
  const range = (min: string | null | undefined, max: string | null | undefined) => `${min ?? ''}..${max ?? ''}`;
  const byRange = new Map(shards.map((s) => [range(s.min, s.max), s]));
  const srcRanges = new Set(d.shards.map((s) => range(s.min, s.max)));
  if (shards.length !== d.shards.length || [...srcRanges].some((r) => !byRange.has(r)) || srcRanges.size !== d.shards.length) {
    return no(`the destination has ${shards.length} shards with other hash ranges than the source's ${d.shards.length}`);
  }
  const srcRange = new Map(d.shards.map((s) => [s.id, range(s.min, s.max)]));
  const targets = new Map<string, ShardTarget>();
  for (const o of source.objects) {
    if (!o.shards || o.shards.length !== 1) {
      return no(`object ${o.key} does not list exactly one source shard (exported before shard-aligned objects?)`);
    }
    const r = srcRange.get(o.shards[0]!);
    const ds = r === undefined ? undefined : byRange.get(r);
    if (!ds) return no(`object ${o.key} holds shard ${o.shards[0]}, which the manifest's shard list does not have`);
    const missing = ds.groups.filter((g) => !groups.has(g));
    if (ds.groups.length === 0 || missing.length > 0) {
      return no(`destination shard ${ds.id} has no active placement on an active primary`);
    }
    targets.set(o.key, { shardId: ds.id, relation: ds.relation, nodes: ds.groups.map(citusNodeName) });
  }
  return { ok: true, targets, destinationShards: shards.length };
}
