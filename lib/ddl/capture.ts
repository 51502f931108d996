import { createHash } from 'node:crypto';
import type pg from 'pg';
import { SegferryError, fromDatabaseError } from '../errors.js';
import { DDL_POST_KEY, DDL_PRE_KEY } from '../manifest/keys.js';
import type { ManifestDdl, ManifestDdlObject, ManifestSequence } from '../manifest/types.js';
import { closeQuietly, type NodeEndpoint } from '../pg/conn.js';
import { exportSnapshot } from '../pg/snapshot.js';
import { quoteIdent, quoteQualified, type QualifiedName } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import { listCatalogTables, SKIPPED_SCHEMAS } from '../topology/select.js';
import { findPgDump, runPgDump, SERVER_NEUTRAL_ARGS } from './pgdump.js';
import { captureCitusDistribution, withoutCitusExtension } from './citus.js';
import { dumpTablesWithDependencies, schemasIfNotExists } from './deps.js';
import { fdwSchemas, foreignPartitions, foreignTables, localPartitionsSQL, publicSchemaIfNotExists } from './fdw.js';

// The schema half of an export: pg_dump --schema-only of what was selected, in the data's
// snapshot where one session's snapshot covers all the data (a single server).

/** What the DDL covers: the whole database, some schemas, or named tables with what they depend on (lib/ddl/deps.ts). */
export type DdlScope = 'database' | 'schemas' | 'tables';

/**
 * A session on the node whose schema is dumped, holding a REPEATABLE READ transaction whose
 * snapshot pg_dump (`--snapshot`) and, on a single server, the exporter
 * (`SET TRANSACTION SNAPSHOT`) import: DDL, sequence values and rows then agree. Keep it open
 * until every exporter has begun; {@link close} ends it.
 */
export class DdlSnapshot {
  readonly #client: pg.Client;
  readonly endpoint: NodeEndpoint;
  readonly node: string;
  /** pg_export_snapshot()'s id. */
  readonly id: string;
  /** `server_version`, e.g. `15.18`. */
  readonly serverVersion: string;
  readonly serverMajor: number;

  private constructor(client: pg.Client, endpoint: NodeEndpoint, node: string, id: string, version: string, num: number) {
    this.#client = client;
    this.endpoint = endpoint;
    this.node = node;
    this.id = id;
    this.serverVersion = version;
    this.serverMajor = Math.floor(num / 10000);
  }

  /** Open the session and export its snapshot. */
  static async open(endpoint: NodeEndpoint, node: string): Promise<DdlSnapshot> {
    const s = await exportSnapshot(endpoint, { node, applicationName: 'segferry ddl', serverVersion: true });
    return new DdlSnapshot(s.client, endpoint, node, s.id, s.serverVersion, s.serverVersionNum);
  }

  /** The open session (read-only, in the exported snapshot). */
  get client(): pg.Client {
    return this.#client;
  }

