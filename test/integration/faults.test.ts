import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { copyOptionsSQL } from '../../lib/format/options.js';
import { applySettings } from '../../lib/pg/conn.js';
import {
  exportTables, importTables, verifyImport, openStore, DirectoryStore, KeyEscapesRootError, type S3Options, type SegferryEvent,
} from '../../lib/index.js';
import { startStaticCluster, trickyTableDDL, trickyInsertSQL, rowMultiset, mergeMultisets, sameMultiset, describeMultisetDiff, type SourceCluster } from '../helpers/fixtures.js';
import { startS3, type S3Harness } from '../helpers/s3.js';
import { startFaultyProxy, type FaultyProxy } from '../helpers/faulty-proxy.js';
import { recordedAndComputed } from '../helpers/digest.js';

const ROWS = 30_000;
const CAP = 256 * 1024;
let cl: SourceCluster;
let s3: S3Harness;
let proxy: FaultyProxy;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-faults-'));
  dirs.push(d);
  return d;
}

function s3opts(endpoint = s3.endpoint): S3Options {
  return { endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle, checksum: s3.checksum, credentials: s3.credentials, partSize: 5 * 1024 * 1024 };
}

beforeAll(async () => {
  [cl, s3] = await Promise.all([startStaticCluster({ rows: ROWS }), startS3()]);
  proxy = await startFaultyProxy(s3.endpoint, { rate: 0.05, seed: 7 });
});

