import type pg from 'pg';
import { DdlUnsupportedError, ManifestInvalidError } from '../errors.js';
import type { ManifestDistribution, ManifestTable } from '../manifest/types.js';
import { quoteIdent, quoteQualified, type QualifiedName } from '../pg/sql.js';

// Citus distribution as data: read from pg_dist_partition at export, replayed at import with
// create_reference_table / create_distributed_table calls that segferry writes itself, with
// bound parameters, from validated manifest fields (never SQL taken from storage).

/**
 * The distribution of the selected tables on a Citus coordinator: hash-distributed tables
 * (column, shard count, colocation group), reference tables and single-shard tables (Citus ≥
 * 11.3, partmethod `n` with a colocation group; `tenantSchema` when their schema is a
 * distributed schema, Citus ≥ 12). Citus local tables (on the coordinator, colocation 0) are
 * plain tables and not listed. Range and append tables: ERR_DDL_UNSUPPORTED naming the table
 * (Citus has deprecated both; their shard ranges cannot be replayed by create_distributed_table).
 */
export async function captureCitusDistribution(c: pg.Client, tables: readonly QualifiedName[]): Promise<ManifestDistribution[]> {
  // pg_dist_schema (schema-based sharding) exists from Citus 12 on.
  const hasSchemas = (await c.query<{ t: string | null }>(`SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_schema')::text AS t`)).rows[0]!.t !== null;
  const tenants = new Set(hasSchemas ? (await c.query<{ s: string }>('SELECT n.nspname AS s FROM pg_catalog.pg_dist_schema d JOIN pg_catalog.pg_namespace n ON n.oid = d.schemaid')).rows.map((r) => r.s) : []);
  const r = await c.query<{ schema: string; name: string; partmethod: string; repmodel: string; colocationid: number; col: string | null; shards: number }>(
    `SELECT n.nspname AS schema, c.relname AS name, p.partmethod::text AS partmethod, p.repmodel::text AS repmodel, p.colocationid,
            pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) AS col,
            (SELECT count(*)::int FROM pg_catalog.pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shards
       FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
      ORDER BY p.colocationid, n.nspname, c.relname`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)]);
  const out: ManifestDistribution[] = [];
  for (const t of r.rows) {
    const name = `${t.schema}.${t.name}`;
    if (t.partmethod === 'n' && t.repmodel === 't') {
      out.push({ schema: t.schema, name: t.name, kind: 'reference' });
    } else if (t.partmethod === 'h' && t.col !== null) {
      out.push({ schema: t.schema, name: t.name, kind: 'distributed', column: t.col, shardCount: t.shards, colocationGroup: t.colocationid });
    } else if (t.partmethod === 'n' && t.colocationid === 0) {
      continue; // a Citus local table: a plain table
    } else if (t.partmethod === 'n') {
      out.push({ schema: t.schema, name: t.name, kind: 'single-shard', colocationGroup: t.colocationid, ...(tenants.has(t.schema) ? { tenantSchema: true } : {}) });
    } else {
      const how = t.partmethod === 'r' ? 'range' : t.partmethod === 'a' ? 'append' : `partition method ${JSON.stringify(t.partmethod)}`;
      throw new DdlUnsupportedError(`${name} is ${how}-distributed: segferry replays hash-distributed, single-shard and reference tables only (Citus has deprecated append and range distribution, and their shard ranges cannot be replayed by create_distributed_table)`, {
        table: name, hint: 'leave the table out of the DDL export (--exclude-table) or export with --no-ddl; or turn it into a hash-distributed table at the source (alter_distributed_table or undistribute_table, then create_distributed_table)',
      });
    }
  }
  return out;
}

/** A statement segferry writes, with bound parameters. */
export interface BoundStatement {
  text: string;
  values: unknown[];
}