  /** End the transaction and the session. */
  async close(): Promise<void> {
    await this.#client.query('COMMIT').catch(() => {});
    await closeQuietly(this.#client);
  }
}

/** Options of {@link captureDdl}. */
export interface CaptureDdlOptions {
  snapshot: DdlSnapshot;
  /** True when the exporters read the same snapshot (a single server). */
  shared: boolean;
  scope: DdlScope;
  /** The selected tables. */
  tables: QualifiedName[];
  /** `schemas` scope: the schemas named. */
  schemas?: string[];
  /** Directory holding pg_dump (default: SEGFERRY_PG_BINDIR, then the search in findPgDump). */
  pgBindir?: string;
  /**
   * The node is a Citus coordinator (default false): its dump holds the shell tables (shards
   * are hidden from pg_dump's session), the citus extension's own statements are dropped, and
   * the distribution is read as data (`ddl.distribution`).
   */
  citus?: boolean;
  /**
   * The node is a postgres_fdw coordinator (default false): the dump leaves out foreign
   * servers, user mappings, extensions and foreign tables; foreign partitions are recreated as
   * local partitions with the same bounds (appended to pre-data); a selected foreign table that
   * is not a partition is ERR_DDL_UNSUPPORTED.
   */
  fdw?: boolean;
  store: ObjectStore;
  signal?: AbortSignal;
  /**
   * Client-side encryption: turns an object's bytes into the stored ones (lib/crypto); the
   * manifest's size and SHA-256 are then of the stored bytes. Default: stored as dumped.
   */
  seal?: (key: string, body: Buffer) => Buffer;
  /**
   * Told what the `tables` scope leaves out (default: nothing is told): `foreign-key-left-out`
   * (a foreign key to a table outside the selection) and `owned-by-left-out` (a needed sequence
   * owned by a table outside the selection, carried without its OWNED BY).
   */
  onWarning?: (code: string, message: string) => void;
}

async function withPartitions(c: pg.Client, q: QualifiedName): Promise<QualifiedName[]> {
  // pg_dump 15's -t/-T do not take a partitioned table's partitions along: name them too.
  const r = await c.query<QualifiedName>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_catalog.pg_partition_tree((SELECT c2.oid FROM pg_catalog.pg_class c2 JOIN pg_catalog.pg_namespace n2 ON n2.oid = c2.relnamespace
                                           WHERE n2.nspname = $1 AND c2.relname = $2)) p
       JOIN pg_catalog.pg_class c ON c.oid = p.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      ORDER BY p.level, n.nspname, c.relname`, [q.schema, q.name]);
  return r.rows.length > 0 ? r.rows : [q];
}

/** pg_dump pattern naming exactly one object: both parts double-quoted (no wildcard inside quotes). */
const exact = (q: QualifiedName) => quoteQualified(q);

/**
 * pg_dump's selection arguments for the `database` and `schemas` scopes (names exact, quoted;
 * named tables go through lib/ddl/deps.ts). `fdw` (a postgres_fdw coordinator): the database
 * scope becomes its schemas one by one (so that no foreign server or user mapping is dumped,
 * lib/ddl/fdw.ts) and every foreign table is left out.
 */
export async function selectionArgs(c: pg.Client, scope: Exclude<DdlScope, 'tables'>, tables: QualifiedName[], schemas: string[] = [], fdw = false): Promise<string[]> {
  const args: string[] = [];
  const chosen = new Set(tables.map((t) => `${t.schema}\0${t.name}`));
  const foreign = new Set(fdw ? (await foreignTables(c, 'all')).map((t) => `${t.schema}\0${t.name}`) : []);
  if (scope === 'schemas') {
    for (const s of schemas) args.push(`--schema=${quoteIdent(s)}`);
  } else if (fdw) {
    for (const s of await fdwSchemas(c)) args.push(`--schema=${quoteIdent(s)}`);
  } else {
    for (const s of SKIPPED_SCHEMAS) args.push(`--exclude-schema=${quoteIdent(s)}`);
  }
  for (const f of foreign) {
    const [schema, name] = f.split('\0') as [string, string];
    args.push(`--exclude-table=${exact({ schema, name })}`);
  }
  const inScope = (s: string) => scope === 'database' || schemas.includes(s);
  for (const t of await listCatalogTables(c)) {
    if ((t.relkind === 'r' || t.relkind === 'p') && inScope(t.schema) && !chosen.has(`${t.schema}\0${t.name}`)) {
      for (const p of await withPartitions(c, t)) args.push(`--exclude-table=${exact(p)}`);
    }
  }
  return args;
}

/**
 * Sequences whose values travel with the DDL (pg_dump --schema-only leaves them out): those
 * owned by a selected table's columns (serial, identity, OWNED BY), `extra` ones (the `tables`
 * scope: sequences its tables' defaults use), and with the `database` and `schemas` scopes every
 * sequence of the dumped schemas. Values are read after the snapshot was
 * taken, so they are never below a value an exported row used (sequences are not transactional).
 */
export async function captureSequences(c: pg.Client, scope: DdlScope, tables: QualifiedName[], schemas: string[] = [], extra: readonly QualifiedName[] = []): Promise<ManifestSequence[]> {
  const r = await c.query<QualifiedName>(
    `SELECT DISTINCT n.nspname AS schema, s.relname AS name
       FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
      WHERE s.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                             WHERE e.classid = 'pg_catalog.pg_class'::regclass AND e.objid = s.oid AND e.deptype = 'e')
        AND (EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                                JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i')
                        AND (tn.nspname, t.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])))
             OR ($3 = 'database' AND n.nspname <> ALL ($5::text[]) AND n.nspname !~ '^pg_(toast|temp_)')
             OR ($3 = 'schemas' AND n.nspname = ANY ($4::text[]))
             OR (n.nspname, s.relname) IN (SELECT * FROM unnest($6::text[], $7::text[])))
      ORDER BY 1, 2`,
    [tables.map((t) => t.schema), tables.map((t) => t.name), scope, schemas, SKIPPED_SCHEMAS, extra.map((q) => q.schema), extra.map((q) => q.name)]);
  const out: ManifestSequence[] = [];
  for (const q of r.rows) {
    const v = await c.query<{ last_value: string; is_called: boolean }>(`SELECT last_value::text AS last_value, is_called FROM ${quoteQualified(q)}`);
    out.push({ schema: q.schema, name: q.name, lastValue: v.rows[0]!.last_value, isCalled: v.rows[0]!.is_called });
  }
  return out;
}

async function put(store: ObjectStore, key: string, text: string, seal?: (key: string, body: Buffer) => Buffer): Promise<ManifestDdlObject> {
  const plain = Buffer.from(text, 'utf8');
  const body = seal ? seal(key, plain) : plain;
  await store.putBytes(key, body);
  return { key, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
}

/**
 * Dump the selection's schema with pg_dump (`--schema-only` and SERVER_NEUTRAL_ARGS: no
 * owners, grants or tablespaces; one run per section, `--snapshot` of the held session), store `segferry-ddl-pre-data.sql` and
 * `segferry-ddl-post-data.sql`, and read the sequence values and populated materialized views.
 * Returns the manifest's `ddl` entry. Memory: each section's text is held once (at most
 * MAX_DDL_BYTES, lib/ddl/pgdump.ts).
 */
export async function captureDdl(o: CaptureDdlOptions): Promise<ManifestDdl> {
  const snap = o.snapshot;
  const prog = findPgDump(snap.serverMajor, o.pgBindir);
  const c = snap.client;
  const fail = (e: unknown, action: string) => fromDatabaseError(e, { node: snap.node, action });
  const parts = o.fdw ? await foreignPartitions(c, o.tables).catch((e) => { throw e instanceof SegferryError ? e : fail(e, 'list foreign partitions'); }) : [];
  let pre: string;
  let post: string;
  let needed: QualifiedName[] = [];
  if (o.scope === 'tables') {
    // Named tables: they and what they depend on (types, functions, sequences, schemas, extensions).
    const t = await dumpTablesWithDependencies({
      client: c, endpoint: snap.endpoint, snapshot: snap.id, pgDump: prog, tables: o.tables, fdw: o.fdw === true, ...(o.signal ? { signal: o.signal } : {}),
    }).catch((e) => { throw e instanceof SegferryError ? e : fail(e, 'read the tables\' dependencies'); });
    pre = schemasIfNotExists(t.pre);
    post = t.post;
    needed = t.closure.sequences;
    if (t.closure.foreignKeysLeftOut.length > 0) {
      o.onWarning?.('foreign-key-left-out', `foreign keys to tables outside the selection are not carried: ${t.closure.foreignKeysLeftOut.join(', ')}`);
    }
    if (t.closure.ownedByLeftOut.length > 0) {
      o.onWarning?.('owned-by-left-out', `sequences owned by tables outside the selection are carried without their OWNED BY: ${t.closure.ownedByLeftOut.join(', ')}`);
    }
  } else {
    const sel = await selectionArgs(c, o.scope, o.tables, o.schemas, o.fdw === true).catch((e) => { throw fail(e, 'list tables for pg_dump'); });
    const base = ['--schema-only', ...SERVER_NEUTRAL_ARGS, `--snapshot=${snap.id}`, ...sel];
    pre = await runPgDump(prog, snap.endpoint, [...base, '--section=pre-data'], o.signal);
    post = await runPgDump(prog, snap.endpoint, [...base, '--section=post-data'], o.signal);
  }
  if (o.citus) pre = withoutCitusExtension(pre);
  pre = publicSchemaIfNotExists(pre) + localPartitionsSQL(parts);
  const sequences = await captureSequences(c, o.scope, o.tables, o.schemas, needed).catch((e) => { throw fail(e, 'read sequences'); });
  const mv = await c.query<QualifiedName>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'm' AND c.relispopulated ORDER BY 1, 2`).catch((e) => { throw fail(e, 'list materialized views'); });
  const ddl: ManifestDdl = {
    pre: await put(o.store, DDL_PRE_KEY, pre, o.seal),
    post: await put(o.store, DDL_POST_KEY, post, o.seal),
    pgDumpVersion: prog.version,
    serverVersion: snap.serverVersion,
    snapshot: o.shared ? 'shared' : 'before-data',
    scope: o.scope,
    sequences,
  };
  // Only those the dump creates: pg_dump prints `CREATE MATERIALIZED VIEW schema.name`.
  const created = mv.rows.filter((m) => pre.includes(`CREATE MATERIALIZED VIEW ${quoteIdentIfNeeded(m.schema)}.${quoteIdentIfNeeded(m.name)} `));
  if (created.length > 0) ddl.matviews = created;
  if (o.citus) ddl.distribution = await captureCitusDistribution(c, o.tables).catch((e) => { throw e instanceof SegferryError ? e : fail(e, 'read pg_dist_partition'); });
  return ddl;
}

/**
 * What a data-only export (`--data-only` with `--all` or `--schema`) carries besides the rows,
 * as pg_dump --data-only does: sequence values (the scope's, as {@link captureSequences}) and
 * the populated materialized views of the scope (refreshed after the data). No pg_dump needed.
 */
export async function captureDataExtras(c: pg.Client, scope: DdlScope, tables: QualifiedName[], schemas: string[] = []): Promise<{ sequences: ManifestSequence[]; matviews: QualifiedName[] }> {
  const sequences = await captureSequences(c, scope, tables, schemas);
  const mv = scope === 'tables' ? { rows: [] } : await c.query<QualifiedName>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'm' AND c.relispopulated
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
        AND (($1 = 'database' AND n.nspname <> ALL ($3::text[]) AND n.nspname !~ '^pg_(toast|temp_)') OR ($1 = 'schemas' AND n.nspname = ANY ($2::text[])))
      ORDER BY 1, 2`, [scope, schemas, SKIPPED_SCHEMAS]);
  return { sequences, matviews: mv.rows };
}

/** pg_dump's spelling of an identifier: bare when lower-case simple, else double-quoted. */
function quoteIdentIfNeeded(s: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(s) ? s : quoteIdent(s);
}
