import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import {
  exportTables, planExport, readManifest, openStore, SegferryError,
  type ExportOptions, type Manifest, type S3Options,
} from '../../lib/index.js';
import { startFdwCluster, startStaticCluster, rowMultiset, sameMultiset, mergeMultisets, type SourceCluster } from '../helpers/fixtures.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';
import type { PgServer } from '../helpers/pg.js';
import { planDigest, type Checkpoint } from '../../lib/export/checkpoint.js';
import { crc32Hex } from '../helpers/digest.js';

const CAP = 256 * 1024;
const ROWS = 200_000;
const SEGMENT_KEY = /^(.+)_(dn\d|coordinator)_segment\.(\d+)$/;

let fdw: SourceCluster;
let stat_: SourceCluster;
let s3: S3Harness;
let s3opts: S3Options;
let moto: S3Harness | undefined;
let motoOpts: S3Options;
const tmpDirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-export-'));
  tmpDirs.push(d);
  return d;
}

beforeAll(async () => {
  [fdw, stat_, s3] = await Promise.all([
    startFdwCluster({ rows: ROWS }),
    startStaticCluster({ rows: ROWS }),
    startS3(),
  ]);
  s3opts = {
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    checksum: s3.checksum,
    credentials: s3.credentials,
  };
  if (!motoServerPath()) console.warn(MOTO_SKIP_MESSAGE);
  else {
    moto = await startS3({ server: 'moto' });
    motoOpts = { endpoint: moto.endpoint, region: moto.region, forcePathStyle: moto.forcePathStyle, checksum: moto.checksum, credentials: moto.credentials, conditionalWrites: moto.conditionalWrites };
  }
});

