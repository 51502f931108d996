// Object digests (lib/manifest/digest.ts): CRC-32 or SHA-256 of an object's stored bytes, as a
// manifest entry records exactly one of them (checkManifest's side: manifest-check.test.ts).
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  defaultObjectChecksum, describeDigest, digestFields, digestMatches, digestProblem, digestStream,
  ledgerDigest, ObjectHasher, parseObjectChecksum, pickDigest, recordedDigest, type ObjectChecksum,
} from '../../lib/manifest/digest.js';

/** The digest of `b` under `a`, through the hasher. */
const digestBytes = (a: ObjectChecksum, b: Uint8Array) => new ObjectHasher(a).update(b).digest();

describe('object digests', () => {
  it('CRC-32 is CRC-32/ISO-HDLC: the standard check value and known vectors', () => {
    // The catalogue's check value: CRC of the ASCII bytes "123456789".
    expect(digestBytes('crc32', Buffer.from('123456789'))).toBe('cbf43926');
    expect(digestBytes('crc32', Buffer.alloc(0))).toBe('00000000');
    // Leading zeros are kept: 8 digits always.
    expect(digestBytes('crc32', Buffer.from('a'))).toBe('e8b7be43');
    expect(digestBytes('sha256', Buffer.from('abc'))).toBe(createHash('sha256').update('abc').digest('hex'));
  });

  it('hashing in pieces equals hashing at once, for both algorithms', async () => {
    const body = randomBytes(100_000);
    for (const a of ['crc32', 'sha256'] as const) {
      const h = new ObjectHasher(a);
      for (let i = 0; i < body.length; i += 7777) h.update(body.subarray(i, i + 7777));
      const whole = digestBytes(a, body);
      expect(h.digest()).toBe(whole);
      const pieces = async function* () { for (let i = 0; i < body.length; i += 4096) yield body.subarray(i, i + 4096); };
      let seen = 0;
      expect(await digestStream(digestFields(a, whole), pieces(), (n) => { seen += n; })).toEqual({ algorithm: a, hex: whole, bytes: body.length });
      expect(seen).toBe(body.length);
    }
  });

  it('an entry is read and compared under the algorithm it records', async () => {
    const body = Buffer.from('1\n2\n');
    const crc = digestBytes('crc32', body);
    const sha = digestBytes('sha256', body);
    expect(recordedDigest({ crc32: crc.toUpperCase() })).toEqual({ algorithm: 'crc32', hex: crc });
    expect(recordedDigest({ sha256: sha })).toEqual({ algorithm: 'sha256', hex: sha });
    expect(recordedDigest({})).toBeUndefined();
    expect(digestMatches({ crc32: crc }, crc)).toBe(true);
    expect(digestMatches({ crc32: crc }, sha)).toBe(false);
    expect(digestMatches({ sha256: sha }, sha.toUpperCase())).toBe(true);
    expect(digestMatches({}, crc)).toBe(false);
    // No recorded digest (a bare object): SHA-256, as before.
    expect((await digestStream({}, (async function* () { yield body; })())).hex).toBe(sha);
    expect(pickDigest({ key: 'k', crc32: crc } as { crc32: string })).toEqual({ crc32: crc });
    expect(describeDigest('crc32', crc)).toBe(`CRC-32 ${crc}`);
    expect(ledgerDigest('sha256', sha)).toBe(sha);
    expect(ledgerDigest('crc32', crc)).toBe(`crc32:${crc}`);
    expect(digestProblem({ key: 'x', bytes: 1 }, 'x')).toBe('x has no digest: it needs crc32 or sha256');
  });

  it("S3's ChecksumCRC32 form is the 8 hex digits' 4 bytes in base64 (docs/manifest.md)", () => {
    const hex = digestBytes('crc32', Buffer.from('123456789'));
    expect(Buffer.from(hex, 'hex').toString('base64')).toBe('y/Q5Jg==');
    expect(Buffer.from('y/Q5Jg==', 'base64').toString('hex')).toBe(hex);
  });

  it('the option: crc32 by default where zlib.crc32 exists, sha256 on request, nothing else', () => {
    expect(defaultObjectChecksum()).toBe('crc32'); // this Node has zlib.crc32
    expect(parseObjectChecksum(undefined)).toBe('crc32');
    expect(parseObjectChecksum('sha256')).toBe('sha256');
    expect(() => parseObjectChecksum('md5')).toThrow(/unknown object checksum "md5": use crc32 or sha256/);
    expect(() => parseObjectChecksum('CRC32')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
