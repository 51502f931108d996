import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  exportTables, importTables, verifyImport, SegferryError,
  type ImportOptions, type Manifest, type S3Options,
} from '../../lib/index.js';
import {
  describeMultisetDiff, mergeMultisets, rowMultiset, sameMultiset, startFdwCluster, trickyTableDDL,
  type SourceCluster,
} from '../helpers/fixtures.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';
import { freePort, type PgServer } from '../helpers/pg.js';
import { refChecksum } from '../helpers/row-hash-ref.js';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { checksumSQL } from '../../lib/export/export.js';
import { columnListSQL, copyOptionsSQL } from '../../lib/format/options.js';
import { applySettings } from '../../lib/pg/conn.js';

const CAP = 256 * 1024;
const ROWS = 20_000;

let src: SourceCluster;
let dst: SourceCluster;
let s3: S3Harness;
let s3opts: S3Options;
const tmpDirs: string[] = [];

type Variant = { format: 'text' | 'csv'; store: 's3' | 'dir' | 'moto' };
const variants: Variant[] = [
  { format: 'text', store: 's3' }, { format: 'text', store: 'dir' },
  { format: 'csv', store: 's3' }, { format: 'csv', store: 'dir' },
  // moto_server as a second S3 implementation, on one format to keep the run short.
  ...(motoServerPath() ? [{ format: 'text', store: 'moto' } as const] : []),
];
let moto: S3Harness | undefined;
let motoOpts: S3Options;
/** S3 settings for a variant's store. */
const s3For = (v: Variant): S3Options => (v.store === 'moto' ? motoOpts : s3opts);
const exported = new Map<string, { location: string; manifest: Manifest }>();
const vkey = (v: Variant) => `${v.format}-${v.store}`;

/** Source row sets, computed once: whole table, per data node, and the replicated table. */
let srcOrders: Map<string, number>;
let srcOrdersPerNode: Map<string, number>[];
let srcNation: Map<string, number>;

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-import-'));
  tmpDirs.push(d);
  return d;
}

beforeAll(async () => {
  [src, dst, s3] = await Promise.all([
    startFdwCluster({ rows: ROWS }),
    startFdwCluster({ rows: ROWS, withData: false }),
    startS3(),
  ]);
  if (!motoServerPath()) console.warn(MOTO_SKIP_MESSAGE);
  else moto = await startS3({ server: 'moto' });
  s3opts = { endpoint: s3.endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle, checksum: s3.checksum, credentials: s3.credentials };
  if (moto) motoOpts = { endpoint: moto.endpoint, region: moto.region, forcePathStyle: moto.forcePathStyle, checksum: moto.checksum, credentials: moto.credentials, conditionalWrites: moto.conditionalWrites };
  for (const v of variants) {
    const location = v.store === 's3' ? `s3://${s3.bucket}/${vkey(v)}/` : v.store === 'moto' ? `s3://${moto!.bucket}/${vkey(v)}/` : await tmp();
    const res = await exportTables({
      source: src.coordinator.url(), tables: ['orders', 'nation'], replicated: ['nation'], to: location, s3: s3For(v),
      segmentSize: CAP, format: v.format === 'csv' ? { kind: 'csv', header: true } : 'text',
    });
    exported.set(vkey(v), { location, manifest: res.manifest });
  }
  srcOrders = await rowMultiset(src.coordinator, 'SELECT * FROM orders');
  srcOrdersPerNode = await Promise.all(src.nodes.map((n) => rowMultiset(n, 'SELECT * FROM orders')));
  srcNation = await rowMultiset(src.nodes[0]!, 'SELECT * FROM nation');
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy(), s3?.stop(), moto?.stop()]);
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

function expectSame(a: Map<string, number>, b: Map<string, number>, what: string) {
  expect(sameMultiset(a, b), `${what}: ${describeMultisetDiff(a, b)}`).toBe(true);
}

/** Every ledger row of an import on the given servers: key → number of rows across servers. */
async function ledger(servers: PgServer[], importId: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of servers) {
    const r = await s.query<{ r: string | null }>(`SELECT to_regclass('segferry.loads')::text AS r`);
    if (!r[0]?.r) continue;
    for (const row of await s.query<{ k: string }>('SELECT object_key AS k FROM segferry.loads WHERE import_id = $1', [importId])) {
      out.set(row.k, (out.get(row.k) ?? 0) + 1);
    }
  }
  return out;
}

