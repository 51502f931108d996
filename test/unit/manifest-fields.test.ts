import { describe, expect, it } from 'vitest';
import { checkManifest, checkManifestObjects } from '../../lib/manifest/io.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';
import type { Manifest } from '../../lib/manifest/types.js';
import type { SegferryError } from '../../lib/errors.js';

function manifest(): Manifest {
  return {
    kind: 'segferry-manifest', version: 1, id: 'x', createdAt: '', completedAt: '', writer: 't',
    source: { topology: 'postgres', nodes: [] }, format: { kind: 'text' }, sessionSettings: { ...SESSION_SETTINGS }, segmentSize: 1024,
    tables: [{
      schema: 'public', name: 'a.b', objectName: 'a.b', columns: [{ name: 'id', type: 'integer' }],
      distribution: { kind: 'single' }, filter: null, rows: 1, bytes: 2, nodes: [{ node: 'coordinator', relations: ['public.a.b'], rows: 1, bytes: 2, objects: 1 }],
    }],
    objects: [{ key: 'a.b_coordinator_segment.0', table: 'public.a.b', node: 'coordinator', segment: 0, bytes: 2, rows: 1, sha256: '0'.repeat(64) }],
  };
}

function code(f: () => unknown): string | undefined {
  try { f(); } catch (e) { return (e as SegferryError).code; }
  return undefined;
}

describe('checkManifest: fields that reach SQL', () => {
  it('accepts a well-formed manifest, with or without generated columns', () => {
    expect(code(() => checkManifestObjects(checkManifest(manifest())))).toBeUndefined();
    const m = manifest();
    m.tables[0]!.generated = [{ name: 'twice', type: 'integer' }];
    expect(code(() => checkManifest(m))).toBeUndefined();
  });
  const broken: [string, (m: Manifest) => void][] = [
    ['an empty table name', (m) => { m.tables[0]!.name = ''; }],
    ['a NUL in a schema name', (m) => { m.tables[0]!.schema = 'pub\0lic'; }],
    ['a column name PostgreSQL would cut', (m) => { m.tables[0]!.columns[0]!.name = 'é'.repeat(32); }],
    ['a column twice', (m) => { m.tables[0]!.columns.push({ name: 'id', type: 'text' }); }],
    ['a generated column named as a data column', (m) => { m.tables[0]!.generated = [{ name: 'id', type: 'integer' }]; }],
    ['a column without a type', (m) => { (m.tables[0]!.columns[0] as { type?: string }).type = undefined; }],
    ['two tables with one display form', (m) => { m.tables.push({ ...m.tables[0]!, schema: 'public.a', name: 'b' }); }],
    ['an object of no table', (m) => { m.objects[0]!.table = 'public.a'; }],
    ['a shard id that is not digits', (m) => { m.objects[0]!.shards = ['1; DROP TABLE x']; }],
    ['a planFingerprint that is not 64 hex digits', (m) => { m.planFingerprint = 'not-a-digest'; }],
    ['a non-string filter', (m) => { (m.tables[0] as { filter: unknown }).filter = 1; }],
  ];
  for (const [what, change] of broken) {
    it(`refuses ${what}`, () => {
      const m = manifest();
      change(m);
      expect(code(() => checkManifestObjects(checkManifest(m)))).toBe('ERR_MANIFEST_INVALID');
    });
  }
});
