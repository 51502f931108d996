/**
 * Issue 18, `segferry replicate`: a finished export copied directory → s3rver → s3rver (same
 * endpoint: server-side CopyObject) → moto_server → directory, then imported from the last copy
 * and verified; an interrupted replicate resumed; a tampered object refused, streamed and
 * server-side; UploadPartCopy on moto with a lowered threshold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import {
  checkExport, exportTables, importTables, readManifest, replicateExport, verifyImport, openStore, S3Store,
  type Manifest, type MaintenanceEvent, type S3Options,
} from '../../lib/index.js';
import { startStaticCluster, type SourceCluster } from '../helpers/fixtures.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;

const CAP = 256 * 1024;
const haveMoto = motoServerPath() !== undefined;
if (!haveMoto) console.warn(MOTO_SKIP_MESSAGE);

let src: SourceCluster;
let dst: PgServer;
let s3rver: S3Harness;
let moto: S3Harness | undefined;
let base: string;
let origin: string;
let manifest: Manifest;

function s3Options(h: S3Harness): S3Options {
  return { endpoint: h.endpoint, region: h.region, forcePathStyle: h.forcePathStyle, checksum: h.checksum, credentials: h.credentials, conditionalWrites: h.conditionalWrites };
}

/** A manifest without the replicatedFrom field, to compare copies with the source. */
function strip(m: Manifest): Manifest {
  const { replicatedFrom: _r, ...rest } = m;
  return rest as Manifest;
}

beforeAll(async () => {
  ensureBuilt();
  [src, dst, s3rver, moto] = await Promise.all([
    startStaticCluster({ rows: 3000, nodes: 2, replicatedRows: 30 }),
    startServer({ name: 'replicate-dst' }),
    startS3(),
    haveMoto ? startS3({ server: 'moto' }) : Promise.resolve(undefined),
  ]);
  base = await mkdtemp(join(tmpdir(), 'sf-replicate-'));
  origin = join(base, 'origin');
  manifest = (await exportTables({ topology: src.staticTopology(), tables: ['orders', 'nation'], to: origin, segmentSize: CAP })).manifest;
  expect(manifest.objects.length).toBeGreaterThan(4);
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy(), s3rver?.stop(), moto?.stop()]);
  if (base) await rm(base, { recursive: true, force: true });
});

