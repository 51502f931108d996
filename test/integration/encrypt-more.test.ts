/**
 * Issue 18, client-side encryption beyond a single run:
 * - a plan run in parts (`plan --out --encrypt key-file:K`, 3 × `run --part` as separate
 *   processes, `finish`): the plan file holds the data key wrapped only, every object is
 *   ciphertext under one key, the import with the key equals the source; a part run with a
 *   wrong (or no) key fails with ERR_ENCRYPTION_KEY and stores nothing;
 * - the same with KMS on moto_server (`plan --out --encrypt kms:KEY`, 2 parts, `finish`): the
 *   plan file and the manifest hold the KMS-wrapped data key only, no object holds plaintext,
 *   the import with `--encrypt kms` equals the source;
 * - encrypted Parquet (the importer reads each footer by ranges through the chunked envelope):
 *   no plaintext value in any object (the same export unencrypted shows them), every object
 *   ≤ the cap, import with the key equals the source, a wrong key fails before loading, a
 *   damaged footer chunk fails its object (ERR_DECRYPTION) before its COPY.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, verifyImport, type Manifest, type SegferryError } from '../../lib/index.js';
import { readKeyFile, unwrapDataKey, type ClientEncryption } from '../../lib/crypto/envelope.js';
import { rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { motoServerPath, startS3 } from '../helpers/s3.js';
import { kmsKeySource } from '../../lib/crypto/kms.js';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';

const CAP = 64 * 1024;
const MARK = 'TOPSECRET-';
const TABLES = ['t1', 't2', 't3'];

let src: PgServer;
let dst: PgServer;
let base: string;
let key1: string;
let key2: string;
const source = new Map<string, Map<string, number>>();

const ddl = (t: string) => `CREATE TABLE ${t} (id int PRIMARY KEY, note text NOT NULL, amount numeric(12,2))`;

const codeOf = (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (e: unknown) => (e as SegferryError).code ?? String(e));

async function freshDestination(): Promise<void> {
  await dst.query(`DROP TABLE IF EXISTS ${TABLES.join(', ')}; DROP SCHEMA IF EXISTS segferry CASCADE`);
  for (const t of TABLES) await dst.query(ddl(t));
}

async function sameAsSource(): Promise<void> {
  for (const t of TABLES) expect(sameMultiset(await rowMultiset(dst, `SELECT * FROM ${t}`), source.get(t)!), t).toBe(true);
}

/**
 * Every stored object is ciphertext (the envelope's magic) without the marker, and ≤ the cap.
 * `at`: the export's directory, or how to read an object by its key.
 */
async function assertSealed(at: string | ((key: string) => Promise<Buffer>), m: Manifest, cap = CAP): Promise<void> {
  expect(m.objects.length).toBeGreaterThan(TABLES.length);
  for (const o of m.objects) {
    const b = await (typeof at === 'string' ? readFile(join(at, o.key)) : at(o.key));
    expect(b.subarray(0, 4).toString('latin1'), o.key).toBe('SFE1');
    expect(b.length).toBe(o.bytes);
    expect(b.length).toBeLessThanOrEqual(cap);
    for (const needle of [MARK, 'confidential']) expect(b.includes(Buffer.from(needle)), `${o.key} holds ${needle}`).toBe(false);
  }
}

/** `text` (a plan file, a manifest) holds the data key in none of its spellings. */
function expectNoKey(text: string, dataKey: Buffer): void {
  expect(dataKey.length).toBe(32);
  for (const spelling of [dataKey.toString('hex'), dataKey.toString('base64'), dataKey.toString('base64url')]) expect(text).not.toContain(spelling);
}

