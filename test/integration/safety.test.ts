/**
 * Issue 13 (safety): storage is untrusted input, filters cannot change a statement's shape,
 * libpq key=value strings work without printing the password, and no option loses data
 * silently. Real PostgreSQL 15 servers; the CLI runs as a subprocess (`node bin/segferry.js`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, planExport, SegferryError, verifyImport, type Manifest } from '../../lib/index.js';
import { ensureBuilt, runCli, type CliResult } from '../helpers/cli.js';
import { freePort, startServer, type PgServer } from '../helpers/pg.js';

let pgs: PgServer;
const dirs: string[] = [];
const SRC = 'src';
const PWNED_FILE = 'sf_pwned_file';

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-safety-'));
  dirs.push(d);
  return d;
}

/** A libpq key=value string with the password quoted (it holds `/+@:`). */
function conninfo(db: string, port = pgs.port): string {
  const q = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return `host = 127.0.0.1 port=${port} dbname=${db} user=${pgs.user} password=${q(pgs.password)} application_name='segferry test'`;
}

async function newDb(): Promise<string> {
  const name = `dst_${Math.random().toString(36).slice(2, 10)}`;
  await pgs.query(`CREATE DATABASE ${name}`);
  return name;
}

async function expectRefused(p: Promise<unknown>, code: string): Promise<SegferryError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(SegferryError);
  expect((e as SegferryError).code, (e as Error).message).toBe(code);
  return e as SegferryError;
}

function expectNoPassword(r: CliResult): void {
  for (const s of [pgs.password, encodeURIComponent(pgs.password)]) {
    expect(r.stdout).not.toContain(s);
    expect(r.stderr).not.toContain(s);
  }
}

beforeAll(async () => {
  ensureBuilt();
  pgs = await startServer({ name: 'safety' });
  await pgs.query(`CREATE DATABASE ${SRC}`);
  for (const sql of [
    'CREATE TABLE parent (id int PRIMARY KEY)',
    'CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id))',
    'INSERT INTO parent SELECT g FROM generate_series(1, 10) g',
    'INSERT INTO child SELECT g, 1 + g % 10 FROM generate_series(1, 50) g',
    // note: NULL, '' and texts with ; ) and quotes, so filters and null strings have work to do.
    `CREATE TABLE items (id int PRIMARY KEY, note text)`,
    `INSERT INTO items SELECT g, CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'a;b)' ELSE 'it''s -- /* x' END FROM generate_series(1, 400) g`,
  ]) await pgs.query(sql, [], SRC);
});

afterAll(async () => {
  await pgs?.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('manifest session settings (item 2)', () => {
  it('an added session_replication_role=replica is refused before any statement runs; FK checks stay on', async () => {
    const dir = await tmp();
    await exportTables({ source: pgs.url(SRC), topology: 'postgres', tables: ['child'], to: dir });
    const path = join(dir, 'manifest.json');
    const m = JSON.parse(await readFile(path, 'utf8')) as Manifest;
    m.sessionSettings.session_replication_role = 'replica';
    await writeFile(path, JSON.stringify(m));
    const db = await newDb();
    // The destination has the tables, but no parent rows: every child row violates its FK.
    await pgs.query('CREATE TABLE parent (id int PRIMARY KEY)', [], db);
    await pgs.query('CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id))', [], db);
    const e = await expectRefused(importTables({ from: dir, target: pgs.url(db), topology: 'postgres' }), 'ERR_MANIFEST_INVALID');
    expect(e.message).toContain('session_replication_role');
    expect((await pgs.query<{ n: string }>('SELECT count(*) AS n FROM child', [], db))[0]!.n).toBe('0');
    // Nothing ran: not even the ledger was created.
    expect((await pgs.query<{ r: string | null }>(`SELECT to_regclass('segferry.loads') AS r`, [], db))[0]!.r).toBeNull();
  });
});

describe('--where is one boolean expression (item 5)', () => {
  const injections = [
    `id<3)) TO STDOUT; COMMIT; CREATE TABLE pwned(x int); --`,
    `id<3)) TO PROGRAM 'id > ${PWNED_FILE}' --`,
  ];

  async function nothingHappened(): Promise<void> {
    expect((await pgs.query<{ r: string | null }>(`SELECT to_regclass('public.pwned') AS r`, [], SRC))[0]!.r).toBeNull();
    expect(existsSync(join(pgs.dataDir, PWNED_FILE))).toBe(false);
  }

  it('refuses both injections when planning, with nothing created and no file written', async () => {
    for (const where of injections) {
      const dir = await tmp();
      await expectRefused(exportTables({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], where, to: dir }), 'ERR_INVALID_OPTION');
      await nothingHappened();
    }
  });

  it('refuses them in the exporter too, when the plan was built elsewhere', async () => {
    const plan = await planExport({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], where: 'id < 3' });
    for (const where of injections) {
      await expectRefused(exportTables({ plan: { ...plan, filter: where }, tables: ['items'], to: await tmp() }), 'ERR_INVALID_OPTION');
      await nothingHappened();
    }
  });

  it('refuses a filter the server cannot prepare as one expression, keeping the SQLSTATE', async () => {
    const e = await expectRefused(planExport({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], where: 'no_such_column = 1' }), 'ERR_INVALID_OPTION');
    expect(e.sqlState).toBe('42703');
  });

  it('a legitimate filter with ; and ) inside a string literal works', async () => {
    const dir = await tmp();
    const res = await exportTables({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], where: `note = 'a;b)' OR note = 'it''s -- /* x'`, to: dir });
    expect(res.manifest.tables[0]!.rows).toBe(200);
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.tables[0]!.rows).toBe(200);
    await nothingHappened();
  });
});

