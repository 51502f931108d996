/**
 * `truncate` on one destination node: the table's rows there and that node's ledger rows of the
 * table go in one transaction, so a ledger row never outlives the rows it records, nor the other
 * way round. Shared by import and copy. A route whose rows and ledger rows live on the same
 * nodes (lib/import/route.ts: the coordinator route on the coordinator, node-direct and Citus
 * shard-direct on each node) is thereby truncated atomically per node; nodes that only keep
 * ledger rows (an earlier run's other route) are tidied by {@link forgetTables}.
 */
import type pg from 'pg';
import { quoteQualified, type QualifiedName } from '../pg/sql.js';
import { forgetTable } from './ledger.js';
import type { ImportTablePlan } from './route.js';

/**
 * Relations to empty on a node for `truncate`: a Citus shard-direct table's shard tables there
 * (`truncateShards`, else those its objects go to), else the table's target relation there (the
 * destination table on the coordinator).
 */
export function truncateRelations(tp: ImportTablePlan, node: string): QualifiedName[] {
  const listed = tp.truncateShards?.[node];
  if (listed && listed.length > 0) return listed;
  const shards = tp.objects.filter((o) => o.relation !== undefined && o.targets.includes(node)).map((o) => o.relation!);
  if (shards.length > 0) return [...new Map(shards.map((r) => [quoteQualified(r), r])).values()];
  return [tp.targets.find((x) => x.node === node)?.relation ?? tp.destination];
}

/** True for a table loaded into Citus shard tables (shard-direct, or copied shard to shard). */
export function isShardToShard(tp: ImportTablePlan): boolean {
  return tp.truncateShards !== undefined || (tp.objects.length > 0 && tp.objects.every((o) => o.relation !== undefined));
}

/**
 * Empty `tp`'s relations on `node` ({@link truncateRelations}) and delete the node's ledger rows
 * of the table (every import's: the rows they record are gone), in one transaction. On a
 * failure the transaction is rolled back by the caller dropping the session (nothing of it
 * commits). Citus refuses changes to shard tables unless the session allows them
 * (`citus.enable_manual_changes_to_shards`), set for this transaction only.
 */
export async function truncateOnNode(client: pg.Client, tp: ImportTablePlan, node: string): Promise<void> {
  await client.query('BEGIN');
  if (isShardToShard(tp)) await client.query('SET LOCAL citus.enable_manual_changes_to_shards = on');
  await client.query(`TRUNCATE ${truncateRelations(tp, node).map(quoteQualified).join(', ')}`);
  await forgetTable(client, tp.table);
  await client.query('COMMIT');
}

/**
 * Delete a node's ledger rows of these tables, on a node where none of them is truncated: rows an
 * earlier run recorded there through another route (e.g. the coordinator's ledger, when the
 * tables are now truncated and loaded shard-direct on the workers).
 */
export async function forgetTables(client: pg.Client, tables: readonly Pick<ImportTablePlan, 'table'>[]): Promise<void> {
  for (const t of tables) await forgetTable(client, t.table);
}
