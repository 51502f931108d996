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
import { LEDGER_TABLE, ensureLedger, forgetTable } from './ledger.js';
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

/**
 * Ledger key prefix of the mark a truncating copy leaves, per table, on the nodes of an earlier
 * run's other route while it empties the tables on its own: `segferry:truncating:<table>`. It is
 * never an object key (object keys are `<table>_<node>_segment.<n>` or `<table>_shard-<id>`).
 */
export const TRUNCATING_MARK = 'segferry:truncating:';

/**
 * On a node that kept an earlier run's ledger rows of these tables (another route): delete them
 * and leave a truncating mark per table, in one transaction, before any table is emptied. While a
 * mark is there, a rerun of that copy without truncate is refused (see {@link truncatingNodes}):
 * without the mark, a rerun on the old route would count the old rows as loaded though the new
 * route already emptied the tables; without the ledger rows and with no mark, it would copy
 * afresh onto rows not yet emptied. {@link forgetTables} removes the marks once every node is
 * truncated.
 */
export async function markTruncating(client: pg.Client, importId: string, tables: readonly Pick<ImportTablePlan, 'table'>[]): Promise<void> {
  await ensureLedger(client);
  await client.query('BEGIN');
  for (const t of tables) {
    await forgetTable(client, t.table);
    await client.query(`INSERT INTO ${LEDGER_TABLE} (import_id, object_key, table_name) VALUES ($1, $2, $3)`, [importId, TRUNCATING_MARK + t.table, t.table]);
  }
  await client.query('COMMIT');
}

/** Nodes whose ledger (object key → table, as read for one copy) holds a truncating mark of one of these tables. */
export function truncatingNodes(ledgers: ReadonlyMap<string, ReadonlyMap<string, string>>, tables: readonly Pick<ImportTablePlan, 'table'>[]): string[] {
  const names = new Set(tables.map((t) => t.table));
  return [...ledgers].filter(([, l]) => [...l].some(([k, t]) => k.startsWith(TRUNCATING_MARK) && names.has(t))).map(([n]) => n).sort();
}
