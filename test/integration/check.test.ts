/**
 * Issue 18, `segferry check`: the integrity of a stored export without a database.
 * A real export (two static nodes, small cap so each table has several objects) on a directory
 * and on s3rver; the CLI and the library must find a deleted object (by listing), a same-size
 * flipped byte only with --read-data (by the recorded digest: CRC-32 by default, SHA-256 on
 * s3rver), and list look-alike objects as unexpected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { checkExport, exportTables, type Manifest, type S3Options } from '../../lib/index.js';
import { startStaticCluster, type SourceCluster } from '../helpers/fixtures.js';
import { startS3, type S3Harness } from '../helpers/s3.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';

const CAP = 256 * 1024;
let src: SourceCluster;
let s3: S3Harness;
let base: string;
let dirExport: string;
let manifest: Manifest;

function s3Options(h: S3Harness): S3Options {
  return { endpoint: h.endpoint, region: h.region, forcePathStyle: h.forcePathStyle, checksum: h.checksum, credentials: h.credentials, conditionalWrites: h.conditionalWrites };
}

beforeAll(async () => {
  ensureBuilt();
  [src, s3] = await Promise.all([startStaticCluster({ rows: 3000, nodes: 2, replicatedRows: 30 }), startS3()]);
  base = await mkdtemp(join(tmpdir(), 'sf-check-'));
  dirExport = join(base, 'export');
  manifest = (await exportTables({ topology: src.staticTopology(), tables: ['orders', 'nation'], to: dirExport, segmentSize: CAP })).manifest;
  expect(manifest.objects.length).toBeGreaterThan(4);
});

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), s3?.stop()]);
  if (base) await rm(base, { recursive: true, force: true });
});

/** A fresh copy of the directory export to damage. */
async function copyOfExport(name: string): Promise<string> {
  const d = join(base, name);
  await cp(dirExport, d, { recursive: true });
  return d;
}

/** Flip one byte in the middle of a file, keeping its size. */
async function flipByte(path: string): Promise<Buffer> {
  const b = await readFile(path);
  b[b.length >> 1] = b[b.length >> 1]! ^ 0x20;
  await writeFile(path, b);
  return b;
}

describe('segferry check on a directory', () => {
  it('an intact export exits 0, with and without --read-data', async () => {
    const r = await runCli(['check', '--at', dirExport]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('intact');
    const rd = await runCli(['check', '--at', dirExport, '--read-data', '--json', '--concurrency', '3']);
    expect(rd.code, rd.stderr).toBe(0);
    const lines = rd.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const res = lines.at(-1)!;
    expect(res).toMatchObject({ type: 'check', ok: true, readData: true, objects: manifest.objects.length, missing: [], changed: [], unexpected: [] });
    expect(res.bytesRead).toBe(manifest.objects.reduce((s, o) => s + o.bytes, 0));
    // One event per object read.
    expect(lines.filter((l) => l.type === 'object-checked').map((l) => l.key).sort()).toEqual(manifest.objects.map((o) => o.key).sort());
  });

  it('a deleted object: exit 3 naming it', async () => {
    const d = await copyOfExport('deleted');
    const victim = manifest.objects[1]!.key;
    await rm(join(d, victim));
    const r = await runCli(['check', '--at', d]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toMatch(new RegExp(`missing\\s+${victim.replace(/\./g, '\\.')}`));
    expect(r.stdout).toContain('DAMAGED: 1 missing, 0 changed');
  });

  it('a flipped byte: found only with --read-data, exit 3 naming it', async () => {
    const d = await copyOfExport('flipped');
    const victim = manifest.objects[2]!;
    const b = await flipByte(join(d, victim.key));
    expect(b.length).toBe(victim.bytes);
    const sizesOnly = await runCli(['check', '--at', d]);
    expect(sizesOnly.code, 'a same-size change is invisible to a sizes-only check (documented)').toBe(0);
    const r = await runCli(['check', '--at', d, '--read-data']);
    expect(r.code, r.stderr).toBe(3);
    // The default digest, CRC-32: one flipped bit changes it.
    expect(victim.crc32).toMatch(/^[0-9a-f]{8}$/);
    expect(r.stdout).toContain(`changed     ${victim.key}  crc32`);
    expect(r.stdout).toContain(`manifest says ${victim.crc32}`);
  });

  it('a truncated object is changed (size) without reading; look-alikes directly under the prefix are unexpected', async () => {
    const d = await copyOfExport('odd');
    const victim = manifest.objects[0]!;
    await writeFile(join(d, victim.key), (await readFile(join(d, victim.key))).subarray(0, 10));
    await writeFile(join(d, 'orders_dn9_segment.0'), 'x');
    await mkdir(join(d, 'nested'));
    await writeFile(join(d, 'nested', 'orders_dn1_segment.0'), 'nested export, not ours');
    await writeFile(join(d, 'notes.txt'), 'not segferry-shaped');
    const r = await checkExport({ at: d });
    expect(r.ok).toBe(false);
    expect(r.missing).toEqual([]);
    expect(r.changed).toEqual([{ key: victim.key, reason: 'size', expectedBytes: victim.bytes, actualBytes: 10, algorithm: 'crc32', expectedDigest: victim.crc32 }]);
    expect(r.unexpected).toEqual([{ key: 'orders_dn9_segment.0', size: 1 }]);
    // Unexpected objects alone do not make an export damaged.
    await cp(join(dirExport, victim.key), join(d, victim.key));
    const again = await runCli(['check', '--at', d, '--read-data']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('unexpected  orders_dn9_segment.0');
  });

  it('no manifest: exit 1 with ERR_MANIFEST_MISSING', async () => {
    const r = await runCli(['check', '--at', join(base, 'nothing-here'), '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('ERR_MANIFEST_MISSING');
  });
});

describe('segferry check on s3rver', () => {
  it('finds a deleted object and a flipped byte', async () => {
    const opts = s3Options(s3);
    const to = `s3://${s3.bucket}/daily/x`;
    const m = (await exportTables({ topology: src.staticTopology(), tables: ['orders'], to, segmentSize: CAP, s3: opts, objectChecksum: 'sha256' })).manifest;
    expect(m.objects.every((o) => /^[0-9a-f]{64}$/.test(o.sha256!) && o.crc32 === undefined)).toBe(true);
    const env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: s3.region };
    const flags = ['--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', s3.checksum];
    const ok = await runCli(['check', '--at', to, '--read-data', ...flags], { env });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);

    const [a, b] = [m.objects[0]!, m.objects[1]!];
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `daily/x/${a.key}` }));
    const body = await s3.getObject(s3.bucket, `daily/x/${b.key}`);
    body[0] = body[0]! ^ 1;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `daily/x/${b.key}`, Body: body }));

    const sizes = await checkExport({ at: to, s3: opts });
    expect(sizes.missing).toEqual([{ key: a.key, bytes: a.bytes }]);
    expect(sizes.changed).toEqual([]);
    const full = await runCli(['check', '--at', to, '--read-data', '--json', ...flags], { env });
    expect(full.code, full.stderr).toBe(3);
    const res = JSON.parse(full.stdout.trim().split('\n').at(-1)!) as { missing: { key: string }[]; changed: { key: string; reason: string; algorithm: string; expectedDigest: string }[] };
    expect(res.missing.map((o) => o.key)).toEqual([a.key]);
    expect(res.changed.map((o) => [o.key, o.reason, o.algorithm, o.expectedDigest])).toEqual([[b.key, 'digest', 'sha256', b.sha256]]);
  });
});
