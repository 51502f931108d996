import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, storedSize, unsealObject, sealObject } from '../../lib/crypto/envelope.js';
import { checkEncryptOption, keyFileSource, parseEncryptOption, unwrapFor } from '../../lib/crypto/keys.js';
import { decryptObject, EncryptedSegmentWriter, firstChunkChecked, type ObjectCipher } from '../../lib/crypto/objects.js';
import { checkManifest } from '../../lib/manifest/io.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import type { Manifest } from '../../lib/manifest/types.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';
import { TextSegmentWriter } from '../../lib/segment/text.js';
import type { StoredSegment } from '../../lib/segment/types.js';
import { codeOf, codeOfAsync } from './error-code.js';
import { MemoryStore, chunk } from './mem-store.js';

const CHUNK = 1024;
const cipher = (): ObjectCipher => ({ dataKey: randomBytes(32), chunkSize: CHUNK });

async function plain(c: ObjectCipher, key: string, stored: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const p of decryptObject((async function* () { yield stored; })(), c, key)) out.push(p);
  return Buffer.concat(out);
}

function rows(n: number, width: number): string[] {
  return Array.from({ length: n }, (_, i) => `${String(i).padStart(6, '0')}\t${'v'.repeat(width)}\n`);
}

describe('encrypted segment writer (encryption as the last step before the store)', () => {
  it('keeps every stored object ≤ the cap, never splits a row, and reports the ciphertext size and SHA-256', async () => {
    const store = new MemoryStore();
    const c = cipher();
    const seen: StoredSegment[] = [];
    const cap = 3000; // 2 full chunks and a bit: the overhead is 28 + 16 per chunk
    const w = new EncryptedSegmentWriter((o) => new TextSegmentWriter(o), {
      store, keyOf: (n) => segmentKey('t', 'dn1', n), cap, table: 'public.t', node: 'dn1', onStored: (s) => seen.push(s), checksum: 'sha256',
    }, c);
    const all = rows(200, 37 + 0);
    await w.begin({});
    for (let i = 0; i < all.length; i += 7) await w.write(chunk(...all.slice(i, i + 7)));
    const stored = await w.finish();
    expect(stored.length).toBeGreaterThan(3);
    expect(seen).toEqual(stored);
    let joined = '';
    let bytes = 0;
    for (const s of stored) {
      const body = store.objects.get(s.key)!;
      expect(body.length).toBeLessThanOrEqual(cap);
      expect(s.bytes).toBe(body.length);
      // checksum 'sha256': the SHA-256 of the ciphertext replaces the inner writer's of the plaintext.
      expect(s.sha256).toBe(createHash('sha256').update(body).digest('hex'));
      expect(s.crc32).toBeUndefined();
      expect(body.subarray(0, 4).toString('latin1')).toBe('SFE1');
      expect(body.includes(Buffer.from('vvvvvvvv'))).toBe(false);
      const p = (await plain(c, s.key, body)).toString();
      expect(p.endsWith('\n')).toBe(true); // whole rows only
      expect(p.split('\n').length - 1).toBe(s.rows);
      expect(body.length).toBe(storedSize(Buffer.byteLength(p), CHUNK));
      joined += p;
      bytes += body.length;
    }
    expect(joined).toBe(all.join(''));
    expect([w.totalBytes, w.totalRows]).toEqual([bytes, 200]);
    // The cap is used: a second object starts only when the next row would not fit once stored.
    const first = store.objects.get(stored[0]!.key)!;
    expect(storedSize(first.length - HEADER_BYTES - 3 * 16 + all[0]!.length, CHUNK)).toBeGreaterThan(cap);
  });

  it('refuses a segment size too small for the header and one tag', () => {
    expect(codeOf(() => new EncryptedSegmentWriter((o) => new TextSegmentWriter(o), { store: new MemoryStore(), keyOf: String, cap: HEADER_BYTES + 16, table: 't', node: 'n' }, cipher()))).toBe('ERR_INVALID_OPTION');
  });

  it('an aborted object leaves nothing stored', async () => {
    const store = new MemoryStore();
    const w = new EncryptedSegmentWriter((o) => new TextSegmentWriter(o), { store, keyOf: (n) => `k${n}`, cap: 1 << 20, table: 't', node: 'n' }, cipher());
    await w.begin({});
    await w.write(chunk('a\n', 'b\n'));
    await w.abort();
    expect(store.objects.size).toBe(0);
  });
});