/** Sum of `rows` the ledgers record, per table. */
async function ledgerRows(servers: PgServer[], importId: string, table: string): Promise<number> {
  let n = 0;
  for (const s of servers) {
    const r = await s.query<{ r: string | null }>(`SELECT to_regclass('segferry.loads')::text AS r`);
    if (!r[0]?.r) continue;
    const x = await s.query<{ n: string }>('SELECT COALESCE(sum(rows), 0)::text AS n FROM segferry.loads WHERE import_id = $1 AND table_name = $2', [importId, table]);
    n += Number(x[0]!.n);
  }
  return n;
}

async function count(server: PgServer, table: string, db = 'postgres'): Promise<number> {
  return Number((await server.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`, [], db))[0]!.n);
}

async function expectDestinationEqualsSource() {
  expectSame(await rowMultiset(dst.coordinator, 'SELECT * FROM orders'), srcOrders, 'orders through the coordinator');
  for (let i = 0; i < 3; i++) {
    expectSame(await rowMultiset(dst.nodes[i]!, 'SELECT * FROM orders'), srcOrdersPerNode[i]!, `orders on dn${i + 1}`);
  }
  expectSame(await rowMultiset(dst.coordinator, 'SELECT * FROM nation'), srcNation, 'nation');
}

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/segferry.js', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function s3Flags(): string[] {
  return ['--s3-endpoint', s3.endpoint, '--s3-region', s3.region, '--s3-path-style', '--s3-checksum', s3.checksum];
}
const s3Env = () => ({ ...process.env, AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey });

describe('round trip into a second 3-node cluster', () => {
  for (const v of variants) {
    for (const route of ['direct', 'coordinator'] as const) {
      it(`${v.format} from ${v.store}, ${route}: verify matches and the row sets are equal`, async () => {
        const { location, manifest } = exported.get(vkey(v))!;
        const segs: string[] = [];
        const res = await importTables({
          from: location, s3: s3For(v), target: dst.coordinator.url(), route, truncate: true, verify: true,
          analyze: route === 'direct',
          onEvent: (e) => { if (e.type === 'segment' && !e.skipped) segs.push(`${e.node}:${e.key}`); },
        });
        const orders = res.tables.find((t) => t.table === 'public.orders')!;
        const nation = res.tables.find((t) => t.table === 'public.nation')!;
        expect(orders.route).toBe(route);
        // A replicated table goes once through the coordinator, or node-direct into every copy.
        expect(nation.route).toBe(route);
        expect(orders.truncated && nation.truncated).toBe(true);
        const nationObjects = manifest.objects.filter((o) => o.table === 'public.nation').map((o) => o.key);
        const copies = route === 'direct' ? 3 : 1;
        expect(res.loaded).toBe(manifest.objects.length + (copies - 1) * nationObjects.length);
        expect(res.skipped).toBe(0);
        expect(res.rows).toBe(ROWS + copies * src.replicatedRows);
        expect(res.verify!.ok).toBe(true);
        for (const t of res.verify!.tables) {
          expect(t.match).toBe(true);
          expect(t.checksummed).toBe(true);
          expect(t.destination).toEqual({ rows: t.source!.rows, sum: t.source!.sum });
        }
        // Node-direct: every orders object went to the node of its name; else all through the coordinator.
        for (const s of segs) {
          const [node, key] = s.split(':') as [string, string];
          if (route === 'coordinator') expect(node).toBe('coordinator');
          else if (key.startsWith('orders_')) expect(key).toContain(`_${node}_segment.`);
          else expect(['dn1', 'dn2', 'dn3']).toContain(node);
        }
        await expectDestinationEqualsSource();
        if (route === 'direct') {
          for (let i = 1; i < 3; i++) expectSame(await rowMultiset(dst.nodes[i]!, 'SELECT * FROM nation'), srcNation, `nation on dn${i + 1}`);
        }
        // Each object is recorded once per node it was loaded into.
        const l = await ledger([dst.coordinator, ...dst.nodes], manifest.id);
        expect([...l.keys()].sort()).toEqual(manifest.objects.map((o) => o.key).sort());
        for (const [k, n] of l) expect(n, k).toBe(nationObjects.includes(k) ? copies : 1);
        if (route === 'direct') {
          expect(orders.analyzed).toBe(true);
          const st = await dst.nodes[1]!.query<{ a: string | null }>(`SELECT last_analyze::text AS a FROM pg_stat_user_tables WHERE relname = 'orders'`);
          expect(st[0]!.a).not.toBeNull();
        }
      });
    }
  }
});

describe('row checksums (copy-rowhash64)', () => {
  /** A session on a server under the manifest's settings. */
  async function session<T>(server: PgServer, settings: Record<string, string>, f: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: server.url() });
    await c.connect();
    try {
      await applySettings(c, settings);
      return await f(c);
    } finally {
      await c.end();
    }
  }

  it('equal the source rows hashed apart (TEXT: lines of a plain COPY; CSV: without the header line)', async () => {
    for (const k of ['text-dir', 'csv-dir']) {
      const { manifest } = exported.get(k)!;
      for (const mt of manifest.tables) {
        expect(mt.checksum?.algorithm, `${k} ${mt.name}`).toBe('copy-rowhash64');
        const sql = `COPY (SELECT ${columnListSQL(mt.columns.map((c) => c.name))} FROM ${mt.name}) TO STDOUT (${copyOptionsSQL(manifest.format)})`;
        // Both halves from the independent reference (test/helpers/row-hash-ref.ts) over a plain
        // pg-copy-streams COPY, split into rows here, not by the library's reader.
        expect(manifest.format.quote ?? '"', 'the CSV split below assumes QUOTE = ESCAPE = \'"\'').toBe('"');
        expect(manifest.format.escape ?? manifest.format.quote ?? '"').toBe('"');
        const want = await session(src.coordinator, manifest.sessionSettings, async (c) => {
          let bytes = Buffer.alloc(0);
          for await (const chunk of c.query(pgCopy.to(sql))) bytes = Buffer.concat([bytes, chunk as Buffer]);
          // TEXT escapes newlines inside values: every raw newline ends a row. CSV quotes a value
          // holding a newline or a quote (doubled inside), so a newline ends a row when the quotes
          // before it are balanced.
          const csv = manifest.format.kind === 'csv';
          const rows: Buffer[] = [];
          let start = 0;
          let inQuotes = false;
          for (let i = 0; i < bytes.length; i++) {
            const b = bytes[i]!;
            if (csv && b === 0x22) inQuotes = !inQuotes;
            else if (b === 0x0a && !inQuotes) {
              rows.push(bytes.subarray(start, i + 1));
              start = i + 1;
            }
          }
          expect(start).toBe(bytes.length);
          return refChecksum(rows);
        });
        expect(mt.checksum, `${k} ${mt.name}`).toEqual({ ...want, algorithm: 'copy-rowhash64' });
        expect(mt.checksum!.rows).toBe(mt.rows);
      }
    }
  });

  it('verify: a match after import, a MISMATCH when one value changes (same row count); an older md5 manifest verifies through the SQL path', async () => {
    const { location, manifest } = exported.get('text-dir')!;
    await importTables({ from: location, target: dst.coordinator.url(), truncate: true });
    const ok = await verifyImport({ from: location, target: dst.coordinator.url() });
    expect(ok.ok).toBe(true);
    for (const t of ok.tables) {
      expect([t.table, t.match, t.checksummed, t.algorithm]).toEqual([t.table, true, true, 'copy-rowhash64']);
      expect(t.destination.sum).toBe(manifest.tables.find((x) => `public.${x.name}` === t.table)!.checksum!.sum);
    }

    // An older manifest: the same export with md5 checksums (no algorithm) computed on the source.
    const old = await tmp();
    await cp(location, old, { recursive: true });
    const m = JSON.parse(await readFile(join(old, 'manifest.json'), 'utf8')) as Manifest;
    for (const mt of m.tables) {
      const [r] = await src.coordinator.query<{ rows: string; sum: string }>(checksumSQL(`SELECT ${columnListSQL(mt.columns.map((c) => c.name))} FROM ${mt.name}`));
      mt.checksum = { rows: Number(r!.rows), sum: r!.sum };
      for (const n of mt.nodes) delete n.checksum;
    }
    await writeFile(join(old, 'manifest.json'), JSON.stringify(m));
    const legacy = await verifyImport({ from: old, target: dst.coordinator.url(), route: 'direct' });
    expect(legacy.ok).toBe(true);
    for (const t of legacy.tables) {
      expect([t.match, t.checksummed, t.algorithm]).toEqual([true, true, undefined]);
      expect(t.destination).toEqual({ rows: t.source!.rows, sum: t.source!.sum });
    }

    // One bit of one value on one node: counts equal, checksums not, on both paths.
    const flip = `UPDATE orders SET grp = grp # 1 WHERE id = (SELECT min(id) FROM orders WHERE grp IS NOT NULL)`;
    await dst.nodes[1]!.query(flip);
    for (const from of [location, old]) {
      const bad = await verifyImport({ from, target: dst.coordinator.url() });
      expect(bad.ok).toBe(false);
      const o = bad.tables.find((t) => t.table === 'public.orders')!;
      expect(o.match).toBe(false);
      expect(o.destination.rows).toBe(o.source!.rows);
      expect(o.destination.sum).not.toBe(o.source!.sum);
      expect(bad.tables.find((t) => t.table === 'public.nation')!.match).toBe(true);
    }
    await dst.nodes[1]!.query(flip);
    expect((await verifyImport({ from: location, target: dst.coordinator.url(), route: 'direct' })).ok).toBe(true);
  });
});

