/**
 * Issue 18, reject limits on import: rows the destination refuses are set aside (rejects
 * objects), the rest loads exactly once, the limits fail the object as before. Two real
 * PostgreSQL 15 servers (the per-node case uses two databases of each as a static topology)
 * and directory stores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkExport, cleanup, exportTables, importTables, verifyImport, SegferryError, type ImportResult } from '../../lib/index.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { rejectLines, type RejectLine } from '../helpers/rejects.js';
import { startServers, type PgServer } from '../helpers/pg.js';

let src: PgServer;
let dst: PgServer;
const tmpDirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-rejects-'));
  tmpDirs.push(d);
  return d;
}

/** Rows of the source that the destination refuses: qty < 0 (CHECK) and qty NULL (NOT NULL). */
const NEGATIVE = [17, 101, 202, 299];
const NULL_QTY = [150];
const BAD = [...NEGATIVE, ...NULL_QTY].sort((a, b) => a - b);
const ROWS = 300;

/** A source table of ROWS rows; values with a tab, a quote, a newline and a backslash, so framing is tested. */
async function sourceTable(name: string, db = 'postgres', ids: number[] = Array.from({ length: ROWS }, (_, i) => i + 1)): Promise<void> {
  await src.query(`CREATE TABLE ${name} (id int, note text, qty int)`, [], db);
  await src.query(
    `INSERT INTO ${name} SELECT g, CASE g % 4 WHEN 0 THEN 'a' || chr(9) || 'b' WHEN 1 THEN 'say "hi", ok' WHEN 2 THEN E'two\\nlines\\\\' ELSE 'n' || g END,
       CASE WHEN g = ANY($1::int[]) THEN -g WHEN g = ANY($2::int[]) THEN NULL ELSE g END FROM unnest($3::int[]) g`,
    [NEGATIVE, NULL_QTY, ids], db,
  );
}

/** The destination table: qty must be ≥ 0 and not NULL. */
async function destTable(name: string, db = 'postgres'): Promise<void> {
  await dst.query(`CREATE TABLE ${name} (id int, note text, qty int NOT NULL CHECK (qty >= 0))`, [], db);
}

