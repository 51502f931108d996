// Object digests (lib/manifest/digest.ts): CRC-32 or SHA-256 of an object's stored bytes, as a
// manifest entry records exactly one of them, and how untrusted entries are checked.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManifestInvalidError } from '../../lib/errors.js';
import {
  crc32ToS3, defaultObjectChecksum, describeDigest, digestBytes, digestFields, digestMatches, digestProblem, digestStream,
  ledgerDigest, ObjectHasher, parseObjectChecksum, pickDigest, recordedDigest,
} from '../../lib/manifest/digest.js';
import { checkManifest } from '../../lib/manifest/io.js';
import { namedObjects } from '../../lib/manifest/objects.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';

/** A small manifest whose one object entry is `digest`. */
function manifest(digest: Record<string, unknown>): any {
  return {
    kind: 'segferry-manifest', version: 1, id: 'd1', createdAt: 'x', completedAt: 'x', writer: 'segferry 0.1.0',
    source: { topology: 'postgres', nodes: [{ name: 'coordinator', host: '127.0.0.1', port: 5432, database: 'db' }] },
    format: { kind: 'text', delimiter: '\t', null: '\\N' },
    sessionSettings: { ...SESSION_SETTINGS },
    tables: [{
      schema: 'public', name: 't', objectName: 't', columns: [{ name: 'id', type: 'integer' }],
      distribution: { kind: 'single' }, rows: 1, bytes: 2, nodes: [{ node: 'coordinator', relations: ['public.t'], rows: 1, bytes: 2, objects: 1 }],
    }],
    objects: [{ key: 't_coordinator_segment.0', table: 'public.t', node: 'coordinator', segment: 0, bytes: 2, rows: 1, ...digest }],
  };
}

function refusal(m: unknown): string {
  try {
    checkManifest(m);
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestInvalidError);
    return (e as Error).message;
  }
  throw new Error('accepted');
}

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
  });

  it("S3's ChecksumCRC32 is the same CRC, big-endian, in base64", () => {
    // S3 documents the value of "123456789" as the 4 bytes cb f4 39 26.
    expect(crc32ToS3(digestBytes('crc32', Buffer.from('123456789')))).toBe(Buffer.from([0xcb, 0xf4, 0x39, 0x26]).toString('base64'));
    expect(crc32ToS3('00000001')).toBe('AAAAAQ==');
  });

  it('the option: crc32 by default where zlib.crc32 exists, sha256 on request, nothing else', () => {
    expect(defaultObjectChecksum()).toBe('crc32'); // this Node has zlib.crc32
    expect(parseObjectChecksum(undefined)).toBe('crc32');
    expect(parseObjectChecksum('sha256')).toBe('sha256');
    expect(() => parseObjectChecksum('md5')).toThrow(/unknown object checksum "md5": use crc32 or sha256/);
    expect(() => parseObjectChecksum('CRC32')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});

describe('checkManifest: exactly one well-formed digest per object', () => {
  const crc = 'cbf43926';
  const sha = 'ab'.repeat(32);

  it('accepts crc32 alone and sha256 alone (manifests written before the option)', () => {
    expect(checkManifest(manifest({ crc32: crc })).objects[0]).toMatchObject({ crc32: crc });
    expect(checkManifest(manifest({ sha256: sha })).objects[0]).toMatchObject({ sha256: sha });
  });

  it('refuses neither, both, and malformed values', () => {
    expect(refusal(manifest({}))).toMatch(/objects\[0\] has no digest: it needs crc32 or sha256/);
    expect(refusal(manifest({ crc32: crc, sha256: sha }))).toMatch(/objects\[0\] has both crc32 and sha256/);
    expect(refusal(manifest({ crc32: 'cbf4392' }))).toMatch(/objects\[0\]\.crc32 must be 8 hexadecimal digits/);
    expect(refusal(manifest({ crc32: 'cbf43926a' }))).toMatch(/crc32 must be 8/);
    expect(refusal(manifest({ crc32: 'xbf43926' }))).toMatch(/crc32 must be 8/);
    expect(refusal(manifest({ crc32: 3421780262 }))).toMatch(/crc32 must be 8/);
    expect(refusal(manifest({ sha256: 'ab' }))).toMatch(/objects\[0\]\.sha256 must be 64 hexadecimal digits/);
    expect(refusal(manifest({ sha256: crc }))).toMatch(/sha256 must be 64/);
    expect(refusal(manifest({ crc32: null }))).toMatch(/crc32 must be 8/);
  });

  it('namedObjects (check, replicate) carries each entry with its own algorithm', () => {
    const m = checkManifest(manifest({ crc32: crc.toUpperCase() })) as any;
    m.schemaDump = { key: 'schema.sql', bytes: 3, sha256: sha }; // another field shaped like an object (DDL keeps SHA-256)
    expect(namedObjects(m)).toEqual([
      { key: 't_coordinator_segment.0', bytes: 2, crc32: crc, field: 'objects' },
      { key: 'schema.sql', bytes: 3, sha256: sha, field: 'schemaDump' },
    ]);
    m.schemaDump = { key: 'schema.sql', bytes: 3, crc32: crc, sha256: sha };
    expect(() => namedObjects(m)).toThrow(/schemaDump has both crc32 and sha256/);
    expect(digestProblem({ key: 'x', bytes: 1 }, 'x')).toBe('x has no digest: it needs crc32 or sha256');
  });
});
