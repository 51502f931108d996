/**
 * segferry copy: cluster to cluster without staging. Static → static node-direct (through the
 * CLI, with --json events and an empty TMPDIR), a destination node stopped mid-copy and the
 * rerun, and single server → single server in COPY BINARY over every type the Arrow tests
 * cover, plus the refusals of binary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyTables, exportTables, importTables, verifyImport, SegferryError } from '../../lib/index.js';
import { readFile } from 'node:fs/promises';
import {
  describeMultisetDiff, mergeMultisets, rowMultiset, sameMultiset, startStaticCluster, trickyInsertSQL, trickyTableDDL,
  type SourceCluster,
} from '../helpers/fixtures.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { DDL, DEMOTING_ROWS, EDGE_ROWS, GEN_SELECT } from '../helpers/arrow-types.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { holdInTransaction } from '../helpers/hold.js';

const ROWS = 3000;

let src: SourceCluster;
let dst: SourceCluster;
let single: PgServer[];
let dir: string;
let srcTopo: string;
let dstTopo: string;

beforeAll(async () => {
  ensureBuilt();
  [src, dst, single] = await Promise.all([
    startStaticCluster({ rows: ROWS }),
    startStaticCluster({ rows: ROWS, withData: false }),
    startServers(['single-src', 'single-dst']),
  ]);
  dir = await mkdtemp(join(tmpdir(), 'sf-copy-'));
  srcTopo = join(dir, 'src.json');
  dstTopo = join(dir, 'dst.json');
  await writeFile(srcTopo, JSON.stringify(src.staticTopology()));
  await writeFile(dstTopo, JSON.stringify(dst.staticTopology()));
  const [s, d] = single as [PgServer, PgServer];
  await s.query(`${DDL('alltypes', true)}; ${trickyTableDDL('tricky')}`);
  await s.query(`INSERT INTO alltypes VALUES ${EDGE_ROWS.map((r) => r.replace(/\)\s*$/, ', NULL)')).join(',\n')}`);
  await s.query(`INSERT INTO alltypes VALUES ${DEMOTING_ROWS.map((r) => r.replace(/\)\s*$/, ", '10.1.2.3/24')")).join(',\n')}`);
  await s.query(`CREATE TEMP TABLE plain (LIKE alltypes); ALTER TABLE plain DROP COLUMN inet_col; INSERT INTO plain ${GEN_SELECT} FROM generate_series(100, 2099) g;
    INSERT INTO alltypes SELECT *, ('10.' || (id % 250) || '.0.1/24')::inet FROM plain`);
  await s.query(trickyInsertSQL('tricky', 1, 2000));
  await d.query(`${DDL('alltypes', true)}; ${trickyTableDDL('tricky')}`);
}, 240_000);

afterAll(async () => {
  await Promise.all([src?.destroy(), dst?.destroy(), ...(single ?? []).map((s) => s.destroy())]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function nodeRows(c: SourceCluster, i: number, table: string): Promise<Map<string, number>> {
  return rowMultiset(c.nodes[i]!, `SELECT * FROM ${table}`);
}

type Ev = { type: string; operation?: string; phase?: string; node?: string; key?: string; skipped?: boolean; rows?: number };

describe('segferry copy, static → static, node-direct', () => {
  it('copies every node into its namesake and the replicated table into every node, with nothing staged on disk', async () => {
    const tmp = await mkdtemp(join(dir, 'tmp-'));
    const r = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders', '--table', 'nation', '--verify', '--json'], {
      env: { TMPDIR: tmp },
    });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    // Nothing written to disk: the process's temp directory stays empty.
    expect(await readdir(tmp)).toEqual([]);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    expect(events[0]).toMatchObject({ type: 'start', operation: 'copy' });
    const segs = events.filter((e) => e.type === 'segment');
    // 3 orders units + 1 nation unit read; orders into its node, nation into all 3.
    expect(segs.filter((e) => e.phase === 'export').map((e) => e.key).sort()).toEqual(['nation_dn1', 'orders_dn1', 'orders_dn2', 'orders_dn3']);
    expect(segs.filter((e) => e.phase === 'import').map((e) => `${e.key}@${e.node}`).sort()).toEqual([
      'nation_dn1@dn1', 'nation_dn1@dn2', 'nation_dn1@dn3', 'orders_dn1@dn1', 'orders_dn2@dn2', 'orders_dn3@dn3',
    ]);
    // A unit is read before it commits anywhere.
    const at = (k: string, p: string) => events.findIndex((e) => e.type === 'segment' && e.key === k && e.phase === p);
    expect(at('orders_dn2', 'export')).toBeLessThan(at('orders_dn2', 'import'));
    const verify = events.find((e) => e.type === 'note' && (e as { step?: string }).step === 'verify') as unknown as { ok: boolean; tables: { table: string; ok: boolean }[] };
    expect(verify.ok).toBe(true);
    expect(verify.tables.map((t) => [t.table, t.ok])).toEqual([['public.orders', true], ['public.nation', true]]);
    expect(events.at(-2)).toMatchObject({ type: 'done', operation: 'copy', rows: ROWS + src.replicatedRows });

    // Independent order-free comparison, node by node.
    for (let i = 0; i < 3; i++) {
      const a = await nodeRows(src, i, 'orders');
      const b = await nodeRows(dst, i, 'orders');
      expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
    }
    const nation = await nodeRows(src, 0, 'nation');
    for (let i = 0; i < 3; i++) {
      const b = await nodeRows(dst, i, 'nation');
      expect(sameMultiset(nation, b), `dn${i + 1}: ${describeMultisetDiff(nation, b)}`).toBe(true);
    }

    // Run again: every unit is in the ledgers, nothing is copied twice.
    const again = await copyTables({ sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'] });
    expect([again.loaded, again.skipped, again.rows]).toEqual([0, 6, 0]);
    expect(mergeMultisets(...(await Promise.all([0, 1, 2].map((i) => nodeRows(dst, i, 'orders')))))).toEqual(
      mergeMultisets(...(await Promise.all([0, 1, 2].map((i) => nodeRows(src, i, 'orders'))))),
    );
  }, 120_000);

  it('a destination node stopped mid-copy fails the copy naming it; after a restart the rerun copies every row exactly once', async () => {
    for (const n of dst.nodes) await n.query('TRUNCATE orders; DROP SCHEMA IF EXISTS segferry CASCADE');
    const dn2 = dst.nodes[1]!;
    // Hold dn2's table: the copy's COPY FROM there waits for the lock, mid-unit.
    const holder = await holdInTransaction(dn2.url(), 'LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
    const args = ['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders'];
    let ended: string | undefined;
    const run = runCli(args).then((x) => { ended = `exit ${x.code}: ${x.stderr}`; return x; });
    const ledgerRows = async (n: PgServer) => Number((await n.query<{ c: string }>('SELECT count(*)::text AS c FROM segferry.loads').catch(() => [{ c: '0' }]))[0]!.c);
    // Another session: pg_stat_activity is a snapshot for the rest of a transaction (the holder's).
    const waiting = async () => Number((await dn2.query<{ c: string }>(`SELECT count(*)::text AS c FROM pg_stat_activity WHERE application_name = 'segferry copy' AND wait_event_type = 'Lock'`))[0]!.c);
    for (let i = 0; i < 600 && ((await waiting()) === 0 || (await ledgerRows(dst.nodes[0]!)) === 0 || (await ledgerRows(dst.nodes[2]!)) === 0); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(ended).toBeUndefined();
    expect(await waiting()).toBe(1);
    await dn2.stop('immediate');
    const r = await run;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error ERR_CONNECT: .*dn2/);
    await holder.end().catch(() => {});
    await dn2.start();
    // Nothing of dn2's unit stayed; dn1's and dn3's committed.
    expect((await dn2.query<{ c: string }>('SELECT count(*)::text AS c FROM orders'))[0]!.c).toBe('0');

    const again = await runCli([...args, '--verify', '--json']);
    expect(again.code).toBe(0);
    const events = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    const imports = events.filter((e) => e.type === 'segment' && e.phase === 'import');
    expect(imports.filter((e) => e.skipped).map((e) => e.key).sort()).toEqual(['orders_dn1', 'orders_dn3']);
    expect(imports.filter((e) => !e.skipped).map((e) => e.key)).toEqual(['orders_dn2']);
    for (let i = 0; i < 3; i++) {
      const a = await nodeRows(src, i, 'orders');
      const b = await nodeRows(dst, i, 'orders');
      expect(sameMultiset(a, b), `dn${i + 1}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    const verify = events.find((e) => e.type === 'note' && (e as { step?: string }).step === 'verify') as unknown as { ok: boolean };
    expect(verify.ok).toBe(true);
  }, 150_000);
});

describe('segferry copy --format binary, single server → single server', () => {
  it('round-trips every type the Arrow tests cover and the tricky columns, verified from the streams', async () => {
    const [s, d] = single as [PgServer, PgServer];
    const res = await copyTables({ source: s.url(), target: d.url(), tables: ['alltypes', 'tricky'], format: 'binary', verify: true });
    expect(res.plan.tables.map((t) => t.route)).toEqual(['coordinator', 'coordinator']);
    expect(res.verify?.ok).toBe(true);
    for (const t of ['alltypes', 'tricky']) {
      const a = await rowMultiset(s, `SELECT * FROM ${t}`);
      const b = await rowMultiset(d, `SELECT * FROM ${t}`);
      expect(a.size).toBeGreaterThan(1000);
      expect(sameMultiset(a, b), `${t}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    // Binary checksums agree with a text copy's row count but are hashed over tuples, so they differ from text's.
    const verifyText = await copyTables({ source: s.url(), target: d.url(), tables: ['tricky'], format: 'text', truncate: true, verify: true });
    expect(verifyText.verify?.ok).toBe(true);
    expect(verifyText.verify!.tables[0]!.source.rows).toBe(res.verify!.tables[1]!.source.rows);
    expect(verifyText.verify!.tables[0]!.source.sum).not.toBe(res.verify!.tables[1]!.source.sum);
  }, 120_000);

  it('refuses binary when a column type differs, naming the column and both types, and copies nothing', async () => {
    const [s, d] = single as [PgServer, PgServer];
    await s.query('CREATE TABLE public.mism (id int8, amount numeric(12,2)); INSERT INTO public.mism SELECT g, g FROM generate_series(1, 10) g');
    await d.query('CREATE TABLE public.mism (id int8, amount numeric(12,3))');
    // Qualified: the ledger's schema `segferry` is also the test user's name, first on the search_path.
    const err = await copyTables({ source: s.url(), target: d.url(), tables: ['mism'], format: 'binary' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SegferryError);
    expect((err as SegferryError).code, (err as Error).message).toBe('ERR_BINARY_TYPE_MISMATCH');
    expect((err as Error).message).toMatch(/"amount".*numeric\(12,2\).*numeric\(12,3\)/);
    // A composite column: its binary form carries type OIDs, so binary is refused even with equal names.
    await s.query('CREATE TYPE public.pair AS (a int, b text); CREATE TABLE public.comp (id int, p public.pair); INSERT INTO public.comp VALUES (1, ROW(1, \'x\'))');
    await d.query('CREATE TYPE public.pair AS (a int, b text); CREATE TABLE public.comp (id int, p public.pair)');
    const err2 = await copyTables({ source: s.url(), target: d.url(), tables: ['comp'], format: 'binary' }).then(() => undefined, (e: unknown) => e);
    expect((err2 as SegferryError).code).toBe('ERR_BINARY_TYPE_MISMATCH');
    expect((err2 as Error).message).toMatch(/"p".*pair/);
    expect((await d.query<{ c: string }>('SELECT ((SELECT count(*) FROM public.mism) + (SELECT count(*) FROM public.comp))::text AS c'))[0]!.c).toBe('0');
    // Text copies the composite fine.
    const ok = await copyTables({ source: s.url(), target: d.url(), tables: ['comp'], format: 'text', verify: true });
    expect([ok.rows, ok.verify?.ok]).toEqual([1, true]);
  }, 60_000);
});

describe('COPY BINARY export and import objects', () => {
  it('writes objects that are each a complete COPY BINARY stream, records the server version, and imports and verifies them', async () => {
    const [s, d] = single as [PgServer, PgServer];
    const to = await mkdtemp(join(dir, 'bin-'));
    const ex = await exportTables({ source: s.url(), tables: ['alltypes', 'tricky'], to, format: 'binary', segmentSize: 256 * 1024 });
    expect(ex.manifest.format.kind).toBe('binary');
    expect(ex.manifest.format.serverVersion).toMatch(/^\d+/);
    expect(ex.manifest.tables.map((t) => t.columns.length)).toEqual([37, 12]);
    expect(ex.manifest.objects.length).toBeGreaterThan(4);
    for (const o of ex.manifest.objects) {
      const b = await readFile(join(to, o.key));
      expect(b.length).toBe(o.bytes);
      expect(b.length).toBeLessThanOrEqual(256 * 1024);
      expect(b.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
      expect(b.subarray(-2)).toEqual(Buffer.from([0xff, 0xff]));
    }
    const im = await importTables({ from: to, target: d.url(), truncate: true, verify: true });
    expect(im.loaded).toBe(ex.manifest.objects.length);
    expect(im.verify?.ok).toBe(true);
    for (const t of ['alltypes', 'tricky']) {
      const a = await rowMultiset(s, `SELECT * FROM public.${t}`);
      const b = await rowMultiset(d, `SELECT * FROM public.${t}`);
      expect(sameMultiset(a, b), `${t}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    // A changed row shows in verify: the checksum covers the binary tuples.
    await d.query('UPDATE public.tricky SET grp = grp + 1 WHERE id = 7');
    const v = await verifyImport({ from: to, target: d.url() });
    expect(v.ok).toBe(false);
  }, 90_000);
});
