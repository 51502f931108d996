import { describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup } from '../../lib/index.js';

// cleanup touches only segferry's own keys, and keeps what the manifest references.
describe('cleanup', () => {
  it('lists and removes unreferenced segments, partial uploads and checkpoints only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-cleanup-'));
    try {
      const manifest = {
        // Table t was exported from dn1 and dn2: the leftovers of both units are provably this export's.
        kind: 'segferry-manifest', version: 1, id: 'x', createdAt: '2026-11-30T00:00:00.000Z', completedAt: '2026-11-30T00:00:01.000Z',
        writer: 'segferry 0.1.0', format: { kind: 'text', delimiter: '\t', null: '\\N' }, sessionSettings: {}, segmentSize: 1024,
        source: { topology: 'static', nodes: [{ name: 'dn1', host: 'h1', port: 5432, database: 'd' }, { name: 'dn2', host: 'h2', port: 5432, database: 'd' }] },
        tables: [{
          schema: 'public', name: 't', objectName: 't', columns: [{ name: 'a', type: 'integer', notNull: false }], distribution: { kind: 'distributed' },
          filter: null, rows: 1, bytes: 1,
          nodes: [{ node: 'dn1', relations: ['public.t'], rows: 1, bytes: 1, objects: 1 }, { node: 'dn2', relations: ['public.t'], rows: 0, bytes: 0, objects: 0 }],
        }],
        objects: [{ key: 't_dn1_segment.0', table: 'public.t', node: 'dn1', segment: 0, bytes: 1, rows: 1, sha256: 'ab'.repeat(32) }],
      };
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
      for (const f of ['t_dn1_segment.0', 't_dn1_segment.1', 't_dn2_segment.0.segferry-partial-0a1b', 'segferry-checkpoint.json', 'notes.txt']) {
        await writeFile(join(dir, f), 'x');
      }
      const listed = await cleanup({ location: dir });
      expect(listed.hasManifest).toBe(true);
      expect(listed.removed).toBe(false);
      expect(listed.objects.map((o) => o.key).sort()).toEqual(['segferry-checkpoint.json', 't_dn1_segment.1', 't_dn2_segment.0.segferry-partial-0a1b']);
      expect((await readdir(dir)).length).toBe(6);
      const removed = await cleanup({ location: dir, yes: true });
      expect(removed.removed).toBe(true);
      expect((await readdir(dir)).sort()).toEqual(['manifest.json', 'notes.txt', 't_dn1_segment.0']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