describe('decrypting objects', () => {
  it('a flipped byte fails with ERR_DECRYPTION; the first chunk is checked before anything downstream opens', async () => {
    const c = cipher();
    const body = sealObject(c.dataKey, 'k', Buffer.from('x'.repeat(5000)), CHUNK);
    expect(unsealObject(c.dataKey, 'k', body, CHUNK).toString()).toBe('x'.repeat(5000));
    const bad = Buffer.from(body);
    bad[HEADER_BYTES + 3]! ^= 1;
    expect(await codeOfAsync(() => firstChunkChecked(decryptObject((async function* () { yield bad; })(), c, 'k')))).toBe('ERR_DECRYPTION');
    // Renamed: the key is bound into the object's encryption.
    expect(codeOf(() => unsealObject(c.dataKey, 'other', body, CHUNK))).toBe('ERR_DECRYPTION');
    // Another data key (a wrong key that got this far) fails the first chunk too.
    expect(codeOf(() => unsealObject(randomBytes(32), 'k', body, CHUNK))).toBe('ERR_DECRYPTION');
  });
});

describe('key sources and the --encrypt option', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sf-keys-'));
  const k1 = path.join(dir, 'k1');
  const k2 = path.join(dir, 'k2');
  writeFileSync(k1, randomBytes(32));
  writeFileSync(k2, randomBytes(32).toString('hex') + '\n');

  it('parses key-file:PATH, kms:ID and kms', () => {
    expect(parseEncryptOption('key-file:/x/y')).toEqual({ keyFile: '/x/y' });
    expect(parseEncryptOption('kms:alias/backup')).toEqual({ kms: 'alias/backup' });
    expect(parseEncryptOption('kms')).toEqual({ kms: true });
    for (const bad of ['key-file:', 'kms:', 'aes', '']) expect(codeOf(() => parseEncryptOption(bad))).toBe('ERR_INVALID_OPTION');
    expect(codeOf(() => checkEncryptOption({ keyFile: 'a', kms: 'b' }))).toBe('ERR_INVALID_OPTION');
  });

  it('a data key unwraps with its key file only; a missing key, or a key for a plain export, is refused', async () => {
    const dk = await keyFileSource(k1).newDataKey(CHUNK);
    expect(dk.manifest.keySource).toBe('key-file');
    expect(JSON.stringify(dk.manifest)).not.toContain(dk.dataKey.toString('base64'));
    expect((await unwrapFor(dk.manifest, { keyFile: k1 }, undefined, 'x'))!.equals(dk.dataKey)).toBe(true);
    expect(await codeOfAsync(() => unwrapFor(dk.manifest, { keyFile: k2 }, undefined, 'x'))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOfAsync(() => unwrapFor(dk.manifest, undefined, undefined, 'x'))).toBe('ERR_ENCRYPTION_KEY');
    expect(await codeOfAsync(() => unwrapFor(undefined, { keyFile: k1 }, undefined, 'x'))).toBe('ERR_INVALID_OPTION');
    expect(await codeOfAsync(() => unwrapFor({ ...dk.manifest, keySource: 'kms' }, { keyFile: k1 }, undefined, 'x'))).toBe('ERR_ENCRYPTION_KEY');
    expect(codeOf(() => keyFileSource(path.join(dir, 'missing')))).toBe('ERR_ENCRYPTION_KEY');
  });

  it('the manifest\'s clientEncryption is checked as untrusted input', async () => {
    const dk = await keyFileSource(k1).newDataKey();
    const m = (): Manifest => ({
      kind: 'segferry-manifest', version: 1, id: 'x', createdAt: '', completedAt: '', writer: 't',
      source: { topology: 'postgres', nodes: [] }, format: { kind: 'text' }, sessionSettings: { ...SESSION_SETTINGS }, segmentSize: 1024,
      tables: [], objects: [], clientEncryption: { ...dk.manifest },
    });
    expect(codeOf(() => checkManifest(m()))).toBeUndefined();
    const broken: ((x: Manifest) => void)[] = [
      (x) => { (x.clientEncryption as { algorithm: string }).algorithm = 'rot13'; },
      (x) => { (x.clientEncryption as { keySource: string }).keySource = 'env'; },
      (x) => { x.clientEncryption!.wrappedKey = 'not base64!'; },
      (x) => { x.clientEncryption!.keyId = 'ABC'; },
      (x) => { x.clientEncryption!.keySource = 'kms'; x.clientEncryption!.keyId = 'id\nwith newline'; },
      (x) => { x.clientEncryption!.chunkSize = 2 ** 40; },
    ];
    for (const b of broken) {
      const x = m();
      b(x);
      expect(codeOf(() => checkManifest(x))).toBe('ERR_MANIFEST_INVALID');
    }
  });
});
