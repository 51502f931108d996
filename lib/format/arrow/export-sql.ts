import type pg from 'pg';
import { quoteIdent, quoteQualified, whereSQL } from '../../pg/sql.js';
import type { RelationRead, TablePlan } from '../../topology/types.js';
import { columnSpec, type PgColumn } from './pgtypes.js';

function source(read: RelationRead, filter: string | null): string {
  return `FROM ${quoteQualified(read.relation)}${whereSQL(filter, read.pages)}`;
}

function exprs(read: Pick<RelationRead, 'columns'>, table: Pick<TablePlan, 'columns'>): string[] {
  return (read.columns ?? table.columns.map((c) => c.name)).map(quoteIdent);
}

/**
 * The column types one node reports for one relation: the RowDescription of a `LIMIT 0`
 * query gives each column's base type OID and typmod (domains resolved by the server).
 */
export async function describeRead(client: pg.Client, read: RelationRead, table: Pick<TablePlan, 'columns'>, filter: string | null): Promise<PgColumn[]> {
  const res = await client.query(`SELECT ${exprs(read, table).join(', ')} ${source(read, filter)} LIMIT 0`);
  return res.fields.map((f, i) => ({
    name: table.columns[i]!.name,
    pgType: table.columns[i]!.type,
    oid: f.dataTypeID,
    typmod: f.dataTypeModifier,
  }));
}

/** The SELECT an Arrow export runs: columns without an Arrow mapping are read as `::text`. */
export function arrowSelectSQL(read: RelationRead, table: Pick<TablePlan, 'columns'>, filter: string | null, cols: PgColumn[]): string {
  const list = exprs(read, table).map((e, i) => (columnSpec(cols[i]!).kind === 'fallback' ? `${e}::text` : e));
  return `SELECT ${list.join(', ')} ${source(read, filter)}`;
}
