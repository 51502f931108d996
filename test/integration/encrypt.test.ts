/**
 * Issue 18, client-side encryption: a real export (one server, DDL carried, a small cap so the
 * table spans several objects) encrypted with a key file to a directory, and with KMS to
 * moto_server. No stored object holds a known plaintext value (the bytes are grepped); every
 * object stays ≤ the cap; the right key imports rows equal to the source and verify matches;
 * a wrong or missing key fails with a typed error before any row is loaded; a flipped byte in
 * one object's last chunk fails that object with nothing of it committed; check --read-data
 * and replicate work without the key; a resumed export keeps its data key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  checkExport, exportTables, importTables, openStore, readManifest, replicateExport, verifyImport,
  type Manifest, type S3Options, type SegferryError,
} from '../../lib/index.js';
import { rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';

const CAP = 96 * 1024;
const ROWS = 6000;
const MARK = 'TOPSECRET-';
const haveMoto = motoServerPath() !== undefined;
if (!haveMoto) console.warn(MOTO_SKIP_MESSAGE);

let src: PgServer;
let dst: PgServer;
let moto: S3Harness | undefined;
let base: string;
let key1: string;
let key2: string;
let dirExport: string;
let manifest: Manifest;
let source: Map<string, number>;

const TABLE_DDL = 'CREATE TABLE secrets (id int PRIMARY KEY, note text NOT NULL, amount numeric(12,2))';

function s3Options(h: S3Harness): S3Options {
  return { endpoint: h.endpoint, region: h.region, forcePathStyle: h.forcePathStyle, checksum: h.checksum, credentials: h.credentials, conditionalWrites: h.conditionalWrites };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as SegferryError).code ?? String(e);
  }
  return undefined;
}

/** Reset the destination table: empty, no ledger rows. */
async function freshDestination(): Promise<void> {
  await dst.query('DROP TABLE IF EXISTS secrets; DROP SCHEMA IF EXISTS segferry CASCADE');
  await dst.query(TABLE_DDL);
}

const count = async (s: PgServer) => Number((await s.query<{ n: string }>('SELECT count(*) AS n FROM secrets'))[0]!.n);

beforeAll(async () => {
  ensureBuilt();
  [src, dst, moto] = await Promise.all([
    startServer({ name: 'encrypt-src' }),
    startServer({ name: 'encrypt-dst' }),
    haveMoto ? startS3({ server: 'moto' }) : Promise.resolve(undefined),
  ]);
  await src.query(TABLE_DDL);
  await src.query(`INSERT INTO secrets SELECT g, '${MARK}' || lpad(g::text, 6, '0') || ' ' || repeat('confidential ', 3), g * 1.25 FROM generate_series(1, ${ROWS}) g`);
  await src.query('CREATE TABLE other (k text)');
  await src.query(`INSERT INTO other SELECT '${MARK}other-' || g FROM generate_series(1, 12000) g`);
  source = await rowMultiset(src, 'SELECT * FROM secrets');
  base = await mkdtemp(join(tmpdir(), 'sf-encrypt-'));
  key1 = join(base, 'k1');
  key2 = join(base, 'k2');
  await writeFile(key1, randomBytes(32), { mode: 0o600 });
  await writeFile(key2, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  dirExport = join(base, 'export');
  manifest = (await exportTables({ source: src.url(), tables: ['secrets'], ddl: true, to: dirExport, segmentSize: CAP, encrypt: { keyFile: key1 } })).manifest;
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy(), moto?.stop()]);
  if (base) await rm(base, { recursive: true, force: true });
});

