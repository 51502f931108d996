/**
 * Issue 14: whole databases. Selection (--all, --schema, patterns, excludes) resolved on a real
 * server holding the realistic sample database (test/helpers/sample-db.ts); every restore goes
 * into a second, freshly initialised server (its own initdb, password and roles), one new
 * database per test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chown, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { exportTables, importTables, planExport, SegferryError, type Manifest } from '../../lib/index.js';
import { findPgDump, runPgDump } from '../../lib/ddl/pgdump.js';
import { parseConnection } from '../../lib/pg/conn.js';
import { describeMultisetDiff, multisetSize, rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { SAMPLE_DB_SQL, SAMPLE_SEQUENCES, SAMPLE_TABLES } from '../helpers/sample-db.js';
import { manifestSchemaErrors } from '../helpers/manifest-schema.js';

let pgs: PgServer;
/** The destination server: nothing of the source's cluster (roles, databases) exists there. */
let dst: PgServer;
const dirs: string[] = [];
const SRC = 'src';

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-wholedb-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  ensureBuilt();
  [pgs, dst] = await Promise.all([startServer({ name: 'wholedb' }), startServer({ name: 'wholedb-dst' })]);
  await pgs.query(`CREATE DATABASE ${SRC}`);
  await pgs.query(SAMPLE_DB_SQL, [], SRC);
  // segferry's own ledger schema and an extension's table are never selected.
  await pgs.query('CREATE SCHEMA segferry; CREATE TABLE segferry.loads (x int)', [], SRC);
});

