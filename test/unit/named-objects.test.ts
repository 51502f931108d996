/**
 * namedObjects: every object a manifest names, `objects` and any other top-level list shaped
 * like them (a `ddl` list other exports may add), with keys and hashes checked because the
 * manifest is untrusted.
 */
import { describe, expect, it } from 'vitest';
import { namedObjects } from '../../lib/manifest/objects.js';
import type { Manifest } from '../../lib/manifest/types.js';

const sha = (c: string) => c.repeat(64);
const obj = (key: string, c = 'a') => ({ key, table: 'public.t', node: 'dn1', segment: 0, bytes: 3, rows: 1, sha256: sha(c) });

function manifest(extra: Record<string, unknown> = {}, objects = [obj('t_dn1_segment.0')]): Manifest {
  return { kind: 'segferry-manifest', version: 1, id: 'x', objects, tables: [], ...extra } as unknown as Manifest;
}

describe('namedObjects', () => {
  it('lists objects, then other fields shaped like them (lists and single entries)', () => {
    const m = manifest({ ddl: [{ key: 't.ddl.sql', bytes: 10, sha256: sha('B') }], schemaDump: { key: 'schema.sql', bytes: 0, sha256: sha('c') }, source: { nodes: [] } });
    expect(namedObjects(m)).toEqual([
      { key: 't_dn1_segment.0', bytes: 3, sha256: sha('a'), field: 'objects' },
      { key: 't.ddl.sql', bytes: 10, sha256: sha('b'), field: 'ddl' },
      { key: 'schema.sql', bytes: 0, sha256: sha('c'), field: 'schemaDump' },
    ]);
  });

  it('refuses keys that leave the prefix, bad hashes and duplicates', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ddl: [{ key: '../x', bytes: 1, sha256: sha('a') }] }, /ddl\[0\]\.key/],
      [{ ddl: [{ key: 'sub/x', bytes: 1, sha256: sha('a') }] }, /one path segment/],
      [{ ddl: [{ key: 'manifest.json', bytes: 1, sha256: sha('a') }] }, /other than the manifest/],
      [{ ddl: [{ key: 'x', bytes: -1, sha256: sha('a') }] }, /bytes/],
      [{ ddl: [{ key: 'x', bytes: 1, sha256: 'abc' }] }, /64 hex/],
      [{ ddl: [{ key: 't_dn1_segment.0', bytes: 1, sha256: sha('a') }] }, /named twice/],
    ];
    for (const [extra, re] of cases) {
      expect(() => namedObjects(manifest(extra)), JSON.stringify(extra)).toThrow(re);
      try { namedObjects(manifest(extra)); } catch (e) { expect((e as { code: string }).code).toBe('ERR_MANIFEST_INVALID'); }
    }
  });
});
