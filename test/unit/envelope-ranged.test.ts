/**
 * Random access to an encrypted object (RangedDecryptor, lib/crypto/envelope.ts): every range
 * equals the plaintext's, only the covering chunks are fetched, and a flipped byte, a truncated
 * or extended object, another header or a renamed object fail with ERR_DECRYPTION.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError } from '../../lib/errors.js';
import { HEADER_BYTES, ObjectEncryptor, plainSize, RangedDecryptor, storedSize } from '../../lib/crypto/envelope.js';

const CH = 1024;
const KEY = 't_dn1_segment.0';
const dk = randomBytes(32);

function seal(plain: Buffer, key = KEY): Buffer {
  const e = new ObjectEncryptor(dk, key, CH);
  return Buffer.concat([e.push(plain), e.end()]);
}

/** A ranged reader over stored bytes that logs each fetch. */
function reader(stored: Buffer, log: [number, number][] = []) {
  return async (s: number, e: number) => {
    log.push([s, e]);
    return stored.subarray(s, e);
  };
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (e: unknown) => e);
}

describe('plainSize', () => {
  it('inverts storedSize for every size around chunk boundaries, and refuses impossible sizes', () => {
    for (let n = 0; n <= 4 * CH + 3; n++) expect(plainSize(storedSize(n, CH), CH)).toBe(n);
    for (const bad of [0, HEADER_BYTES, HEADER_BYTES + 15, storedSize(CH, CH) + 1, storedSize(CH, CH) + 15]) expect(plainSize(bad, CH), String(bad)).toBeUndefined();
  });
});

describe('RangedDecryptor', () => {
  it('reads any range exactly, fetching only the chunks that cover it', async () => {
    for (const n of [0, 1, CH - 1, CH, CH + 1, 3 * CH, 3 * CH + 500]) {
      const plain = randomBytes(n);
      const stored = seal(plain);
      const log: [number, number][] = [];
      const r = await RangedDecryptor.open(dk, KEY, stored.length, reader(stored, log), CH);
      expect(r.size).toBe(n);
      const cuts = [0, 1, CH - 1, CH, CH + 1, 2 * CH, n - 8, n - 1, n].filter((x) => x >= 0 && x <= n);
      for (const a of cuts) for (const b of cuts) {
        if (a > b) continue;
        log.length = 0;
        expect((await r.range(a, b)).equals(plain.subarray(a, b)), `${n}: ${a}-${b}`).toBe(true);
        if (a === b) { expect(log).toEqual([]); continue; }
        // One fetch, of whole stored chunks from the first covering chunk to the last.
        const chunks = Math.floor((b - 1) / CH) - Math.floor(a / CH) + 1;
        expect(log.length).toBe(1);
        expect(log[0]![1] - log[0]![0]).toBeLessThanOrEqual(chunks * (CH + 16));
      }
    }
  });

  it('a flipped byte fails only the ranges that cover its chunk', async () => {
    const plain = randomBytes(3 * CH + 100);
    const stored = seal(plain);
    stored[HEADER_BYTES + (CH + 16) + 5]! ^= 1; // chunk 1
    const r = await RangedDecryptor.open(dk, KEY, stored.length, reader(stored), CH);
    expect((await r.range(0, CH)).equals(plain.subarray(0, CH))).toBe(true);
    expect((await r.range(2 * CH, 3 * CH + 100)).equals(plain.subarray(2 * CH))).toBe(true);
    const e = await failure(r.range(CH - 4, CH + 4));
    expect(e).toBeInstanceOf(DecryptionError);
    expect((e as DecryptionError).message).toContain('chunk 1 fails authentication');
  });

  it('a truncated, extended, renamed or re-headed object fails', async () => {
    const plain = randomBytes(3 * CH);
    const stored = seal(plain);
    // Cut at a chunk boundary: the size is possible, but the chunk read as final was not sealed so.
    const cut = stored.subarray(0, HEADER_BYTES + 2 * (CH + 16));
    const t = await RangedDecryptor.open(dk, KEY, cut.length, reader(cut), CH);
    expect(await failure(t.range(2 * CH - 10, 2 * CH))).toBeInstanceOf(DecryptionError);
    expect(await failure(RangedDecryptor.open(dk, KEY, stored.length + 3, reader(Buffer.concat([stored, Buffer.alloc(3)])), CH))).toBeInstanceOf(DecryptionError);
    const renamed = await RangedDecryptor.open(dk, 'other_dn1_segment.0', stored.length, reader(stored), CH);
    expect(await failure(renamed.range(0, 1))).toBeInstanceOf(DecryptionError);
    const other = Buffer.from(stored);
    other.write('XXXX', 0, 'latin1');
    expect(await failure(RangedDecryptor.open(dk, KEY, other.length, reader(other), CH))).toBeInstanceOf(DecryptionError);
    expect(await failure(RangedDecryptor.open(dk, KEY, stored.length, reader(stored), 2 * CH))).toBeInstanceOf(DecryptionError);
    const r = await RangedDecryptor.open(dk, KEY, stored.length, reader(stored), CH);
    expect(await failure(r.range(0, 3 * CH + 1))).toBeInstanceOf(DecryptionError);
  });
});