afterAll(async () => {
  await Promise.all([pgs?.destroy(), dst?.destroy()]);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const names = (p: { tables: { table: { schema: string; name: string } }[] }) => p.tables.map((t) => `${t.table.schema}.${t.table.name}`);

describe('selection (issue 14, item 1)', () => {
  it('--all: every ordinary and partitioned table, not partitions, views or the ledger schema; a partitioned table is read through its parent', async () => {
    const plan = await planExport({ source: pgs.url(SRC), all: true });
    expect(names(plan)).toEqual(SAMPLE_TABLES);
    const m = plan.tables.find((t) => t.table.name === 'measurements')!;
    expect(m.reads.map((r) => `${r.node}:${r.relation.schema}.${r.relation.name}`)).toEqual(['coordinator:sales.measurements']);
    expect(plan.topology).toBe('postgres');
    // Generated columns are not exported (COPY cannot load them; the DDL recomputes them).
    expect(plan.tables.find((t) => t.table.name === 'orders')!.columns.map((c) => c.name)).toEqual(['id', 'customer_id', 'status', 'amount', 'qty']);
  });

  it('--schema, patterns and excludes', async () => {
    expect(names(await planExport({ source: pgs.url(SRC), schemas: ['Odd Schema ü'] }))).toEqual(['Odd Schema ü.Big Table Ä']);
    expect(names(await planExport({ source: pgs.url(SRC), tables: ['sales.*'], excludeTables: ['sales.m*', '*.ticket?'] }))).toEqual(['sales.customers', 'sales.orders']);
    expect(names(await planExport({ source: pgs.url(SRC), tables: ['"Odd Schema ü"."Big Table "?', 'sales.orders'] }))).toEqual(['Odd Schema ü.Big Table Ä', 'sales.orders']);
    const e = await planExport({ source: pgs.url(SRC), tables: ['sales.nothing*'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_TABLE_NOT_FOUND');
  });

  it('CLI: plan with --table-file and --exclude-table-file lists the resolved tables', async () => {
    const d = await tmp();
    await writeFile(join(d, 'in.txt'), '# sales first\nsales.*\n\n"Odd Schema ü".*\n');
    await writeFile(join(d, 'out.txt'), 'sales.measurements\nsales.tickets\n');
    const r = await runCli(['plan', '--source', pgs.url(SRC), '--table-file', join(d, 'in.txt'), '--exclude-table-file', join(d, 'out.txt'), '-T', 'sales.customers']);
    expect(r.code, r.stderr).toBe(0);
    expect(names(JSON.parse(r.stdout) as Parameters<typeof names>[0])).toEqual(['sales.orders', 'Odd Schema ü.Big Table Ä']);
  });
});

describe('DDL in the export (issue 14, item 2)', () => {
  it('export --all stores pre-data and post-data objects with size and SHA-256, in the data snapshot, with sequence values', async () => {
    const dir = await tmp();
    const res = await exportTables({ source: pgs.url(SRC), all: true, to: dir });
    const ddl = res.manifest.ddl!;
    expect(ddl).toBeDefined();
    expect(ddl.snapshot).toBe('shared');
    expect(ddl.scope).toBe('database');
    expect(ddl.pgDumpVersion).toMatch(/pg_dump \(PostgreSQL\) \d+/);
    for (const part of [ddl.pre, ddl.post]) {
      const bytes = await readFile(join(dir, part.key));
      expect(bytes.length).toBe(part.bytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(part.sha256);
      expect(bytes.toString()).not.toMatch(/^\\(un)?restrict/m);
      expect(bytes.toString()).not.toContain('segferry');
    }
    const pre = await readFile(join(dir, ddl.pre.key), 'utf8');
    const post = await readFile(join(dir, ddl.post.key), 'utf8');
    expect(pre).toContain('CREATE TYPE sales.status AS ENUM');
    expect(pre).toContain('ATTACH PARTITION sales.measurements_12 FOR VALUES');
    expect(pre).toContain('ATTACH PARTITION sales.measurements_other DEFAULT');
    expect(pre).not.toContain('PRIMARY KEY');
    expect(post).toContain('PRIMARY KEY');
    expect(post).toContain('FOREIGN KEY');
    expect(post).toContain('CREATE TRIGGER customers_touch');
    expect(ddl.sequences.find((s) => s.name === 'orders_id_seq')).toEqual({ schema: 'sales', name: 'orders_id_seq', lastValue: '5000', isCalled: true });
    expect(ddl.sequences.map((s) => `${s.schema}.${s.name}`)).toEqual(['Odd Schema ü.Big Table Ä_id_seq', 'sales.customers_id_seq', 'sales.orders_id_seq', 'sales.ticket_no']);
    expect(ddl.matviews).toEqual([{ schema: 'sales', name: 'order_totals' }]);
  });

  it('pg_dump missing from the configured directory: ERR_PREREQUISITE naming what to install, no manifest', async () => {
    const dir = await tmp();
    const empty = await tmp();
    const e = await exportTables({ source: pgs.url(SRC), tables: ['sales.tickets'], ddl: true, pgBindir: empty, to: dir }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_PREREQUISITE');
    expect((e as SegferryError).message).toContain('pg_dump not found');
    expect((e as SegferryError).hint).toMatch(/postgresql-client/);
    expect(existsSync(join(dir, 'manifest.json'))).toBe(false);
  });
});

/** Every sequence of the database by the catalog (last_value is NULL before the first nextval). */
const ALL_SEQ_SQL = `SELECT schemaname, sequencename, last_value::text FROM pg_catalog.pg_sequences WHERE schemaname <> 'segferry' ORDER BY 1, 2`;
const SEQ_SQL = SAMPLE_SEQUENCES.map((s) => `SELECT '${s.replace(/'/g, "''")}' AS s, last_value, is_called FROM ${s}`).join(' UNION ALL ') + ' ORDER BY 1';

/** `pg_dump --schema-only` without segferry's ledger schema (and `\restrict` lines: runPgDump). */
async function schemaDump(server: PgServer, db: string, extra: string[] = []): Promise<string> {
  return runPgDump(findPgDump(15), parseConnection(server.url(db)), ['--schema-only', '--exclude-schema=segferry', ...extra]);
}

/** A new, empty database on the destination server. */
async function newDb(): Promise<string> {
  const name = `dst_${Math.random().toString(36).slice(2, 10)}`;
  await dst.query(`CREATE DATABASE ${name}`);
  return name;
}

async function userTables(db: string): Promise<string[]> {
  return (await dst.query<{ t: string }>(`SELECT n.nspname || '.' || c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema','segferry') AND n.nspname !~ '^pg_toast' ORDER BY 1`, [], db)).map((r) => r.t);
}

describe('restore: import --create with the DDL (issue 14, items 3 and 4)', () => {
  let exported: string;
  beforeAll(async () => {
    exported = await tmp();
    await exportTables({ source: pgs.url(SRC), all: true, to: exported, segmentSize: 16 * 1024 });
  });

  it('export --all, import --create into an empty database of another, freshly initialised server: same schema dump, same rows, every sequence the same, then a rerun loads nothing', async () => {
    const db = await newDb();
    const res = await importTables({ from: exported, target: dst.url(db), create: true });
    expect(res.notes.join('\n')).toMatch(/schema restored from the export's DDL \(pre-data before the data; post-data: \d+ statements; sequences: 4 set; ANALYZE: 5 tables\)/);
    expect(await schemaDump(dst, db)).toBe(await schemaDump(pgs, SRC));
    for (const t of [...SAMPLE_TABLES.map((x) => x.replace(/^Odd Schema ü\.Big Table Ä$/, '"Odd Schema ü"."Big Table Ä"')), 'sales.order_totals', 'sales.big_orders']) {
      const a = await rowMultiset(pgs, `SELECT * FROM ${t}`, SRC);
      const b = await rowMultiset(dst, `SELECT * FROM ${t}`, db);
      expect(multisetSize(a), t).toBeGreaterThan(0);
      expect(sameMultiset(a, b), `${t}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    expect(await dst.query(SEQ_SQL, [], db)).toEqual(await pgs.query(SEQ_SQL, [], SRC));
    const seqs = await pgs.query(ALL_SEQ_SQL, [], SRC);
    expect(seqs).toHaveLength(SAMPLE_SEQUENCES.length);
    expect(await dst.query(ALL_SEQ_SQL, [], db)).toEqual(seqs);
    // Keys, foreign keys and triggers are in place after the load.
    const dup = await dst.query(`INSERT INTO sales.orders (id, customer_id, qty) VALUES (1, 1, 1)`, [], db).catch((e: { code?: string }) => e.code);
    expect(dup).toBe('23505');
    const again = await importTables({ from: exported, target: dst.url(db), create: true });
    expect(again.loaded).toBe(0);
    expect(again.notes.join('\n')).toMatch(/finishing an earlier run/);
    expect(await schemaDump(dst, db)).toBe(await schemaDump(pgs, SRC));
  });

  it('a destination table with another definition: ERR_DDL_CONFLICT naming it and the difference, nothing created or loaded', async () => {
    const db = await newDb();
    await dst.query('CREATE SCHEMA sales; CREATE TABLE sales.orders (id bigint, customer_id text)', [], db);
    const e = await importTables({ from: exported, target: dst.url(db), create: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_DDL_CONFLICT');
    expect((e as SegferryError).message).toContain('column 2 is customer_id integer NOT NULL in the export but customer_id text at the destination');
    expect(await userTables(db)).toEqual(['sales.orders']);
    expect(await dst.query('SELECT count(*)::int AS n FROM sales.orders', [], db)).toEqual([{ n: 0 }]);
  });

  it('a tampered DDL object: ERR_CHECKSUM_MISMATCH before anything runs; a refused statement with a matching checksum: ERR_DDL_REFUSED', async () => {
    const dir = await tmp();
    await cp(exported, dir, { recursive: true });
    const key = join(dir, 'segferry-ddl-post-data.sql');
    const evil = (await readFile(key, 'utf8')) + "\nCOPY sales.orders TO PROGRAM 'touch /tmp/sf_pwned';\n";
    await writeFile(key, evil);
    const db = await newDb();
    const e = await importTables({ from: dir, target: dst.url(db), create: true }).catch((x: unknown) => x);
    expect((e as SegferryError).code).toBe('ERR_CHECKSUM_MISMATCH');
    expect((e as SegferryError).key).toBe('segferry-ddl-post-data.sql');
    expect(await userTables(db)).toEqual([]);
    // The attacker also fixes the manifest: the allowlist still refuses the statement.
    const mpath = join(dir, 'manifest.json');
    const m = JSON.parse(await readFile(mpath, 'utf8')) as Manifest;
    m.ddl!.post = { key: 'segferry-ddl-post-data.sql', bytes: Buffer.byteLength(evil), sha256: createHash('sha256').update(evil).digest('hex') };
    await writeFile(mpath, JSON.stringify(m));
    const e2 = await importTables({ from: dir, target: dst.url(db), create: true }).catch((x: unknown) => x);
    expect((e2 as SegferryError).code).toBe('ERR_DDL_REFUSED');
    expect((e2 as SegferryError).message).toContain('COPY sales.orders TO PROGRAM');
    expect(await userTables(db)).toEqual([]);
  });
});

describe('what only the source server has: roles, privileges, tablespaces (issue 14, item 1 into another server)', () => {
  it('objects owned by a role the destination lacks, granted to another, in a tablespace it lacks: import --create restores them owned by the importing role, without grants, in the default tablespace', async () => {
    // A tablespace directory the server account owns, inside the source's group directory (removed with it).
    const where = join(dirname(pgs.dataDir), 'sf_ts');
    await mkdir(where);
    const st = statSync(pgs.dataDir);
    await chown(where, st.uid, st.gid);
    await pgs.query('CREATE ROLE sf_app_owner NOLOGIN; CREATE ROLE sf_app_reader NOLOGIN');
    await pgs.query(`CREATE TABLESPACE sf_ts LOCATION '${where}'`);
    await pgs.query('CREATE DATABASE owned');
    await pgs.query(`CREATE SCHEMA app AUTHORIZATION sf_app_owner;
      CREATE TABLE app.items (id int PRIMARY KEY USING INDEX TABLESPACE sf_ts, name text NOT NULL) TABLESPACE sf_ts;
      CREATE INDEX items_name ON app.items (name) TABLESPACE sf_ts;
      ALTER TABLE app.items OWNER TO sf_app_owner;
      GRANT SELECT ON app.items TO sf_app_reader;
      INSERT INTO app.items SELECT i, 'item ' || i FROM generate_series(1, 25) i`, [], 'owned');
    const src = await schemaDump(pgs, 'owned');
    // What the destination has none of: the source's dump names them.
    expect(src).toContain('ALTER TABLE app.items OWNER TO sf_app_owner;');
    expect(src).toContain('GRANT SELECT ON TABLE app.items TO sf_app_reader;');
    expect(src).toContain('SET default_tablespace = sf_ts;');
    expect(await dst.query(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'sf_app%'`)).toEqual([]);

    const dir = await tmp();
    await exportTables({ source: pgs.url('owned'), all: true, to: dir });
    const db = await newDb();
    const res = await importTables({ from: dir, target: dst.url(db), create: true });
    expect(res.rows).toBe(25);
    // The same schema but for owners, grants and tablespaces (pg_restore's --no-owner --no-privileges --no-tablespaces).
    const filters = ['--no-owner', '--no-privileges', '--no-tablespaces'];
    expect(await schemaDump(dst, db, filters)).toBe(await schemaDump(pgs, 'owned', filters));
    const placed = await dst.query<{ rel: string; owner: string; spc: number; acl: string | null }>(
      `SELECT c.relname AS rel, pg_get_userbyid(c.relowner) AS owner, c.reltablespace::int AS spc, c.relacl::text AS acl FROM pg_class c
        WHERE c.relnamespace = 'app'::regnamespace ORDER BY 1`, [], db);
    expect(placed).toEqual([
      { rel: 'items', owner: dst.user, spc: 0, acl: null },
      { rel: 'items_name', owner: dst.user, spc: 0, acl: null },
      { rel: 'items_pkey', owner: dst.user, spc: 0, acl: null },
    ]);
    expect(await dst.query(`SELECT pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = 'app'`, [], db)).toEqual([{ owner: dst.user }]);
    expect(sameMultiset(await rowMultiset(pgs, 'SELECT * FROM app.items', 'owned'), await rowMultiset(dst, 'SELECT * FROM app.items', db))).toBe(true);
  });
});

describe('restore with --schema and --exclude-table (issue 14, item 5)', () => {
  it('export --schema sales --exclude-table sales.tickets, import --create: that schema without the table, rows and sequences equal', async () => {
    const dir = await tmp();
    const ex = await exportTables({ source: pgs.url(SRC), schemas: ['sales'], excludeTables: ['sales.tickets'], to: dir });
    expect(ex.manifest.ddl!.scope).toBe('schemas');
    expect(ex.manifest.tables.map((t) => t.name)).toEqual(['customers', 'measurements', 'orders']);
    const db = await newDb();
    await importTables({ from: dir, target: dst.url(db), create: true });
    const dump = (server: PgServer, d: string, extra: string[]) => runPgDump(findPgDump(15), parseConnection(server.url(d)), ['--schema-only', '--schema=sales', ...extra]);
    expect(await dump(dst, db, [])).toBe(await dump(pgs, SRC, ['--exclude-table=sales.tickets']));
    expect(await userTables(db)).not.toContain('sales.tickets');
    expect(await userTables(db)).not.toContain('Odd Schema ü.Big Table Ä');
    for (const t of ['sales.customers', 'sales.orders', 'sales.measurements', 'sales.order_totals']) {
      expect(sameMultiset(await rowMultiset(pgs, `SELECT * FROM ${t}`, SRC), await rowMultiset(dst, `SELECT * FROM ${t}`, db)), t).toBe(true);
    }
    // Every sequence the destination got has the source's value.
    const seqs = (await dst.query<{ s: string }>(`SELECT format('%I.%I', n.nspname, c.relname) AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND n.nspname = 'sales' ORDER BY 1`, [], db)).map((r) => r.s);
    expect(seqs).toEqual(expect.arrayContaining(['sales.customers_id_seq', 'sales.orders_id_seq']));
    for (const q of seqs) {
      const seq = `SELECT last_value, is_called FROM ${q}`;
      expect(await dst.query(seq, [], db), q).toEqual(await pgs.query(seq, [], SRC));
    }
  });
});

describe('static topology (issue 14, item 2)', () => {
  it('export --all through a static node list: the first node\'s DDL, dumped before the data; import --create gives the same schema and rows', async () => {
    const dir = await tmp();
    const ex = await exportTables({ topology: { nodes: [{ name: 'n1', url: pgs.url(SRC) }] }, all: true, to: dir });
    expect(ex.manifest.ddl!.snapshot).toBe('before-data');
    expect(ex.manifest.source.topology).toBe('static');
    const db = await newDb();
    await importTables({ from: dir, target: dst.url(db), create: true });
    expect(await schemaDump(dst, db)).toBe(await schemaDump(pgs, SRC));
    for (const t of ['sales.orders', 'sales.measurements']) {
      expect(sameMultiset(await rowMultiset(pgs, `SELECT * FROM ${t}`, SRC), await rowMultiset(dst, `SELECT * FROM ${t}`, db)), t).toBe(true);
    }
  });

});

describe('--schema-only then --data-only (issue 14, "Must show")', () => {
  it('schema-only export (DDL, manifest, no segments) → import --create; data-only export (no DDL, sequence values) → import --data-only --disable-triggers: the sample database equal', async () => {
    const schemaDir = await tmp();
    const r1 = await runCli(['export', '--source', pgs.url(SRC), '--all', '--schema-only', '--to', schemaDir, '-q']);
    expect(r1.code, r1.stderr).toBe(0);
    const m1 = JSON.parse(await readFile(join(schemaDir, 'manifest.json'), 'utf8')) as Manifest;
    expect(m1.schemaOnly).toBe(true);
    expect(manifestSchemaErrors(m1)).toBe('');
    expect(m1.objects).toEqual([]);
    expect(m1.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(SAMPLE_TABLES);
    expect(m1.tables.every((t) => t.rows === 0)).toBe(true);
    expect((await readdir(schemaDir)).sort()).toEqual(['manifest.json', 'segferry-ddl-post-data.sql', 'segferry-ddl-pre-data.sql']);

    const db = await newDb();
    // A schema-only export has nothing to load without --create.
    const e = await importTables({ from: schemaDir, target: dst.url(db) }).catch((x: unknown) => x);
    expect((e as SegferryError).code).toBe('ERR_INVALID_OPTION');
    const i1 = await importTables({ from: schemaDir, target: dst.url(db), create: true });
    expect(i1.loaded).toBe(0);
    expect(await schemaDump(dst, db)).toBe(await schemaDump(pgs, SRC));
    expect(await dst.query('SELECT count(*)::int AS n FROM sales.orders', [], db)).toEqual([{ n: 0 }]);

    const dataDir = await tmp();
    const ex = await exportTables({ source: pgs.url(SRC), all: true, dataOnly: true, to: dataDir, segmentSize: 16 * 1024 });
    expect(ex.manifest.ddl).toBeUndefined();
    expect((await readdir(dataDir)).filter((f) => f.startsWith('segferry-ddl'))).toEqual([]);
    expect(ex.manifest.sequences!.map((s) => `${s.schema}.${s.name}`)).toEqual(['Odd Schema ü.Big Table Ä_id_seq', 'sales.customers_id_seq', 'sales.orders_id_seq', 'sales.ticket_no']);
    expect(ex.manifest.matviews).toEqual([{ schema: 'sales', name: 'order_totals' }]);
    expect(manifestSchemaErrors(JSON.parse(await readFile(join(dataDir, 'manifest.json'), 'utf8')))).toBe('');
    expect(ex.manifest.objects.length).toBeGreaterThan(5);

    // Foreign keys (a cycle) and triggers exist already: load with them off, as pg_restore --disable-triggers.
    const r2 = await runCli(['import', '--from', dataDir, '--target', dst.url(db), '--data-only', '--disable-triggers', '--json']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(await schemaDump(dst, db)).toBe(await schemaDump(pgs, SRC));
    for (const t of ['"Odd Schema ü"."Big Table Ä"', 'sales.customers', 'sales.orders', 'sales.measurements', 'sales.tickets', 'sales.order_totals']) {
      const a = await rowMultiset(pgs, `SELECT * FROM ${t}`, SRC);
      expect(multisetSize(a), t).toBeGreaterThan(0);
      expect(sameMultiset(a, await rowMultiset(dst, `SELECT * FROM ${t}`, db)), t).toBe(true);
    }
    expect(await dst.query(SEQ_SQL, [], db)).toEqual(await pgs.query(SEQ_SQL, [], SRC));
    // The foreign keys hold for the loaded rows.
    const orphans = await dst.query<{ n: number }>(`SELECT count(*)::int AS n FROM sales.customers c WHERE favorite_order IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sales.orders o WHERE o.id = c.favorite_order)`, [], db);
    expect(orphans).toEqual([{ n: 0 }]);
  });

  it('import --schema-only of a full export: the schema and sequences, no rows; then --data-only loads the rows', async () => {
    const dir = await tmp();
    await exportTables({ source: pgs.url(SRC), schemas: ['Odd Schema ü'], to: dir });
    const db = await newDb();
    const a = await importTables({ from: dir, target: dst.url(db), create: true, schemaOnly: true });
    expect(a.loaded).toBe(0);
    expect(await dst.query('SELECT count(*)::int AS n FROM "Odd Schema ü"."Big Table Ä"', [], db)).toEqual([{ n: 0 }]);
    const b = await importTables({ from: dir, target: dst.url(db), dataOnly: true });
    expect(b.rows).toBe(77);
    expect(b.notes.join('\n')).toContain('sequences: 1 set');
    const seq = 'SELECT last_value, is_called FROM "Odd Schema ü"."Big Table Ä_id_seq"';
    expect(await dst.query(seq, [], db)).toEqual(await pgs.query(seq, [], SRC));
  });
});

describe('restore with a --table-file (issue 14, "the same with")', () => {
  it('export --table-file --ddl (the tables with their sequences, keys, indexes and what they depend on) → import --create into a database holding one of their schemas already: same definitions and rows', async () => {
    const d = await tmp();
    await writeFile(join(d, 'tables.txt'), '# one a line\n"Odd Schema ü".*\nsales.tickets\n');
    const dir = join(d, 'export');
    const r = await runCli(['export', '--source', pgs.url(SRC), '--table-file', join(d, 'tables.txt'), '--ddl', '--to', dir, '-q']);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.ddl!.scope).toBe('tables');
    const db = await newDb();
    // The schemas travel with the tables (CREATE SCHEMA IF NOT EXISTS: one that exists is used as is).
    await dst.query('CREATE SCHEMA sales', [], db);
    const i = await importTables({ from: dir, target: dst.url(db), create: true });
    expect(i.rows).toBe(77 + 42);
    const dump = (server: PgServer, x: string) => runPgDump(findPgDump(15), parseConnection(server.url(x)), ['--schema-only', '--table=sales.tickets', '--table="Odd Schema ü"."Big Table Ä"']);
    expect(await dump(dst, db)).toBe(await dump(pgs, SRC));
    for (const t of ['"Odd Schema ü"."Big Table Ä"', 'sales.tickets']) {
      expect(sameMultiset(await rowMultiset(pgs, `SELECT * FROM ${t}`, SRC), await rowMultiset(dst, `SELECT * FROM ${t}`, db)), t).toBe(true);
    }
    expect(await dst.query('SELECT last_value FROM sales.ticket_no', [], db)).toEqual(await pgs.query('SELECT last_value FROM sales.ticket_no', [], SRC));
  });
});
