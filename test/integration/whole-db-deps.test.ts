/**
 * Issue 14, "with --table, the tables and what they depend on": export --table (or
 * --table-file) with --ddl carries the tables' schemas, the types of their columns (enum,
 * domain with its base type and the function its CHECK calls, composite, range, array element
 * type), the functions of defaults, CHECKs, generated columns and triggers, the sequences of
 * defaults and the extensions a needed type belongs to; not the tables, types, functions or
 * views that were not selected. One server → an empty server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { exportTables, importTables, type Manifest, type SegferryEvent } from '../../lib/index.js';
import { findPgDump, pgDumpEnv } from '../../lib/ddl/pgdump.js';
import { parseConnection } from '../../lib/pg/conn.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { describeMultisetDiff, multisetSize, rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { startServers, type PgServer } from '../helpers/pg.js';

let src: PgServer;
let dst: PgServer;
/** One temporary folder for the file's exports, dumps and lists, removed at the end. */
let scratch: string;
const tmp = () => mkdtemp(join(scratch, 'd-'));

const SOURCE_SQL = `
CREATE SCHEMA types;
CREATE SCHEMA util;
CREATE SCHEMA app;
CREATE EXTENSION citext WITH SCHEMA util;
CREATE TYPE types.mood AS ENUM ('ok', 'meh', 'bad');
CREATE TYPE types.pair AS (a int, b text);
CREATE TYPE types.span AS RANGE (subtype = int4);
CREATE FUNCTION util.is_code(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT t ~ '^[A-Z]{3}$' $$;
CREATE DOMAIN types.code AS text CONSTRAINT code_ok CHECK (util.is_code(VALUE));
CREATE FUNCTION util.default_note() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'note' $$;
CREATE FUNCTION util.twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 * 2 $$;
CREATE FUNCTION util.positive(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 > 0 $$;
CREATE FUNCTION util.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := upper(NEW.note); RETURN NEW; END $$;
CREATE SEQUENCE util.ticket_no;
CREATE TABLE app.customers (id int PRIMARY KEY, name util.citext NOT NULL);
CREATE TABLE app.orders (
  id serial PRIMARY KEY,
  customer int REFERENCES app.customers (id),
  mood types.mood NOT NULL DEFAULT 'ok',
  code types.code,
  tags types.mood[],
  p types.pair,
  s types.span,
  qty int NOT NULL CONSTRAINT qty_positive CHECK (util.positive(qty)),
  doubled int GENERATED ALWAYS AS (util.twice(qty)) STORED,
  note text DEFAULT util.default_note(),
  ticket bigint DEFAULT nextval('util.ticket_no')
);
COMMENT ON TABLE app.orders IS 'orders of the shop';
CREATE INDEX orders_mood ON app.orders (mood) WHERE mood <> 'bad';
CREATE TRIGGER orders_stamp BEFORE INSERT OR UPDATE ON app.orders FOR EACH ROW EXECUTE FUNCTION util.stamp();
CREATE TABLE app.unselected (id int PRIMARY KEY, m types.mood);
CREATE TYPE types.unused AS ENUM ('z');
CREATE FUNCTION util.unused() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE VIEW app.orders_view AS SELECT id, qty FROM app.orders;
INSERT INTO app.customers SELECT i, 'Customer ' || i FROM generate_series(1, 20) i;
INSERT INTO app.orders (customer, mood, code, tags, p, s, qty)
  SELECT 1 + i % 20, (ARRAY['ok','meh','bad'])[1 + i % 3]::types.mood, (ARRAY['ABC','XYZ'])[1 + i % 2], ARRAY['ok', 'bad']::types.mood[],
         ROW(i, 'p' || i)::types.pair, types.span(i, i + 5), 1 + i % 7
    FROM generate_series(1, 500) i;
INSERT INTO app.unselected SELECT i, 'ok' FROM generate_series(1, 5) i;
`;

