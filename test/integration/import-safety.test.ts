/**
 * Issue 13, import side: everything read from storage is untrusted, and data never changes
 * silently. Real PostgreSQL 15 servers (source and destination) and directory stores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, SegferryError, type Manifest } from '../../lib/index.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startServers, type PgServer } from '../helpers/pg.js';

let src: PgServer;
let dst: PgServer;
const tmpDirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-safety-'));
  tmpDirs.push(d);
  return d;
}

async function exportTo(tables: string[], opts: { segmentSize?: number } = {}): Promise<{ location: string; manifest: Manifest }> {
  const location = await tmp();
  const res = await exportTables({ source: src.url(), tables, to: location, ...(opts.segmentSize ? { segmentSize: opts.segmentSize } : {}) });
  return { location, manifest: res.manifest };
}

async function rows(s: PgServer, sql: string): Promise<string[]> {
  return (await s.query<Record<string, unknown>>(sql)).map((r) => JSON.stringify(Object.values(r)));
}

async function ledgerRows(manifestId: string): Promise<number> {
  const [t] = await dst.query<{ r: string | null }>(`SELECT to_regclass('segferry.loads')::text AS r`);
  if (!t!.r) return 0;
  const [r] = await dst.query<{ n: string }>('SELECT count(*) AS n FROM segferry.loads WHERE import_id = $1', [manifestId]);
  return Number(r!.n);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SegferryError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e, `expected ${code}`).toBeInstanceOf(SegferryError);
  expect((e as SegferryError).code, (e as Error).message).toBe(code);
  return e as SegferryError;
}

beforeAll(async () => {
  ensureBuilt();
  [src, dst] = await startServers(['safety-src', 'safety-dst']);
  // The test role is named segferry: once the ledger schema exists, "$user" would put
  // unqualified tables there.
  for (const s of [src, dst]) await s.query('ALTER ROLE segferry SET search_path = public');
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

describe('a crafted manifest cannot run SQL on the destination (item 1)', () => {
  it('an injected column type is refused before any statement runs: no table, no file, no ledger rows', async () => {
    await src.query('CREATE TABLE inj (id int, v text)');
    await src.query(`INSERT INTO inj SELECT g, 'v' || g FROM generate_series(1, 50) g`);
    const { location, manifest } = await exportTo(['inj']);
    const pwn = join(tmpdir(), `sf-pwn-${randomBytes(8).toString('hex')}`);
    const crafted = structuredClone(manifest);
    crafted.tables[0]!.columns[0]!.type = `integer); CREATE TABLE injected(x int); COPY (SELECT 1) TO PROGRAM 'id > ${pwn}'; SELECT (1`;
    await writeFile(join(location, 'manifest.json'), JSON.stringify(crafted, null, 2));

    const e = await expectCode(importTables({ from: location, target: dst.url(), create: true }), 'ERR_MANIFEST_UNSAFE');
    expect(e.table).toBe('public.inj');
    // The CLI refuses the same way (exit 1, the code named).
    const cli = await runCli(['import', '--from', location, '--target', dst.url(), '--create']);
    expect(cli.code, cli.stderr).toBe(1);
    expect(cli.stderr).toContain('ERR_MANIFEST_UNSAFE');

    const [r] = await dst.query<{ injected: string | null; inj: string | null }>(`SELECT to_regclass('public.injected')::text AS injected, to_regclass('public.inj')::text AS inj`);
    expect(r).toEqual({ injected: null, inj: null });
    expect(existsSync(pwn)).toBe(false);
    expect(await ledgerRows(manifest.id)).toBe(0);
  });

  it('names from the manifest reach SQL quoted; a NUL or an over-long name is refused as invalid', async () => {
    const { location, manifest } = await exportTo(['inj']);
    const bad = structuredClone(manifest);
    bad.tables[0]!.columns[1]!.name = 'v\u0000x';
    await writeFile(join(location, 'manifest.json'), JSON.stringify(bad));
    await expectCode(importTables({ from: location, target: dst.url(), create: true }), 'ERR_MANIFEST_INVALID');
    const long = structuredClone(manifest);
    long.tables[0]!.columns[1]!.name = 'x'.repeat(64);
    await writeFile(join(location, 'manifest.json'), JSON.stringify(long));
    await expectCode(importTables({ from: location, target: dst.url(), create: true }), 'ERR_MANIFEST_INVALID');
    const settings = structuredClone(manifest);
    settings.sessionSettings.session_replication_role = 'replica';
    await writeFile(join(location, 'manifest.json'), JSON.stringify(settings));
    await expectCode(importTables({ from: location, target: dst.url(), create: true }), 'ERR_MANIFEST_INVALID');
    const [r] = await dst.query<{ inj: string | null }>(`SELECT to_regclass('public.inj')::text AS inj`);
    expect(r!.inj).toBeNull();
  });

  it('create builds the table from the types as the destination spells them', async () => {
    await src.query(`CREATE TABLE typed (id int NOT NULL, n numeric(10,2), s character varying(20), ts timestamp(3) with time zone, arr integer[], vb varchar(5)[])`);
    await src.query(`INSERT INTO typed VALUES (1, 12.5, 'x', '2026-01-02 03:04:05.678+00', '{1,2}', '{ab,cd}'), (2, NULL, NULL, NULL, NULL, NULL)`);
    const { location } = await exportTo(['typed']);
    const res = await importTables({ from: location, target: dst.url(), create: true, verify: true });
    expect(res.verify?.ok).toBe(true);
    const types = `SELECT attname, format_type(atttypid, atttypmod) AS t, attnotnull FROM pg_attribute WHERE attrelid = 'public.typed'::regclass AND attnum > 0 ORDER BY attnum`;
    expect(await rows(dst, types)).toEqual(await rows(src, types));
  });
});

describe('names with a dot, upper case or a space (item 7)', () => {
  beforeAll(async () => {
    await src.query('CREATE SCHEMA "Odd Schema"');
    await src.query('CREATE TABLE "a.b" (id int, v text)');
    await src.query('CREATE TABLE "Mixed" (id int, v text)');
    await src.query('CREATE TABLE "Odd Schema"."x.y" (id int, v text)');
    for (const t of ['"a.b"', '"Mixed"', '"Odd Schema"."x.y"']) await src.query(`INSERT INTO ${t} SELECT g, md5(g::text) FROM generate_series(1, 300) g`);
    await dst.query('CREATE SCHEMA "Odd Schema"');
    // A lower-case twin that the old display-string lookup would have picked.
    await dst.query('CREATE TABLE mixed (id int, v text)');
  });

  it('round-trip with import --verify -t through the CLI', async () => {
    const { location } = await exportTo(['"a.b"', '"Mixed"', '"Odd Schema"."x.y"']);
    for (const t of ['"a.b"', '"Mixed"', '"Odd Schema"."x.y"']) {
      const r = await runCli(['import', '--from', location, '--target', dst.url(), '--create', '--verify', '-t', t]);
      expect(r.code, `${t}: ${r.stderr}`).toBe(0);
      expect(await rows(dst, `SELECT * FROM ${t} ORDER BY id`)).toEqual(await rows(src, `SELECT * FROM ${t} ORDER BY id`));
    }
    const v = await runCli(['verify', '--from', location, '--target', dst.url(), '-t', '"Odd Schema"."x.y"', '-t', '"a.b"']);
    expect(v.code, v.stderr).toBe(0);
    expect(await rows(dst, 'SELECT count(*)::int FROM mixed')).toEqual(['[0]']);
  });

  it('round-trip with importTables({ verify, tables }) through the library', async () => {
    const { location } = await exportTo(['"a.b"', '"Mixed"', '"Odd Schema"."x.y"']);
    for (const t of ['"a.b"', '"Mixed"', '"Odd Schema"."x.y"']) await dst.query(`DROP TABLE ${t}`);
    const res = await importTables({ from: location, target: dst.url(), create: true, verify: true, tables: ['"a.b"', { schema: 'public', name: 'Mixed' }, '"Odd Schema"."x.y"'] });
    expect(res.verify?.ok).toBe(true);
    expect(res.verify?.tables.map((t) => [t.table, t.destination.rows, t.match])).toEqual([
      ['public.a.b', 300, true], ['public.Mixed', 300, true], ['Odd Schema.x.y', 300, true],
    ]);
    expect(await rows(dst, 'SELECT count(*)::int FROM mixed')).toEqual(['[0]']);
  });
});

describe('generated columns (item 9)', () => {
  it('round-trip into the same DDL: the destination computes them, equal to the source', async () => {
    const ddl = 'CREATE TABLE gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED, c text, d text GENERATED ALWAYS AS (upper(c)) STORED)';
    await src.query(ddl);
    await dst.query(ddl);
    await src.query(`INSERT INTO gen (a, c) SELECT g, 'r' || g FROM generate_series(1, 500) g`);
    const { location, manifest } = await exportTo(['gen']);
    const t = manifest.tables[0]!;
    expect(t.columns.map((c) => c.name)).toEqual(['a', 'c']);
    expect(t.generated).toEqual([{ name: 'b', type: 'integer' }, { name: 'd', type: 'text' }]);
    const res = await importTables({ from: location, target: dst.url(), verify: true });
    expect(res.rows).toBe(500);
    expect(res.verify?.ok).toBe(true);
    expect(await rows(dst, 'SELECT a, b, c, d FROM gen ORDER BY a')).toEqual(await rows(src, 'SELECT a, b, c, d FROM gen ORDER BY a'));
  });

  it('create leaves generated columns out of the table it makes', async () => {
    const { location } = await exportTo(['gen']);
    const m = JSON.parse(await readFile(join(location, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.tables[0]!.generated?.length).toBe(2);
    await dst.query('DROP TABLE gen');
    await importTables({ from: location, target: dst.url(), create: true });
    expect(await rows(dst, `SELECT attname FROM pg_attribute WHERE attrelid = 'public.gen'::regclass AND attnum > 0 ORDER BY attnum`)).toEqual(['["a"]', '["c"]']);
  });
});

describe('a destination table that holds other rows (item 10)', () => {
  let location: string;
  let manifest: Manifest;
  beforeAll(async () => {
    await src.query('CREATE TABLE ne (id int, pad text)');
    await src.query(`INSERT INTO ne SELECT g, repeat('x', 200) FROM generate_series(1, 400) g`);
    ({ location, manifest } = await exportTo(['ne'], { segmentSize: 1024 * 16 }));
    expect(manifest.objects.length).toBeGreaterThan(2);
    await dst.query('CREATE TABLE ne (id int, pad text)');
  });
  const reset = async () => {
    await dst.query('TRUNCATE ne');
    await dst.query(`INSERT INTO ne VALUES (-1, 'other'), (-2, 'other')`);
    await dst.query(`DELETE FROM segferry.loads WHERE table_name = 'public.ne'`).catch(() => {});
  };

  it('is refused by default, with nothing loaded', async () => {
    await reset();
    const e = await expectCode(importTables({ from: location, target: dst.url() }), 'ERR_DESTINATION_NOT_EMPTY');
    expect(e.hint).toMatch(/--append/);
    expect(e.hint).toMatch(/--truncate/);
    const cli = await runCli(['import', '--from', location, '--target', dst.url()]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('ERR_DESTINATION_NOT_EMPTY');
    expect(await rows(dst, 'SELECT count(*)::int FROM ne')).toEqual(['[2]']);
    expect(await ledgerRows(manifest.id)).toBe(0);
  });

  it('append adds to the rows there', async () => {
    await reset();
    const r = await runCli(['import', '--from', location, '--target', dst.url(), '--append']);
    expect(r.code, r.stderr).toBe(0);
    expect(await rows(dst, 'SELECT count(*)::int AS n, (count(*) FILTER (WHERE id < 0))::int AS other FROM ne')).toEqual(['[402,2]']);
  });

  it('truncate replaces them', async () => {
    await reset();
    await importTables({ from: location, target: dst.url(), truncate: true });
    expect(await rows(dst, 'SELECT count(*)::int, min(id), max(id) FROM ne')).toEqual(['[400,1,400]']);
  });

  it('a resumed import (ledger rows of this export on the table) goes on without append', async () => {
    await dst.query('TRUNCATE ne');
    await dst.query(`DELETE FROM segferry.loads WHERE table_name = 'public.ne'`);
    // Interrupt after the first object committed.
    const ac = new AbortController();
    await importTables({
      from: location, target: dst.url(), concurrency: 1, signal: ac.signal,
      onEvent: (ev) => { if (ev.type === 'segment' && !ev.skipped) ac.abort(); },
    }).catch(() => {});
    const [part] = await dst.query<{ n: number }>('SELECT count(*)::int AS n FROM ne');
    expect(part!.n).toBeGreaterThan(0);
    expect(part!.n).toBeLessThan(400);
    const res = await importTables({ from: location, target: dst.url() });
    expect(res.skipped).toBeGreaterThan(0);
    expect(await rows(dst, 'SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM ne')).toEqual(['[400,400]']);
    // A finished import run again loads nothing and is not refused either.
    const again = await importTables({ from: location, target: dst.url() });
    expect(again.loaded).toBe(0);
  });
});

describe('safe widenings (docs/formats.md#types)', () => {
  it('integer into bigint and varchar(10) into text load, and verify matches; bigint into integer is refused', async () => {
    await src.query('CREATE TABLE wide (id integer, s character varying(10), r real)');
    await src.query(`INSERT INTO wide SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 200) g`);
    await dst.query('CREATE TABLE wide (id bigint, s text, r double precision)');
    const { location } = await exportTo(['wide']);
    const res = await importTables({ from: location, target: dst.url(), verify: true });
    expect(res.verify?.ok).toBe(true);
    expect(await rows(dst, 'SELECT id, s, r FROM wide ORDER BY id')).toEqual(await rows(src, 'SELECT id::int8, s, r::text::float8 FROM wide ORDER BY id'));
    await src.query('CREATE TABLE narrow (id bigint)');
    await dst.query('CREATE TABLE narrow (id integer)');
    const n = await exportTo(['narrow']);
    await expectCode(importTables({ from: n.location, target: dst.url() }), 'ERR_SCHEMA_MISMATCH');
  });
});

describe('bare objects replaced under the same names (should fix)', () => {
  it('a rerun over replaced objects is a new import: refused on the loaded table, loaded with --truncate', async () => {
    await dst.query('CREATE TABLE bt (id int, v text)');
    const dir = await tmp();
    const write = (from: number, to: number, tag: string) => {
      let s = '';
      for (let i = from; i <= to; i++) s += `${i}\t${tag}${i}\n`;
      return s;
    };
    await writeFile(join(dir, 'bt_dn1_segment.0'), write(1, 10, 'a'));
    await writeFile(join(dir, 'bt_dn1_segment.1'), write(11, 20, 'a'));
    const args = ['import', '--from', dir, '--target', dst.url(), '--bare', '-t', 'bt', '--format', 'text'];
    const first = await runCli(args);
    expect(first.code, first.stderr).toBe(0);
    // The same objects again: resumed, nothing loaded twice.
    expect((await runCli(args)).code).toBe(0);
    expect(await rows(dst, 'SELECT count(*)::int AS n FROM bt')).toEqual(['[20]']);

    // Replaced by other rows under the same names (a different size, so the test does not
    // depend on the file system's mtime resolution).
    await writeFile(join(dir, 'bt_dn1_segment.0'), write(101, 115, 'b'));
    await writeFile(join(dir, 'bt_dn1_segment.1'), write(116, 130, 'b'));
    const replaced = await runCli(args);
    expect(replaced.code).toBe(1);
    expect(replaced.stderr).toContain('ERR_DESTINATION_NOT_EMPTY');
    const truncated = await runCli([...args, '--truncate']);
    expect(truncated.code, truncated.stderr).toBe(0);
    expect(await rows(dst, 'SELECT count(*)::int AS n, min(id) AS lo, max(id) AS hi FROM bt')).toEqual(['[30,101,130]']);
  });
});

describe('a table without columns (should fix)', () => {
  beforeAll(async () => {
    await src.query('CREATE TABLE nocols ()');
    await src.query('INSERT INTO nocols SELECT FROM generate_series(1, 7)');
  });

  for (const format of ['text', 'csv'] as const) {
    it(`${format}: export and import carry its row count, and verify agrees`, async () => {
      const location = await tmp();
      const ex = await runCli(['export', '--source', src.url(), '-t', 'nocols', '--to', location, '--format', format]);
      expect(ex.code, ex.stderr).toBe(0);
      const m = JSON.parse(await readFile(join(location, 'manifest.json'), 'utf8')) as Manifest;
      expect([m.tables[0]!.columns, m.tables[0]!.rows]).toEqual([[], 7]);
      await dst.query('DROP TABLE IF EXISTS nocols');
      const im = await runCli(['import', '--from', location, '--target', dst.url(), '--create', '--verify']);
      expect(im.code, im.stderr).toBe(0);
      expect(await rows(dst, 'SELECT count(*)::int AS n FROM nocols')).toEqual(['[7]']);
    });
  }

  it('arrow: refused with a typed error naming the table', async () => {
    const location = await tmp();
    const e = await expectCode(exportTables({ source: src.url(), tables: ['nocols'], to: location, format: 'arrow' }), 'ERR_FORMAT');
    expect(e.table).toBe('public.nocols');
  });
});
