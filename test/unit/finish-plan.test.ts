import { describe, expect, it } from 'vitest';
import { finishPlan, type SegferryEvent } from '../../lib/index.js';
import { CheckpointWriter, planDigest, type Checkpoint } from '../../lib/export/checkpoint.js';
import { planFingerprint } from '../../lib/export/parts.js';
import type { ExportPlan } from '../../lib/export/plan.js';
import { MANIFEST_KEY, partKey } from '../../lib/manifest/keys.js';
import type { Manifest } from '../../lib/manifest/types.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';
import { MemoryStore } from './mem-store.js';

// `segferry finish` run again (docs/multi-host.md): the manifest records the plan's fingerprint,
// so finish knows its own finished export (nothing written, exit 0) from anything else there.

const ep = (port: number) => ({ host: '127.0.0.1', port, database: 'db', user: 'u' });

function plan(segmentSize = 1 << 20): ExportPlan {
  return {
    version: 1, topology: 'static',
    nodes: [{ name: 'dn1', endpoint: ep(1) }, { name: 'dn2', endpoint: ep(2) }],
    tables: [{
      table: { schema: 'public', name: 't' }, objectName: 't', columns: [{ name: 'id', type: 'bigint' }],
      distribution: { kind: 'distributed' }, estimatedBytes: 200, expectedSegments: 1,
      reads: ['dn1', 'dn2'].map((node) => ({ node, relation: { schema: 'public', name: 't' }, estimatedBytes: 100 })),
    }],
    format: { kind: 'text' }, segmentSize, filter: null, sessionSettings: { ...SESSION_SETTINGS }, concurrency: 2, checksums: false,
  };
}

/** Both units of `p` stored by one part, as runPlanPart records them. */
async function runParts(store: MemoryStore, p: ExportPlan): Promise<void> {
  const cp: Checkpoint = { kind: 'segferry-checkpoint', version: 1, planDigest: planDigest(p), createdAt: '2026-12-01T00:00:00.000Z', updatedAt: '', units: [], part: [1, 1] };
  for (const node of ['dn1', 'dn2']) {
    const key = `t_${node}_segment.0`;
    await store.putBytes(key, `1\n2\n`);
    cp.units.push({ unit: `t_${node}`, table: 'public.t', node, rows: 2, bytes: 4, objects: [{ key, table: 'public.t', node, segment: 0, bytes: 4, rows: 2, sha256: 'ab'.repeat(32) }] });
  }
  await new CheckpointWriter(store, cp, undefined, ['t_dn1_segment.', 't_dn2_segment.'], partKey(1, 1)).save();
}

describe('finish run again', () => {
  it('finds its own manifest by the plan fingerprint: the same manifest, nothing written, an info event; leftover part records of the plan go', async () => {
    const p = plan();
    const store = new MemoryStore();
    await runParts(store, p);
    const first = await finishPlan({ plan: p, to: store });
    expect(first.planFingerprint).toBe(planFingerprint(p));
    expect(first.planFingerprint).toMatch(/^[0-9a-f]{64}$/);
    const stored = store.objects.get(MANIFEST_KEY)!;
    expect((JSON.parse(stored.toString()) as Manifest).planFingerprint).toBe(first.planFingerprint);
    expect([...store.objects.keys()].filter((k) => k.startsWith('segferry-part-'))).toEqual([]);

    // A failed delete left this plan's record behind; finish runs again with the plan as read again from its file.
    await runParts(store, p);
    const events: SegferryEvent[] = [];
    const again = await finishPlan({ plan: JSON.parse(JSON.stringify(p)) as ExportPlan, to: store, onEvent: (e) => events.push(e) });
    expect(again).toEqual(first);
    expect(store.objects.get(MANIFEST_KEY)!.equals(stored)).toBe(true); // byte-identical: not written again
    expect(events).toEqual([expect.objectContaining({ type: 'warning', level: 'info', code: 'already-finished' })]);
    expect((events[0] as { message: string }).message).toContain(`manifest ${first.id}`);
    expect([...store.objects.keys()].filter((k) => k.startsWith('segferry-part-'))).toEqual([]);
  });

  it('any other manifest there is refused with ERR_PREFIX_NOT_EMPTY, the reason and a hint', async () => {
    const p = plan();
    const store = new MemoryStore();
    await runParts(store, p);
    const first = await finishPlan({ plan: p, to: store });
    // Another plan (planned again: here another segment size).
    const other = plan(2 << 20);
    const e1 = await finishPlan({ plan: other, to: store }).catch((e: unknown) => e);
    expect(e1).toMatchObject({ code: 'ERR_PREFIX_NOT_EMPTY', message: expect.stringContaining(`its manifest ${first.id} was finished from another plan`) });
    expect((e1 as { hint?: string }).hint).toMatch(/--to NEW --out FILE/);
    // A manifest recording no plan (an export's, or a finish of an earlier version).
    const old: Partial<Manifest> = { ...first };
    delete old.planFingerprint;
    store.objects.set(MANIFEST_KEY, Buffer.from(JSON.stringify(old)));
    const e2 = await finishPlan({ plan: p, to: store }).catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: 'ERR_PREFIX_NOT_EMPTY', message: expect.stringContaining('records no plan') });
    expect((e2 as { hint?: string }).hint).toMatch(/another destination/);
    // An unreadable one.
    store.objects.set(MANIFEST_KEY, Buffer.from('{ not json'));
    await expect(finishPlan({ plan: p, to: store })).rejects.toMatchObject({ code: 'ERR_PREFIX_NOT_EMPTY', message: expect.stringContaining('not readable') });
  });
});