describe('static destination', () => {
  it('distributed rows go node-direct; the replicated table ends up complete on every node', async () => {
    const { location, manifest } = exported.get('text-dir')!;
    const topology = dst.staticTopology();
    const res = await importTables({ from: location, topology, truncate: true });
    expect(res.tables.map((t) => t.route)).toEqual(['direct', 'direct']);
    const nationObjects = manifest.objects.filter((o) => o.table === 'public.nation').length;
    const ordersObjects = manifest.objects.length - nationObjects;
    expect(res.loaded).toBe(ordersObjects + 3 * nationObjects);
    for (let i = 0; i < 3; i++) {
      expectSame(await rowMultiset(dst.nodes[i]!, 'SELECT * FROM nation'), srcNation, `nation on dn${i + 1}`);
      expectSame(await rowMultiset(dst.nodes[i]!, 'SELECT * FROM orders'), srcOrdersPerNode[i]!, `orders on dn${i + 1}`);
    }
    const v = await verifyImport({ from: location, topology });
    expect(v.ok).toBe(true);
    const vn = v.tables.find((t) => t.table === 'public.nation')!;
    expect(vn.replicatedPerNode).toBe(true);
    expect(vn.nodes!.map((n) => [n.node, n.match, n.rows])).toEqual([['dn1', true, 500], ['dn2', true, 500], ['dn3', true, 500]]);

    // A node that lost rows of its copy is named.
    await dst.nodes[2]!.query(`DELETE FROM nation WHERE code = 'N0007'`);
    const bad = await verifyImport({ from: location, topology });
    expect(bad.ok).toBe(false);
    expect(bad.tables.find((t) => t.table === 'public.nation')!.nodes!.filter((n) => !n.match).map((n) => n.node)).toEqual(['dn3']);
    expect(bad.tables.find((t) => t.table === 'public.orders')!.match).toBe(true);
  });
});

