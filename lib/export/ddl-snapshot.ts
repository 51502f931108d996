import type { NodeEndpoint } from '../pg/conn.js';
import type { ExportPlan } from './plan.js';

// Citus and postgres_fdw coordinators: the DDL is dumped from the coordinator, the rows are
// read on the workers or data nodes, and a PostgreSQL snapshot can be imported only on the
// server that exported it (there is no cluster-wide snapshot). The rows the coordinator itself
// holds (its local tables) can still be read in the DDL's snapshot.

/**
 * The plan node whose reads can share the DDL session's snapshot on a Citus or postgres_fdw
 * coordinator, or undefined: the node named like the DDL's node that reads something, on the
 * same server and database as the DDL's session (a Citus plan names the coordinator from
 * pg_dist_node, which may differ from the URL given), when no snapshot is held for it already
 * (`plan --hold-snapshots`) and the run is not a resume (done units were read earlier).
 */
export function coordinatorSnapshotNode(plan: ExportPlan, ddlNode: { name: string; endpoint: NodeEndpoint }, resume: boolean): string | undefined {
  if (resume || (plan.topology !== 'citus' && plan.topology !== 'fdw')) return undefined;
  if (plan.snapshots?.[ddlNode.name] !== undefined) return undefined;
  const n = plan.nodes.find((x) => x.name === ddlNode.name);
  if (!n || !sameServer(n.endpoint, ddlNode.endpoint)) return undefined;
  return plan.tables.some((t) => t.reads.some((r) => r.node === n.name)) ? n.name : undefined;
}

function sameServer(a: NodeEndpoint, b: NodeEndpoint): boolean {
  return a.host === b.host && a.port === b.port && a.database === b.database && (a.hostaddr ?? '') === (b.hostaddr ?? '');
}
