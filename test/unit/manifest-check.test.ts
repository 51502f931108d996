import { describe, expect, it } from 'vitest';
import { checkManifest } from '../../lib/manifest/io.js';
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
