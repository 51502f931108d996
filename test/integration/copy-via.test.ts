/**
 * segferry copy --via, and the copy process killed (both on the same two static 2-node clusters).
 *
 * --via: a static 2-node source staged through a directory (CLI, --json) and
 * through S3 (library) into a static 2-node destination, node-direct. The staging prefix must
 * end as a complete export that `import` accepts into a third, empty server, an import of it
 * into the copy's own destination must find every object loaded already (same ledger keys),
 * and loading must overlap exporting: the first phase "import" segment event comes before the
 * last phase "export" one (a small segment size makes many objects).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { DuckDBInstance } from '@duckdb/node-api';
import { copyTables, importTables, type Manifest, type S3Options } from '../../lib/index.js';
import { describeMultisetDiff, mergeMultisets, rowMultiset, sameMultiset, startStaticCluster, trickyTableDDL, type SourceCluster } from '../helpers/fixtures.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { holdInTransaction } from '../helpers/hold.js';
import { killWhenReady, stallExport } from '../helpers/kill.js';

// Rows of the tricky data reach 120 KB: segments of 128 KiB, and rows for about 50 of them, so that
// the export takes longer than the first load even when the export is fast (a directory).
const ROWS = 24000;
const SEGMENT = 128 * 1024;

let src: SourceCluster;
let dst: SourceCluster;
let third: PgServer;
let s3: S3Harness;
let s3opts: S3Options;
let dir: string;
let srcTopo: string;
let dstTopo: string;

beforeAll(async () => {
  ensureBuilt();
  let servers: PgServer[];
  [src, dst, servers, s3] = await Promise.all([
    startStaticCluster({ rows: ROWS, nodes: 2, replicatedRows: 50 }),
    startStaticCluster({ nodes: 2, withData: false }),
    startServers(['via-third']),
    startS3(),
  ]);
  third = servers[0]!;
  s3opts = { endpoint: s3.endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle, checksum: s3.checksum, credentials: s3.credentials };
  dir = await mkdtemp(join(tmpdir(), 'sf-copy-via-'));
  srcTopo = join(dir, 'src.json');
  dstTopo = join(dir, 'dst.json');
  await writeFile(srcTopo, JSON.stringify(src.staticTopology()));
  await writeFile(dstTopo, JSON.stringify(dst.staticTopology()));
}, 240_000);

afterAll(async () => {
  await Promise.all([src?.destroy(), dst?.destroy(), third?.destroy(), s3?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Ev = { type: string; operation?: string; phase?: string; node?: string; key?: string; table?: string; rows?: number; skipped?: boolean };

/** The destination's tables empty and its ledger gone. */
const resetDst = async () => { for (const n of dst.nodes) await n.query('TRUNCATE orders, nation; DROP SCHEMA IF EXISTS segferry CASCADE'); };
const eventsOf = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Ev);
/** The `--verify` note of a `--json` run. */
const verifyNote = (events: Ev[]) => events.find((e) => e.type === 'note' && (e as { step?: string }).step === 'verify') as unknown as { ok: boolean };

const all = async (c: SourceCluster, table: string) => mergeMultisets(...(await Promise.all(c.nodes.map((n) => rowMultiset(n, `SELECT * FROM ${table}`)))));

/** The destination holds the source's rows: orders node by node, nation on every node. */
async function expectCopied(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const a = await rowMultiset(src.nodes[i]!, 'SELECT * FROM orders');
    const b = await rowMultiset(dst.nodes[i]!, 'SELECT * FROM orders');
    expect(sameMultiset(a, b), `orders dn${i + 1}: ${describeMultisetDiff(a, b)}`).toBe(true);
    const n = await rowMultiset(dst.nodes[i]!, 'SELECT * FROM nation');
    const ns = await rowMultiset(src.nodes[0]!, 'SELECT * FROM nation');
    expect(sameMultiset(ns, n), `nation dn${i + 1}: ${describeMultisetDiff(ns, n)}`).toBe(true);
  }
}

