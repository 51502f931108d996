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
import { routeTable, type ImportRoute, type ImportTablePlan } from '../import/route.js';
import type { SourceTable } from '../import/source.js';
import { displayName } from '../pg/sql.js';
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
export type ShardRoute = { ok: true; table: ImportTablePlan } | { ok: false; reason: string };

/**
 * Route a source table shard to shard into a Citus destination, when its layout allows (see
 * the module comment). The plan's objects are the source shards, each with the destination
 * shard table (`relation`) and the workers holding its placements (`targets`). Truncation is
 * the importer's shard-direct one (lib/import/truncate.ts): each worker's shard tables are
 * emptied in one transaction with its ledger rows, so a ledger row never outlives the rows it
 * records. Pure.
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
  return { ok: true, table: tp };
}

/** Options of {@link routeCopyTable}. */
export interface CopyRouteOptions {
  /** `auto` or `coordinator` (see CopyPlanOptions.route). */
  route: Extract<ImportRoute, 'auto' | 'coordinator'>;
  create: boolean;
  /** Staged through storage (`via`): objects are loaded as the importer loads them, per source node. */
  staged: boolean;
}

/**
 * Route one table of a copy. A hash-distributed Citus source table going into a Citus
 * destination (not staged) is copied in one unit per source shard on either route: shard to
 * shard when {@link routeShardToShard} allows (and the route is not `coordinator`), else each
 * shard's rows through the destination coordinator. Either way the units have the same ledger
 * keys, so a rerun that would take the other route finds them recorded on other nodes and is
 * refused (markLoaded) instead of copying them twice. Every other table is routed as an import
 * routes it. `shards` maps each shard unit's id to its source shard id.
 */
export function routeCopyTable(t: TablePlan, st: SourceTable, dest: Pick<DestSide, 'kind' | 'nodes' | 'replicated' | 'tables'>, o: CopyRouteOptions): { table: ImportTablePlan; shards?: Map<string, string> } {
  const byShard = dest.kind === 'citus' && !o.staged ? shardSourceTable(t) : undefined;
  if (!byShard) return { table: routeTable(st, dest, o.route, o.create) };
  const shards = new Map(byShard.objects.map((x) => [x.key, x.shards![0]!]));
  let why = 'requested';
  if (o.route === 'auto') {
    const sr = routeShardToShard(t, dest);
    if (sr.ok) return { table: sr.table, shards };
    why = `through the coordinator, not shard to shard: ${sr.reason}`;
  }
  const tp = routeTable(byShard, dest, 'coordinator', o.create);
  if (tp.create.length === 0) tp.reason = why;
  return { table: tp, shards };
}

/**
 * The export units a copy plan may run, by unit id: the export's units (lib/export/units.ts),
 * plus one unit per shard of every hash-distributed Citus table (its one read of that shard),
 * which {@link routeCopyTable} plans for a Citus destination. Pure: a plan printed with
 * `--dry-run` and given back runs the same units.
 */
export function copyExportUnits(source: Pick<ExportPlan, 'tables'>): Map<string, ExportUnit> {
  const out = new Map(planUnits(source).map((u) => [u.id, u]));
  for (const t of source.tables) {
    if (!shardSourceTable(t)) continue;
    for (const r of t.reads) {
      const id = shardUnitId(t.objectName, r.shardId!);
      out.set(id, { id, group: unitId(t.objectName, r.node), table: t, node: r.node, reads: [r] });
    }
  }
  return out;
}
