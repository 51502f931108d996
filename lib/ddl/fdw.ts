import type pg from 'pg';
import { DdlUnsupportedError } from '../errors.js';
import { quoteIdent, quoteQualified, type QualifiedName } from '../pg/sql.js';
import { SKIPPED_SCHEMAS } from '../topology/select.js';

// A postgres_fdw coordinator's schema without its foreign parts: the logical tables and their
// partition bounds, never the source's foreign servers, user mappings (which hold passwords)
// or foreign tables. The destination gets plain or locally partitioned tables.

/**
 * Schemas pg_dump is told to dump (`--schema` each) instead of the whole database: a dump
 * restricted to schemas leaves out every database-level object, foreign servers and user
 * mappings among them (pg_dump dumps those only with no --schema/--table), so no password of a
 * user mapping ever reaches the stored DDL. Extensions are left out too.
 */
export async function fdwSchemas(c: pg.Client): Promise<string[]> {
  const r = await c.query<{ s: string }>(
    `SELECT n.nspname AS s FROM pg_catalog.pg_namespace n
      WHERE n.nspname <> ALL ($1::text[]) AND n.nspname !~ '^pg_'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
      ORDER BY 1`, [SKIPPED_SCHEMAS]);
  return r.rows.map((x) => x.s);
}

/** Every foreign table of these schemas (partitions or not): `--exclude-table` for pg_dump. */
export async function foreignTables(c: pg.Client, schemas: readonly string[] | 'all'): Promise<QualifiedName[]> {
  const r = await c.query<QualifiedName>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'f' AND ($1::text[] IS NULL OR n.nspname = ANY ($1::text[])) ORDER BY 1, 2`, [schemas === 'all' ? null : schemas]);
  return r.rows;
}

/** A foreign partition to recreate as a local one. */
export interface LocalPartition {
  table: QualifiedName;
  parent: QualifiedName;
  /** `pg_get_expr(relpartbound)`: `FOR VALUES …` or `DEFAULT`. */
  bound: string;
  level: number;
}

/**
 * The foreign partitions under the selected tables, each with its direct parent and bound,
 * parents before children. A selected table that is itself a foreign table (not a partition)
 * has no local definition to give: ERR_DDL_UNSUPPORTED naming it.
 */
export async function foreignPartitions(c: pg.Client, tables: readonly QualifiedName[]): Promise<LocalPartition[]> {
  const plain = await c.query<{ t: string }>(
    `SELECT n.nspname || '.' || c.relname AS t FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'f' AND NOT c.relispartition AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY 1`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)]);
  if (plain.rows.length > 0) {
    const t = plain.rows[0]!.t;
    throw new DdlUnsupportedError(`${t} is a foreign table: its definition lives on the server it points to, and segferry never carries foreign tables`, {
      table: t, hint: 'leave it out of the DDL export (--exclude-table), export it with --no-ddl, or create the destination table yourself',
    });
  }
  const r = await c.query<{ schema: string; name: string; relkind: string; pschema: string | null; pname: string | null; bound: string | null; level: number; top: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, pn.nspname AS pschema, pc.relname AS pname,
            pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound, t.level, t.top
       FROM unnest($1::text[], $2::text[]) AS s(schema, name)
       CROSS JOIN LATERAL (SELECT p.relid, p.parentrelid, p.level, s.schema || '.' || s.name AS top
                             FROM pg_catalog.pg_partition_tree((SELECT c2.oid FROM pg_catalog.pg_class c2 JOIN pg_catalog.pg_namespace n2 ON n2.oid = c2.relnamespace
                                                                 WHERE n2.nspname = s.schema AND c2.relname = s.name)) p) t
       JOIN pg_catalog.pg_class c ON c.oid = t.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_catalog.pg_class pc ON pc.oid = t.parentrelid LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
      ORDER BY t.level, n.nspname, c.relname`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)]);
  const out: LocalPartition[] = [];
  for (const x of r.rows) {
    if (x.relkind !== 'f') continue;
    if (x.pschema === null || x.pname === null || x.bound === null) continue; // not a partition: checked above
    out.push({ table: { schema: x.schema, name: x.name }, parent: { schema: x.pschema, name: x.pname }, bound: x.bound, level: x.level });
  }
  return out;
}

/** The pre-data text that recreates foreign partitions as local tables with the same bounds. */
export function localPartitionsSQL(parts: readonly LocalPartition[]): string {
  if (parts.length === 0) return '';
  const lines = parts.map((p) => `CREATE TABLE ${quoteQualified(p.table)} PARTITION OF ${quoteQualified(p.parent)} ${p.bound};\n`);
  return `\n--\n-- segferry: the source's foreign partitions, as local partitions with the same bounds\n--\n\n${lines.join('\n')}`;
}

/**
 * pg_dump prints `CREATE SCHEMA public;` when public is selected with --schema, which fails on
 * every destination (public exists): make it `CREATE SCHEMA IF NOT EXISTS public;`.
 */
export function publicSchemaIfNotExists(sql: string): string {
  return sql.replace(/^CREATE SCHEMA public;$/m, `CREATE SCHEMA IF NOT EXISTS ${quoteIdent('public')};`);
}