/** Every stored file of a directory export but the manifest must be ciphertext without the marker. */
async function assertNoPlaintext(dir: string, m: Manifest): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n !== 'manifest.json');
  expect(names.length).toBe(m.objects.length + (m.ddl ? 2 : 0));
  for (const n of names) {
    const b = await readFile(join(dir, n));
    expect(b.subarray(0, 4).toString('latin1'), n).toBe('SFE1');
    for (const needle of [MARK, 'confidential', 'CREATE TABLE', '000123']) expect(b.includes(Buffer.from(needle)), `${n} holds ${needle}`).toBe(false);
  }
  // The manifest is plaintext but holds no row values.
  expect(JSON.stringify(m)).not.toContain(MARK);
}

describe('encrypted export with a key file', () => {
  it('stores every object encrypted and ≤ the cap; the manifest records the wrapped key, never the plain one', async () => {
    expect(manifest.objects.length).toBeGreaterThan(3);
    expect(manifest.clientEncryption).toMatchObject({ algorithm: 'segferry-aes-256-gcm-chunked-v1', keySource: 'key-file', chunkSize: 65536 });
    expect(manifest.clientEncryption!.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(manifest.ddl).toBeDefined();
    await assertNoPlaintext(dirExport, manifest);
    for (const o of manifest.objects) {
      const b = await readFile(join(dirExport, o.key));
      expect(b.length).toBe(o.bytes);
      expect(b.length).toBeLessThanOrEqual(CAP);
    }
    expect(manifest.objects.reduce((a, o) => a + o.rows, 0)).toBe(ROWS);
  });

  it('check --read-data needs no key: an intact encrypted export exits 0', async () => {
    const r = await runCli(['check', '--at', dirExport, '--read-data']);
    expect(r.code, r.stderr).toBe(0);
    const res = await checkExport({ at: dirExport, readData: true });
    expect(res.ok).toBe(true);
  });

  it('a wrong key and a missing key fail with ERR_ENCRYPTION_KEY before any row is loaded', async () => {
    await freshDestination();
    expect(await codeOf(importTables({ from: dirExport, target: dst.url(), encrypt: { keyFile: key2 } }))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOf(importTables({ from: dirExport, target: dst.url() }))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOf(importTables({ from: dirExport, target: dst.url(), encrypt: { keyFile: join(base, 'no-such-key') } }))).toBe('ERR_ENCRYPTION_KEY');
    const cli = await runCli(['import', '--from', dirExport, '--target', dst.url(), '--encrypt', `key-file:${key2}`]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('ERR_ENCRYPTION_KEY');
    expect(await count(dst)).toBe(0);
    // verify with the wrong key fails the same way; without a key it compares the plaintext manifest.
    expect(await codeOf(verifyImport({ from: dirExport, target: dst.url(), encrypt: { keyFile: key2 } }))).toBe('ERR_ENCRYPTION_KEY');
  });

  it('the right key imports rows equal to the source (CLI), and verify matches with and without the key', async () => {
    await freshDestination();
    const r = await runCli(['import', '--from', dirExport, '--target', dst.url(), '--encrypt', `key-file:${key1}`, '--verify']);
    expect(r.code, r.stderr).toBe(0);
    expect(sameMultiset(await rowMultiset(dst, 'SELECT * FROM secrets'), source)).toBe(true);
    const v1 = await verifyImport({ from: dirExport, target: dst.url() });
    expect(v1.ok).toBe(true);
    const v2 = await runCli(['verify', '--from', dirExport, '--target', dst.url(), '--encrypt', `key-file:${key1}`]);
    expect(v2.code, v2.stderr).toBe(0);
  });

  it('import --create restores the encrypted DDL objects', async () => {
    await dst.query('DROP TABLE IF EXISTS secrets; DROP SCHEMA IF EXISTS segferry CASCADE');
    const res = await importTables({ from: dirExport, target: dst.url(), create: true, encrypt: { keyFile: key1 }, verify: true });
    expect(res.verify?.ok).toBe(true);
    const pk = await dst.query<{ n: string }>(`SELECT count(*) AS n FROM pg_constraint WHERE conrelid = 'secrets'::regclass AND contype = 'p'`);
    expect(Number(pk[0]!.n)).toBe(1);
  });

  it('a flipped byte in one object\'s last chunk fails that object (ERR_DECRYPTION) with nothing of it committed', async () => {
    const damaged = join(base, 'damaged');
    await cp(dirExport, damaged, { recursive: true });
    const victim = manifest.objects.find((o) => o.bytes > 65536 + 100)!;
    expect(victim).toBeDefined();
    const path = join(damaged, victim.key);
    const b = await readFile(path);
    b[b.length - 20] = b[b.length - 20]! ^ 0x01; // inside the final chunk: earlier chunks reach COPY first
    await writeFile(path, b);
    await freshDestination();
    let err: SegferryError | undefined;
    try {
      await importTables({ from: damaged, target: dst.url(), encrypt: { keyFile: key1 }, concurrency: 1 });
    } catch (e) {
      err = e as SegferryError;
    }
    expect(err?.code).toBe('ERR_DECRYPTION');
    expect(err?.message).toContain(victim.key);
    const keys = (await dst.query<{ object_key: string }>('SELECT object_key FROM segferry.loads')).map((l) => l.object_key);
    expect(keys).not.toContain(victim.key);
    const rows = manifest.objects.filter((o) => keys.includes(o.key)).reduce((a, o) => a + o.rows, 0);
    expect(await count(dst)).toBe(rows);
    // check --read-data names it, without the key.
    const c = await checkExport({ at: damaged, readData: true });
    expect(c.ok).toBe(false);
    expect(c.changed.map((x) => x.key)).toEqual([victim.key]);
  });

  it('replicate copies the ciphertext with no key; the copy imports with the key', async () => {
    const copy = join(base, 'copy');
    const r = await runCli(['replicate', '--from', dirExport, '--to', copy]);
    expect(r.code, r.stderr).toBe(0);
    for (const o of manifest.objects) expect((await readFile(join(copy, o.key))).equals(await readFile(join(dirExport, o.key)))).toBe(true);
    const m2 = await readManifest(openStore(copy));
    expect(m2.clientEncryption).toEqual(manifest.clientEncryption);
    await freshDestination();
    await importTables({ from: copy, target: dst.url(), encrypt: { keyFile: key1 } });
    expect(sameMultiset(await rowMultiset(dst, 'SELECT * FROM secrets'), source)).toBe(true);
  });

  it('Arrow and CSV-with-header objects encrypt and import the same way', async () => {
    for (const format of [{ kind: 'arrow' as const }, { kind: 'csv' as const, header: true }]) {
      const to = join(base, `fmt-${format.kind}`);
      const m = (await exportTables({ source: src.url(), tables: ['secrets'], to, segmentSize: CAP, format, encrypt: { keyFile: key1 } })).manifest;
      expect(m.objects.length).toBeGreaterThan(1);
      await assertNoPlaintext(to, m);
      for (const o of m.objects) expect((await readFile(join(to, o.key))).length).toBeLessThanOrEqual(CAP);
      await freshDestination();
      const res = await importTables({ from: to, target: dst.url(), encrypt: { keyFile: key1 }, verify: true });
      expect(res.verify?.ok, format.kind).toBe(true);
      expect(sameMultiset(await rowMultiset(dst, 'SELECT * FROM secrets'), source), format.kind).toBe(true);
    }
  });

  it('a resumed export keeps its data key (the kept unit\'s objects and the redone ones open with one key)', async () => {
    const to = join(base, 'resumed');
    const ac = new AbortController();
    // Abort at the first object of the second table: the first table's unit is then checkpointed.
    let firstTable: string | undefined;
    const first = exportTables({
      source: src.url(), tables: ['secrets', 'other'], to, segmentSize: CAP, encrypt: { keyFile: key1 }, concurrency: 1, signal: ac.signal,
      onEvent: (e) => {
        if (e.type !== 'segment') return;
        firstTable ??= e.table;
        if (e.table !== firstTable) ac.abort();
      },
    });
    expect(await codeOf(first)).toBe('ERR_ABORTED');
    const cp1 = JSON.parse((await readFile(join(to, 'segferry-checkpoint.json'))).toString()) as { clientEncryption: { wrappedKey: string }; units: unknown[] };
    expect(cp1.units.length).toBe(1);
    expect(await codeOf(exportTables({ source: src.url(), tables: ['secrets', 'other'], to, segmentSize: CAP, resume: true }))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOf(exportTables({ source: src.url(), tables: ['secrets', 'other'], to, segmentSize: CAP, resume: true, encrypt: { keyFile: key2 } }))).toBe('ERR_ENCRYPTION_KEY');
    const done = await exportTables({ source: src.url(), tables: ['secrets', 'other'], to, segmentSize: CAP, resume: true, encrypt: { keyFile: key1 } });
    expect(done.manifest.clientEncryption!.wrappedKey).toBe(cp1.clientEncryption.wrappedKey);
    await freshDestination();
    await dst.query('DROP TABLE IF EXISTS other; CREATE TABLE other (k text)');
    const res = await importTables({ from: to, target: dst.url(), encrypt: { keyFile: key1 }, verify: true });
    expect(res.verify?.ok).toBe(true);
    expect(res.rows).toBe(ROWS + 12000);
  });
});

describe.skipIf(!haveMoto)('encrypted export with KMS on moto_server', () => {
  it('GenerateDataKey on export, Decrypt on import; no object holds plaintext; a missing key is refused', async () => {
    const h = moto!;
    const kms = new KMSClient({ endpoint: h.endpoint, region: h.region, credentials: h.credentials });
    const key = await kms.send(new CreateKeyCommand({ Description: 'segferry test' }));
    const keyId = key.KeyMetadata!.KeyId!;
    const to = `s3://${h.bucket}/kms`;
    const s3 = s3Options(h);
    // In a worker thread: the data key reaches the exporter in memory, as in this thread.
    const m = (await exportTables({ source: src.url(), tables: ['secrets'], to, s3, segmentSize: CAP, encrypt: { kms: keyId }, threads: true })).manifest;
    expect(m.clientEncryption).toMatchObject({ keySource: 'kms' });
    expect(m.clientEncryption!.keyId).toContain(keyId);
    for (const o of m.objects) {
      const b = await h.getObject(h.bucket, `kms/${o.key}`);
      expect(b.length).toBe(o.bytes);
      expect(b.length).toBeLessThanOrEqual(CAP);
      expect(b.includes(Buffer.from(MARK))).toBe(false);
    }
    await freshDestination();
    expect(await codeOf(importTables({ from: to, s3, target: dst.url() }))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOf(importTables({ from: to, s3, target: dst.url(), encrypt: { keyFile: key1 } }))).toBe('ERR_ENCRYPTION_KEY');
    expect(await count(dst)).toBe(0);
    const res = await importTables({ from: to, s3, target: dst.url(), encrypt: { kms: true }, verify: true });
    expect(res.verify?.ok).toBe(true);
    expect(sameMultiset(await rowMultiset(dst, 'SELECT * FROM secrets'), source)).toBe(true);
    // check --read-data on S3 without any key.
    expect((await checkExport({ at: to, s3, readData: true })).ok).toBe(true);
    kms.destroy();
  });

  it('replicate a key-file export to moto with no key, then import from the bucket', async () => {
    const h = moto!;
    const to = `s3://${h.bucket}/replicated`;
    const s3 = s3Options(h);
    await replicateExport({ from: dirExport, to, toS3: s3 });
    expect((await checkExport({ at: to, s3, readData: true })).ok).toBe(true);
    await freshDestination();
    const res = await importTables({ from: to, s3, target: dst.url(), encrypt: { keyFile: key1 }, verify: true });
    expect(res.verify?.ok).toBe(true);
  });
});
