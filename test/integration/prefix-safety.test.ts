/**
 * Issue 13 items 3 and 4: a bucket is shared ground.
 * - `--overwrite` and `cleanup --yes` delete only keys directly under the prefix that its own
 *   manifest or checkpoint names; nested exports and other jobs' `*_segment.N` survive.
 * - Two exports into one prefix never both succeed: the prefix is claimed with a conditional
 *   write (moto, a directory); the loser fails with ERR_PREFIX_CLAIMED and deletes nothing.
 * - moto shows what s3rver cannot: `If-None-Match` refusals and open multipart uploads that
 *   `cleanup` lists and aborts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  cleanup, exportTables, importTables, openStore, readManifest, verifyImport, PrefixClaimedError, SegferryError,
  type ExportOptions, type ObjectStore, type S3Options, type SegferryEvent,
} from '../../lib/index.js';
import { CLAIM_KEY } from '../../lib/store/claim.js';
import { startStaticCluster, type SourceCluster } from '../helpers/fixtures.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { planDigest, type Checkpoint } from '../../lib/export/checkpoint.js';

const ROWS = 3000;
const CAP = 256 * 1024;
const RACES = 20;
const haveMoto = motoServerPath() !== undefined;
if (!haveMoto) console.warn(MOTO_SKIP_MESSAGE);

let src: SourceCluster;
let dst: PgServer;
let s3rver: S3Harness;
let moto: S3Harness | undefined;
const tmpDirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-prefix-'));
  tmpDirs.push(d);
  return d;
}

function s3Options(h: S3Harness): S3Options {
  return { endpoint: h.endpoint, region: h.region, forcePathStyle: h.forcePathStyle, checksum: h.checksum, credentials: h.credentials, conditionalWrites: h.conditionalWrites };
}

beforeAll(async () => {
  [src, dst, s3rver, moto] = await Promise.all([
    startStaticCluster({ rows: ROWS, nodes: 2, replicatedRows: 50 }),
    startServer({ name: 'prefix-dst' }),
    startS3(),
    haveMoto ? startS3({ server: 'moto' }) : Promise.resolve(undefined),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy(), s3rver?.stop(), moto?.stop()]);
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

/** A destination kind under test: where a fresh prefix is and how to reach it. */
interface Dest {
  name: string;
  /** A fresh root location (ends without a slash). */
  root(): Promise<string>;
  s3?: S3Options;
  /** Create an object with a key relative to the root (a foreign file). */
  put(root: string, key: string, body: string): Promise<void>;
  /** All keys relative to the root. */
  keys(root: string): Promise<string[]>;
}

function dirDest(): Dest {
  return {
    name: 'directory',
    root: tmp,
    async put(root, key, body) {
      await mkdir(join(root, key, '..'), { recursive: true });
      await writeFile(join(root, key), body);
    },
    async keys(root) {
      return (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1)).sort();
    },
  };
}

function s3Dest(name: string, h: () => S3Harness): Dest {
  let n = 0;
  return {
    name,
    get s3() { return s3Options(h()); },
    async root() {
      return `s3://${h().bucket}/run${++n}-${Math.random().toString(16).slice(2, 8)}`;
    },
    async put(root, key, body) {
      const [bucket, ...rest] = root.slice(5).split('/');
      await h().client.send(new PutObjectCommand({ Bucket: bucket, Key: `${rest.join('/')}/${key}`, Body: body }));
    },
    async keys(root) {
      const [bucket, ...rest] = root.slice(5).split('/');
      const p = `${rest.join('/')}/`;
      return (await h().listKeys(bucket!, p)).map((o) => o.key.slice(p.length)).sort();
    },
  };
}

function exportOpts(to: string, d: Dest, extra: Partial<ExportOptions> = {}): ExportOptions {
  const o: ExportOptions = { topology: src.staticTopology(), tables: ['orders', 'nation'], to, segmentSize: CAP, ...extra };
  if (d.s3) o.s3 = d.s3;
  return o;
}

const dests: Dest[] = [dirDest(), s3Dest('s3rver', () => s3rver), ...(haveMoto ? [s3Dest('moto', () => moto!)] : [])];

