import type pg from 'pg';
import { ColumnNotFoundError, TableNotFoundError, fromDatabaseError } from '../errors.js';
import { displayName, type QualifiedName } from '../pg/sql.js';
import type { ColumnInfo } from './types.js';

/** A relation found in a catalog. */
export interface FoundRelation {
  oid: number;
  /** pg_class.relkind: r table, p partitioned, f foreign, v view, m matview. */
  relkind: string;
}

/** Look a relation up by schema and name; undefined when absent. */
export async function findRelation(client: pg.Client, q: QualifiedName): Promise<FoundRelation | undefined> {
  const r = await client.query<{ oid: number; relkind: string }>(
    `SELECT c.oid::int8::float8 AS oid, c.relkind::text AS relkind
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p','f','v','m')`,
    [q.schema, q.name],
  );
  const row = r.rows[0];
  return row ? { oid: Number(row.oid), relkind: row.relkind } : undefined;
}

/** Like findRelation, but a missing table is a TableNotFoundError naming the node. */
export async function requireRelation(client: pg.Client, q: QualifiedName, node: string): Promise<FoundRelation> {
  let found: FoundRelation | undefined;
  try {
    found = await findRelation(client, q);
  } catch (err) {
    throw fromDatabaseError(err, { node, table: displayName(q), action: 'catalog lookup' });
  }
  if (!found) {
    throw new TableNotFoundError(`table ${displayName(q)} not found on node ${node}`, {
      node,
      table: displayName(q),
      sqlState: '42P01',
      hint: 'check the name (schema.table; quote mixed case as "Name") and that it exists on this node',
    });
  }
  return found;
}

/** A column with its postgres_fdw `column_name` option, if any. */
export interface CatalogColumn extends ColumnInfo {
  remoteName?: string;
}

/**
 * Data columns of a relation in attnum order, with their exact types. Generated columns
 * (`attgenerated`, GENERATED ALWAYS AS … STORED) are left out: COPY FROM refuses them and
 * the destination computes them (see {@link generatedColumns}).
 */
export async function relationColumns(client: pg.Client, oid: number): Promise<CatalogColumn[]> {
  const r = await client.query<{ name: string; type: string; notnull: boolean; fdwopts: string[] | null }>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS notnull, a.attfdwoptions AS fdwopts
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
        -- Generated columns are computed by the destination: COPY FROM cannot load them.
        AND a.attgenerated = ''
      ORDER BY a.attnum`,
    [oid],
  );
  return r.rows.map((row) => {
    const c: CatalogColumn = { name: row.name, type: row.type, notNull: row.notnull };
    const remote = optionValue(row.fdwopts, 'column_name');
    if (remote !== undefined) c.remoteName = remote;
    return c;
  });
}

/** Generated columns of a relation (name and type), in attnum order: not part of the data. */
export async function generatedColumns(client: pg.Client, q: QualifiedName): Promise<ColumnInfo[]> {
  const r = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
      ORDER BY a.attnum`,
    [q.schema, q.name],
  );
  return r.rows.map((row) => ({ name: row.name, type: row.type }));
}

/** Bytes on disk of a relation and, if partitioned, all its partitions (0 for foreign tables). */
export async function relationSize(client: pg.Client, q: QualifiedName): Promise<number> {
  const r = await client.query<{ size: string }>(
    // pg_partition_tree() lists nothing for a plain table: fall back to the table's own size.
    `WITH r AS (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2)
     SELECT COALESCE((SELECT sum(pg_catalog.pg_relation_size(t.relid)) FROM r, pg_catalog.pg_partition_tree(r.oid) t),
                     (SELECT pg_catalog.pg_relation_size(r.oid) FROM r), 0)::int8 AS size`,
    [q.schema, q.name],
  );
  return Number(r.rows[0]?.size ?? 0);
}

/** Read `key=value` from a pg options array (srvoptions, umoptions, ftoptions, attfdwoptions). */
export function optionValue(opts: string[] | null | undefined, key: string): string | undefined {
  if (!opts) return undefined;
  for (const o of opts) {
    const i = o.indexOf('=');
    if (i > 0 && o.slice(0, i) === key) return o.slice(i + 1);
  }
  return undefined;
}

/** The requested columns of a relation, in the requested order (default: all). */
export function pickColumns(all: CatalogColumn[], wanted: string[] | undefined, table: string, node: string): CatalogColumn[] {
  if (!wanted || wanted.length === 0) return all;
  return wanted.map((w) => {
    const c = all.find((x) => x.name === w);
    if (!c) {
      throw new ColumnNotFoundError(`column ${JSON.stringify(w)} not found in table ${table} on node ${node}`, { node, table, sqlState: '42703' });
    }
    return c;
  });
}