describe('replicate', () => {
  it.skipIf(!haveMoto)('directory → s3rver → s3rver (server-side) → moto → directory, then import and verify from the last copy', async () => {
    const r1 = `s3://${s3rver.bucket}/hop1`;
    const r2 = `s3://${s3rver.bucket}/hop2`;
    const r3 = `s3://${moto!.bucket}/hop3`;
    const last = join(base, 'hop4');
    const n = manifest.objects.length;

    const a = await replicateExport({ from: origin, to: r1, toS3: s3Options(s3rver) });
    expect([a.streamed, a.serverSide, a.skipped]).toEqual([n, 0, 0]);
    const b = await replicateExport({ from: r1, to: r2, s3: s3Options(s3rver), concurrency: 3 });
    expect([b.streamed, b.serverSide]).toEqual([0, n]);
    const c = await replicateExport({ from: r2, to: r3, fromS3: s3Options(s3rver), toS3: s3Options(moto!) });
    expect([c.streamed, c.serverSide]).toEqual([n, 0]);
    // The last hop through the CLI, checking the copy afterwards.
    const env = { AWS_ACCESS_KEY_ID: 'moto', AWS_SECRET_ACCESS_KEY: 'moto', AWS_REGION: moto!.region };
    const cli = await runCli(['replicate', '--from', r3, '--to', last, '--verify', '--json', '--s3-endpoint', moto!.endpoint, '--s3-path-style'], { env });
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    const res = JSON.parse(cli.stdout.trim().split('\n').at(-1)!) as { type: string; streamed: number; check: { ok: boolean; bytesRead: number } };
    expect(res).toMatchObject({ type: 'replicate', streamed: n, check: { ok: true } });

    // Byte for byte the same objects; the manifest the same but for replicatedFrom.
    for (const o of manifest.objects) expect((await readFile(join(last, o.key))).equals(await readFile(join(origin, o.key))), o.key).toBe(true);
    const m4 = await readManifest(openStore(last));
    expect(strip(m4)).toEqual(manifest);
    expect(m4.replicatedFrom).toMatchObject({ location: `s3://${moto!.bucket}/hop3/`, manifestId: manifest.id });
    expect(JSON.stringify(m4)).not.toMatch(/secret|moto"/i);
    // The copy's manifest is valid under docs/manifest.schema.json.
    const schema = JSON.parse(await readFile(join(ROOT, 'docs', 'manifest.schema.json'), 'utf8')) as Record<string, unknown>;
    const validate = addFormats(new Ajv2020({ allErrors: true, strict: true, strictRequired: false })).compile(schema);
    expect(validate(m4), JSON.stringify(validate.errors)).toBe(true);
    const m2 = (await replicateExport({ from: r1, to: r2, s3: s3Options(s3rver), resume: true })).manifest;
    expect(m2.replicatedFrom?.location).toBe(`s3://${s3rver.bucket}/hop1/`);
    expect(await readdir(last)).not.toContain('segferry-claim.json');

    await dst.query('CREATE DATABASE from_copy');
    const common = { from: last, target: dst.url('from_copy'), topology: 'postgres' as const, create: true };
    await importTables(common);
    const v = await verifyImport(common);
    expect(v.ok).toBe(true);
    expect(v.tables.map((t) => [t.match, t.checksummed, t.destination.rows])).toEqual(manifest.tables.map((t) => [true, true, t.rows]));
    expect(manifest.tables.map((t) => t.rows)).toEqual([src.rows, src.replicatedRows]);
  });

  it('an interrupted replicate is refused without --resume and completes with it', async () => {
    const to = join(base, 'interrupted');
    const ac = new AbortController();
    let copied = 0;
    const onEvent = (e: MaintenanceEvent) => { if (e.type === 'object-copied' && ++copied === 2) ac.abort(); };
    const err = await replicateExport({ from: origin, to, concurrency: 1, signal: ac.signal, onEvent }).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string })?.code).toBe('ERR_ABORTED');
    const left = await readdir(to);
    expect(left).not.toContain('manifest.json');
    expect(left).not.toContain('segferry-claim.json');
    expect(left.sort()).toEqual(manifest.objects.slice(0, 2).map((o) => o.key).sort());

    const refused = await replicateExport({ from: origin, to }).then(() => undefined, (e: unknown) => e);
    expect((refused as { code?: string })?.code).toBe('ERR_PREFIX_NOT_EMPTY');

    // A dead replicate's claim is taken over by --resume; a damaged leftover is copied again.
    await writeFile(join(to, 'segferry-claim.json'), JSON.stringify({ kind: 'segferry-claim', version: 1, runId: 'dead', operation: 'replicate', host: 'h', pid: 1, createdAt: new Date().toISOString() }));
    const second = join(to, manifest.objects[1]!.key);
    const bytes = await readFile(second);
    bytes[0] = bytes[0]! ^ 1;
    await writeFile(second, bytes);
    const r = await replicateExport({ from: origin, to, resume: true, concurrency: 2 });
    expect([r.skipped, r.streamed]).toEqual([1, manifest.objects.length - 1]);
    expect((await checkExport({ at: to, readData: true })).ok).toBe(true);
    const again = await replicateExport({ from: origin, to, resume: true });
    expect(again.alreadyDone).toBe(true);
  });

  it('a tampered source object is refused, streamed or server-side, and no manifest is written', async () => {
    const tampered = join(base, 'tampered');
    await cp(origin, tampered, { recursive: true });
    const victim = manifest.objects[3]!;
    const b = await readFile(join(tampered, victim.key));
    b[b.length - 2] = b[b.length - 2]! ^ 0x20;
    await writeFile(join(tampered, victim.key), b);

    const to = `s3://${s3rver.bucket}/tampered`;
    const e = await replicateExport({ from: tampered, to, toS3: s3Options(s3rver) }).then(() => undefined, (x: unknown) => x) as { code?: string; key?: string; message: string };
    expect(e?.code).toBe('ERR_CHECKSUM_MISMATCH');
    expect(e.key).toBe(victim.key);
    expect(e.message).toContain(`the source manifest says ${victim.bytes} bytes, ${victim.crc32}`);
    const keys = (await s3rver.listKeys(s3rver.bucket, 'tampered/')).map((k) => k.key);
    expect(keys).not.toContain('tampered/manifest.json');
    expect(keys).not.toContain(`tampered/${victim.key}`);

    // Server-side: the same endpoint copies, reads back, refuses and removes the copy.
    const good = `s3://${s3rver.bucket}/good`;
    await replicateExport({ from: origin, to: good, toS3: s3Options(s3rver) });
    await s3rver.client.send(new PutObjectCommand({ Bucket: s3rver.bucket, Key: `good/${victim.key}`, Body: b }));
    const to2 = `s3://${s3rver.bucket}/tampered2`;
    const e2 = await replicateExport({ from: good, to: to2, s3: s3Options(s3rver), concurrency: 1 }).then(() => undefined, (x: unknown) => x) as { code?: string; key?: string };
    expect([e2?.code, e2?.key]).toEqual(['ERR_CHECKSUM_MISMATCH', victim.key]);
    const keys2 = (await s3rver.listKeys(s3rver.bucket, 'tampered2/')).map((k) => k.key);
    expect(keys2).not.toContain('tampered2/manifest.json');
    expect(keys2).not.toContain(`tampered2/${victim.key}`);
  });

  it.skipIf(!haveMoto)('copies in parts (UploadPartCopy) above the threshold, on moto', async () => {
    const opts = s3Options(moto!);
    const from = new S3Store(moto!.bucket, 'big-src', opts);
    const to = new S3Store(moto!.bucket, 'big-dst', opts);
    try {
      const body = Buffer.alloc(11 * 1024 * 1024 + 7);
      for (let i = 0; i < body.length; i++) body[i] = (i * 2654435761) >>> 24;
      await from.putBytes('x_dn1_segment.0', body);
      expect(await to.copyFrom(from, 'x_dn1_segment.0', { size: body.length, multipartAbove: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 })).toBe(true);
      expect((await to.getBytes('x_dn1_segment.0'))!.equals(body)).toBe(true);
      // Another account on the same endpoint: no server-side copy.
      const other = new S3Store(moto!.bucket, 'big-dst', { ...opts, credentials: { accessKeyId: 'other', secretAccessKey: 'x' } });
      expect(await other.copyFrom(from, 'x_dn1_segment.0', { size: body.length })).toBe(false);
      other.close();
    } finally {
      from.close();
      to.close();
    }
  });
});