describe('exactly once', () => {
  it('a second import of the same prefix loads nothing and changes nothing', async () => {
    const { location, manifest } = exported.get('csv-s3')!;
    const opts: ImportOptions = { from: location, s3: s3opts, target: dst.coordinator.url() };
    await importTables({ ...opts, truncate: true });
    const servers = [dst.coordinator, ...dst.nodes];
    const snapshot = async () => {
      const out: unknown[] = [];
      for (const s of servers) out.push(await s.query(`SELECT import_id, object_key, table_name, sha256, rows::text, loaded_at::text FROM segferry.loads ORDER BY 1, 2`));
      return out;
    };
    const before = await snapshot();
    const beforeRows = await rowMultiset(dst.coordinator, 'SELECT * FROM orders');
    const skipped: string[] = [];
    const again = await importTables({ ...opts, onEvent: (e) => { if (e.type === 'segment' && e.skipped) skipped.push(e.key); } });
    expect(again.loaded).toBe(0);
    expect(again.rows).toBe(0);
    expect(again.skipped).toBe(manifest.objects.length);
    expect(skipped.sort()).toEqual(manifest.objects.map((o) => o.key).sort());
    expect(await snapshot()).toEqual(before);
    expectSame(await rowMultiset(dst.coordinator, 'SELECT * FROM orders'), beforeRows, 'orders after the second import');
    // Changing the route between runs of one import is refused rather than loading twice.
    await expect(importTables({ ...opts, route: 'coordinator', tables: ['orders'] })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', table: 'public.orders' });
  });

  it('an importer killed midway: the rerun completes without duplicates, each object once in the ledger', async () => {
    const { location, manifest } = exported.get('text-s3')!;
    // A single-loader CLI run (truncating first), killed after three committed objects.
    const child = spawn(process.execPath, ['bin/segferry.js', 'import', '--from', location, '--target', dst.coordinator.url(),
      '--truncate', '-j', '1', '--json', ...s3Flags()], { env: s3Env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = 0;
    let buf = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const e = JSON.parse(line);
        if (e.type === 'segment' && !e.skipped && ++seen === 3) child.kill('SIGKILL');
      }
    });
    const ex = await exited;
    expect(ex.signal, err).toBe('SIGKILL');
    const servers = [dst.coordinator, ...dst.nodes];
    const l1 = await ledger(servers, manifest.id);
    expect(l1.size).toBeGreaterThanOrEqual(3);
    expect(l1.size).toBeLessThan(manifest.objects.length);
    // Only whole, recorded objects are in the table.
    expect(await count(dst.coordinator, 'orders')).toBe(await ledgerRows(servers, manifest.id, 'public.orders'));

    const res = await importTables({ from: location, s3: s3opts, target: dst.coordinator.url(), verify: true });
    expect(res.skipped).toBe(l1.size);
    expect(res.loaded).toBe(manifest.objects.length - l1.size);
    expect(res.verify!.ok).toBe(true);
    await expectDestinationEqualsSource();
    const l2 = await ledger(servers, manifest.id);
    expect([...l2.keys()].sort()).toEqual(manifest.objects.map((o) => o.key).sort());
    expect([...l2.values()].every((n) => n === 1)).toBe(true);
  });

  it('a flipped byte: the import fails naming the object, none of its rows load; after repair the rerun completes', async () => {
    const { location, manifest } = exported.get('text-dir')!;
    const dir = await tmp();
    await cp(location, dir, { recursive: true });
    const victim = manifest.objects.filter((o) => o.table === 'public.orders' && o.node === 'dn2')[1]!;
    const path = join(dir, victim.key);
    const good = await readFile(path);
    const bad = Buffer.from(good);
    let at = Math.floor(bad.length / 2);
    while (!(bad[at]! >= 0x30 && bad[at]! <= 0x38)) at++;
    bad[at] = bad[at]! + 1;
    await writeFile(path, bad);
    // The ids the object holds: first field of each line (text escapes newlines inside values).
    const ids = good.toString('utf8').split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf('\t')));
    expect(ids.length).toBe(victim.rows);

    let err: unknown;
    try {
      await importTables({ from: dir, target: dst.coordinator.url(), truncate: true, concurrency: 2 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SegferryError);
    const e = err as SegferryError;
    expect(e.code, e.message).toBe('ERR_CHECKSUM_MISMATCH');
    expect(e.key).toBe(victim.key);
    expect(e.table).toBe('public.orders');
    expect(e.message).toContain(victim.key);
    const found = await dst.coordinator.query<{ n: string }>('SELECT count(*)::text AS n FROM orders WHERE id = ANY($1::bigint[])', [ids]);
    expect(found[0]!.n).toBe('0');
    const servers = [dst.coordinator, ...dst.nodes];
    const l1 = await ledger(servers, manifest.id);
    expect(l1.has(victim.key)).toBe(false);
    expect(await count(dst.coordinator, 'orders')).toBe(await ledgerRows(servers, manifest.id, 'public.orders'));

    await writeFile(path, good);
    const res = await importTables({ from: dir, target: dst.coordinator.url(), verify: true });
    expect(res.skipped).toBe(l1.size);
    expect(res.verify!.ok).toBe(true);
    await expectDestinationEqualsSource();
    const l2 = await ledger(servers, manifest.id);
    expect(l2.size).toBe(manifest.objects.length);
    expect([...l2.values()].every((n) => n === 1)).toBe(true);
  });
});

