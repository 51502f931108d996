import type { ManifestObject, RowChecksum } from '../manifest/types.js';
import { displayName } from '../pg/sql.js';
import type { FormatSummary } from '../segment/types.js';
import type { PlanNode, RelationRead, StreamScan, TablePlan } from '../topology/types.js';
import type { CheckpointUnit } from './checkpoint.js';
import type { ExportPlan } from './plan.js';
import { dealShards, pageStarts } from './streams.js';

// The unit of export work: what the pool schedules, an exporter runs, the checkpoint records
// as done and a resume skips. One unit is a (table, node) pair with all the relations that
// node reads for the table, or, when the plan gives the pair several streams, one ctid page
// range of its one relation (docs/streams.md): the pair's streams take its ranges in order
// from one queue ({@link UnitQueue}).

/** One unit of export work. */
export interface ExportUnit {
  /**
   * Stable id, unique in a plan: `<objectName>_<node>` (its {@link group}), or
   * `<objectName>_<node>#<k>` for stream k of a (table, node) read in page ranges. The
   * checkpoint records done units by it.
   */
  id: string;
  /** `<objectName>_<node>`: the key stem its objects share with the other streams of the pair. */
  group: string;
  /**
   * Range k of n of its (table, node): a page range (its read carries `pages`), or for a
   * Citus worker a share of its shards (whole shards, one per stream).
   */
  stream?: { index: number; of: number };
  /**
   * With `stream`: how many sessions read the pair's units at once, each taking the next one
   * from the pair's queue when it has finished its previous one (the plan's streams for the
   * pair, at most its units).
   */
  sessions?: number;
  /**
   * With a page range: how it is read (docs/streams.md). `seq-filter`: a sequential scan with the
   * range as a filter (the exporter sets `enable_tidscan` off for it); absent: a TID range scan.
   */
  scan?: StreamScan;
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
  /**
   * Units shared with the other sessions of the pair (its streams): the session runs the units
   * it takes from here, in order, until none is left; `units` then lists all of them. Absent:
   * the session runs `units`. Never crosses to a worker thread.
   */
  queue?: UnitQueue;
  /**
   * A snapshot exported by the node's snapshot session (`pg_export_snapshot()`): the session
   * adopts it (`SET TRANSACTION SNAPSHOT`) before reading. Absent: its own snapshot.
   */
  snapshot?: string;
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

/** First page of each range of the (table, node) pairs read in streams, by unit group. */
export type RangeStarts = Record<string, number[]>;

/**
 * The plan's units, in plan order: tables as listed, and within a table the nodes in the order
 * of their first read; a pair the plan reads in n > 1 streams gives n range units. `recorded`
 * (a resumed checkpoint's) fixes a pair's ranges as its first run cut them, whatever the new
 * plan says, so that kept ranges and redone ones still cover every page once. Pure.
 */
export function planUnits(plan: Pick<ExportPlan, 'tables'>, recorded: RangeStarts = {}): ExportUnit[] {
  const out: ExportUnit[] = [];
  for (const t of plan.tables) {
    const byNode = new Map<string, RelationRead[]>();
    for (const r of t.reads) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
    for (const [node, reads] of byNode) {
      const group = unitId(t.objectName, node);
      // Citus: several shards of one worker, dealt whole to the pair's streams (docs/streams.md).
      const sp = t.streams?.find((s) => s.node === node);
      if (reads.length > 1 && reads.every((r) => r.shardId !== undefined) && sp && sp.streams > 1) {
        const dealt = dealShards(reads, sp.streams);
        dealt.forEach((idx, k) => out.push({ id: `${group}#${k}`, group, stream: { index: k, of: dealt.length }, sessions: dealt.length, table: t, node, reads: idx.map((i) => reads[i]!) }));
        continue;
      }
      const starts = reads.length === 1 ? recorded[group] ?? plannedStarts(t, node) : undefined;
      if (!starts || starts.length < 2) {
        out.push({ id: group, group, table: t, node, reads });
        continue;
      }
      const sessions = Math.max(1, Math.min(sp?.streams ?? 1, starts.length));
      // A filtered sequential scan reads the whole relation per range: only with one range per
      // stream. A resume keeps the first run's cut; if that was a queue of more ranges (read as
      // TID ranges then), they stay TID range scans.
      const seq = sp?.scan === 'seq-filter' && starts.length <= sessions;
      starts.forEach((from, k) => {
        const pages: [number, number | null] = [from, starts[k + 1] ?? null];
        out.push({ id: `${group}#${k}`, group, stream: { index: k, of: starts.length }, sessions, ...(seq ? { scan: 'seq-filter' as const } : {}), table: t, node, reads: [{ ...reads[0]!, pages }] });
      });
    }
  }
  return out;
}

/** The range starts the plan gives a (table, node), if several streams (a plan without `ranges`: one equal range per stream). */
function plannedStarts(t: TablePlan, node: string): number[] | undefined {
  const sp = t.streams?.find((s) => s.node === node);
  if (!sp || sp.streams <= 1 || sp.pages === undefined) return undefined;
  return sp.ranges ?? pageStarts(sp.pages, sp.streams);
}

/**
 * The units of one (table, node) read in streams, handed out in order to whichever of its
 * sessions asks first: a session that finishes a range takes the next, so the streams end
 * close together however fast each runs (docs/streams.md).
 */
export class UnitQueue {
  readonly #units: readonly ExportUnit[];
  #next = 0;

  constructor(units: readonly ExportUnit[]) {
    this.#units = units;
  }

  /** The next unit, now taken; undefined when every unit is taken. */
  take(): ExportUnit | undefined {
    return this.#units[this.#next++];
  }

  /** Units not taken yet. */
  get left(): number {
    return Math.max(0, this.#units.length - this.#next);
  }
}

/** The range starts of the units' groups read in streams (what a checkpoint records). */
export function rangeStarts(units: readonly ExportUnit[]): RangeStarts {
  const out: RangeStarts = {};
  for (const u of units) {
    const p = u.stream ? u.reads[0]?.pages : undefined;
    if (p) (out[u.group] ??= [])[u.stream!.index] = p[0];
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
      : units.find((x) => !x.stream && x.node === c.node && displayName(x.table.table) === c.table);
    if (u && !out.has(u.id)) out.set(u.id, c);
  }
  return out;
}

/** The checkpoint entry of a finished unit. */
export function checkpointEntry(r: UnitResult): CheckpointUnit {
  const c: CheckpointUnit = { unit: r.unit.id, table: displayName(r.unit.table.table), node: r.node, objects: r.objects, rows: r.rows, bytes: r.bytes };
  if (r.checksum) c.checksum = r.checksum;
  if (r.arrow) c.arrow = r.arrow;
  if (r.parquet) c.parquet = r.parquet;
  return c;
}

/** A unit result from its checkpoint entry. */
export function resultOf(unit: ExportUnit, c: CheckpointUnit): UnitResult {
  const r: UnitResult = { unit, node: c.node, objects: c.objects, rows: c.rows, bytes: c.bytes };
  if (c.checksum) r.checksum = c.checksum;
  if (c.arrow) r.arrow = c.arrow;
  if (c.parquet) r.parquet = c.parquet;
  return r;
}