afterAll(async () => {
  await Promise.allSettled([cl?.destroy(), s3?.stop(), proxy?.close()]);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Run the CLI; resolve with exit code and output. `onLine` sees stdout lines as they come. */
function cli(args: string[], onLine?: (line: string) => void, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['bin/segferry.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    createInterface({ input: p.stdout }).on('line', (l) => { stdout += l + '\n'; onLine?.(l); });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every object the manifest lists has the recorded bytes and digest; return the manifest. */
async function checkObjects(location: string, opts?: S3Options) {
  const store = openStore(location, opts);
  try {
    const m = JSON.parse((await store.getBytes('manifest.json'))!.toString('utf8'));
    for (const o of m.objects) {
      const body = (await store.getBytes(o.key))!;
      expect(body.length, o.key).toBe(o.bytes);
      const [recorded, computed] = recordedAndComputed(o, body);
      expect(computed, o.key).toBe(recorded);
    }
    return m;
  } finally {
    store.close();
  }
}

describe('S3 faults', () => {
  it('export completes through 5% injected SlowDown, 500s, dropped connections and delays', async () => {
    const before = { ...proxy.stats };
    const retries: SegferryEvent[] = [];
    const res = await exportTables({
      topology: cl.staticTopology(),
      tables: ['orders', 'nation'],
      to: `s3://${s3.bucket}/faulty/`,
      s3: s3opts(proxy.endpoint),
      segmentSize: CAP,
      onEvent: (e) => { if (e.type === 'retry') retries.push(e); },
    });
    const injected = proxy.stats.slowDown + proxy.stats.serverError + proxy.stats.dropped - before.slowDown - before.serverError - before.dropped;
    expect(injected).toBeGreaterThan(0);
    expect(retries.length).toBeGreaterThan(0);
    expect(res.manifest.tables[0]!.rows).toBe(ROWS);
    await checkObjects(`s3://${s3.bucket}/faulty/`, s3opts());

    // Import through the same faults into an empty cluster; verify matches.
    const dest = await startStaticCluster({ rows: ROWS, withData: false });
    try {
      const midStats = { ...proxy.stats };
      const importRetries: SegferryEvent[] = [];
      const imp = await importTables({ from: `s3://${s3.bucket}/faulty/`, s3: s3opts(proxy.endpoint), topology: dest.staticTopology(), onEvent: (e) => { if (e.type === 'retry') importRetries.push(e); } });
      expect(importRetries.length).toBeGreaterThan(0);
      expect(imp.loaded).toBe(res.manifest.objects.length + res.manifest.objects.filter((o) => o.table === 'public.nation').length * 2);
      expect(proxy.stats.requests - midStats.requests).toBeGreaterThan(imp.loaded);
      const v = await verifyImport({ from: `s3://${s3.bucket}/faulty/`, s3: s3opts(proxy.endpoint), topology: dest.staticTopology() });
      expect(v.ok, JSON.stringify(v.tables)).toBe(true);
      expect(v.tables.every((t) => t.match === true && t.checksummed)).toBe(true);
    } finally {
      await dest.destroy();
    }
  });
});

describe('object reads cut off midway', () => {
  it('import reloads the object: every row exactly once, verify matches', async () => {
    const loc = `s3://${s3.bucket}/cut/`;
    await exportTables({ topology: cl.staticTopology(), tables: ['orders'], to: loc, s3: s3opts(), segmentSize: CAP });
    const cut = await startFaultyProxy(s3.endpoint, { rate: 0.3, seed: 11, truncateGets: true, methods: ['GET'] });
    const dest = await startStaticCluster({ rows: ROWS, withData: false });
    try {
      const retries: SegferryEvent[] = [];
      const imp = await importTables({ from: loc, s3: { ...s3opts(cut.endpoint), maxAttempts: 1 }, topology: dest.staticTopology(), onEvent: (e) => { if (e.type === 'retry') retries.push(e); } });
      expect(cut.stats.truncated).toBeGreaterThan(0);
      expect(retries.length).toBeGreaterThan(0);
      expect(imp.rows).toBe(ROWS);
      const v = await verifyImport({ from: loc, s3: s3opts(), topology: dest.staticTopology() });
      expect(v.ok).toBe(true);
    } finally {
      await Promise.allSettled([cut.close(), dest.destroy()]);
    }
  });
});

describe('S3 that keeps failing', () => {
  it('fails the export cleanly: a typed storage error, no manifest, no stray objects', async () => {
    // Every upload of a segment fails (never a delay that lets it through); the prefix claim
    // and the checkpoint get through, so the failure lands on the first segment of a node.
    const bad = await startFaultyProxy(s3.endpoint, { rate: 1, seed: 6, methods: ['PUT'], paths: /_segment\.\d+/, failOnly: true });
    try {
      const prefix = `s3://${s3.bucket}/always-failing/`;
      let err: unknown;
      try {
        await exportTables({ topology: cl.staticTopology(), tables: ['orders'], to: prefix, s3: { ...s3opts(bad.endpoint), maxAttempts: 2 }, segmentSize: CAP });
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string })?.code).toBe('ERR_STORAGE');
      expect((err as Error).message).toMatch(/uploading .*orders_dn\d_segment\.0/);
      expect(bad.stats.requests).toBeGreaterThan(2);
      // What may remain: nothing, or the checkpoint with the whole objects of the units it
      // lists as finished (kept for --resume). No manifest, no partial upload, no object of an
      // unfinished unit.
      const keys = (await s3.listKeys(s3.bucket, 'always-failing/')).map((k) => k.key.slice('always-failing/'.length));
      expect(keys.filter((k) => /segferry-partial|manifest\.json/.test(k))).toEqual([]);
      const finished: string[] = [];
      if (keys.includes('segferry-checkpoint.json')) {
        const cp = JSON.parse((await s3.getObject(s3.bucket, 'always-failing/segferry-checkpoint.json')).toString('utf8')) as { units: { objects: { key: string }[] }[] };
        for (const u of cp.units) finished.push(...u.objects.map((o) => o.key));
        expect(new Set(finished).size).toBe(finished.length);
      }
      expect(keys.filter((k) => k !== 'segferry-checkpoint.json').sort()).toEqual(finished.sort());
    } finally {
      await bad.close();
    }
  });

  it('records requested server-side encryption in the manifest', async () => {
    const res = await exportTables({
      topology: cl.staticTopology(), tables: ['nation'], replicated: ['nation'], to: `s3://${s3.bucket}/sse/`,
      s3: { ...s3opts(), serverSideEncryption: 'AES256' },
    });
    expect(res.manifest.encryption).toEqual({ algorithm: 'AES256' });
  });
});

describe('a data node killed mid-export, then --resume', () => {
  it('fails naming the node with no manifest; resume completes with every row once', async () => {
    // Uploads go through a proxy that delays every PUT, so the kill lands while dn2 streams.
    const slow = await startFaultyProxy(s3.endpoint, { rate: 1, delayOnly: true, methods: ['PUT'], seed: 5 });
    const dir = await tmp();
    const topo = join(dir, 'topology.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(topo, JSON.stringify(cl.staticTopology()));
    const loc = `s3://${s3.bucket}/killed/`;
    const dn2 = cl.nodes[1]!;
    let killed: Promise<void> | undefined;
    const env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: s3.region };
    const args = ['export', '--topology', topo, '--table', 'orders', '--table', 'nation', '--replicated', 'nation', '--to', loc,
      '--segment-size', String(CAP), '--json', '--s3-endpoint', slow.endpoint, '--s3-path-style', '--s3-checksum', s3.checksum];
    try {
      const first = await cli(args, (line) => {
        const e = JSON.parse(line);
        if (!killed && e.type === 'segment' && e.node === 'dn2') killed = dn2.stop('immediate');
      }, env);
      expect(killed).toBeDefined();
      await killed;
      expect(first.code, first.stderr).toBe(1);
      expect(first.stderr).toMatch(/error ERR_CONNECT: .*node dn2/);
      const err = JSON.parse(first.stdout.trim().split('\n').pop()!);
      expect(err.type).toBe('error');
      expect(err.error.node).toBe('dn2');
      const keys = (await s3.listKeys(s3.bucket, 'killed/')).map((k) => k.key.slice('killed/'.length));
      expect(keys).not.toContain('manifest.json');
      expect(keys).toContain('segferry-checkpoint.json');

      // Without --resume the unfinished export is reported, not mixed into.
      const again = await cli(args, undefined, env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('ERR_UNFINISHED_EXPORT');
    } finally {
      await killed;
      await dn2.start();
    }
    const resumed = await cli([...args, '--resume'], undefined, env);
    await slow.close();
    expect(resumed.code, resumed.stderr).toBe(0);
    const m = await checkObjects(loc, s3opts());
    const after = (await s3.listKeys(s3.bucket, 'killed/')).map((k) => k.key.slice('killed/'.length));
    expect(after.filter((f) => f !== 'manifest.json').sort()).toEqual(m.objects.map((o: { key: string }) => o.key).sort());
    const orders = m.tables.find((t: { name: string }) => t.name === 'orders');
    expect(orders.rows).toBe(ROWS);
    // Checksums of kept and redone units add up to the whole table's.
    expect(orders.checksum.rows).toBe(ROWS);
    // Every row exactly once: load all objects into one table and compare with the source.
    const scratch = cl.nodes[0]!;
    await scratch.query(`DROP TABLE IF EXISTS resumed_all; CREATE TABLE resumed_all (LIKE orders)`);
    const { from } = await import('pg-copy-streams');
    const pg = (await import('pg')).default;
    const { pipeline } = await import('node:stream/promises');
    const { Readable } = await import('node:stream');
    const c = new pg.Client({ connectionString: scratch.url() });
    await c.connect();
    try {
      for (const o of m.objects.filter((x: { table: string }) => x.table === 'public.orders')) {
        const body = await s3.getObject(s3.bucket, `killed/${o.key}`);
        await pipeline(Readable.from([body]), c.query(from('COPY resumed_all FROM STDIN')));
      }
    } finally {
      await c.end();
    }
    const got = await rowMultiset(scratch, 'SELECT * FROM resumed_all');
    const want = mergeMultisets(...(await Promise.all(cl.nodes.map((n) => rowMultiset(n, 'SELECT * FROM orders')))));
    expect(sameMultiset(got, want)).toBe(true);
    await scratch.query('DROP TABLE resumed_all');
  });
});

describe('a replicated table whose node is lost after planning', () => {
  it('is read from the next replica', async () => {
    const { planExport } = await import('../../lib/index.js');
    const plan = await planExport({ topology: cl.staticTopology(), tables: ['nation'], replicated: ['nation'] });
    const chosen = plan.tables[0]!.reads[0]!.node;
    expect(plan.tables[0]!.distribution.replicas).toEqual(['dn1', 'dn2', 'dn3']);
    const victim = cl.nodes.find((n) => n.name === chosen)!;
    await victim.stop('immediate');
    try {
      const events: SegferryEvent[] = [];
      const dir = await tmp();
      const res = await exportTables({ tables: ['nation'], to: dir, plan, onEvent: (e) => events.push(e) });
      const nodes = new Set(res.manifest.objects.map((o) => o.node));
      expect(nodes.size).toBe(1);
      expect(nodes.has(chosen)).toBe(false);
      expect(events.some((e) => e.type === 'retry')).toBe(true);
      const want = await rowMultiset(cl.nodes.find((n) => n.name !== chosen)!, 'SELECT * FROM nation');
      expect(res.manifest.tables[0]!.rows).toBe([...want.values()].reduce((a, b) => a + b, 0));
      expect(res.manifest.tables[0]!.checksum?.rows).toBe(res.manifest.tables[0]!.rows);
    } finally {
      await victim.start();
    }
  });
});

describe('security', () => {
  it('credentials appear in no output, plan, error or manifest', async () => {
    const pw = cl.nodes[0]!.password;
    const dir = await tmp();
    const topo = join(dir, 'topology.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(topo, JSON.stringify(cl.staticTopology()));
    const outputs: string[] = [];
    const base = ['--topology', topo, '--table', 'orders', '--table', 'nation', '--replicated', 'nation'];
    const s3flags = ['--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', s3.checksum];
    const env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: s3.region };
    const run = (args: string[]) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ['bin/segferry.js', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { out += d; });
      p.on('close', (code) => resolve({ code, out }));
    });
    const ok = await run(['export', ...base, '--to', `s3://${s3.bucket}/sec/`, ...s3flags, '--json']);
    expect(ok.code, ok.out).toBe(0);
    outputs.push(ok.out);
    const plain = await run(['export', ...base, '--to', join(dir, 'plain'), '-v']);
    expect(plain.code, plain.out).toBe(0);
    outputs.push(plain.out);
    outputs.push((await run(['plan', ...base])).out);
    outputs.push((await run(['export', ...base, '--to', `s3://sf-missing-bucket-zz/x/`, ...s3flags, '-v'])).out);
    // A wrong password: the URL carries a secret that must not be echoed either.
    const bad = JSON.stringify({ nodes: [{ name: 'dn1', url: cl.nodes[0]!.url().replace(encodeURIComponent(pw), 'Wr0ng-Secret-Pw') }] });
    await writeFile(join(dir, 'bad.json'), bad);
    const wrong = await run(['export', '--topology', join(dir, 'bad.json'), '--table', 'orders', '--to', join(dir, 'bad'), '-v']);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain('ERR_AUTH');
    outputs.push(wrong.out);
    const manifestS3 = (await checkObjects(`s3://${s3.bucket}/sec/`, s3opts()));
    outputs.push(JSON.stringify(manifestS3), await readFile(join(dir, 'plain', 'manifest.json'), 'utf8'));
    const all = outputs.join('\n');
    for (const secret of [pw, encodeURIComponent(pw), 'Wr0ng-Secret-Pw', s3.credentials.secretAccessKey]) {
      expect(all.includes(secret), `output contains a secret (${secret.length} chars)`).toBe(false);
    }
  });

  it('identifiers are always quoted: a table named with spaces, quotes and a semicolon', async () => {
    const name = 'we"ird; tab le';
    const schema = 'Odd Schema';
    const q = `"Odd Schema"."we""ird; tab le"`;
    for (const n of cl.nodes) {
      await n.query(`CREATE SCHEMA IF NOT EXISTS "Odd Schema"; DROP TABLE IF EXISTS ${q}; ${trickyTableDDL(q)}`);
    }
    for (const [i, n] of cl.nodes.entries()) await n.query(trickyInsertSQL(q, 1, 3000, { modulus: cl.nodes.length, remainder: i }));
    const dir = await tmp();
    const res = await exportTables({ topology: cl.staticTopology(), tables: [q], to: dir, segmentSize: CAP });
    expect(res.manifest.tables[0]!.schema).toBe(schema);
    expect(res.manifest.tables[0]!.name).toBe(name);
    expect(res.manifest.tables[0]!.rows).toBe(3000);
    for (const o of res.manifest.objects) expect(o.key.startsWith(`${name}_dn`)).toBe(true);
    const files = await readdir(dir);
    expect(files.filter((f) => f !== 'manifest.json').length).toBe(res.manifest.objects.length);
    const want = mergeMultisets(...(await Promise.all(cl.nodes.map((n) => rowMultiset(n, `SELECT * FROM ${q}`)))));
    expect([...want.values()].reduce((a, b) => a + b, 0)).toBe(3000);
    // The exported objects hold exactly the source rows: load them all into one scratch table
    // (under the manifest's session settings) and compare the row multisets.
    const loader = cl.nodes[0]!;
    const copyName = '"Odd Schema"."we""ird; tab le copy"';
    await loader.query(`DROP TABLE IF EXISTS ${copyName}; ${trickyTableDDL(copyName)}`);
    const c = new pg.Client({ connectionString: loader.url() });
    await c.connect();
    try {
      await applySettings(c, res.manifest.sessionSettings);
      for (const o of res.manifest.objects) {
        await pipeline(Readable.from([await readFile(join(dir, o.key))]), c.query(pgCopy.from(`COPY ${copyName} FROM STDIN (${copyOptionsSQL(res.manifest.format)})`)));
      }
    } finally {
      await c.end();
    }
    const got = await rowMultiset(loader, `SELECT * FROM ${copyName}`);
    await loader.query(`DROP TABLE ${copyName}`);
    expect(sameMultiset(want, got), describeMultisetDiff(want, got)).toBe(true);
  });

  it('the directory store refuses keys that would escape its root', async () => {
    const dir = await tmp();
    const st = new DirectoryStore(join(dir, 'root'));
    expect(() => st.pathOf('../outside')).toThrow(KeyEscapesRootError);
    expect(() => st.pathOf('/etc/passwd')).toThrow(KeyEscapesRootError);
    expect(() => st.pathOf('a/../../b')).toThrow(KeyEscapesRootError);
    await expect(st.putBytes('../x', 'no')).rejects.toThrow(KeyEscapesRootError);
    expect(st.pathOf('ok_dn1_segment.0')).toBe(join(dir, 'root', 'ok_dn1_segment.0'));
  });

  it('a table named like a path stays inside the prefix', async () => {
    const q = `"../../esc/ape"`;
    for (const n of cl.nodes) await n.query(`DROP TABLE IF EXISTS ${q}; CREATE TABLE ${q} (id int); INSERT INTO ${q} VALUES (1)`);
    const dir = await tmp();
    const res = await exportTables({ topology: cl.staticTopology(), tables: [q], to: join(dir, 'p') });
    for (const o of res.manifest.objects) expect(o.key).toMatch(/^\.\.%2F\.\.%2Fesc%2Fape_dn\d_segment\.0$/);
    expect((await readdir(join(dir, 'p'))).length).toBe(4);
    expect((await readdir(dir)).sort()).toEqual(['p']);
  });
});