describe('libpq key=value connection strings (item 6)', () => {
  it('export and import with key=value source and target (password in the string)', async () => {
    const dir = await tmp();
    const exp = await exportTables({ source: conninfo(SRC), topology: 'postgres', tables: ['items'], to: dir });
    expect(exp.manifest.tables[0]!.rows).toBe(400);
    const db = await newDb();
    const imp = await importTables({ from: dir, target: conninfo(db), topology: 'postgres', create: true, verify: true });
    expect(imp.rows).toBe(400);
    expect(imp.verify?.ok).toBe(true);
    const want = await pgs.query(`SELECT id, note FROM items ORDER BY id`, [], SRC);
    expect(await pgs.query(`SELECT id, note FROM items ORDER BY id`, [], db)).toEqual(want);
  });

  it('a failing one (wrong port): exit 1, ERR_CONNECT, the password nowhere in the output', async () => {
    const dead = await freePort();
    for (const json of [false, true]) {
      const r = await runCli(['export', '--source', conninfo(SRC, dead), '--table', 'items', '--to', await tmp(), ...(json ? ['--json'] : [])]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^segferry: error ERR_CONNECT: .*127\.0\.0\.1:\d+\/src/m);
      expect(r.stderr).toContain(String(dead));
      expectNoPassword(r);
    }
  });

  it('an unknown key is a usage error (exit 2) that does not echo the password', async () => {
    const r = await runCli(['export', '--source', `${conninfo(SRC)} sslmod=require`, '--table', 'items', '--to', await tmp()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^segferry: error ERR_INVALID_OPTION: .*unknown key "sslmod"/m);
    expectNoPassword(r);
  });
});

describe('null strings (item 8)', () => {
  it("TEXT --null '' is refused (exit 2 in the CLI), before any connection", async () => {
    await expectRefused(exportTables({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], format: { kind: 'text', null: '' }, to: await tmp() }), 'ERR_INVALID_OPTION');
    const r = await runCli(['export', '--source', pgs.url(SRC), '--table', 'items', '--to', await tmp(), '--null', '']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^segferry: error ERR_INVALID_OPTION: the text null string ""/m);
  });

  it("CSV --null '' is lossless: empty strings and NULLs come back as they were, and verify matches", async () => {
    const dir = await tmp();
    await exportTables({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], format: { kind: 'csv', null: '' }, to: dir });
    const db = await newDb();
    const imp = await importTables({ from: dir, target: pgs.url(db), topology: 'postgres', create: true, verify: true });
    expect(imp.verify?.ok).toBe(true);
    const count = (d: string) => pgs.query<{ nulls: string; empties: string }>(
      `SELECT count(*) FILTER (WHERE note IS NULL) AS nulls, count(*) FILTER (WHERE note = '') AS empties FROM items`, [], d);
    expect(await count(db)).toEqual([{ nulls: '100', empties: '100' }]);
    expect(await count(db)).toEqual(await count(SRC));
    const v = await verifyImport({ from: dir, target: pgs.url(db), topology: 'postgres' });
    expect(v.ok).toBe(true);
  });
});

describe('columns', () => {
  it('--columns id,id is refused: such an export could not be imported', async () => {
    const e = await expectRefused(planExport({ source: pgs.url(SRC), topology: 'postgres', tables: ['items'], columns: ['id', 'note', 'id'] }), 'ERR_INVALID_OPTION');
    expect(e.message).toContain('named twice');
  });
});
