// The codec fields of a manifest are untrusted input too (lib/manifest/io.ts).
import { describe, expect, it } from 'vitest';
import { checkManifest } from '../../lib/manifest/io.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';
import { codeOf } from './error-code.js';

/** A small manifest of a gzip export, as segferry writes it. */
function gz(): any {
  return {
    kind: 'segferry-manifest', version: 1, id: 'b2c9', createdAt: 'x', completedAt: 'x', writer: 'segferry 0.1.0',
    source: { topology: 'postgres', nodes: [{ name: 'coordinator', host: '127.0.0.1', port: 5432, database: 'db' }] },
    format: { kind: 'text', delimiter: '\t', null: '\\N' },
    compression: 'gzip',
    sessionSettings: { ...SESSION_SETTINGS },
    segmentSize: 1024,
    tables: [{ schema: 'public', name: 't', objectName: 't', columns: [{ name: 'id', type: 'integer' }], distribution: { kind: 'single' }, filter: null, rows: 2, bytes: 30, nodes: [] }],
    objects: [
      { key: 't_coordinator_segment.0.txt.gz', table: 'public.t', node: 'coordinator', segment: 0, bytes: 30, rows: 2, sha256: 'a'.repeat(64), compression: 'gzip' },
      { key: 't_coordinator_segment.1', table: 'public.t', node: 'coordinator', segment: 1, bytes: 30, rows: 2, sha256: 'b'.repeat(64), compression: 'gzip' },
    ],
  };
}

describe('manifest compression fields', () => {
  it('arrowCompression: zstd or lz4 on arrow manifests only', () => {
    const a = { ...gz(), format: { kind: 'arrow' }, arrowCompression: 'zstd', objects: gz().objects.map(({ compression: _, ...o }: any) => o) };
    delete a.compression;
    expect(checkManifest(a).arrowCompression).toBe('zstd');
    expect(checkManifest({ ...a, arrowCompression: 'lz4' }).arrowCompression).toBe('lz4');
    expect(codeOf(() => checkManifest({ ...a, arrowCompression: 'snappy' }))).toBe('ERR_MANIFEST_INVALID');
  });

  it('accepts the codec at the top and on every object', () => {
    expect(checkManifest(gz()).objects[0]!.compression).toBe('gzip');
  });

  it('refuses an unknown codec, a mix, an object without the codec, a codec on arrow', () => {
    const cases: ((m: any) => void)[] = [
      (m) => { m.compression = 'lz4'; },
      (m) => { m.compression = { name: 'gzip' }; },
      (m) => { m.objects[1].compression = 'zstd'; },
      (m) => { delete m.objects[1].compression; },
      (m) => { delete m.compression; },
      (m) => { m.objects[0].compression = 'brotli'; m.compression = 'brotli'; },
      (m) => { m.format = { kind: 'arrow' }; },
      (m) => { m.arrowCompression = 'zstd'; },
    ];
    for (const edit of cases) {
      const m = gz();
      edit(m);
      expect(codeOf(() => checkManifest(m)), edit.toString()).toBe('ERR_MANIFEST_INVALID');
    }
  });
});
