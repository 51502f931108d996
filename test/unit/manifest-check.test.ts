import { describe, expect, it } from 'vitest';
import { checkManifest } from '../../lib/manifest/io.js';
import { namedObjects } from '../../lib/manifest/objects.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';
import { ManifestInvalidError } from '../../lib/errors.js';

/** A small manifest as segferry writes it. */
function good(): any {
  return {
    kind: 'segferry-manifest', version: 1, id: 'b2c9', createdAt: 'x', completedAt: 'x', writer: 'segferry 0.1.0',
    source: { topology: 'postgres', nodes: [{ name: 'coordinator', host: '127.0.0.1', port: 5432, database: 'db' }] },
    format: { kind: 'text', delimiter: '\t', null: '\\N' },
    sessionSettings: { ...SESSION_SETTINGS },
    segmentSize: 1024,
    tables: [{
      schema: 'public', name: 't', objectName: 't', columns: [{ name: 'id', type: 'integer', notNull: true }],
      distribution: { kind: 'single' }, filter: "note <> 'a;b)'", rows: 2, bytes: 4,
      nodes: [{ node: 'coordinator', relations: ['public.t'], rows: 2, bytes: 4, objects: 1, checksum: { rows: 2, sum: '12', algorithm: 'copy-rowhash64' } }],
      checksum: { rows: 2, sum: '12', algorithm: 'copy-rowhash64' },
    }],
    objects: [{ key: 't_coordinator_segment.0', table: 'public.t', node: 'coordinator', segment: 0, bytes: 4, rows: 2, sha256: 'a'.repeat(64) }],
  };
}

function refused(edit: (m: any) => void): string {
  const m = good();
  edit(m);
  try {
    checkManifest(m);
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestInvalidError);
    return (e as Error).message;
  }
  throw new Error('accepted');
}

describe('checkManifest: a manifest is untrusted input', () => {
  it('accepts what segferry writes', () => {
    expect(checkManifest(good())).toEqual(good());
  });

  it('refuses session settings segferry does not record, or other values', () => {
    expect(refused((m) => { m.sessionSettings.session_replication_role = 'replica'; })).toMatch(/session_replication_role/);
    expect(refused((m) => { m.sessionSettings.TimeZone = 'Europe/Paris'; })).toMatch(/TimeZone/);
    expect(refused((m) => { m.sessionSettings.standard_conforming_strings = 'off'; })).toMatch(/standard_conforming_strings/);
    expect(refused((m) => { m.sessionSettings = { __proto__: null, constructor: 'x' }; })).toMatch(/constructor/);
  });

  it('refuses keys that leave the prefix, and wrong types', () => {
    expect(refused((m) => { m.objects[0].key = '../other/t_dn1_segment.0'; })).toMatch(/objects\[0\]\.key/);
    expect(refused((m) => { m.objects[0].key = '/etc/passwd'; })).toMatch(/objects\[0\]\.key/);
    expect(refused((m) => { m.objects[0].key = '..'; })).toMatch(/objects\[0\]\.key/);
    expect(refused((m) => { m.objects[0].rows = -1; })).toMatch(/rows/);
    expect(refused((m) => { m.objects[0].bytes = 1.5; })).toMatch(/bytes/);
    expect(refused((m) => { m.objects[0].segment = '0'; })).toMatch(/segment/);
    expect(refused((m) => { m.objects[0].sha256 = 'zz'; })).toMatch(/sha256/);
    expect(refused((m) => { m.tables[0].name = ''; })).toMatch(/tables\[0\]\.name/);
    expect(refused((m) => { m.tables[0].schema = 'a\0b'; })).toMatch(/schema/);
    expect(refused((m) => { m.tables[0].columns[0].name = 7; })).toMatch(/columns\[0\]\.name/);
    expect(refused((m) => { m.tables[0].columns = 'id'; })).toMatch(/columns/);
    expect(refused((m) => { m.tables[0].distribution.kind = 'sharded'; })).toMatch(/distribution/);
    expect(refused((m) => { m.tables[0].nodes[0].checksum.sum = '1e9'; })).toMatch(/sum/);
    expect(refused((m) => { m.tables[0].filter = "1=1) TO PROGRAM 'id' --"; })).toMatch(/filter/);
    expect(refused((m) => { m.format.kind = 'orc'; })).toMatch(/format\.kind/);
    expect(refused((m) => { m.format.compression = 'zstd'; })).toMatch(/format\.compression/);
    expect(refused((m) => { m.format.delimiter = ',,'; })).toMatch(/delimiter/);
  });
});

describe('checkManifest: exactly one well-formed object digest (crc32 or sha256)', () => {
  const crc = 'cbf43926';
  const sha = 'ab'.repeat(32);
  /** `good()` with its object's digest replaced by `digest`. */
  const withDigest = (digest: Record<string, unknown>) => (m: any) => {
    delete m.objects[0].sha256;
    Object.assign(m.objects[0], digest);
  };

  it('accepts crc32 alone and sha256 alone (every manifest written before the option)', () => {
    const m = good();
    withDigest({ crc32: crc })(m);
    expect(checkManifest(m).objects[0]).toMatchObject({ crc32: crc });
    expect(checkManifest(good()).objects[0]).toMatchObject({ sha256: 'a'.repeat(64) });
  });

  it('refuses neither, both, and malformed values', () => {
    expect(refused(withDigest({}))).toMatch(/objects\[0\] has no digest: it needs crc32 or sha256/);
    expect(refused(withDigest({ crc32: crc, sha256: sha }))).toMatch(/objects\[0\] has both crc32 and sha256/);
    expect(refused(withDigest({ crc32: 'cbf4392' }))).toMatch(/objects\[0\]\.crc32 must be 8 hexadecimal digits/);
    for (const bad of ['cbf43926a', 'xbf43926', 3421780262, null]) expect(refused(withDigest({ crc32: bad }))).toMatch(/crc32 must be 8/);
    expect(refused(withDigest({ sha256: 'ab' }))).toMatch(/objects\[0\]\.sha256 must be 64 hexadecimal digits/);
    expect(refused(withDigest({ sha256: crc }))).toMatch(/sha256 must be 64/);
  });

  it('namedObjects (check, replicate) carries each entry with its own algorithm', () => {
    const m = good();
    withDigest({ crc32: crc.toUpperCase() })(m);
    m.schemaDump = { key: 'schema.sql', bytes: 3, sha256: sha }; // another field shaped like an object (DDL keeps SHA-256)
    expect(namedObjects(checkManifest(m))).toEqual([
      { key: 't_coordinator_segment.0', bytes: 4, crc32: crc, field: 'objects' },
      { key: 'schema.sql', bytes: 3, sha256: sha, field: 'schemaDump' },
    ]);
    m.schemaDump.crc32 = crc;
    expect(() => namedObjects(m)).toThrow(/schemaDump has both crc32 and sha256/);
  });
});