/** `import` of the staging prefix: into the copy's destination nothing is loaded again; into an empty server everything, verified. */
async function expectImportable(from: string, s3o?: S3Options): Promise<void> {
  const again = await importTables({ from, topology: dst.staticTopology(), ...(s3o ? { s3: s3o } : {}) });
  expect(again.loaded).toBe(0);
  expect(again.skipped).toBeGreaterThan(4);
  await third.query(`DROP TABLE IF EXISTS public.orders, public.nation; DROP SCHEMA IF EXISTS segferry CASCADE; ${trickyTableDDL('public.orders')}`);
  const im = await importTables({ from, target: third.url(), create: true, verify: true, ...(s3o ? { s3: s3o } : {}) });
  expect(im.verify?.ok).toBe(true);
  expect(im.skipped).toBe(0);
  const a = await all(src, 'orders');
  const b = await rowMultiset(third, 'SELECT * FROM orders');
  expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
  expect(b.size).toBeGreaterThan(ROWS / 2);
}

/** Loading overlapped exporting: some object was loaded before the last one was stored. */
function expectOverlap(events: Ev[]): void {
  const segs = events.filter((e) => e.type === 'segment');
  const firstImport = segs.findIndex((e) => e.phase === 'import');
  const lastExport = segs.map((e) => e.phase).lastIndexOf('export');
  expect(segs.filter((e) => e.phase === 'export').length).toBeGreaterThan(20);
  expect(firstImport).toBeGreaterThanOrEqual(0);
  expect(firstImport, 'the first load must come before the last object is stored').toBeLessThan(lastExport);
}

describe('segferry copy --via', () => {
  it('through a directory (CLI, --json): loads objects as they are stored; the directory ends as a complete, importable export', async () => {
    const via = join(dir, 'stage-dir');
    // A directory takes objects faster than a server loads them: one row about 40% into each
    // node's orders (≈ 400 pages) holds the export back for 2 s, so that the order of the events
    // shows loading during exporting and not the machine's speed (loads that waited for the export
    // would all come after it). ctid: the filter applies to nation too, which has no id.
    const stall = `CASE WHEN ctid = '(150,1)'::tid THEN (SELECT true FROM pg_sleep(2)) ELSE true END`;
    const r = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders', '--table', 'nation', '--via', via, '--segment-size', `${SEGMENT / 1024}KiB`, '--where', stall, '--verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const events = eventsOf(r.stdout);
    // The export's events pass through as the copy's (the closing summary keeps its own kind).
    expect(events.filter((e) => ['start', 'segment', 'progress', 'done'].includes(e.type)).every((e) => e.operation === 'copy')).toBe(true);
    expect(events.filter((e) => e.type === 'start').length).toBe(1);
    expectOverlap(events);
    const m = JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest;
    // Every stored object was loaded into each of its targets: orders into its node, nation into both.
    const segs = events.filter((e) => e.type === 'segment');
    expect(segs.filter((e) => e.phase === 'export').map((e) => e.key).sort()).toEqual(m.objects.map((o) => o.key).sort());
    const expected = m.objects.flatMap((o) => (o.table === 'public.nation' ? ['dn1', 'dn2'] : [o.node]).map((n) => `${o.key}@${n}`)).sort();
    expect(segs.filter((e) => e.phase === 'import' && !e.skipped).map((e) => `${e.key}@${e.node}`).sort()).toEqual(expected);
    const verify = verifyNote(events);
    expect(verify.ok).toBe(true);
    expect((await readdir(via)).filter((k) => k.startsWith('orders_')).length).toBe(m.objects.filter((o) => o.table === 'public.orders').length);
    await expectCopied();
    await expectImportable(via);
  }, 120_000);

  it('through S3 (library, COPY BINARY objects): the same, and the events carry both phases', async () => {
    await resetDst();
    const via = `s3://${s3.bucket}/stage/run1`;
    const events: Ev[] = [];
    const res = await copyTables({
      sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'],
      via, s3: s3opts, segmentSize: SEGMENT, format: 'binary', verify: true, onEvent: (e) => events.push(e as Ev),
      // Held back mid-way as in the first test, so the order of the events cannot depend on the machine's speed.
      where: `CASE WHEN ctid = '(150,1)'::tid THEN (SELECT true FROM pg_sleep(2)) ELSE true END`,
    });
    expect(res.verify?.ok).toBe(true);
    expect(res.rows).toBe(ROWS + src.replicatedRows);
    expect(res.plan.via).toBe(via);
    expectOverlap(events);
    const keys = (await s3.listKeys(s3.bucket, 'stage/run1/')).map((k) => k.key);
    expect(keys).toContain('stage/run1/manifest.json');
    const m = JSON.parse((await s3.getObject(s3.bucket, 'stage/run1/manifest.json')).toString('utf8')) as Manifest;
    expect(m.id).toBe(res.copyId);
    expect(m.format.kind).toBe('binary');
    expect(res.loaded).toBe(m.objects.filter((o) => o.table === 'public.orders').length + 2 * m.objects.filter((o) => o.table === 'public.nation').length);
    await expectCopied();
    await expectImportable(via, s3opts);
  }, 120_000);
});

