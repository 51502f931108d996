import { describe, expect, it } from 'vitest';
import { cleanup } from '../../lib/index.js';
import { CheckpointWriter, type Checkpoint } from '../../lib/export/checkpoint.js';
import { partKey } from '../../lib/manifest/keys.js';
import { MemoryStore } from './mem-store.js';

// An unfinished plan run in parts (docs/multi-host.md): its objects are provably the export's
// through the part records' stems, exactly as a checkpoint's are; cleanup deletes them.
describe('cleanup of an unfinished multi-host export', () => {
  it('reads every part record\'s stems: the parts\' objects and records go, look-alikes stay', async () => {
    const store = new MemoryStore();
    const record = async (k: number, n: number, stems: string[], objects: string[]) => {
      const cp: Checkpoint = { kind: 'segferry-checkpoint', version: 1, planDigest: 'd', createdAt: '2026-11-30T00:00:00.000Z', updatedAt: '', units: [], part: [k, n] };
      if (objects.length > 0) {
        cp.units.push({ unit: 'u', table: 'public.t', node: 'dn9', rows: 1, bytes: 1, objects: objects.map((key, i) => ({ key, table: 'public.t', node: 'dn9', segment: i, bytes: 1, rows: 1, sha256: 'ab' })) });
      }
      // As runPlanPart writes it: stems stored before the part's first object.
      await new CheckpointWriter(store, cp, undefined, stems, partKey(k, n)).save();
    };
    await record(1, 2, ['t_dn1_segment.'], []);
    await record(2, 2, ['t_dn2_segment.'], ['t_dn9_segment.0']);
    for (const k of ['t_dn1_segment.0', 't_dn1_segment.1', 't_dn2_segment.0.segferry-partial-0a1b', 't_dn9_segment.0', 't_dn3_segment.0', 'other_dn1_segment.0', 'sub/t_dn1_segment.0']) {
      await store.putBytes(k, 'x');
    }
    const listed = await cleanup({ location: store });
    expect(listed.hasManifest).toBe(false);
    expect(listed.objects.map((o) => o.key).sort()).toEqual([
      'segferry-part-1-of-2.json', 'segferry-part-2-of-2.json',
      't_dn1_segment.0', 't_dn1_segment.1', 't_dn2_segment.0.segferry-partial-0a1b', 't_dn9_segment.0',
    ]);
    expect(listed.leftAlone.map((o) => o.key).sort()).toEqual(['other_dn1_segment.0', 'sub/t_dn1_segment.0', 't_dn3_segment.0']);
    const removed = await cleanup({ location: store, yes: true });
    expect(removed.removed).toBe(true);
    expect([...store.objects.keys()].sort()).toEqual(['other_dn1_segment.0', 'sub/t_dn1_segment.0', 't_dn3_segment.0']);
  });

  it('an unreadable part record names nothing', async () => {
    const store = new MemoryStore();
    await store.putBytes(partKey(1, 1), '{ not json');
    await store.putBytes('t_dn1_segment.0', 'x');
    const listed = await cleanup({ location: store });
    expect(listed.leftAlone.map((o) => o.key)).toEqual(['t_dn1_segment.0']);
    expect(listed.objects.map((o) => o.key)).toEqual([partKey(1, 1)]);
  });
});