/**
 * Check the manifest's distribution against its tables (each entry names a table of the
 * export, a distribution column one of its columns, a shard count ≥ 1) and write the calls
 * that replay it: reference tables first; then each distributed schema once
 * (`citus_schema_distribute`, which makes its tables single-shard tables of one new group);
 * then per colocation group (hash or single-shard) the first table with `colocate_with =>
 * 'none'` (a new group, as at the source; hash: `shard_count => n`; single-shard: a NULL
 * distribution column) and the others `colocate_with =>` that table. Table and schema names
 * go in as `regclass`/`regnamespace` text, quoted; nothing is spliced into SQL.
 * @throws ManifestInvalidError on an entry that does not match the tables.
 */
export function distributionStatements(dist: readonly ManifestDistribution[], tables: readonly ManifestTable[]): BoundStatement[] {
  const bad = (why: string) => new ManifestInvalidError(`manifest.json: ddl.distribution: ${why}`, { key: 'manifest.json' });
  const seen = new Set<string>();
  for (const d of dist) {
    const name = `${d.schema}.${d.name}`;
    const t = tables.find((x) => x.schema === d.schema && x.name === d.name);
    if (!t) throw bad(`${name} is not a table of the export`);
    if (seen.has(name)) throw bad(`${name} is listed twice`);
    seen.add(name);
    if (d.kind === 'distributed') {
      if (!t.columns.some((c) => c.name === d.column)) throw bad(`${name}: distribution column ${JSON.stringify(d.column)} is not one of its columns`);
    }
  }
  const out: BoundStatement[] = [];
  for (const d of dist) {
    if (d.kind === 'reference') out.push({ text: 'SELECT pg_catalog.create_reference_table($1::regclass)', values: [quoteQualified(d)] });
  }
  const tenantSchemas = [...new Set(dist.filter((d) => d.kind === 'single-shard' && d.tenantSchema === true).map((d) => d.schema))];
  for (const s of tenantSchemas) out.push({ text: 'SELECT pg_catalog.citus_schema_distribute($1::regnamespace)', values: [quoteIdent(s)] });
  const leaders = new Map<number, ManifestDistribution>();
  for (const d of dist) {
    if (d.kind === 'reference' || (d.kind === 'single-shard' && d.tenantSchema === true)) continue;
    const leader = leaders.get(d.colocationGroup!);
    const single = d.kind === 'single-shard';
    if (leader && leader.kind !== d.kind) throw bad(`${d.schema}.${d.name} (${d.kind}) and ${leader.schema}.${leader.name} (${leader.kind}) share colocation group ${d.colocationGroup}`);
    if (!leader) {
      leaders.set(d.colocationGroup!, d);
      out.push(single
        ? { text: `SELECT pg_catalog.create_distributed_table($1::regclass, NULL, colocate_with => 'none')`, values: [quoteQualified(d)] }
        : { text: `SELECT pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => 'none', shard_count => $3::int)`, values: [quoteQualified(d), d.column, d.shardCount] });
    } else {
      if (leader.shardCount !== d.shardCount) throw bad(`${d.schema}.${d.name} and ${leader.schema}.${leader.name} share colocation group ${d.colocationGroup} with different shard counts`);
      out.push(single
        ? { text: 'SELECT pg_catalog.create_distributed_table($1::regclass, NULL, colocate_with => $2)', values: [quoteQualified(d), quoteQualified(leader)] }
        : { text: 'SELECT pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => $3)', values: [quoteQualified(d), d.column, quoteQualified(leader)] });
    }
  }
  return out;
}

/**
 * Drop the citus extension's own statements from a coordinator's pg_dump (`CREATE EXTENSION
 * IF NOT EXISTS citus …` and its `COMMENT ON EXTENSION`, each one line): a Citus destination
 * has the extension already, a plain server cannot create it (shared_preload_libraries), and
 * the distribution travels as data instead.
 */
export function withoutCitusExtension(sql: string): string {
  return sql.replace(/^(CREATE EXTENSION IF NOT EXISTS (citus|citus_columnar) WITH SCHEMA [^\n;]+;|COMMENT ON EXTENSION (citus|citus_columnar) IS '(?:[^'\n]|'')*';)\n/gm, '');
}