describe('segferry copy --via, failures', () => {
  it('a load that fails stops the running export: no manifest, the error is the destination\'s; that prefix is refused next time', async () => {
    await resetDst();
    // Row 3 lives on dn2 (id % 2 = 1), in its first object, which cannot load there. The export is
    // held back mid-way (as in the first test), so the failure comes while it still runs.
    await dst.nodes[1]!.query('ALTER TABLE orders ADD CONSTRAINT no_3 CHECK (id <> 3) NOT VALID');
    const via = join(dir, 'stage-fail');
    try {
      const err = await copyTables({
        sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'], via, segmentSize: SEGMENT,
        where: `CASE WHEN ctid = '(150,1)'::tid THEN (SELECT true FROM pg_sleep(2)) ELSE true END`,
      }).then(() => undefined, (e: unknown) => e as { code?: string; sqlState?: string; node?: string });
      expect(err?.sqlState, String(err)).toBe('23514');
      expect(err?.node).toBe('dn2');
      const names = await readdir(via);
      expect(names).not.toContain('manifest.json');
    } finally {
      await dst.nodes[1]!.query('ALTER TABLE orders DROP CONSTRAINT no_3');
    }
    // That prefix now holds an unfinished run of this copy: another copy through it (other
    // tables) is refused before loading anything; the same copy resumes and completes.
    const before = await rowMultiset(dst.nodes[0]!, 'SELECT * FROM orders');
    const used = await copyTables({
      sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders'], via,
    }).then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
    expect(used?.code).toBe('ERR_INVALID_OPTION');
    expect(used?.message).toMatch(/planned differently/);
    expect(sameMultiset(before, await rowMultiset(dst.nodes[0]!, 'SELECT * FROM orders'))).toBe(true);
    const again = await copyTables({
      sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'], via, segmentSize: SEGMENT,
      where: `CASE WHEN ctid = '(150,1)'::tid THEN (SELECT true FROM pg_sleep(2)) ELSE true END`, verify: true,
    });
    expect(again.plan.staged).toBe('unfinished');
    expect(again.verify?.ok).toBe(true);
    await expectCopied();
    await expectImportable(via);
  }, 120_000);
});