describe('create, bare objects, CLI', () => {
  it('creates missing tables on a single server from the manifest, then verify agrees', async () => {
    await dst.coordinator.query('DROP DATABASE IF EXISTS scratch');
    await dst.coordinator.query('CREATE DATABASE scratch');
    const { location } = exported.get('csv-dir')!;
    const res = await importTables({ from: location, target: dst.coordinator.url('scratch'), create: true, analyze: true, verify: true });
    expect(res.tables.map((t) => [t.table, t.route, t.created])).toEqual([
      ['public.orders', 'coordinator', ['coordinator']], ['public.nation', 'coordinator', ['coordinator']],
    ]);
    expect(res.verify!.ok).toBe(true);
    expectSame(await rowMultiset(dst.coordinator, 'SELECT * FROM orders', 'scratch'), srcOrders, 'orders in scratch');
    const cols = await dst.coordinator.query<{ t: string }>(
      `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attnum > 0 ORDER BY attnum`, [], 'scratch');
    expect(cols.map((c) => c.t)).toEqual(exported.get('csv-dir')!.manifest.tables[0]!.columns.map((c) => c.type));
  });

  it('bare objects without a manifest: loaded once, no checksum to compare, and it says so', async () => {
    const { location, manifest } = exported.get('text-dir')!;
    const dir = await tmp();
    for (const o of manifest.objects.filter((x) => x.table === 'public.orders')) await cp(join(location, o.key), join(dir, o.key));
    await writeFile(join(dir, 'unrelated.txt'), 'not a segment\n');
    const opts: ImportOptions = { from: dir, target: dst.coordinator.url('scratch'), bare: { table: 'orders', format: 'text' } };
    const res = await importTables({ ...opts, truncate: true });
    expect(res.importId).toMatch(/^bare:/);
    expect(res.loaded).toBe(manifest.objects.filter((x) => x.table === 'public.orders').length);
    expect(res.rows).toBe(ROWS);
    expect(res.notes.join('\n')).toMatch(/no SHA-256, row count or checksum/);
    expectSame(await rowMultiset(dst.coordinator, 'SELECT * FROM orders', 'scratch'), srcOrders, 'orders from bare objects');
    const again = await importTables(opts);
    expect([again.loaded, again.skipped]).toEqual([0, res.loaded]);
    const v = await verifyImport({ from: dir, target: dst.coordinator.url('scratch'), bare: { table: 'orders' } });
    expect(v.ok).toBe(true);
    expect(v.tables[0]!.match).toBeNull();
    expect(v.tables[0]!.note).toMatch(/no checksum recorded/);
    expect(v.tables[0]!.destination.rows).toBe(ROWS);
  });

  it('CLI: dry run plans and changes nothing; verify prints both figures and exits 3 on a mismatch', async () => {
    const { location, manifest } = exported.get('text-dir')!;
    await importTables({ from: location, target: dst.coordinator.url(), truncate: true });
    const servers = [dst.coordinator, ...dst.nodes];
    const before = await ledger(servers, manifest.id);

    const dry = cli(['import', '--from', location, '--target', dst.coordinator.url(), '--truncate', '--dry-run']);
    expect(dry.status, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout);
    expect(plan.importId).toBe(manifest.id);
    expect(plan.tables.map((t: { table: string; route: string }) => [t.table, t.route])).toEqual([['public.orders', 'direct'], ['public.nation', 'coordinator']]);
    expect(dry.stdout + dry.stderr).not.toContain(dst.coordinator.password);
    expect(await ledger(servers, manifest.id)).toEqual(before);
    expect(await count(dst.coordinator, 'orders')).toBe(ROWS);

    const ok = cli(['verify', '--from', location, '--target', dst.coordinator.url()]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/match\s+public\.orders/);
    const sum = manifest.tables[0]!.checksum!.sum;
    expect(ok.stdout).toContain(`${ROWS} rows, checksum ${sum}`);

    await dst.nodes[2]!.query('DELETE FROM orders WHERE id IN (SELECT id FROM orders LIMIT 5)');
    const bad = cli(['verify', '--from', location, '--target', dst.coordinator.url()]);
    expect(bad.status).toBe(3);
    expect(bad.stdout).toMatch(/MISMATCH\s+public\.orders/);
    expect(bad.stdout).toContain(`source       ${ROWS} rows, checksum ${sum}`);
    expect(bad.stdout).toContain(`destination  ${ROWS - 5} rows`);
    expect(bad.stderr).toContain('ERR_VERIFY_MISMATCH');
    const direct = await verifyImport({ from: location, target: dst.coordinator.url(), route: 'direct' });
    expect(direct.tables.find((t) => t.table === 'public.orders')!.nodes!.map((n) => n.rows)).toEqual(
      srcOrdersPerNode.map((m, i) => [...m.values()].reduce((a, b) => a + b, 0) - (i === 2 ? 5 : 0)));
  });
});