beforeAll(async () => {
  ensureBuilt();
  scratch = await mkdtemp(join(tmpdir(), 'sf-wholedb-deps-'));
  [src, dst] = await startServers(['deps-src', 'deps-dst']);
  await src.query(SOURCE_SQL);
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A schema-only custom-format dump of a database (segferry's ledger left out) and its entries as `DESC SCHEMA TAG`, in the archive's order. */
async function archive(s: PgServer, db: string): Promise<{ file: string; entries: Map<string, string> }> {
  const prog = findPgDump(15);
  const file = join(await tmp(), 'schema.dump');
  const env = pgDumpEnv(parseConnection(s.url(db)));
  const d = spawnSync(prog.path, ['--schema-only', '--no-owner', '--no-privileges', '--format=custom', '--exclude-schema=segferry', `--file=${file}`], { env, encoding: 'utf8' });
  expect(d.status, d.stderr).toBe(0);
  const l = spawnSync(join(dirname(prog.path), 'pg_restore'), ['--list', file], { encoding: 'utf8' });
  expect(l.status, l.stderr).toBe(0);
  const entries = new Map<string, string>();
  for (const line of l.stdout.split('\n')) {
    const m = /^(\d+); (\d+) (\d+) (.*?) ?(segferry)?$/.exec(line);
    if (!m || m[2] === '1262' || /^(ENCODING|STDSTRINGS|SEARCHPATH) /.test(m[4]!)) continue;
    entries.set(m[4]!, `${m[1]};`);
  }
  return { file, entries };
}

/** pg_restore's SQL for the named entries of an archive, in the order given. */
async function render(file: string, ids: string[]): Promise<string> {
  const list = join(await tmp(), 'list');
  await writeFile(list, ids.join('\n') + '\n');
  const r = spawnSync(join(dirname(findPgDump(15).path), 'pg_restore'), ['--no-owner', '--no-privileges', `--use-list=${list}`, '--file=-', file], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.replace(/^\\(un)?restrict [^\n]*\n/gm, '');
}

/**
 * The destination holds exactly `expected` (as pg_restore lists them), and each with the
 * source's definition: pg_restore of the same entries of both databases prints the same SQL.
 */
async function expectExactly(db: string, expected: string[]): Promise<void> {
  const have = await archive(dst, db);
  expect([...have.entries.keys()].sort()).toEqual([...expected].sort());
  const from = await archive(src, 'postgres');
  const srcIds = [...have.entries.keys()].map((k) => from.entries.get(k)!);
  expect(await render(have.file, [...have.entries.values()])).toBe(await render(from.file, srcIds));
}

/** What app.orders needs, as pg_restore -l names the entries. */
const ORDERS_AND_DEPENDENCIES = [
  'SCHEMA - app', 'SCHEMA - types', 'SCHEMA - util',
  'TYPE types mood', 'TYPE types pair', 'TYPE types span', 'DOMAIN types code',
  'FUNCTION util is_code(text)', 'FUNCTION util default_note()', 'FUNCTION util positive(integer)', 'FUNCTION util twice(integer)', 'FUNCTION util stamp()',
  'SEQUENCE util ticket_no',
  'TABLE app orders', 'COMMENT app TABLE orders', 'SEQUENCE app orders_id_seq', 'SEQUENCE OWNED BY app orders_id_seq', 'DEFAULT app orders id',
  'CONSTRAINT app orders orders_pkey', 'INDEX app orders_mood', 'TRIGGER app orders orders_stamp',
];

const SEQS = `SELECT (SELECT last_value FROM util.ticket_no) AS ticket, (SELECT last_value FROM app.orders_id_seq) AS orders`;

describe('--table carries what the tables depend on (issue 14)', () => {
  it('export --table app.orders --ddl, import --create into an empty server: exactly the table and its dependencies, the same definitions, rows and sequences; the foreign key to an unselected table is left out with a warning', async () => {
    const dir = await tmp();
    const events: SegferryEvent[] = [];
    const ex = await exportTables({ source: src.url(), tables: ['app.orders'], ddl: true, to: dir, onEvent: (e) => events.push(e) });
    expect(ex.manifest.ddl!.scope).toBe('tables');
    expect(ex.manifest.ddl!.sequences.map((s) => `${s.schema}.${s.name}`)).toEqual(['app.orders_id_seq', 'util.ticket_no']);
    const warnings = events.filter((e): e is Extract<SegferryEvent, { type: 'warning' }> => e.type === 'warning');
    expect(warnings.map((w) => [w.code, w.message])).toEqual([['foreign-key-left-out', 'foreign keys to tables outside the selection are not carried: app.orders.orders_customer_fkey → app.customers']]);
    const pre = await readFile(join(dir, ex.manifest.ddl!.pre.key), 'utf8');
    expect(pre).toContain('CREATE SCHEMA IF NOT EXISTS types;');
    expect(pre).not.toMatch(/citext|unselected|unused|orders_view/);

    await dst.query('CREATE DATABASE one');
    const res = await importTables({ from: dir, target: dst.url('one'), create: true });
    expect(res.rows).toBe(500);
    await expectExactly('one', ORDERS_AND_DEPENDENCIES);
    const a = await rowMultiset(src, 'SELECT * FROM app.orders');
    const b = await rowMultiset(dst, 'SELECT * FROM app.orders', 'one');
    expect(multisetSize(a)).toBe(500);
    expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
    expect(await dst.query(SEQS, [], 'one')).toEqual(await src.query(SEQS));
    // The dependencies work: the domain's CHECK calls util.is_code, the trigger and the defaults run.
    const bad = await dst.query(`INSERT INTO app.orders (code, qty) VALUES ('abc', 1)`, [], 'one').catch((e: { code?: string }) => e.code);
    expect(bad).toBe('23514');
    expect(await dst.query(`INSERT INTO app.orders (code, qty) VALUES ('ABC', 2) RETURNING note, doubled, ticket`, [], 'one')).toEqual([{ note: 'NOTE', doubled: 4, ticket: '501' }]);
  });

  it('export --table-file with two tables, one with a foreign key to the other (CLI): both, the foreign key and the extension a column type belongs to; import --create into an empty server', async () => {
    const d = await tmp();
    await writeFile(join(d, 'tables.txt'), '# a table and the one it references\napp.orders\napp.customers\n');
    const dir = join(d, 'export');
    const r = await runCli(['export', '--source', src.url(), '--table-file', join(d, 'tables.txt'), '--ddl', '--to', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('foreign-key-left-out');
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(['app.orders', 'app.customers']);
    expect(await readFile(join(dir, m.ddl!.pre.key), 'utf8')).toContain('CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA util;');

    await dst.query('CREATE DATABASE two');
    const i = await runCli(['import', '--from', dir, '--target', dst.url('two'), '--create', '-q']);
    expect(i.code, i.stderr).toBe(0);
    await expectExactly('two', [
      ...ORDERS_AND_DEPENDENCIES, 'EXTENSION - citext', 'COMMENT - EXTENSION citext',
      'TABLE app customers', 'CONSTRAINT app customers customers_pkey', 'FK CONSTRAINT app orders orders_customer_fkey',
    ]);
    for (const t of ['app.customers', 'app.orders']) {
      const a = await rowMultiset(src, `SELECT * FROM ${t}`);
      const b = await rowMultiset(dst, `SELECT * FROM ${t}`, 'two');
      expect(multisetSize(a), t).toBeGreaterThan(0);
      expect(sameMultiset(a, b), `${t}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    const orphan = await dst.query(`INSERT INTO app.orders (customer, qty) VALUES (999, 1)`, [], 'two').catch((e: { code?: string }) => e.code);
    expect(orphan).toBe('23503');
  });
});