describe('segferry copy, the process killed', () => {
  it('SIGKILL after the first unit committed, mid-way through the next: the rerun copies every row exactly once', async () => {
    await resetDst();
    const dn2 = dst.nodes[1]!;
    // Hold dn2's table: with one unit at a time (orders_dn1, orders_dn2, nation_dn1), orders_dn1
    // commits and orders_dn2 then waits in its COPY FROM, claimed and streaming, when the kill comes.
    const holder = await holdInTransaction(dn2.url(), 'LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
    const args = ['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders', '--table', 'nation', '--concurrency', '1'];
    const committed = () => countOf(dst.nodes[0]!, 'SELECT count(*)::text AS c FROM segferry.loads WHERE rows IS NOT NULL');
    const { ready, result: r } = await killWhenReady(args, async () => (await committed()) > 0 && (await lockWaits(dn2)) > 0, {
      before: async () => expect([await committed(), await lockWaits(dn2)]).toEqual([1, 1]),
    }).finally(async () => { await holder.query('ROLLBACK'); await holder.end(); });
    expect(ready, r.stderr).toBe(true);
    expect(r.signal).toBe('SIGKILL');

    const again = await runCli([...args, '--verify', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const events = eventsOf(again.stdout);
    const imports = events.filter((e) => e.type === 'segment' && e.phase === 'import');
    expect(imports.filter((e) => e.skipped).map((e) => `${e.key}@${e.node}`)).toEqual(['orders_dn1@dn1']);
    expect(imports.filter((e) => !e.skipped).map((e) => `${e.key}@${e.node}`).sort()).toEqual(['nation_dn1@dn1', 'nation_dn1@dn2', 'orders_dn2@dn2']);
    const verify = verifyNote(events);
    expect(verify.ok).toBe(true);
    // Every row exactly once: the multisets count duplicates.
    await expectCopied();
  }, 120_000);
});

/** Every row of dn2's orders and nation waits behind this lock (one session holding it). */
async function lockDst2(): Promise<pg.Client> {
  return holdInTransaction(dst.nodes[1]!.url(), 'LOCK TABLE orders, nation IN ACCESS EXCLUSIVE MODE');
}

const countOf = async (n: PgServer, sql: string) => Number((await n.query<{ c: string }>(sql).catch(() => [{ c: '0' }]))[0]!.c);
/** Sessions of the copy on a destination node waiting for a lock (its loads held back). */
const lockWaits = (n: PgServer) => countOf(n, `SELECT count(*)::text AS c FROM pg_stat_activity WHERE application_name = 'segferry copy' AND wait_event_type = 'Lock'`);

describe('segferry copy --via, resumed in place', () => {
  it('SIGKILL with one unit loaded, one stored but not loaded on one node, one half exported: the rerun finishes, every row once, the prefix a complete export', async () => {
    await resetDst();
    const via = join(dir, 'stage-kill');
    // dn2's orders hold back for 60 s about 40% in on the source, but only while the database
    // setting says so: the rerun, with the same --where (same plan), does not wait.
    const stall = await stallExport(src.nodes[1]!, '(150,1)');
    const args = ['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders', '--table', 'nation', '--via', via, '--segment-size', `${SEGMENT / 1024}KiB`, '--where', stall.where];
    // Destination dn2 takes nothing: nation (exported from dn1) commits on dn1 only.
    const holder = await lockDst2();
    const dn1 = dst.nodes[0]!;
    const committed = (stem: string) => countOf(dn1, `SELECT count(*)::text AS c FROM segferry.loads WHERE object_key LIKE '${stem}%'`);
    const checkpointUnits = async () => {
      const b = await readFile(join(via, 'segferry-checkpoint.json'), 'utf8').catch(() => '{"units":[]}');
      return (JSON.parse(b) as { units: { unit?: string }[] }).units.map((u) => u.unit).sort();
    };
    const ready = async () => (await committed('orders_dn1_')) > 0 && (await committed('nation_dn1_')) > 0
      && (await lockWaits(dst.nodes[1]!)) > 0 && (await readdir(via).catch(() => [] as string[])).some((k) => k.startsWith('orders_dn2_'));
    let loadedBefore = new Map<string, number>();
    const { ready: ok, result: r } = await killWhenReady(args, ready, {
      before: async () => {
        expect(await checkpointUnits()).toEqual(['nation_dn1', 'orders_dn1']);
        loadedBefore = await rowMultiset(dn1, 'SELECT * FROM orders');
      },
    }).finally(async () => { await holder.query('ROLLBACK'); await holder.end(); await stall.release(); });
    expect(ok, r.stderr).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(await readdir(via)).not.toContain('manifest.json');
    // Nothing of the unfinished unit, nor of nation on dn2, was committed.
    expect(await countOf(dst.nodes[1]!, 'SELECT count(*)::text AS c FROM orders')).toBe(0);
    expect(await countOf(dst.nodes[1]!, 'SELECT count(*)::text AS c FROM nation')).toBe(0);

    const again = await runCli([...args, '--verify', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const events = eventsOf(again.stdout);
    const segs = events.filter((e) => e.type === 'segment');
    // Only the unfinished unit is exported again; the kept units' objects load where the ledger lacks them.
    expect(new Set(segs.filter((e) => e.phase === 'export').map((e) => e.key!.replace(/segment\.\d+$/, '')))).toEqual(new Set(['orders_dn2_']));
    const imports = segs.filter((e) => e.phase === 'import');
    const m = JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest;
    const keysOf = (stem: string) => m.objects.filter((o) => o.key.startsWith(stem)).map((o) => o.key).sort();
    expect(imports.filter((e) => e.skipped).map((e) => `${e.key}@${e.node}`).sort()).toEqual([...keysOf('nation_dn1_').map((k) => `${k}@dn1`), ...keysOf('orders_dn1_').map((k) => `${k}@dn1`)].sort());
    expect(imports.filter((e) => !e.skipped).map((e) => `${e.key}@${e.node}`).sort()).toEqual([...keysOf('nation_dn1_').map((k) => `${k}@dn2`), ...keysOf('orders_dn2_').map((k) => `${k}@dn2`)].sort());
    const verify = verifyNote(events);
    expect(verify.ok).toBe(true);
    expect(await readdir(via)).not.toContain('segferry-checkpoint.json');
    // What the first run committed stayed as it was, and every row is there once.
    expect(sameMultiset(loadedBefore, await rowMultiset(dn1, 'SELECT * FROM orders'))).toBe(true);
    await expectCopied();
    // Once more on the finished prefix: nothing exported, nothing loaded.
    const done = await runCli([...args, '--json']);
    expect(done.code, done.stderr).toBe(0);
    const last = eventsOf(done.stdout).filter((e) => e.type === 'segment');
    expect(last.filter((e) => e.phase === 'export' || !e.skipped)).toEqual([]);
    expect(last.length).toBe(imports.length);
    await expectCopied();
    await expectImportable(via);
  }, 150_000);
});

describe('segferry copy --via, objects checked at load', () => {
  it('an object changed between store and load: the copy fails naming it, nothing of its unit is committed', async () => {
    await resetDst();
    const via = join(dir, 'stage-tamper');
    // dn2 takes nothing until the export has stored everything (its manifest is written):
    // then one object of dn2's orders, not yet read by any loader (the last), is changed.
    const holder = await lockDst2();
    const copy = copyTables({
      sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'], via, segmentSize: SEGMENT,
    }).then(() => undefined, (e: unknown) => e as { code?: string; key?: string; node?: string; message?: string });
    for (let i = 0; i < 600 && !(await readdir(via).catch(() => [] as string[])).includes('manifest.json'); i++) await new Promise((r) => setTimeout(r, 100));
    const m = JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest;
    const last = m.objects.filter((o) => o.key.startsWith('orders_dn2_')).sort((a, b) => b.segment - a.segment)[0]!;
    expect(last.segment).toBeGreaterThan(2);
    const body = await readFile(join(via, last.key));
    body[body.length >> 1] ^= 0x01;
    await writeFile(join(via, last.key), body);
    expect(await lockWaits(dst.nodes[1]!)).toBeGreaterThan(0);
    await holder.query('ROLLBACK');
    await holder.end();
    const err = await copy;
    expect(err?.code, String(err?.message)).toBe('ERR_CHECKSUM_MISMATCH');
    expect(err?.key).toBe(last.key);
    expect(err?.node).toBe('dn2');
    expect(err?.message).toContain(last.key);
    // The unit's earlier objects loaded fine, in its transaction: none of them committed.
    expect(await countOf(dst.nodes[1]!, 'SELECT count(*)::text AS c FROM orders')).toBe(0);
    expect(await countOf(dst.nodes[1]!, `SELECT count(*)::text AS c FROM segferry.loads WHERE object_key LIKE 'orders_dn2_%'`)).toBe(0);
  }, 120_000);
});

describe('segferry copy --via --encrypt', () => {
  it('a key file (CLI): no staged object holds a known plaintext value, the destination equals the source, the prefix imports with the key only', async () => {
    await resetDst();
    const via = join(dir, 'stage-enc');
    const key = join(dir, 'copy.key');
    await writeFile(key, randomBytes(32), { mode: 0o600 });
    const r = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders', '--table', 'nation', '--via', via, '--segment-size', `${SEGMENT / 1024}KiB`, '--encrypt', `key-file:${key}`, '--verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const events = eventsOf(r.stdout);
    const verify = verifyNote(events);
    expect(verify.ok).toBe(true);
    const m = JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.clientEncryption?.keySource).toBe('key-file');
    expect(m.objects.length).toBeGreaterThan(4);
    // Values the source rows hold in plain text (orders' repeated 'abc,', nation's labels).
    expect(await countOf(src.nodes[1]!, `SELECT count(*)::text AS c FROM orders WHERE note LIKE 'abc,abc,abc,%'`)).toBeGreaterThan(100);
    expect(await countOf(src.nodes[0]!, `SELECT count(*)::text AS c FROM nation WHERE label IN ('nation 19') OR label LIKE '%Ivoire%'`)).toBeGreaterThan(1);
    const names = (await readdir(via)).filter((n) => n !== 'manifest.json');
    expect(names.length).toBe(m.objects.length);
    for (const n of names) {
      const b = await readFile(join(via, n));
      for (const needle of ['abc,abc,abc,', 'nation 19', 'Ivoire']) expect(b.includes(Buffer.from(needle)), `${n} holds ${needle}`).toBe(false);
    }
    await expectCopied();
    // The prefix imports with the key, and not without it.
    await third.query(`DROP TABLE IF EXISTS public.orders, public.nation; DROP SCHEMA IF EXISTS segferry CASCADE; ${trickyTableDDL('public.orders')}`);
    const without = await importTables({ from: via, target: third.url(), create: true }).then(() => undefined, (e: unknown) => e as { code?: string });
    expect(without?.code).toBe('ERR_ENCRYPTION_KEY');
    expect(await countOf(third, 'SELECT count(*)::text AS c FROM orders')).toBe(0);
    const again = await importTables({ from: via, topology: dst.staticTopology(), encrypt: { keyFile: key } });
    expect(again.loaded).toBe(0);
    const im = await importTables({ from: via, target: third.url(), create: true, verify: true, encrypt: { keyFile: key } });
    expect(im.verify?.ok).toBe(true);
    const a = await all(src, 'orders');
    const b = await rowMultiset(third, 'SELECT * FROM orders');
    expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
  }, 120_000);
});

describe.skipIf(motoServerPath() === undefined)('segferry copy --via --encrypt kms, on moto_server', () => {
  it('GenerateDataKey for the staging export, Decrypt for the loaders: no staged object holds plaintext, the destination equals the source', async () => {
    await resetDst();
    const h = await startS3({ server: 'moto' });
    try {
      const kms = new KMSClient({ endpoint: h.endpoint, region: h.region, credentials: h.credentials });
      const keyId = (await kms.send(new CreateKeyCommand({ Description: 'segferry copy test' }))).KeyMetadata!.KeyId!;
      const s3o: S3Options = { endpoint: h.endpoint, region: h.region, forcePathStyle: h.forcePathStyle, checksum: h.checksum, credentials: h.credentials, conditionalWrites: h.conditionalWrites };
      const res = await copyTables({
        sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'],
        via: `s3://${h.bucket}/kms`, s3: s3o, segmentSize: SEGMENT, encrypt: { kms: keyId }, verify: true,
      });
      expect(res.verify?.ok).toBe(true);
      const m = JSON.parse((await h.getObject(h.bucket, 'kms/manifest.json')).toString('utf8')) as Manifest;
      expect(m.clientEncryption).toMatchObject({ keySource: 'kms' });
      for (const o of m.objects) expect((await h.getObject(h.bucket, `kms/${o.key}`)).includes(Buffer.from('abc,abc,abc,'))).toBe(false);
      await expectCopied();
    } finally {
      await h.stop();
    }
  }, 120_000);
});

describe('segferry copy --via, columnar objects', () => {
  it('--format parquet (CLI): rows equal, every staged object a Parquet file DuckDB reads with the manifest\'s row count', async () => {
    await resetDst();
    const via = join(dir, 'stage-parquet');
    const r = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'orders', '--table', 'nation', '--via', via, '--format', 'parquet', '--segment-size', '256KiB', '--verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const events = eventsOf(r.stdout);
    const verify = verifyNote(events);
    expect(verify.ok).toBe(true);
    await expectCopied();
    const m = JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.format.kind).toBe('parquet');
    expect(m.objects.filter((o) => o.table === 'public.orders').length).toBeGreaterThan(2);
    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    try {
      for (const o of m.objects) {
        const q = await duck.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${join(via, o.key).replace(/'/g, "''")}')`);
        expect((q.getRowObjectsJson()[0] as { n: number }).n, o.key).toBe(o.rows);
      }
    } finally {
      duck.closeSync();
    }
    // A direct copy stages nothing: it refuses the columnar formats.
    const direct = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, '--table', 'nation', '--format', 'parquet']);
    expect(direct.code).toBe(2);
    expect(direct.stderr).toMatch(/--via/);
  }, 120_000);

  it('--format arrow (library): rows equal, the prefix an Arrow export', async () => {
    await resetDst();
    const via = join(dir, 'stage-arrow');
    const res = await copyTables({ sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), tables: ['orders', 'nation'], via, format: 'arrow', segmentSize: 1024 * 1024, verify: true });
    expect(res.verify?.ok).toBe(true);
    expect(res.loaded).toBeGreaterThan(3);
    expect((JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest).format.kind).toBe('arrow');
    await expectCopied();
  }, 120_000);
});

describe('segferry copy, table selection as export selects', () => {
  const planned = async (sel: string[]) => {
    const r = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, ...sel, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { tables: { table: string }[] }).tables.map((t) => t.table).sort();
  };

  it('--all, --schema, patterns and --exclude-table pick the tables the export would', async () => {
    expect(await planned(['--all'])).toEqual(['public.nation', 'public.orders']);
    expect(await planned(['--all', '--exclude-table', 'nat*'])).toEqual(['public.orders']);
    expect(await planned(['--schema', 'public', '-T', 'public.orders'])).toEqual(['public.nation']);
    expect(await planned(['--table', 'public.ord?rs'])).toEqual(['public.orders']);
    await writeFile(join(dir, 'tables.txt'), '# copy these\norders\nnation\n');
    await writeFile(join(dir, 'skip.txt'), 'nation\n');
    expect(await planned(['--table-file', join(dir, 'tables.txt'), '--exclude-table-file', join(dir, 'skip.txt')])).toEqual(['public.orders']);
    const none = await runCli(['copy', '--source', srcTopo, '--target', dstTopo, '--dry-run']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--table.*--schema.*--all/);
    // And the selection is what is copied.
    const res = await copyTables({ sourceTopology: src.staticTopology(), targetTopology: dst.staticTopology(), all: true, excludeTables: ['orders'], truncate: true, verify: true });
    expect(res.tables.map((t) => [t.table, t.loaded])).toEqual([['public.nation', 2]]);
    expect(res.verify?.ok).toBe(true);
  }, 60_000);
});
