import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { DdlUnsupportedError } from '../errors.js';
import type { NodeEndpoint } from '../pg/conn.js';
import { quoteIdent, type QualifiedName } from '../pg/sql.js';
import { findPgRestore, runPgDump, runPgRestore, SERVER_NEUTRAL_ARGS, type PgDumpProgram } from './pgdump.js';

// Named tables (--table) with what they depend on, by PostgreSQL's own tools: the catalog
// (pg_depend) says which objects the tables need, pg_dump -Fc dumps the schemas holding them,
// and pg_restore -L renders exactly those entries of its archive, in pg_dump's dependency order.

/** System catalogs' fixed OIDs (pg_class.h etc.), the classid half of an object address. */
const PG_CLASS = '1259';
const PG_NAMESPACE = '2615';
const PG_EXTENSION = '3079';
/** Objects below this OID were made by initdb (built-in types, functions, pg_catalog); `public` (2200) is the exception. */
const FIRST_NORMAL_OID = 16384;
/** PG_PUBLIC_NAMESPACE, fixed since PostgreSQL 7.3. */
const PUBLIC_NAMESPACE = 2200;

/** What named tables need, from the catalog: the objects to keep and what pg_dump must be told. */
export interface TableClosure {
  /** `classid:objid` of every object whose pg_dump entry is kept. */
  keep: Set<string>;
  /** Schemas holding kept objects (pg_dump `--schema` each). */
  schemas: string[];
  /** Extensions a kept object belongs to (pg_dump `--extension` each: `CREATE EXTENSION IF NOT EXISTS`). */
  extensions: string[];
  /** Sequences among the kept objects (their values travel in the manifest). */
  sequences: QualifiedName[];
  /** `classid:objid` of kept sequences owned by a table outside the selection: their `OWNED BY` is left out. */
  ownerLeftOut: Set<string>;
  /** The same sequences as `schema.name`, for messages. */
  ownedByLeftOut: string[];
  /** Foreign keys of selected tables to tables outside the selection, left out: `schema.table.constraint → schema.table`. */
  foreignKeysLeftOut: string[];
}

const key = (cls: string, obj: string) => `${cls}:${obj}`;
const TABLE_KINDS = new Set(['r', 'p', 'f', 'v', 'm']);

/**
 * The dependency closure of the selected tables in the catalog (pg_depend), in rounds:
 * - members of a kept object (what depends on it automatically or internally: a table's
 *   partitions, columns' defaults and generated expressions, constraints, indexes, triggers,
 *   rules, statistics, owned and identity sequences; a type's array type, domain constraints,
 *   composite attributes' relation), except a foreign key to a table outside the selection
 *   (left out, listed) and, with `fdw`, foreign partitions (recreated as local ones, fdw.ts);
 * - what a kept object depends on: types (and through them base, element and sub types),
 *   functions (of defaults, CHECKs, domain CHECKs, generated columns, index expressions,
 *   triggers), sequences of defaults, collations, schemas; an object of an extension brings the
 *   extension instead. Built-in objects are never kept; neither is another table or view.
 * What a function's body uses is not in the catalog (PostgreSQL records no dependency for it,
 * except SQL-standard `BEGIN ATOMIC` bodies) and is not followed.
 * @throws DdlUnsupportedError when a needed sequence is the identity sequence of an unselected table.
 */