beforeAll(async () => {
  ensureBuilt();
  [src, dst] = await Promise.all([startServer({ name: 'encrypt2-src' }), startServer({ name: 'encrypt2-dst' })]);
  for (const [i, t] of TABLES.entries()) {
    await src.query(ddl(t));
    await src.query(`INSERT INTO ${t} SELECT g, '${MARK}' || g || ' ' || repeat('confidential ', 2 + ${i}), g * 1.25 FROM generate_series(1, ${3000 + 1000 * i}) g`);
    source.set(t, await rowMultiset(src, `SELECT * FROM ${t}`));
  }
  base = await mkdtemp(join(tmpdir(), 'sf-encrypt2-'));
  key1 = join(base, 'k1');
  key2 = join(base, 'k2');
  await writeFile(key1, randomBytes(32), { mode: 0o600 });
  await writeFile(key2, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  if (base) await rm(base, { recursive: true, force: true });
});

describe('a plan run in parts, encrypted with a key file', () => {
  it('plan --out --encrypt wraps one data key into the plan; 3 parts as processes; finish; import with the key equals the source', async () => {
    const to = join(base, 'parts');
    const planPath = join(base, 'plan.json');
    const tableFlags = TABLES.flatMap((t) => ['--table', t]);
    const p = await runCli(['plan', '--source', src.url(), ...tableFlags, '--to', to, '--out', planPath, '--segment-size', String(CAP), '--encrypt', `key-file:${key1}`]);
    expect(p.code, p.stderr).toBe(0);
    const planText = await readFile(planPath, 'utf8');
    const enc = (JSON.parse(planText) as { plan: { clientEncryption: ClientEncryption } }).plan.clientEncryption;
    expect(enc).toMatchObject({ algorithm: 'segferry-aes-256-gcm-chunked-v1', keySource: 'key-file', chunkSize: 65536 });
    // The file holds the data key wrapped, never plain (in any of its spellings).
    expectNoKey(planText, unwrapDataKey(enc, readKeyFile(key1)));
    expect(planText).not.toContain(readKeyFile(key1).toString('hex'));

    // A wrong key, and no key, fail before anything is stored: the destination is not even created.
    // The plan carries no password: each host gives it as libpq does.
    const env = { env: { PGPASSWORD: src.password } };
    const wrong = await runCli(['run', '--plan', planPath, '--part', '1/3', '--encrypt', `key-file:${key2}`], env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('ERR_ENCRYPTION_KEY');
    const none = await runCli(['run', '--plan', planPath, '--part', '2/3'], env);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('ERR_ENCRYPTION_KEY');
    expect(existsSync(to)).toBe(false);

    const runs = await Promise.all([1, 2, 3].map((k) => runCli(['run', '--plan', planPath, '--part', `${k}/3`, '--encrypt', `key-file:${key1}`], env)));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    // A wrong key on a part run again (its pairs already recorded) still fails and changes nothing.
    const before = (await readdir(to)).sort();
    const again = await runCli(['run', '--plan', planPath, '--part', '3/3', '--encrypt', `key-file:${key2}`], env);
    expect(again.stderr).toContain('ERR_ENCRYPTION_KEY');
    expect((await readdir(to)).sort()).toEqual(before);

    const fin = await runCli(['finish', '--plan', planPath]);
    expect(fin.code, fin.stderr).toBe(0);
    const m = JSON.parse(await readFile(join(to, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.clientEncryption).toEqual(enc);
    await assertSealed(to, m);

    await freshDestination();
    expect(await codeOf(importTables({ from: to, target: dst.url(), encrypt: { keyFile: key2 } }))).toBe('ERR_ENCRYPTION_KEY');
    const imp = await runCli(['import', '--from', to, '--target', dst.url(), '--encrypt', `key-file:${key1}`, '--verify']);
    expect(imp.code, imp.stderr).toBe(0);
    await sameAsSource();
  }, 180_000);
});

describe.skipIf(motoServerPath() === undefined)('a plan run in parts, encrypted with KMS on moto_server', () => {
  it('plan --out --encrypt kms:KEY puts one KMS-wrapped data key in the plan; 2 parts as processes; finish; no object holds plaintext, plan and manifest only the wrapped key; import equals the source', async () => {
    const h = await startS3({ server: 'moto' });
    try {
      const kms = new KMSClient({ endpoint: h.endpoint, region: h.region, credentials: h.credentials });
      const keyId = (await kms.send(new CreateKeyCommand({ Description: 'segferry plan parts test' }))).KeyMetadata!.KeyId!;
      kms.destroy();
      // KMS on the S3 endpoint (moto serves both); credentials from the environment, as a host would.
      const s3flags = ['--s3-endpoint', h.endpoint, '--s3-region', h.region, '--s3-path-style', '--s3-checksum', h.checksum];
      const env = { env: { PGPASSWORD: src.password, AWS_ACCESS_KEY_ID: h.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: h.credentials.secretAccessKey } };
      const prefix = 'kms-parts';
      const to = `s3://${h.bucket}/${prefix}`;
      const planPath = join(base, 'plan-kms.json');
      const p = await runCli(['plan', '--source', src.url(), ...TABLES.flatMap((t) => ['--table', t]), '--to', to, '--out', planPath, '--segment-size', String(CAP), '--encrypt', `kms:${keyId}`, ...s3flags], env);
      expect(p.code, p.stderr).toBe(0);
      const planText = await readFile(planPath, 'utf8');
      const enc = (JSON.parse(planText) as { plan: { clientEncryption: ClientEncryption } }).plan.clientEncryption;
      expect(enc).toMatchObject({ algorithm: 'segferry-aes-256-gcm-chunked-v1', keySource: 'kms', keyId: expect.stringContaining(keyId) });
      // What KMS unwraps the plan's key to: never in the plan file in plain.
      const s3o = { endpoint: h.endpoint, region: h.region, credentials: h.credentials };
      const dataKey = await kmsKeySource(undefined, s3o).unwrap(enc);
      expectNoKey(planText, dataKey);

      // A part without the key fails before anything is stored.
      const none = await runCli(['run', '--plan', planPath, '--part', '1/2', ...s3flags], env);
      expect([none.code, none.stderr]).toEqual([1, expect.stringContaining('ERR_ENCRYPTION_KEY')]);
      expect(await h.listKeys(h.bucket, `${prefix}/`)).toEqual([]);
      const runs = await Promise.all([1, 2].map((k) => runCli(['run', '--plan', planPath, '--part', `${k}/2`, '--encrypt', 'kms', ...s3flags], env)));
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
      const keys = (await h.listKeys(h.bucket, `${prefix}/`)).map((k) => k.key);
      expect(keys).toEqual(expect.arrayContaining([`${prefix}/segferry-part-1-of-2.json`, `${prefix}/segferry-part-2-of-2.json`]));
      const fin = await runCli(['finish', '--plan', planPath, ...s3flags], env);
      expect(fin.code, fin.stderr).toBe(0);

      const manifestText = (await h.getObject(h.bucket, `${prefix}/manifest.json`)).toString('utf8');
      const m = JSON.parse(manifestText) as Manifest;
      // The manifest carries the plan's entry as is: the wrapped key, the key id, nothing plain.
      expect(m.clientEncryption).toEqual(enc);
      expectNoKey(manifestText, dataKey);
      expect(new Set(m.objects.map((o) => o.table))).toEqual(new Set(TABLES.map((t) => `public.${t}`)));
      await assertSealed((k) => h.getObject(h.bucket, `${prefix}/${k}`), m);

      await freshDestination();
      const imp = await runCli(['import', '--from', to, '--target', dst.url(), '--encrypt', 'kms', '--verify', ...s3flags], env);
      expect(imp.code, imp.stderr).toBe(0);
      await sameAsSource();
    } finally {
      await h.stop();
    }
  }, 60_000);
});

describe('encrypted Parquet', () => {
  // Several 64 KiB chunks per object, so the footer's ranged reads open only the last ones.
  const PQ_CAP = 160 * 1024;
  // Uncompressed pages: the values' bytes would be visible in the objects if not encrypted.
  const format = { kind: 'parquet' as const, compression: 'none' as const, rowGroupBytes: 24 * 1024 };

  it('no plaintext in the objects, each ≤ the cap; import with the key equals the source; a wrong key or a damaged footer chunk loads nothing', async () => {
    const plainDir = join(base, 'pq-plain');
    const plain = (await exportTables({ source: src.url(), tables: TABLES, to: plainDir, segmentSize: PQ_CAP, format })).manifest;
    // The check below can fail: unencrypted, these objects show the marker.
    expect((await Promise.all(plain.objects.map((o) => readFile(join(plainDir, o.key))))).some((b) => b.includes(Buffer.from(MARK)))).toBe(true);

    const to = join(base, 'pq');
    const m = (await exportTables({ source: src.url(), tables: TABLES, to, segmentSize: PQ_CAP, format, encrypt: { keyFile: key1 } })).manifest;
    expect(m.format.kind).toBe('parquet');
    await assertSealed(to, m, PQ_CAP);
    expect(m.objects.some((o) => o.bytes > 2 * 65536)).toBe(true);

    await freshDestination();
    expect(await codeOf(importTables({ from: to, target: dst.url(), encrypt: { keyFile: key2 } }))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOf(importTables({ from: to, target: dst.url() }))).toBe('ERR_ENCRYPTION_KEY');
    for (const t of TABLES) expect(Number((await dst.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`))[0]!.n)).toBe(0);

    const res = await importTables({ from: to, target: dst.url(), encrypt: { keyFile: key1 }, verify: true });
    expect(res.verify?.ok).toBe(true);
    await sameAsSource();
    expect((await verifyImport({ from: to, target: dst.url(), encrypt: { keyFile: key1 } })).ok).toBe(true);

    // A flipped byte in the last chunk (the footer's): the ranged footer read fails, before COPY.
    const damaged = join(base, 'pq-damaged');
    await rm(damaged, { recursive: true, force: true });
    await exportTables({ source: src.url(), tables: ['t1'], to: damaged, segmentSize: PQ_CAP, format, encrypt: { keyFile: key1 } });
    const victim = (JSON.parse(await readFile(join(damaged, 'manifest.json'), 'utf8')) as Manifest).objects[0]!;
    const path = join(damaged, victim.key);
    const b = await readFile(path);
    b[b.length - 20]! ^= 1;
    await writeFile(path, b);
    await freshDestination();
    let err: SegferryError | undefined;
    await importTables({ from: damaged, target: dst.url(), encrypt: { keyFile: key1 }, concurrency: 1 }).catch((e: unknown) => { err = e as SegferryError; });
    expect(err?.code).toBe('ERR_DECRYPTION');
    expect(err?.message).toContain(victim.key);
    const loaded = await dst.query<{ object_key: string }>('SELECT object_key FROM segferry.loads');
    expect(loaded.map((l) => l.object_key)).not.toContain(victim.key);
  }, 180_000);
});