describe('only what is provably ours is deleted', () => {
  for (const d of dests) {
    it(`${d.name}: nested exports and foreign segments survive --overwrite and cleanup --yes; our own leftovers go`, async () => {
      const root = await d.root();
      const daily = `${root}/daily`;
      const nested = `${root}/daily/2026-11-29`;
      await exportTables(exportOpts(nested, d));
      const first = await exportTables(exportOpts(daily, d));
      const foreign = ['daily/dws_orders_dn7_segment.0', 'daily/other/orders_dn1_segment.0', 'daily/notes.txt'];
      for (const k of foreign) await d.put(root, k, 'not segferry\'s');
      // Leftovers of our own units (a segment past the manifest's last one, a partial upload).
      const own = ['daily/orders_dn1_segment.99', 'daily/nation_dn2_segment.3.segferry-partial-0a1b2c'];
      for (const k of own) await d.put(root, k, 'ours');
      const nestedBefore = (await d.keys(root)).filter((k) => k.startsWith('daily/2026-11-29/'));
      expect(nestedBefore.length).toBeGreaterThan(2);

      const second = await exportTables(exportOpts(daily, d, { segmentSize: 4 * CAP, overwrite: true }));
      expect(second.leftAlone).toEqual(expect.arrayContaining(['dws_orders_dn7_segment.0', 'other/orders_dn1_segment.0', '2026-11-29/manifest.json']));
      let keys = await d.keys(root);
      for (const k of [...foreign, ...nestedBefore]) expect(keys, k).toContain(k);
      for (const k of own) expect(keys, k).not.toContain(k);
      // The old export's objects that the new one did not rewrite are gone.
      const direct = keys.filter((k) => k.startsWith('daily/') && !k.slice(6).includes('/'));
      const newKeys = new Set(second.manifest.objects.map((o) => `daily/${o.key}`));
      expect(direct.filter((k) => k.includes('_segment.') && !newKeys.has(k))).toEqual(['daily/dws_orders_dn7_segment.0']);
      expect(first.manifest.id).not.toBe(second.manifest.id);

      // cleanup: our leftovers are listed and removed; look-alikes are listed as left alone.
      for (const k of own) await d.put(root, k, 'ours');
      const listed = await cleanup({ location: daily, ...(d.s3 ? { s3: d.s3 } : {}) });
      expect(listed.objects.map((o) => o.key).sort()).toEqual(['nation_dn2_segment.3.segferry-partial-0a1b2c', 'orders_dn1_segment.99']);
      expect(listed.leftAlone.map((o) => o.key)).toEqual(expect.arrayContaining(['dws_orders_dn7_segment.0', 'other/orders_dn1_segment.0', '2026-11-29/manifest.json']));
      expect(listed.claim).toBeUndefined();
      const removed = await cleanup({ location: daily, yes: true, ...(d.s3 ? { s3: d.s3 } : {}) });
      expect(removed.removed).toBe(true);
      keys = await d.keys(root);
      for (const k of [...foreign, ...nestedBefore]) expect(keys, k).toContain(k);
      for (const k of own) expect(keys, k).not.toContain(k);
      for (const o of second.manifest.objects) expect(keys).toContain(`daily/${o.key}`);

      // Both exports still import and verify.
      for (const [loc, db] of [[nested, 'nested'], [daily, 'daily']] as const) {
        const name = `${db}_${d.name}`.replace(/[^a-z0-9_]/g, '_');
        await dst.query(`CREATE DATABASE ${name}`);
        const common = { from: loc, target: dst.url(name), topology: 'postgres' as const, create: true, ...(d.s3 ? { s3: d.s3 } : {}) };
        await importTables(common);
        expect((await verifyImport(common)).ok, loc).toBe(true);
      }
    });
  }
});

