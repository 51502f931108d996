import { ConnectError, type SegferryError } from '../errors.js';
import type { makeEmitter } from '../events.js';
import { displayName } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import type { TablePlan } from '../topology/types.js';
import type { CheckpointWriter } from './checkpoint.js';
import type { ExportPlan } from './plan.js';
import { deleteUnitObjects } from './resume.js';
import { checkpointEntry, type ExportUnit, type NodeWork, type UnitResult } from './units.js';

/** Runs one node's queue, here or in a worker thread; `onUnitDone` gets the queue's own unit objects. */
export type NodeRunner = (w: NodeWork, signal: AbortSignal, onUnitDone: (r: UnitResult) => Promise<void>) => Promise<void>;

/** What the parts of one export share. */
export interface ExportContext {
  store: ObjectStore;
  plan: ExportPlan;
  emit: ReturnType<typeof makeEmitter>;
  /** Cancels the run (a pool task's signal). */
  signal: AbortSignal;
  /** Durable list of finished units. */
  checkpoint: CheckpointWriter;
  /** Runs a node's queue here or in a worker thread. */
  runNode: NodeRunner;
  /** Every finished unit of the export, kept and new, in the order they finished. */
  results: UnitResult[];
  /** Called with each finished unit once the checkpoint records it (default none). */
  onRecorded?: (r: UnitResult) => void;
}

/**
 * Run one node's queue of units. Each finished unit is recorded (results, checkpoint) before
 * the exporter goes on. When the node is lost (ConnectError) and every unit left is of a
 * replicated table, those are read from the next replica; any other failure is thrown.
 * Returns the units this queue finished.
 */
export async function runQueue(ctx: ExportContext, w: NodeWork): Promise<UnitResult[]> {
  const mine: UnitResult[] = [];
  const record = (r: UnitResult) => {
    mine.push(r);
    ctx.results.push(r);
    return ctx.checkpoint.record(checkpointEntry(r)).then(() => ctx.onRecorded?.(r));
  };
  try {
    await ctx.runNode(w, ctx.signal, record);
  } catch (e) {
    const left = w.units.filter((u) => !mine.some((r) => r.unit === u));
    if (!(e instanceof ConnectError) || ctx.signal.aborted || left.length === 0 || left.some((u) => u.table.distribution.kind !== 'replicated')) throw e;
    await replicaFallback(ctx, w, left, e, record);
  }
  return mine;
}

/**
 * Export the units of a lost node from the replicas of their tables, in the order the plan
 * lists them; only replicated tables can be read elsewhere. Objects the lost node had stored
 * for those units are deleted first. Each unit keeps its id; its result names the replica.
 */
export async function replicaFallback(
  ctx: ExportContext,
  lost: NodeWork,
  units: readonly ExportUnit[],
  cause: SegferryError,
  record: (r: UnitResult) => Promise<void>,
): Promise<void> {
  const { plan, signal } = ctx;
  await deleteUnitObjects(ctx.store, units.map((u) => ({ objectName: u.table.objectName, node: lost.node.name })));
  for (const u of units) {
    const candidates = (u.table.distribution.replicas ?? []).filter((n) => n !== lost.node.name);
    let lastErr: unknown = cause;
    let done = false;
    for (const name of candidates) {
      const node = plan.nodes.find((n) => n.name === name);
      if (!node) continue;
      ctx.emit({ type: 'retry', node: name, table: displayName(u.table.table), attempt: 2, reason: `node ${lost.node.name} lost (${cause.code}); reading the replica on ${name}` });
      const relocated: TablePlan = { ...u.table, reads: u.reads.map((r) => ({ ...r, node: name })) };
      const moved: ExportUnit = { id: u.id, group: u.group, table: relocated, node: name, reads: relocated.reads };
      try {
        await ctx.runNode({ node, units: [moved] }, signal, (r) => record({ ...r, unit: u }));
        done = true;
        break;
      } catch (e) {
        if (!(e instanceof ConnectError) || signal.aborted) throw e;
        lastErr = e;
      }
    }
    if (!done) throw lastErr;
  }
}
