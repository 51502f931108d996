import type { ManifestObject, RowChecksum } from '../manifest/types.js';
import { displayName } from '../pg/sql.js';
import type { FormatSummary } from '../segment/types.js';
import type { PlanNode, RelationRead, TablePlan } from '../topology/types.js';
import type { CheckpointUnit } from './checkpoint.js';
import type { ExportPlan } from './plan.js';

// The unit of export work: what the pool schedules, an exporter runs, the checkpoint records
// as done and a resume skips. Today one unit is a (table, node) pair with all the relations
// that node reads for the table; ctid-range units (several per node) or a plan split over
// hosts only change how the list is built.

/** One unit of export work. */
export interface ExportUnit {
  /**
   * Stable id, unique in a plan: `<objectName>_<node>`, its objects' key stem (the plan refuses
   * tables whose stems collide). The checkpoint records done units by it.
   */
  id: string;
  /** The table it exports (the plan's own object). */
  table: TablePlan;
  /** The node it reads. */
  node: string;
  /** The relations it reads there, in order (several Citus shards, or one relation). */
  reads: RelationRead[];
}

/** A node's queue of units, run one after another in one session (one snapshot). */
export interface NodeWork {
  node: PlanNode;
  units: ExportUnit[];
}

/** A finished unit: its objects are stored. */
export interface UnitResult extends FormatSummary {
  unit: ExportUnit;
  /** The node actually read: the unit's, or a replica after a fallback. */
  node: string;
  objects: ManifestObject[];
  rows: number;
  bytes: number;
  checksum?: RowChecksum;
}

/** The id of the unit of a table's object name on a node. */
export function unitId(objectName: string, node: string): string {
  return `${objectName}_${node}`;
}

/**
 * The plan's units, in plan order: tables as listed, and within a table the nodes in the order
 * of their first read. Pure.
 */
export function planUnits(plan: Pick<ExportPlan, 'tables'>): ExportUnit[] {
  const out: ExportUnit[] = [];
  for (const t of plan.tables) {
    const byNode = new Map<string, RelationRead[]>();
    for (const r of t.reads) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
    for (const [node, reads] of byNode) out.push({ id: unitId(t.objectName, node), table: t, node, reads });
  }
  return out;
}

/** Every plan node's queue of the given units (plan node order; nodes without units get an empty queue). */
export function nodeQueues(plan: Pick<ExportPlan, 'nodes'>, units: readonly ExportUnit[]): NodeWork[] {
  return plan.nodes.map((node) => ({ node, units: units.filter((u) => u.node === node.name) }));
}

/**
 * The checkpoint's done units matched to the plan's: by unit id, or for checkpoints written
 * before unit ids, by (table display name, node). Entries matching no unit are ignored.
 */
export function doneUnits(units: readonly ExportUnit[], recorded: readonly CheckpointUnit[]): Map<string, CheckpointUnit> {
  const out = new Map<string, CheckpointUnit>();
  for (const c of recorded) {
    const u = c.unit !== undefined
      ? units.find((x) => x.id === c.unit)
      : units.find((x) => x.node === c.node && displayName(x.table.table) === c.table);
    if (u && !out.has(u.id)) out.set(u.id, c);
  }
  return out;
}

/** The checkpoint entry of a finished unit. */
export function checkpointEntry(r: UnitResult): CheckpointUnit {
  const c: CheckpointUnit = { unit: r.unit.id, table: displayName(r.unit.table.table), node: r.node, objects: r.objects, rows: r.rows, bytes: r.bytes };
  if (r.checksum) c.checksum = r.checksum;
  if (r.arrow) c.arrow = r.arrow;
  return c;
}

/** A unit result from its checkpoint entry. */
export function resultOf(unit: ExportUnit, c: CheckpointUnit): UnitResult {
  const r: UnitResult = { unit, node: c.node, objects: c.objects, rows: c.rows, bytes: c.bytes };
  if (c.checksum) r.checksum = c.checksum;
  if (c.arrow) r.arrow = c.arrow;
  return r;
}