async function ids(table: string, db = 'postgres'): Promise<number[]> {
  return (await dst.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`, [], db)).map((r) => r.id);
}

async function ledger(importId: string, db = 'postgres'): Promise<{ k: string; rows: string; rejected: string; rejected_sum: string | null }[]> {
  return dst.query(`SELECT object_key AS k, rows, rejected, rejected_sum FROM segferry.loads WHERE import_id = $1 ORDER BY object_key`, [importId], db);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SegferryError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e, `expected ${code}`).toBeInstanceOf(SegferryError);
  expect((e as SegferryError).code, (e as Error).message).toBe(code);
  return e as SegferryError;
}

const good = Array.from({ length: ROWS }, (_, i) => i + 1).filter((i) => !BAD.includes(i));

beforeAll(async () => {
  ensureBuilt();
  [src, dst] = await startServers(['rejects-src', 'rejects-dst']);
  for (const s of [src, dst]) await s.query('ALTER ROLE segferry SET search_path = public');
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

describe('--reject-limit sets refused rows aside and loads the rest exactly once', () => {
  for (const format of ['text', 'csv', 'binary'] as const) {
    it(`${format} objects: the rest loads, the rejects objects list exactly the refused rows, verify accounts for them, a rerun loads nothing`, async () => {
      const table = `items_${format}`;
      await sourceTable(table);
      await destTable(table);
      const dir = await tmp();
      // Small objects: the refused rows fall into several of them.
      const exp = await exportTables({ source: src.url(), tables: [table], to: dir, format: format === 'csv' ? { kind: 'csv', header: true } : { kind: format }, segmentSize: 2048 });
      const objects = exp.manifest.objects.map((o) => o.key);
      expect(objects.length).toBeGreaterThan(2);

      // Without a limit nothing changes: the first refused row fails the import, as before.
      await expectCode(importTables({ from: dir, target: dst.url() }), 'ERR_DATABASE');

      const res = await importTables({ from: dir, target: dst.url(), rejectLimit: 10 });
      expect(res.rejected).toBe(BAD.length);
      expect(res.tables[0]).toMatchObject({ rows: good.length, rejected: BAD.length });
      expect(await ids(table)).toEqual(good);

      // The rejects objects: one line per refused row, with its object, position, SQLSTATE,
      // message and the row's bytes as stored in the object.
      const lines = await rejectLines(dir);
      const byId = new Map<number, RejectLine>();
      for (const l of lines) {
        const raw = Buffer.from(l.data, 'base64');
        const obj = await readFile(join(dir, l.object));
        // The bytes are the object's own, at the recorded offset.
        expect(obj.subarray(l.offset!, l.offset! + raw.length).equals(raw)).toBe(true);
        const id = format === 'binary' ? raw.readInt32BE(6) : Number(/^"?(\d+)/.exec(raw.toString())![1]);
        byId.set(id, l);
        expect(l.table).toBe(`public.${table}`);
        expect(l.node).toBe('coordinator');
        expect(objects).toContain(l.object);
        expect(l.row).toBeGreaterThanOrEqual(1);
      }
      expect([...byId.keys()].sort((a, b) => a - b)).toEqual(BAD);
      for (const id of NEGATIVE) {
        expect(byId.get(id)!.sqlstate).toBe('23514');
        expect(byId.get(id)!.message).toContain('check constraint');
      }
      expect(byId.get(NULL_QTY[0]!)!.sqlstate).toBe('23502');
      expect(res.rejects!.keys.length).toBe(new Set(lines.map((l) => l.object)).size);

      // The ledger records each object once, with its rejected count.
      const led = await ledger(exp.manifest.id);
      expect(led.map((r) => r.k)).toEqual([...objects].sort());
      expect(led.reduce((a, r) => a + Number(r.rejected), 0)).toBe(BAD.length);
      expect(led.reduce((a, r) => a + Number(r.rows), 0)).toBe(ROWS);

      // verify: destination + rejected = manifest, checksums included.
      const v = await verifyImport({ from: dir, target: dst.url() });
      expect(v.ok).toBe(true);
      expect(v.tables[0]).toMatchObject({ match: true, checksummed: true, rejected: { rows: BAD.length } });
      expect(v.tables[0]!.rejected!.sum).toMatch(/^\d+$/);
      expect(v.tables[0]!.note).toContain('compared as destination + rejected = source');
      expect(v.tables[0]!.note).not.toContain('row counts compared only');
      const cli = await runCli(['verify', '--from', dir, '--target', dst.url()]);
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toContain(`rejected     ${BAD.length} rows`);

      // A rerun loads nothing twice.
      const again = await importTables({ from: dir, target: dst.url(), rejectLimit: 10 });
      expect(again).toMatchObject({ loaded: 0, skipped: objects.length, rejected: 0 });
      expect(await ids(table)).toEqual(good);

      if (format === 'text') {
        // check does not count them as unexpected; cleanup owns them but keeps them unless asked.
        expect((await checkExport({ at: dir })).unexpected).toEqual([]);
        const rejectKeys = (await readdir(dir)).filter((k) => k.startsWith('segferry-rejects.')).sort();
        const c = await cleanup({ location: dir, yes: true });
        expect(c.objects).toEqual([]);
        expect(c.leftAlone).toEqual([]);
        expect(c.rejects.map((o) => o.key).sort()).toEqual(rejectKeys);
        expect((await readdir(dir)).filter((k) => k.startsWith('segferry-rejects.')).sort()).toEqual(rejectKeys);
        await cleanup({ location: dir, yes: true, removeRejects: true });
        expect((await readdir(dir)).filter((k) => k.startsWith('segferry-rejects.'))).toEqual([]);
      }

      // The accounting is exact: a changed row is still a mismatch.
      await dst.query(`UPDATE ${table} SET qty = qty + 1 WHERE id = $1`, [good[0]]);
      expect((await verifyImport({ from: dir, target: dst.url() })).ok).toBe(false);
    });
  }

  it('arrow objects: the rows of the decoded COPY data are set aside; verify compares counts', async () => {
    const table = 'items_arrow';
    await sourceTable(table);
    await destTable(table);
    const dir = await tmp();
    await exportTables({ source: src.url(), tables: [table], to: dir, format: { kind: 'arrow' } });
    const res = await importTables({ from: dir, target: dst.url(), rejectLimit: 10 });
    expect(res.rejected).toBe(BAD.length);
    expect(await ids(table)).toEqual(good);
    const lines = await rejectLines(dir);
    expect(lines.map((l) => l.row).sort((a, b) => a - b)).toEqual(BAD);
    expect(lines.every((l) => l.offset === undefined)).toBe(true);
    const v = await verifyImport({ from: dir, target: dst.url() });
    expect(v.tables[0]).toMatchObject({ match: true, rejected: { rows: BAD.length } });
    expect(v.tables[0]!.note).toContain('row counts compared only');
  });
});

describe('limits', () => {
  it('with the limit exceeded the object fails as before: nothing of it committed, no ledger row, no rejects object', async () => {
    const table = 'items_limit';
    await sourceTable(table);
    await destTable(table);
    const dir = await tmp();
    // One object: all refused rows are in it.
    const exp = await exportTables({ source: src.url(), tables: [table], to: dir });
    expect(exp.manifest.objects.length).toBe(1);
    // A rejects object a crashed run left for this (uncommitted) object is stale: a run that
    // passes the limit deletes it, one that commits overwrites it.
    const staleKey = `segferry-rejects.coordinator.${exp.manifest.objects[0]!.key}.jsonl`;
    await writeFile(join(dir, staleKey), '{"stale":true}\n');
    const e = await expectCode(importTables({ from: dir, target: dst.url(), rejectLimit: BAD.length - 1 }), 'ERR_REJECT_LIMIT');
    expect(e.message).toContain(`public.${table}`);
    expect(e.message).toContain(`refused ${BAD.length} rows`);
    expect(e.message).toContain(`reject limit ${BAD.length - 1}`);
    expect(e.table).toBe(`public.${table}`);
    expect(await ids(table)).toEqual([]);
    expect(await ledger(exp.manifest.id)).toEqual([]);
    expect((await readdir(dir)).filter((k) => k.startsWith('segferry-rejects.'))).toEqual([]);
    // The CLI names the code; with the limit met, the import goes through.
    await writeFile(join(dir, staleKey), '{"stale":true}\n');
    const cli = await runCli(['import', '--from', dir, '--target', dst.url(), '--reject-limit', String(BAD.length - 1)]);
    expect(cli.code, cli.stderr).toBe(1);
    expect(cli.stderr).toContain('ERR_REJECT_LIMIT');
    const ok = await runCli(['import', '--from', dir, '--target', dst.url(), '--reject-limit', String(BAD.length), '--verify']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).toContain(`${BAD.length} rows set aside`);
    expect(await ids(table)).toEqual(good);
    const lines = await rejectLines(dir);
    expect(lines.length).toBe(BAD.length);
    expect(lines.every((l) => l.object === exp.manifest.objects[0]!.key && !('stale' in l))).toBe(true);
  });

  it('the table limit counts the objects an earlier run committed', async () => {
    const table = 'items_prior';
    await sourceTable(table);
    await destTable(table);
    const dir = await tmp();
    const exp = await exportTables({ source: src.url(), tables: [table], to: dir, segmentSize: 2048 });
    // Load only the objects before the last refused row's object, then resume with a limit that
    // the earlier rejects already use up.
    const first = await importTables({ from: dir, target: dst.url(), rejectLimit: 10 });
    expect(first.rejected).toBe(BAD.length);
    // Forget the object holding the last refused row (and its rows), as if that run had died before it.
    const lines = await rejectLines(dir);
    const last = lines.find((l) => Buffer.from(l.data, 'base64').toString().startsWith('299\t'))!;
    await dst.query(`DELETE FROM segferry.loads WHERE import_id = $1 AND object_key = $2`, [exp.manifest.id, last.object]);
    const [{ n }] = await dst.query<{ n: string }>(`SELECT count(*) AS n FROM segferry.loads WHERE import_id = $1`, [exp.manifest.id]);
    const keep = Number(n);
    const o = exp.manifest.objects.find((x) => x.key === last.object)!;
    // Its rows: those of the object (ids in its range).
    const objIds = (await readFile(join(dir, o.key), 'utf8')).split('\n').filter((x) => /^\d+\t/.test(x)).map((x) => Number(x.split('\t')[0]));
    await dst.query(`DELETE FROM ${table} WHERE id = ANY($1::int[])`, [objIds]);
    await expectCode(importTables({ from: dir, target: dst.url(), rejectLimit: BAD.length - 1 }), 'ERR_REJECT_LIMIT');
    const [{ n: n2 }] = await dst.query<{ n: string }>(`SELECT count(*) AS n FROM segferry.loads WHERE import_id = $1`, [exp.manifest.id]);
    expect(Number(n2)).toBe(keep);
    const res = await importTables({ from: dir, target: dst.url(), rejectLimit: BAD.length });
    expect(res).toMatchObject({ loaded: 1, rejected: 1 });
    expect(await ids(table)).toEqual(good);
  });

  it('--reject-limit-per-node counts each destination node over all its tables', async () => {
    // Two source nodes and two destination nodes (databases of one server each), static.
    for (const db of ['n1', 'n2']) {
      await src.query(`CREATE DATABASE ${db}`);
      await dst.query(`CREATE DATABASE ${db}`);
      await dst.query('ALTER DATABASE ' + db + ' SET search_path = public');
    }
    // Node dn1 holds ids 1..150 (refused: 17, 101, 150), dn2 151..300 (refused: 202, 299).
    await sourceTable('pn', 'n1', Array.from({ length: 150 }, (_, i) => i + 1));
    await sourceTable('pn', 'n2', Array.from({ length: 150 }, (_, i) => i + 151));
    for (const db of ['n1', 'n2']) await destTable('pn', db);
    // dn2 has a ledger of an earlier version (without the rejected columns): it is migrated.
    await dst.query(`CREATE SCHEMA segferry; CREATE TABLE segferry.loads (import_id text NOT NULL, object_key text NOT NULL, table_name text NOT NULL,
      sha256 text, rows bigint, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (import_id, object_key))`, [], 'n2');
    await dst.query(`INSERT INTO segferry.loads VALUES ('other-import', 'k', 't', NULL, 1)`, [], 'n2');
    const topo = (s: PgServer) => ({ nodes: [{ name: 'dn1', url: s.url('n1') }, { name: 'dn2', url: s.url('n2') }] });
    const dir = await tmp();
    const exp = await exportTables({ topology: topo(src), tables: ['pn'], to: dir });
    // dn1 has 3 refused rows: a per-node limit of 2 fails there, whatever dn2 does.
    const e = await expectCode(importTables({ from: dir, topology: topo(dst), rejectLimitPerNode: 2, concurrency: 1 }), 'ERR_REJECT_LIMIT');
    expect(e.node).toBe('dn1');
    expect(e.message).toContain('per-node reject limit 2');
    expect(await ids('pn', 'n1')).toEqual([]);
    const res = await importTables({ from: dir, topology: topo(dst), rejectLimitPerNode: 3 });
    expect(res.nodes.map((n) => [n.node, n.rejected])).toEqual([['dn1', 3], ['dn2', 2]]);
    expect(await ids('pn', 'n1')).toEqual(good.filter((i) => i <= 150));
    expect(await ids('pn', 'n2')).toEqual(good.filter((i) => i > 150));
    expect((await ledger(exp.manifest.id, 'n1')).map((r) => Number(r.rejected))).toEqual([3]);
    expect((await ledger(exp.manifest.id, 'n2')).map((r) => Number(r.rejected))).toEqual([2]);
    expect(await dst.query(`SELECT import_id, rejected, rejected_sum FROM segferry.loads WHERE import_id = 'other-import'`, [], 'n2')).toEqual([{ import_id: 'other-import', rejected: '0', rejected_sum: null }]);
    const v = await verifyImport({ from: dir, topology: topo(dst) });
    expect(v.ok).toBe(true);
  });
});

describe('bare objects and --rejects DEST', () => {
  it('a varchar limit refuses rows of bare csv objects; their rejects go to another location', async () => {
    await src.query(`CREATE TABLE codes (id int, code text)`);
    await src.query(`INSERT INTO codes SELECT g, CASE WHEN g IN (3, 40) THEN 'toolong' ELSE 'c' || g END FROM generate_series(1, 60) g`);
    const exported = await tmp();
    await exportTables({ source: src.url(), tables: ['codes'], to: exported, format: { kind: 'csv' }, segmentSize: 1024 });
    // Objects written without a manifest (e.g. by another tool): only the segments.
    const bare = await tmp();
    for (const f of (await readdir(exported)).filter((k) => k.includes('_segment.'))) await copyFile(join(exported, f), join(bare, f));
    await dst.query(`CREATE TABLE codes (id int, code varchar(5))`);
    const rejects = join(await tmp(), 'rejects');
    await mkdir(rejects);
    const res: ImportResult = await importTables({ from: bare, target: dst.url(), bare: { table: 'codes', format: { kind: 'csv' } }, rejectLimit: 2, rejects });
    expect(res.rejected).toBe(2);
    expect((await readdir(bare)).filter((k) => k.startsWith('segferry-rejects.'))).toEqual([]);
    const lines = await rejectLines(rejects);
    expect(lines.map((l) => [Buffer.from(l.data, 'base64').toString(), l.sqlstate]).sort()).toEqual([['3,toolong\n', '22001'], ['40,toolong\n', '22001']]);
    expect((await dst.query<{ n: string }>('SELECT count(*) AS n FROM codes'))[0]!.n).toBe('58');
  });
});
