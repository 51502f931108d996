/**
 * Client-side encryption format (lib/crypto/envelope.ts, docs/encryption.md): round trips at
 * every chunk boundary and any split of the input, the stored-size cap, and every tampering the
 * format promises to catch (a flipped byte, truncation at a chunk boundary, an appended or
 * swapped chunk, a renamed object, another header), a wrong key refused before any object.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  HEADER_BYTES, ObjectDecryptor, ObjectEncryptor, keyIdOf, maxPlaintext, newDataKey, readKeyFile, storedSize, unwrapDataKey,
} from '../../lib/crypto/envelope.js';

const CH = 1024;
const KEY = 't_dn1_segment.0';

function encrypt(dk: Buffer, plain: Buffer, splits: number[] = [], key = KEY): Buffer {
  const e = new ObjectEncryptor(dk, key, CH);
  const out: Buffer[] = [];
  let off = 0;
  for (const n of splits) { out.push(e.push(plain.subarray(off, off + n))); off += n; }
  out.push(e.push(plain.subarray(off)), e.end());
  return Buffer.concat(out);
}

function decrypt(dk: Buffer, stored: Buffer, step = 777, key = KEY): Buffer {
  const d = new ObjectDecryptor(dk, key, CH);
  const out: Buffer[] = [];
  for (let i = 0; i < stored.length; i += step) out.push(d.push(stored.subarray(i, i + step)));
  out.push(d.end());
  return Buffer.concat(out);
}

const code = (f: () => unknown) => { try { f(); return 'no error'; } catch (e) { return (e as { code?: string }).code; } };

describe('client-side encryption format', () => {
  const kek = randomBytes(32);
  const { dataKey: dk, manifest } = newDataKey(kek, CH);

  it('round-trips every size around chunk boundaries, however the input is split', () => {
    for (const n of [0, 1, CH - 1, CH, CH + 1, 2 * CH, 3 * CH + 5]) {
      const plain = randomBytes(n);
      for (const splits of [[], [1], [CH, 3], [CH - 1, 1, CH]]) {
        const stored = encrypt(dk, plain, splits.filter((s) => s <= n));
        expect(stored.length, `size ${n}`).toBe(storedSize(n, CH));
        expect(decrypt(dk, stored).equals(plain), `size ${n}`).toBe(true);
        expect(decrypt(dk, stored, 1).equals(plain)).toBe(true);
      }
    }
  });

  it('hides the plaintext, and never encrypts twice the same way', () => {
    const plain = Buffer.from('secret-marker-12345\t42\n'.repeat(200));
    const a = encrypt(dk, plain);
    const b = encrypt(dk, plain);
    expect(a.includes(Buffer.from('secret-marker'))).toBe(false);
    expect(a.equals(b)).toBe(false);
  });

  it('maxPlaintext is the largest input whose stored size fits the cap', () => {
    for (let cap = HEADER_BYTES; cap < 5 * (CH + 16) + 100; cap += 7) {
      const m = maxPlaintext(cap, CH);
      if (m > 0 || storedSize(0, CH) <= cap) expect(storedSize(m, CH), `cap ${cap}`).toBeLessThanOrEqual(cap);
      expect(storedSize(m + 1, CH), `cap ${cap}`).toBeGreaterThan(cap);
    }
  });

  it('detects a flipped byte, truncation, an extra or swapped chunk, a rename and another header', () => {
    const plain = randomBytes(3 * CH);
    const stored = encrypt(dk, plain);
    const full = CH + 16;
    const flipped = Buffer.from(stored); flipped[HEADER_BYTES + full + 5]! ^= 1;
    const truncated = stored.subarray(0, HEADER_BYTES + 2 * full); // ends on a chunk boundary
    const extended = Buffer.concat([stored, stored.subarray(HEADER_BYTES, HEADER_BYTES + full)]);
    const swapped = Buffer.concat([stored.subarray(0, HEADER_BYTES), stored.subarray(HEADER_BYTES + full, HEADER_BYTES + 2 * full), stored.subarray(HEADER_BYTES, HEADER_BYTES + full), stored.subarray(HEADER_BYTES + 2 * full)]);
    const header = Buffer.from(stored); header[20]! ^= 1; // the salt
    for (const [name, bad] of [['flipped', flipped], ['truncated', truncated], ['extended', extended], ['swapped', swapped], ['header', header], ['short', stored.subarray(0, 10)]] as const) {
      expect(code(() => decrypt(dk, bad)), name).toBe('ERR_DECRYPTION');
    }
    expect(code(() => decrypt(dk, stored, 100, 't_dn2_segment.0')), 'renamed').toBe('ERR_DECRYPTION');
    expect(code(() => decrypt(randomBytes(32), stored)), 'other data key').toBe('ERR_DECRYPTION');
  });

  it('unwraps the data key with the right key only', () => {
    expect(unwrapDataKey(manifest, kek).equals(dk)).toBe(true);
    expect(manifest.keyId).toBe(keyIdOf(kek));
    expect(JSON.stringify(manifest)).not.toContain(dk.toString('base64'));
    expect(code(() => unwrapDataKey(manifest, randomBytes(32)))).toBe('ERR_ENCRYPTION_KEY');
    const altered = { ...manifest, wrappedKey: Buffer.from(Buffer.from(manifest.wrappedKey, 'base64').map((b, i) => (i === 20 ? b ^ 1 : b))).toString('base64') };
    expect(code(() => unwrapDataKey(altered, kek))).toBe('ERR_ENCRYPTION_KEY');
  });

  it('reads key files as raw, hex or base64, and refuses anything else without showing it', () => {
    const d = mkdtempSync(join(tmpdir(), 'sf-key-'));
    try {
      const k = randomBytes(32);
      for (const [n, body] of [['raw', k], ['hex', k.toString('hex') + '\n'], ['b64', k.toString('base64') + '\n']] as const) {
        writeFileSync(join(d, n), body);
        expect(readKeyFile(join(d, n)).equals(k), n).toBe(true);
      }
      writeFileSync(join(d, 'short'), 'hunter2-password');
      let err: unknown;
      try { readKeyFile(join(d, 'short')); } catch (e) { err = e; }
      expect((err as { code: string }).code).toBe('ERR_ENCRYPTION_KEY');
      expect((err as Error).message).not.toContain('hunter2');
      expect(code(() => readKeyFile(join(d, 'missing')))).toBe('ERR_ENCRYPTION_KEY');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
