/**
 * Citus → Citus shard to shard. When a hash-distributed source table and its destination have
 * the same distribution column (name and type) and the same set of shard hash ranges, every
 * row of a source shard belongs to the destination shard with the same range. Such a table is
 * copied in one unit per source shard: read on the worker that the export would read it on,
 * written into the destination shard table on every worker holding a placement of it, never
 * through either coordinator. The decision and the shard pairing are the importer's
 * shard-direct routing (lib/import/citus.ts `planShardDirect`), each source shard standing in
 * for one object.
 */
import type { ExportPlan } from '../export/plan.js';
import { planUnits, unitId, type ExportUnit } from '../export/units.js';
import type { DestSide } from '../import/destination.js';
import { routeTable, type ImportTablePlan } from '../import/route.js';
import type { SourceTable } from '../import/source.js';
import { displayName, type QualifiedName } from '../pg/sql.js';
import type { TablePlan } from '../topology/types.js';

/**
 * The unit id (ledger key) of one source shard: `<objectName>_shard-<shardid>`. Keyed by the
 * shard, not by the worker reading it, so a rerun recognises a finished shard even when the
 * shard was moved to another worker meanwhile (shard ids survive moves).
 */
export function shardUnitId(objectName: string, shardId: string): string {
  return `${objectName}_shard-${shardId}`;
}

/**
 * The source side of a hash-distributed Citus table as one object per shard (key
 * {@link shardUnitId}), or undefined when the table is not one: not `citus-hash`, or a read
 * that is not a whole shard.
 */
export function shardSourceTable(t: TablePlan): SourceTable | undefined {
  const d = t.distribution;
  if (d.method !== 'citus-hash' || t.reads.length === 0 || t.reads.some((r) => r.shardId === undefined || r.pages !== undefined)) return undefined;
  return {
    table: t.table,
    name: displayName(t.table),
    columns: t.columns,
    distribution: d,
    nodes: [...new Set(t.reads.map((r) => r.node))],
    objects: t.reads.map((r) => ({ key: shardUnitId(t.objectName, r.shardId!), node: r.node, segment: 0, bytes: r.estimatedBytes, shards: [r.shardId!] })),
  };
}

/** Outcome of {@link routeShardToShard}: the table's shard-to-shard plan, or why not. */
export type ShardRoute =
  | { ok: true; table: ImportTablePlan; /** Unit id → source shard id. */ shards: Map<string, string> }
  | { ok: false; reason: string };

/**
 * Route a source table shard to shard into a Citus destination, when its layout allows (see
 * the module comment). The plan's objects are the source shards, each with the destination
 * shard table (`relation`) and the workers holding its placements (`targets`). Truncation is
 * per worker, of the shard tables it holds (see {@link truncateRelations}): each worker's
 * shards are emptied in one transaction with its ledger rows, so a ledger row never outlives
 * the rows it records. Pure.
 */
export function routeShardToShard(t: TablePlan, dest: Pick<DestSide, 'kind' | 'nodes' | 'replicated' | 'tables'>): ShardRoute {
  if (dest.kind !== 'citus') return { ok: false, reason: 'the destination is not a Citus coordinator' };
  const st = shardSourceTable(t);
  if (!st) return { ok: false, reason: 'the source table is not hash-distributed by Citus' };
  // With a missing destination table routeTable plans a create on the coordinator: not shard to shard.
  if (!dest.tables.get(st.name)?.discovered) return { ok: false, reason: `the destination has no table ${st.name} yet` };
  const tp = routeTable(st, dest, 'auto', false);
  if (tp.route !== 'direct' || tp.objects.some((o) => o.relation === undefined)) return { ok: false, reason: tp.reason };
  const col = t.distribution.column!;
  const type = t.columns.find((c) => c.name === col)?.type ?? '';
  tp.reason = `shard to shard: the ${tp.objects.length} shards have the same hash ranges on both ends and ${col} is ${type} on both; each source shard is read on its worker and copied into the destination shard of the same range on the worker(s) holding it`;
  tp.truncate = tp.targets.map((x) => x.node);
  return { ok: true, table: tp, shards: new Map(st.objects.map((o) => [o.key, o.shards![0]!])) };
}

/** Relations to empty on a node for `truncate`: the shard tables it holds for a shard-to-shard table, else the table's target relation there. */
export function truncateRelations(tp: ImportTablePlan, node: string): QualifiedName[] {
  const shards = tp.objects.filter((o) => o.relation !== undefined && o.targets.includes(node)).map((o) => o.relation!);
  if (shards.length > 0) return shards;
  return [tp.targets.find((x) => x.node === node)?.relation ?? tp.destination];
}

/** True for a table copied shard to shard (its objects name destination shard tables). */
export function isShardToShard(tp: ImportTablePlan): boolean {
  return tp.objects.length > 0 && tp.objects.every((o) => o.relation !== undefined);
}

/**
 * The export units a copy plan runs, by unit id: the export's units (lib/export/units.ts), plus
 * one unit per shard of every shard-to-shard table (its one read of that shard). Pure: a plan
 * printed with `--dry-run` and given back runs the same units.
 */
export function copyExportUnits(source: Pick<ExportPlan, 'tables'>, tables: readonly ImportTablePlan[]): Map<string, ExportUnit> {
  const out = new Map(planUnits(source).map((u) => [u.id, u]));
  for (const tp of tables) {
    if (!isShardToShard(tp)) continue;
    const t = source.tables.find((x) => displayName(x.table) === tp.table);
    for (const r of t?.reads ?? []) {
      if (r.shardId === undefined) continue;
      const id = shardUnitId(t!.objectName, r.shardId);
      out.set(id, { id, group: unitId(t!.objectName, r.node), table: t!, node: r.node, reads: [r] });
    }
  }
  return out;
}
