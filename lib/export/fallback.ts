import { ConnectError, type SegferryError } from '../errors.js';
import type { makeEmitter } from '../events.js';
import { displayName } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import type { TablePlan } from '../topology/types.js';
import type { ExportPlan } from './plan.js';
import { deleteUnitObjects } from './resume.js';
import type { ExportUnit, NodeWork, UnitResult } from './units.js';

/** Runs one node's queue, here or in a worker thread; `onUnitDone` gets the queue's own unit objects. */
export type NodeRunner = (w: NodeWork, signal: AbortSignal, onUnitDone: (r: UnitResult) => Promise<void>) => Promise<void>;

/** What the parts of one export share. */
export interface ExportContext {
  store: ObjectStore;
  plan: ExportPlan;
  emit: ReturnType<typeof makeEmitter>;
  /** The pool task's signal. */
  signal: AbortSignal;
  /** Records a finished unit (checkpoint, results, events). */
  record: (r: UnitResult) => Promise<void>;
  runNode: NodeRunner;
}

/**
 * Export the units of a lost node from the replicas of their tables, in the order the plan
 * lists them; only replicated tables can be read elsewhere. Objects the lost node had stored
 * for those units are deleted first. Each unit keeps its id; its result names the replica.
 */
export async function replicaFallback(ctx: ExportContext, lost: NodeWork, units: readonly ExportUnit[], cause: SegferryError): Promise<void> {
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
      const moved: ExportUnit = { id: u.id, table: relocated, node: name, reads: relocated.reads };
      try {
        await ctx.runNode({ node, units: [moved] }, signal, (r) => ctx.record({ ...r, unit: u }));
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