describe('bad input: a typed error, and only whole recorded objects in the destination', () => {
  async function failure(opts: ImportOptions): Promise<SegferryError> {
    let err: unknown;
    try {
      await importTables(opts);
    } catch (e) {
      err = e;
    }
    expect(err, 'import should fail').toBeInstanceOf(SegferryError);
    return err as SegferryError;
  }

  it('a missing manifest', async () => {
    const e = await failure({ from: await tmp(), target: dst.coordinator.url() });
    expect(e.code).toBe('ERR_MANIFEST_MISSING');
    expect(e.hint).toMatch(/bare/);
  });

  it('an object listed but missing: nothing is loaded', async () => {
    const { location, manifest } = exported.get('text-dir')!;
    const dir = await tmp();
    await cp(location, dir, { recursive: true });
    const gone = manifest.objects[manifest.objects.length - 2]!;
    await rm(join(dir, gone.key));
    await dst.coordinator.query('TRUNCATE orders, nation');
    const e = await failure({ from: dir, target: dst.coordinator.url(), truncate: true });
    expect(e.code).toBe('ERR_OBJECT_MISSING');
    expect(e.key).toBe(gone.key);
    expect(await count(dst.coordinator, 'orders')).toBe(0);
  });

  it('a destination table whose columns do not fit', async () => {
    await dst.coordinator.query('DROP DATABASE IF EXISTS misfit');
    await dst.coordinator.query('CREATE DATABASE misfit');
    await dst.coordinator.query(trickyTableDDL('orders'), [], 'misfit');
    // integer into bigint is a safe widening (docs/formats.md#types); into smallint it narrows.
    await dst.coordinator.query('ALTER TABLE orders ALTER COLUMN grp TYPE smallint', [], 'misfit');
    const e = await failure({ from: exported.get('text-dir')!.location, target: dst.coordinator.url('misfit'), tables: ['orders'] });
    expect(e.code).toBe('ERR_SCHEMA_MISMATCH');
    expect(e.table).toBe('public.orders');
    expect(e.message).toMatch(/"grp" is smallint, but was exported as integer/);
    await dst.coordinator.query('ALTER TABLE orders ALTER COLUMN grp TYPE integer, DROP COLUMN note', [], 'misfit');
    const e2 = await failure({ from: exported.get('text-dir')!.location, target: dst.coordinator.url('misfit'), tables: ['orders'] });
    expect(e2.code).toBe('ERR_SCHEMA_MISMATCH');
    expect(e2.message).toMatch(/no column "note"/);
    expect(await count(dst.coordinator, 'orders', 'misfit')).toBe(0);
  });

  it('wrong credentials', async () => {
    const url = `postgres://segferry:wrong-secret-7781@127.0.0.1:${dst.coordinator.port}/postgres`;
    const e = await failure({ from: exported.get('text-dir')!.location, target: url });
    expect(e.code).toBe('ERR_AUTH');
    expect(e.sqlState).toBe('28P01');
    expect(e.message).not.toContain('wrong-secret-7781');
  });

  it('an unreachable node of a static destination', async () => {
    const topology = dst.staticTopology();
    topology.nodes[1]!.url = `postgres://segferry:x@127.0.0.1:${await freePort()}/postgres`;
    const e = await failure({ from: exported.get('text-dir')!.location, topology });
    expect(e.code).toBe('ERR_CONNECT');
    expect(e.node).toBe('dn2');
  });

  it('a static destination whose node names differ from the source\'s', async () => {
    const topology = dst.staticTopology();
    topology.nodes[2]!.name = 'other3';
    const e = await failure({ from: exported.get('text-dir')!.location, topology, tables: ['orders'] });
    expect(e.code).toBe('ERR_TOPOLOGY');
    expect(e.node).toBe('dn3');
  });
});