export async function tableClosure(c: pg.Client, tables: readonly QualifiedName[], fdw = false): Promise<TableClosure> {
  const rels = await c.query<{ oid: string; relkind: string }>(
    `SELECT DISTINCT p.relid::text AS oid, r.relkind::text AS relkind
       FROM unnest($1::text[], $2::text[]) AS s(schema, name)
       JOIN pg_catalog.pg_namespace n ON n.nspname = s.schema JOIN pg_catalog.pg_class t ON t.relnamespace = n.oid AND t.relname = s.name
      CROSS JOIN LATERAL (SELECT t.oid AS relid UNION SELECT relid FROM pg_catalog.pg_partition_tree(t.oid)) p
       JOIN pg_catalog.pg_class r ON r.oid = p.relid`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)]);
  // The selected tables and their partitions (with fdw: not the foreign ones).
  const selected = new Set(rels.rows.filter((r) => !(fdw && r.relkind === 'f')).map((r) => r.oid));
  const keep = new Set<string>([...selected].map((o) => key(PG_CLASS, o)));
  const fkOut = new Map<string, string>();
  let frontier = [...keep];
  while (frontier.length > 0) {
    const cls = frontier.map((k) => k.split(':')[0]!);
    const obj = frontier.map((k) => k.split(':')[1]!);
    const found: string[] = [];
    const members = await c.query<{ cls: string; obj: string; relkind: string | null; contype: string | null; confrelid: string | null; fk: string | null }>(
      `SELECT d.classid::text AS cls, d.objid::text AS obj, r.relkind::text AS relkind, k.contype::text AS contype, k.confrelid::text AS confrelid,
              CASE WHEN k.contype = 'f' THEN pg_catalog.format('%s.%s.%s → %s', kn.nspname, kr.relname, k.conname, k.confrelid::regclass) END AS fk
         FROM pg_catalog.pg_depend d
         LEFT JOIN pg_catalog.pg_class r ON d.classid = 'pg_catalog.pg_class'::regclass AND r.oid = d.objid
         LEFT JOIN pg_catalog.pg_constraint k ON d.classid = 'pg_catalog.pg_constraint'::regclass AND k.oid = d.objid
         LEFT JOIN pg_catalog.pg_class kr ON kr.oid = k.conrelid LEFT JOIN pg_catalog.pg_namespace kn ON kn.oid = kr.relnamespace
        WHERE (d.refclassid, d.refobjid) IN (SELECT * FROM unnest($1::oid[], $2::oid[])) AND d.deptype IN ('a', 'i', 'P', 'S')`, [cls, obj]);
    for (const m of members.rows) {
      if (m.relkind !== null && TABLE_KINDS.has(m.relkind) && !selected.has(m.obj)) continue;
      if (m.contype === 'f' && !selected.has(m.confrelid!)) {
        fkOut.set(key(m.cls, m.obj), m.fk!);
        continue;
      }
      found.push(key(m.cls, m.obj));
    }
    const deps = await c.query<{ cls: string; obj: string; deptype: string; extcls: string | null; ext: string | null; relkind: string | null }>(
      `SELECT d.refclassid::text AS cls, d.refobjid::text AS obj, d.deptype::text AS deptype, x.refclassid::text AS extcls, x.refobjid::text AS ext, r.relkind::text AS relkind
         FROM pg_catalog.pg_depend d
         LEFT JOIN pg_catalog.pg_depend x ON x.classid = d.refclassid AND x.objid = d.refobjid AND x.deptype = 'e'
         LEFT JOIN pg_catalog.pg_class r ON d.refclassid = 'pg_catalog.pg_class'::regclass AND r.oid = d.refobjid
        WHERE (d.classid, d.objid) IN (SELECT * FROM unnest($1::oid[], $2::oid[])) AND d.deptype IN ('n', 'a', 'i', 'e')
          AND (d.refobjid >= $3 OR (d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = $4))`,
      [cls, obj, FIRST_NORMAL_OID, PUBLIC_NAMESPACE]);
    for (const d of deps.rows) {
      if (d.deptype === 'e') found.push(key(d.cls, d.obj));
      else if (d.ext !== null) found.push(key(d.extcls!, d.ext));
      else if (d.relkind === null || d.relkind === 'S' || d.relkind === 'c' || selected.has(d.obj)) found.push(key(d.cls, d.obj));
    }
    frontier = [];
    for (const k of found) {
      if (keep.has(k) || fkOut.has(k)) continue;
      keep.add(k);
      frontier.push(k);
    }
  }
  const oids = (cls: string) => [...keep].filter((k) => k.startsWith(`${cls}:`)).map((k) => k.slice(cls.length + 1));
  const schemas = await c.query<{ s: string }>('SELECT nspname AS s FROM pg_catalog.pg_namespace WHERE oid = ANY ($1::oid[]) ORDER BY 1', [oids(PG_NAMESPACE)]);
  const exts = await c.query<{ e: string }>('SELECT extname AS e FROM pg_catalog.pg_extension WHERE oid = ANY ($1::oid[]) ORDER BY 1', [oids(PG_EXTENSION)]);
  const seqs = await c.query<{ oid: string; schema: string; name: string; deptype: string | null; owner: string | null }>(
    `SELECT s.oid::text AS oid, n.nspname AS schema, s.relname AS name, d.deptype::text AS deptype, d.refobjid::text AS owner
       FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
       LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.oid
                                       AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
      WHERE s.oid = ANY ($1::oid[]) AND s.relkind = 'S' ORDER BY 2, 3`, [oids(PG_CLASS)]);
  const ownerLeftOut = new Set<string>();
  const ownedByLeftOut: string[] = [];
  for (const s of seqs.rows) {
    if (s.owner === null || selected.has(s.owner)) continue;
    const name = `${s.schema}.${s.name}`;
    if (s.deptype === 'i') {
      throw new DdlUnsupportedError(`sequence ${name}, used by a selected table, is the identity sequence of a table outside the selection: its definition cannot be carried without that table`, {
        table: name, hint: 'select that table too, or export with --no-ddl',
      });
    }
    ownerLeftOut.add(key(PG_CLASS, s.oid));
    ownedByLeftOut.push(name);
  }
  return {
    keep,
    schemas: schemas.rows.map((r) => r.s),
    extensions: exts.rows.map((r) => r.e),
    sequences: seqs.rows.map((s) => ({ schema: s.schema, name: s.name })),
    ownerLeftOut,
    ownedByLeftOut,
    foreignKeysLeftOut: [...fkOut.values()].sort(),
  };
}