afterAll(async () => {
  await Promise.allSettled([fdw?.destroy(), stat_?.destroy(), s3?.stop(), moto?.stop()]);
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

/** Read every object of an export, check names, cap and manifest figures, and load each one on its own. */
async function checkExport(location: string, manifest: Manifest, scratch: PgServer, format: 'text' | 'csv', s3 = s3opts) {
  const store = openStore(location, s3);
  try {
    const keys: { key: string; size: number }[] = [];
    for await (const o of store.list('')) keys.push(o);
    const listed = new Set(manifest.objects.map((o) => o.key));
    // Nothing but the manifest and the listed objects.
    expect(keys.map((k) => k.key).sort()).toEqual([...listed, 'manifest.json'].sort());
    // Names: <table>_<node>_segment.<n>, n contiguous from 0 per table and node.
    const seq = new Map<string, number[]>();
    for (const o of manifest.objects) {
      const m = SEGMENT_KEY.exec(o.key);
      expect(m, o.key).not.toBeNull();
      expect(`${m![1]}_${m![2]}`).toBe(`${o.table.split('.')[1]}_${o.node}`);
      expect(Number(m![3])).toBe(o.segment);
      seq.set(`${m![1]}|${m![2]}`, [...(seq.get(`${m![1]}|${m![2]}`) ?? []), o.segment]);
    }
    for (const [, ns] of seq) expect(ns.sort((a, b) => a - b)).toEqual(ns.map((_, i) => i));

    const client = new pg.Client({ connectionString: scratch.url() });
    await client.connect();
    try {
      await client.query(`SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET TimeZone = 'UTC'`);
      for (const t of ['orders', 'nation']) {
        await client.query(`DROP TABLE IF EXISTS chk_${t}, all_${t}`);
      }
      // Column definitions come from the manifest.
      for (const mt of manifest.tables) {
        const cols = mt.columns.map((c) => `"${c.name}" ${c.type}`).join(', ');
        await client.query(`CREATE TABLE chk_${mt.name} (${cols})`);
        await client.query(`CREATE TABLE all_${mt.name} (${cols})`);
      }
      const opts = format === 'csv' ? `(FORMAT csv${manifest.format.header ? ', HEADER true' : ''})` : '(FORMAT text)';
      for (const o of manifest.objects) {
        const body = await readAll(await store.read(o.key));
        expect(body.length, o.key).toBe(o.bytes);
        expect(body.length, `${o.key} within cap`).toBeLessThanOrEqual(CAP);
        // The default digest: CRC-32 of the stored bytes, as zlib computes it.
        expect([o.crc32, o.sha256], o.key).toEqual([crc32Hex(body), undefined]);
        const name = o.table.split('.')[1];
        await client.query(`TRUNCATE chk_${name}`);
        const cs = client.query(copyFrom(`COPY chk_${name} FROM STDIN ${opts}`));
        await pipeline(Readable.from([body]), cs);
        expect(Number((cs as unknown as { rowCount: number }).rowCount), `${o.key} rows`).toBe(o.rows);
        await client.query(`INSERT INTO all_${name} SELECT * FROM chk_${name}`);
      }
    } finally {
      await client.end();
    }
  } finally {
    store.close();
  }
}

async function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

async function sourceSets(c: SourceCluster, table: string, replicated: boolean) {
  if (replicated) return rowMultiset(c.nodes[0]!, `SELECT * FROM ${table}`);
  return mergeMultisets(...(await Promise.all(c.nodes.map((n) => rowMultiset(n, `SELECT * FROM ${table}`)))));
}

const combos: { topo: 'fdw' | 'static'; format: 'text' | 'csv'; store: 's3' | 'dir' | 'moto' }[] = [];
for (const topo of ['fdw', 'static'] as const) {
  for (const format of ['text', 'csv'] as const) {
    for (const st of ['s3', 'dir'] as const) combos.push({ topo, format, store: st });
  }
}
// moto_server as a second S3 implementation, on one combination to keep the run short.
if (motoServerPath()) combos.push({ topo: 'fdw', format: 'text', store: 'moto' });

describe('export', () => {
  for (const c of combos) {
    it(`${c.topo} topology, ${c.format}, to ${c.store}: segments are whole, capped, complete`, async () => {
      const cluster = c.topo === 'fdw' ? fdw : stat_;
      const location = c.store === 's3' ? `s3://${s3.bucket}/${c.topo}-${c.format}/` : c.store === 'moto' ? `s3://${moto!.bucket}/${c.topo}-${c.format}/` : await tmp();
      const storeOpts = c.store === 'moto' ? motoOpts : s3opts;
      const opts: ExportOptions = {
        tables: ['orders', 'nation'],
        to: location,
        s3: storeOpts,
        segmentSize: CAP,
        format: c.format === 'csv' ? { kind: 'csv', header: true } : 'text',
      };
      if (c.topo === 'fdw') {
        opts.source = fdw.coordinator.url();
        opts.replicated = ['nation'];
      } else {
        opts.topology = stat_.staticTopology();
      }
      const res = await exportTables(opts);
      const m = res.manifest;
      const store = openStore(location, storeOpts);
      expect(await readManifest(store)).toEqual(m);
      store.close();

      // The replicated table comes from exactly one node.
      const nationNodes = new Set(m.objects.filter((o) => o.table === 'public.nation').map((o) => o.node));
      expect(nationNodes.size).toBe(1);
      expect(m.tables.find((t) => t.name === 'nation')!.distribution.kind).toBe('replicated');
      // The distributed table comes from all three data nodes, never the coordinator.
      const orderNodes = new Set(m.objects.filter((o) => o.table === 'public.orders').map((o) => o.node));
      expect([...orderNodes].sort()).toEqual(['dn1', 'dn2', 'dn3']);
      expect(m.tables.find((t) => t.name === 'orders')!.rows).toBe(ROWS);
      expect(m.objects.filter((o) => o.table === 'public.orders').length).toBeGreaterThan(6);

      const scratch = fdw.coordinator;
      await checkExport(location, m, scratch, c.format, storeOpts);
      for (const [t, rep] of [['orders', false], ['nation', true]] as const) {
        const exported = await rowMultiset(scratch, `SELECT * FROM all_${t}`);
        const source = await sourceSets(cluster, t, rep);
        expect(sameMultiset(exported, source), `${t} row multiset`).toBe(true);
      }
    });
  }

  it('plans on the coordinator only: the export completes with the coordinator stopped', async () => {
    const plan = await planExport({ source: fdw.coordinator.url(), tables: ['orders'], segmentSize: CAP });
    expect(plan.topology).toBe('fdw');
    expect(plan.nodes.map((n) => n.name)).toEqual(['dn1', 'dn2', 'dn3']);
    expect(JSON.stringify(plan)).not.toContain(fdw.coordinator.password);
    await fdw.coordinator.stop();
    try {
      const dir = await tmp();
      const res = await exportTables({ tables: ['orders'], to: dir, plan });
      expect(res.manifest.tables[0]!.rows).toBe(ROWS);
    } finally {
      await fdw.coordinator.start();
    }
  });

  it('resume after an older version: units with md5 checksums are redone, copy-rowhash64 ones kept, and the sums add up', async () => {
    const opts: Omit<ExportOptions, 'to'> = { topology: stat_.staticTopology(), tables: ['orders'], where: 'id % 40 = 0', segmentSize: CAP };
    const full = await tmp();
    const a = await exportTables({ ...opts, to: full });
    const mt = a.manifest.tables[0]!;
    expect(mt.checksum?.algorithm).toBe('copy-rowhash64');
    // The same export left unfinished by an older version on dn1: its unit carries an md5-era checksum.
    const part = await tmp();
    await cp(full, part, { recursive: true });
    await rm(join(part, 'manifest.json'));
    const cp_: Checkpoint = {
      kind: 'segferry-checkpoint', version: 1, planDigest: planDigest(a.plan), createdAt: a.manifest.createdAt, updatedAt: a.manifest.createdAt,
      units: mt.nodes.map((n) => ({
        table: 'public.orders', node: n.node, rows: n.rows, bytes: n.bytes,
        objects: a.manifest.objects.filter((o) => o.node === n.node),
        checksum: n.node === 'dn1' ? { rows: n.rows, sum: '1155224961378580389789' } : n.checksum!,
      })),
    };
    await writeFile(join(part, 'segferry-checkpoint.json'), JSON.stringify(cp_));
    const stored: string[] = [];
    const b = await exportTables({ ...opts, plan: a.plan, to: part, resume: true, onEvent: (e) => { if (e.type === 'segment') stored.push(e.node); } });
    expect([...new Set(stored)]).toEqual(['dn1']);
    expect(b.manifest.tables[0]!.checksum).toEqual(mt.checksum);
    expect(b.manifest.tables[0]!.nodes.map((n) => n.checksum)).toEqual(mt.nodes.map((n) => n.checksum));
    expect(b.manifest.objects).toEqual(a.manifest.objects);
    expect((await readdir(part)).sort()).toEqual((await readdir(full)).sort());
  });

  it('dry run prints the plan and writes nothing', async () => {
    const dir = join(await tmp(), 'never');
    const r = spawnSync(process.execPath, ['bin/segferry.js', 'export', '--source', fdw.coordinator.url(), '--table', 'orders',
      '--table', 'nation', '--replicated', 'nation', '--to', dir, '--dry-run'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.tables.map((t: { table: { name: string } }) => t.table.name)).toEqual(['orders', 'nation']);
    expect(plan.tables[0].reads.map((x: { node: string }) => x.node)).toEqual(['dn1', 'dn2', 'dn3']);
    expect(r.stdout + r.stderr).not.toContain(fdw.coordinator.password);
    await expect(stat(dir)).rejects.toThrow();
  });

  describe('failures: a typed error and no manifest', () => {
    async function expectFailure(opts: ExportOptions, code: string, check?: (e: SegferryError) => void, manifestMayExist = false) {
      let err: unknown;
      try {
        await exportTables(opts);
      } catch (e) {
        err = e;
      }
      expect(err, 'export should fail').toBeInstanceOf(SegferryError);
      const e = err as SegferryError;
      expect(e.code, e.message).toBe(code);
      check?.(e);
      if (typeof opts.to === 'string' && !manifestMayExist) {
        const st = openStore(opts.to, s3opts);
        try {
          expect(await st.head('manifest.json').catch(() => undefined)).toBeUndefined();
        } finally {
          st.close();
        }
      }
      return e;
    }

    it('a data node that is down', async () => {
      const dn2 = stat_.nodes[1]!;
      await dn2.stop();
      try {
        await expectFailure({ topology: stat_.staticTopology(), tables: ['orders'], to: await tmp() }, 'ERR_CONNECT', (e) => {
          expect(e.node).toBe('dn2');
          expect(e.message).not.toContain(dn2.password);
        });
      } finally {
        await dn2.start();
      }
    });

    it('a data node that dies mid-export: no manifest, partial files removed', async () => {
      const dir = await tmp();
      const dn3 = stat_.nodes[2]!;
      let stopped: Promise<void> | undefined;
      const e = await expectFailure({
        topology: stat_.staticTopology(), tables: ['orders'], to: dir, segmentSize: CAP,
        onEvent: (ev) => {
          if (!stopped && ev.type === 'segment' && ev.node === 'dn3') {
            stopped = dn3.stop('immediate');
          }
        },
      }, 'ERR_CONNECT');
      expect(e.node).toBe('dn3');
      await stopped;
      await dn3.start();
      const files = await readdir(dir);
      expect(files.filter((f) => f.includes('partial'))).toEqual([]);
    });

    it('a missing table', async () => {
      await expectFailure({ source: fdw.coordinator.url(), tables: ['no_such_table'], to: await tmp() }, 'ERR_TABLE_NOT_FOUND', (e) => {
        expect(e.sqlState).toBe('42P01');
      });
    });

    it('a missing bucket', async () => {
      await expectFailure({ source: fdw.coordinator.url(), tables: ['orders'], to: 's3://sf-no-such-bucket-x1/p/', s3: s3opts }, 'ERR_BUCKET_NOT_FOUND');
    });

    it('a row larger than the cap', async () => {
      await expectFailure({ topology: stat_.staticTopology(), tables: ['orders'], to: `s3://${s3.bucket}/toolarge/`, s3: s3opts, segmentSize: 64 * 1024 }, 'ERR_ROW_TOO_LARGE', (e) => {
        expect(e.table).toBe('public.orders');
        expect(['dn1', 'dn2', 'dn3']).toContain(e.node);
        expect(e.message).toMatch(/\d+ bytes, larger than the segment size 65536/);
      });
    });

    it('a non-empty prefix without overwrite; with overwrite it is replaced', async () => {
      const dir = await tmp();
      const first = await exportTables({ topology: stat_.staticTopology(), tables: ['nation'], replicated: ['nation'], to: dir });
      await expectFailure({ topology: stat_.staticTopology(), tables: ['nation'], replicated: ['nation'], to: dir }, 'ERR_PREFIX_NOT_EMPTY', undefined, true);
      // The failed attempt left the first export intact.
      expect(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')).id).toBe(first.manifest.id);
      const second = await exportTables({ topology: stat_.staticTopology(), tables: ['nation'], replicated: ['nation'], to: dir, overwrite: true });
      expect(second.manifest.id).not.toBe(first.manifest.id);
      expect(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')).id).toBe(second.manifest.id);
    });
  });
});