describe('a prefix is claimed before anything is written', () => {
  const raced = dests.filter((d) => d.name !== 's3rver');
  for (const d of raced) {
    it(`${d.name}: two exports started together into one prefix never both succeed (${RACES} tries); the survivor imports and verifies`, async () => {
      const codes = new Map<string, number>();
      for (let i = 0; i < RACES; i++) {
        const to = `${await d.root()}/race`;
        const settled = await Promise.allSettled([
          exportTables(exportOpts(to, d)),
          exportTables(exportOpts(to, d)),
        ]);
        const won = settled.filter((s) => s.status === 'fulfilled');
        const lost = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
        expect(won.length, `try ${i}: ${lost.map((l) => String(l.reason)).join('; ')}`).toBe(1);
        const err = lost[0]!.reason as SegferryError;
        expect(err).toBeInstanceOf(SegferryError);
        // Usually the claim; a loser that starts after the winner finished finds its manifest.
        expect(['ERR_PREFIX_CLAIMED', 'ERR_PREFIX_NOT_EMPTY'], String(err)).toContain(err.code);
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
        const keys = await d.keys(to);
        const m = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof exportTables>>>).value.manifest;
        expect(keys).toEqual(['manifest.json', ...m.objects.map((o) => o.key)].sort());
        const db = `race_${d.name}_${i}`;
        await dst.query(`CREATE DATABASE ${db}`);
        const common = { from: to, target: dst.url(db), topology: 'postgres' as const, create: true, ...(d.s3 ? { s3: d.s3 } : {}) };
        await importTables(common);
        const v = await verifyImport(common);
        expect(v.ok, `try ${i}`).toBe(true);
        await dst.query(`DROP DATABASE ${db}`);
      }
      expect(codes.get('ERR_PREFIX_CLAIMED') ?? 0).toBeGreaterThan(0);
    }, 240_000);

    it(`${d.name}: a claim held by another run makes the export fail with ERR_PREFIX_CLAIMED, naming it, deleting nothing`, async () => {
      const root = await d.root();
      const to = `${root}/held`;
      const claim = { kind: 'segferry-claim', version: 1, runId: 'run-of-someone-else', operation: 'export', host: 'elsewhere', pid: 4242, createdAt: '2026-11-29T00:00:00.000Z' };
      await d.put(root, `held/${CLAIM_KEY}`, JSON.stringify(claim));
      await d.put(root, 'held/orders_dn1_segment.0', 'theirs');
      for (const overwrite of [false, true]) {
        const e = await exportTables(exportOpts(to, d, { overwrite })).then(() => undefined, (x: unknown) => x);
        expect(e).toBeInstanceOf(PrefixClaimedError);
        expect((e as PrefixClaimedError).code).toBe('ERR_PREFIX_CLAIMED');
        expect(String((e as Error).message)).toContain('run-of-someone-else');
        expect(String((e as Error).message)).toContain('elsewhere');
      }
      expect(await d.keys(to)).toEqual(['orders_dn1_segment.0', CLAIM_KEY].sort());
      // cleanup lists the claim and, with --yes alone, removes nothing; --remove-claim removes it.
      const s3 = d.s3 ? { s3: d.s3 } : {};
      const held = await cleanup({ location: to, yes: true, ...s3 });
      expect(held.claim?.runId).toBe('run-of-someone-else');
      expect(held.removed).toBe(false);
      expect(await d.keys(to)).toContain(CLAIM_KEY);
      const freed = await cleanup({ location: to, yes: true, removeClaim: true, ...s3 });
      expect(freed.removed).toBe(true);
      // No manifest or checkpoint names orders_dn1_segment.0: it stays.
      expect(await d.keys(to)).toEqual(['orders_dn1_segment.0']);
    });
  }

  it('directory: --resume takes over the claim of the run that wrote the checkpoint, and only that one', async () => {
    const d = dests[0]!;
    const to = await d.root();
    const first = await exportTables(exportOpts(to, d));
    // The state a killed run leaves: no manifest, its checkpoint and its claim, both with its run id.
    await rm(join(to, 'manifest.json'));
    const now = new Date().toISOString();
    const checkpoint: Checkpoint = { kind: 'segferry-checkpoint', version: 1, planDigest: planDigest(first.plan), createdAt: now, updatedAt: now, units: [], runId: 'dead-run', stems: [] };
    await writeFile(join(to, 'segferry-checkpoint.json'), JSON.stringify(checkpoint));
    const claim = (runId: string) => JSON.stringify({ kind: 'segferry-claim', version: 1, runId, operation: 'export', host: 'gone', pid: 1, createdAt: now });
    await writeFile(join(to, CLAIM_KEY), claim('another-run'));
    const refused = await exportTables(exportOpts(to, d, { resume: true })).then(() => undefined, (e: unknown) => e);
    expect((refused as SegferryError).code).toBe('ERR_PREFIX_CLAIMED');
    await writeFile(join(to, CLAIM_KEY), claim('dead-run'));
    const resumed = await exportTables(exportOpts(to, d, { resume: true }));
    expect(resumed.manifest.tables.map((t) => t.rows)).toEqual(first.manifest.tables.map((t) => t.rows));
    expect(await d.keys(to)).toEqual(['manifest.json', ...resumed.manifest.objects.map((o) => o.key)].sort());
  });

  it('CLI cleanup prints what it leaves alone and the claim, and removes nothing while a claim exists', async () => {
    const d = dests[0]!;
    const root = await d.root();
    await d.put(root, 'dws_orders_dn7_segment.0', 'theirs');
    await d.put(root, 'nested/manifest.json', '{}');
    await d.put(root, CLAIM_KEY, JSON.stringify({ kind: 'segferry-claim', version: 1, runId: 'r-123', operation: 'export', host: 'etl-1', pid: 77, createdAt: '2026-11-29T02:00:00.000Z' }));
    ensureBuilt();
    const r = await runCli(['cleanup', '--at', root, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('left alone: dws_orders_dn7_segment.0');
    expect(r.stdout).toContain('left alone: nested/manifest.json');
    expect(r.stdout).toMatch(/claim +r-123 +export on etl-1, pid 77/);
    expect(r.stdout).toContain('nothing removed: a run holds this prefix');
    expect(await d.keys(root)).toEqual(['dws_orders_dn7_segment.0', 'nested/manifest.json', CLAIM_KEY].sort());
    const freed = await runCli(['cleanup', '--at', root, '--yes', '--remove-claim', '--json']);
    expect(freed.code, freed.stderr).toBe(0);
    const j = JSON.parse(freed.stdout) as { removed: boolean; leftAlone: { key: string }[] };
    expect(j.removed).toBe(true);
    expect(j.leftAlone.map((o) => o.key).sort()).toEqual(['dws_orders_dn7_segment.0', 'nested/manifest.json']);
    expect(await d.keys(root)).toEqual(['dws_orders_dn7_segment.0', 'nested/manifest.json']);
  });

  it('s3rver ignores If-None-Match: the claim is best effort and says so in a warning event', async () => {
    const d = dests.find((x) => x.name === 's3rver')!;
    const events: SegferryEvent[] = [];
    const to = `${await d.root()}/warned`;
    await exportTables(exportOpts(to, d, { onEvent: (e) => events.push(e) }));
    expect(events.filter((e) => e.type === 'warning').map((e) => (e as { code: string }).code)).toEqual(['claim-best-effort']);
    expect(await d.keys(to)).not.toContain(CLAIM_KEY);
  });
});

describe.skipIf(!haveMoto)('moto: what s3rver cannot show', () => {
  it('If-None-Match: a second exclusive create of one key is refused (412) and the first body stays', async () => {
    const store = openStore(`s3://${moto!.bucket}/inm/`, s3Options(moto!));
    try {
      expect(store.conditionalWrites).toBe('yes');
      expect(await store.createExclusive!('k.json', 'first')).toBe(true);
      expect(await store.createExclusive!('k.json', 'second')).toBe(false);
      expect((await store.getBytes('k.json'))!.toString()).toBe('first');
    } finally {
      store.close();
    }
  });

  it('an export killed mid-upload leaves an open multipart upload: cleanup lists it, --yes --remove-claim aborts it, a foreign upload stays', async () => {
    const h = moto!;
    const node = src.nodes[0]!;
    await node.query(`CREATE TABLE IF NOT EXISTS big AS SELECT g AS id, repeat(md5(g::text), 40) AS pad FROM generate_series(1, 60000) g`);
    const prefix = 'killed';
    const location = `s3://${h.bucket}/${prefix}`;
    // Another job's open upload right next to ours: never aborted.
    const foreign = await h.client.send(new CreateMultipartUploadCommand({ Bucket: h.bucket, Key: `${prefix}/dws_orders_dn7_segment.0` }));
    ensureBuilt();
    const topology = { nodes: [{ name: 'dn1', url: node.url() }] };
    const script = `import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))}).then((m) => m.exportTables(${JSON.stringify({
      topology, tables: ['big'], to: location, segmentSize: 1024 * 1024 * 1024, threads: false, s3: s3Options(h),
    })})).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); })`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (x: string) => { stderr += x; });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let killed = false;
    for (let i = 0; i < 600 && child.exitCode === null; i++) {
      const r = await h.client.send(new ListMultipartUploadsCommand({ Bucket: h.bucket, Prefix: `${prefix}/big_` }));
      if ((r.Uploads ?? []).length > 0) {
        child.kill('SIGKILL');
        killed = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await exited;
    expect(killed, `the export ended before an upload was seen: ${stderr}`).toBe(true);

    const s3 = s3Options(h);
    const listed = await cleanup({ location, s3 });
    expect(listed.uploads.map((u) => u.key)).toEqual(['big_dn1_segment.0']);
    expect(listed.leftAlone.map((o) => o.key)).toEqual([expect.stringContaining('dws_orders_dn7_segment.0 (open upload')]);
    expect(listed.claim).toBeDefined();
    // The dead run's claim blocks --yes until the user says the run is gone.
    expect((await cleanup({ location, s3, yes: true })).removed).toBe(false);
    const removed = await cleanup({ location, s3, yes: true, removeClaim: true });
    expect(removed.removed).toBe(true);
    const after = await h.client.send(new ListMultipartUploadsCommand({ Bucket: h.bucket, Prefix: `${prefix}/` }));
    expect((after.Uploads ?? []).map((u) => u.Key)).toEqual([`${prefix}/dws_orders_dn7_segment.0`]);
    expect((await h.listKeys(h.bucket, `${prefix}/`)).map((o) => o.key)).toEqual([]);
    await h.client.send(new AbortMultipartUploadCommand({ Bucket: h.bucket, Key: `${prefix}/dws_orders_dn7_segment.0`, UploadId: foreign.UploadId }));
  }, 120_000);
});

// Keep the type import used when moto is absent.
export type { ObjectStore };