/** One entry of `pg_restore -l -v`: its dump id, catalog address (`0:0` when none), description and dependencies. */
export interface TocEntry {
  id: number;
  /** `tableoid:oid` as printed (e.g. `1259:16423`); `0:0` for comments, OWNED BY, ATTACH entries. */
  catalog: string;
  /** The rest of the line: `DESC SCHEMA TAG OWNER`, e.g. `TABLE app orders segferry`. */
  desc: string;
  deps: number[];
  line: string;
}

/** Parse `pg_restore -l -v` (entry lines `ID; TABLEOID OID DESC …`, each followed by its `;\tdepends on: …` line when it has any). */
export function parseToc(text: string): TocEntry[] {
  const out: TocEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (m) {
      out.push({ id: Number(m[1]), catalog: `${m[2]}:${m[3]}`, desc: m[4]!, deps: [], line });
      continue;
    }
    const d = /^;\s+depends on:([\d ]*)$/.exec(line);
    if (d && out.length > 0) out[out.length - 1]!.deps.push(...d[1]!.trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

/** Entries every SQL script starts with: `SET client_encoding`, `standard_conforming_strings`, `search_path`. */
const HEADER_ENTRIES = new Set(['ENCODING - ENCODING', 'STDSTRINGS - STDSTRINGS', 'SEARCHPATH - SEARCHPATH']);

/**
 * The entries of an archive to restore (pg_restore's `-L` list, in the archive's order, which
 * is pg_dump's dependency order): the header entries; every entry whose catalog address is in
 * the closure; every entry without one (a comment, `SEQUENCE OWNED BY`, `TABLE ATTACH`,
 * `INDEX ATTACH`) whose dependencies are all kept, except the `OWNED BY` of a sequence whose
 * owner is left out.
 */
export function selectToc(entries: readonly TocEntry[], closure: Pick<TableClosure, 'keep' | 'ownerLeftOut'>): TocEntry[] {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const kept = new Set<number>();
  for (const e of entries) if (HEADER_ENTRIES.has(e.desc.trim()) || (e.catalog !== '0:0' && closure.keep.has(e.catalog))) kept.add(e.id);
  // Entries without an address hang off others (and may hang off each other): until nothing changes.
  for (let changed = true; changed;) {
    changed = false;
    for (const e of entries) {
      if (kept.has(e.id) || e.catalog !== '0:0' || e.deps.length === 0 || !e.deps.every((d) => kept.has(d))) continue;
      if (e.desc.startsWith('SEQUENCE OWNED BY ') && e.deps.some((d) => closure.ownerLeftOut.has(byId.get(d)?.catalog ?? ''))) continue;
      kept.add(e.id);
      changed = true;
    }
  }
  return entries.filter((e) => kept.has(e.id));
}

/** The pre-data and post-data text of named tables and what they depend on, and what was left out. */
export interface TablesDdl {
  pre: string;
  post: string;
  closure: TableClosure;
}

/**
 * Dump named tables with what they depend on: {@link tableClosure} on the held session, then
 * `pg_dump -Fc --schema-only` of the closure's schemas and extensions in `snapshot` into a
 * private temporary directory, `pg_restore -l -v` of it, and `pg_restore -L` of
 * {@link selectToc}'s entries once per section. The directory is removed before returning.
 * Memory: the archive is on disk; each section's text is held once (MAX_DDL_BYTES).
 */
export async function dumpTablesWithDependencies(o: {
  client: pg.Client; endpoint: NodeEndpoint; snapshot: string; pgDump: PgDumpProgram; tables: readonly QualifiedName[]; fdw?: boolean; signal?: AbortSignal;
}): Promise<TablesDdl> {
  const restore = findPgRestore(o.pgDump);
  const closure = await tableClosure(o.client, o.tables, o.fdw === true);
  const dir = await mkdtemp(join(tmpdir(), 'segferry-ddl-'));
  try {
    const archive = join(dir, 'schema.dump');
    await runPgDump(o.pgDump, o.endpoint, [
      '--schema-only', ...SERVER_NEUTRAL_ARGS, '--format=custom', `--file=${archive}`, `--snapshot=${o.snapshot}`,
      ...closure.schemas.map((s) => `--schema=${quoteIdent(s)}`),
      ...closure.extensions.map((x) => `--extension=${quoteIdent(x)}`),
    ], o.signal);
    const toc = parseToc(await runPgRestore(restore, ['--list', '--verbose', archive], o.signal));
    const list = join(dir, 'list');
    await writeFile(list, selectToc(toc, closure).map((e) => e.line).join('\n') + '\n');
    const section = (s: string) => runPgRestore(restore, [...SERVER_NEUTRAL_ARGS, `--use-list=${list}`, `--section=${s}`, '--file=-', archive], o.signal);
    return { pre: await section('pre-data'), post: await section('post-data'), closure };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `CREATE SCHEMA x;` → `CREATE SCHEMA IF NOT EXISTS x;`: named tables are a part of a
 * database, and their schemas may exist at the destination already.
 */
export function schemasIfNotExists(sql: string): string {
  return sql.replace(/^CREATE SCHEMA ((?:"(?:[^"]|"")+"|[^\s;"]+));$/gm, 'CREATE SCHEMA IF NOT EXISTS $1;');
}
