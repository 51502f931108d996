import { describe, expect, it } from 'vitest';
import { planDigest, planFields, type CheckpointUnit } from '../../lib/export/checkpoint.js';
import type { SegferryError } from '../../lib/errors.js';
import type { ExportPlan } from '../../lib/export/plan.js';
import { startExport } from '../../lib/export/resume.js';
import { checkpointEntry, doneUnits, nodeQueues, planUnits, resultOf } from '../../lib/export/units.js';
import { CHECKPOINT_KEY, MANIFEST_KEY } from '../../lib/manifest/keys.js';
import type { RelationRead, TablePlan } from '../../lib/topology/types.js';
import { MemoryStore } from './mem-store.js';

const ep = (port: number) => ({ host: '127.0.0.1', port, database: 'db', user: 'u' });
const read = (node: string, schema: string, name: string, shardId?: string): RelationRead =>
  ({ node, relation: { schema, name }, estimatedBytes: 100, ...(shardId ? { shardId } : {}) });
const table = (name: string, objectName: string, kind: 'distributed' | 'replicated', reads: RelationRead[], replicas?: string[]): TablePlan => ({
  table: { schema: 'public', name }, objectName, columns: [{ name: 'id', type: 'bigint' }],
  distribution: { kind, ...(replicas ? { replicas } : {}) }, reads, estimatedBytes: 100 * reads.length, expectedSegments: 1,
});

function plan(): ExportPlan {
  return {
    version: 1, topology: 'citus',
    nodes: [{ name: 'w1', endpoint: ep(1) }, { name: 'w2', endpoint: ep(2) }, { name: 'w3', endpoint: ep(3) }],
    tables: [
      // Distributed over two nodes (fdw-like).
      table('orders', 'orders', 'distributed', [read('w2', 'public', 'orders_p2'), read('w1', 'public', 'orders_p1')]),
      // Replicated: read once, from its first replica.
      table('nation', 'nation', 'replicated', [read('w3', 'public', 'nation')], ['w3', 'w1']),
      // Citus shards: several shards per node go into one unit per node.
      table('items', 'items', 'distributed', [
        read('w1', 'public', 'items_102008', '102008'), read('w2', 'public', 'items_102009', '102009'),
        read('w1', 'public', 'items_102010', '102010'), read('w2', 'public', 'items_102011', '102011'),
      ]),
    ],
    format: { kind: 'text' }, segmentSize: 1 << 20, filter: null, sessionSettings: {}, concurrency: 3, checksums: true,
  };
}

describe('export units', () => {
  it('one unit per (table, node) in plan order, with the node\'s reads in plan order', () => {
    const p = plan();
    const units = planUnits(p);
    expect(units.map((u) => [u.id, u.node, u.reads.map((r) => r.relation.name)])).toEqual([
      ['orders_w2', 'w2', ['orders_p2']],
      ['orders_w1', 'w1', ['orders_p1']],
      ['nation_w3', 'w3', ['nation']],
      ['items_w1', 'w1', ['items_102008', 'items_102010']],
      ['items_w2', 'w2', ['items_102009', 'items_102011']],
    ]);
    expect(units[3]!.reads.map((r) => r.shardId)).toEqual(['102008', '102010']);
    // Units point at the plan's own table objects (the manifest groups by them).
    expect(units[0]!.table).toBe(p.tables[0]);
    expect(new Set(units.map((u) => u.id)).size).toBe(units.length);
    expect(planUnits(p)).toEqual(units);
  });

  it('node queues follow the plan\'s node order and hold each node\'s units in order', () => {
    const p = plan();
    const q = nodeQueues(p, planUnits(p));
    expect(q.map((w) => [w.node.name, w.units.map((u) => u.id)])).toEqual([
      ['w1', ['orders_w1', 'items_w1']],
      ['w2', ['orders_w2', 'items_w2']],
      ['w3', ['nation_w3']],
    ]);
    expect(nodeQueues(p, []).map((w) => w.units.length)).toEqual([0, 0, 0]);
  });

  it('checkpoint entries match by unit id, and old (table, node) entries still match', () => {
    const units = planUnits(plan());
    const base = { objects: [], rows: 1, bytes: 2 };
    const recorded: CheckpointUnit[] = [
      { unit: 'items_w2', table: 'public.items', node: 'w2', ...base },
      { table: 'public.orders', node: 'w1', ...base }, // written before unit ids
      { table: 'public.orders', node: 'w9', ...base }, // no such unit
      { unit: 'gone_w1', table: 'public.gone', node: 'w1', ...base },
      // A replicated table read from its fallback replica keeps its unit id.
      { unit: 'nation_w3', table: 'public.nation', node: 'w1', ...base },
    ];
    const done = doneUnits(units, recorded);
    expect([...done.keys()].sort()).toEqual(['items_w2', 'nation_w3', 'orders_w1']);
    expect(resultOf(units[2]!, done.get('nation_w3')!).node).toBe('w1');
  });

  it('a result round-trips through its checkpoint entry', () => {
    const units = planUnits(plan());
    const r = { unit: units[3]!, node: 'w1', objects: [], rows: 5, bytes: 50, checksum: { rows: 5, sum: '7', algorithm: 'copy-rowhash64' as const } };
    const c = checkpointEntry(r);
    expect(c).toEqual({ unit: 'items_w1', table: 'public.items', node: 'w1', objects: [], rows: 5, bytes: 50, checksum: r.checksum });
    expect(resultOf(units[3]!, c)).toEqual(r);
  });
});

describe('startExport (checkpoint and resume)', () => {
  const obj = (key: string) => ({ key, table: 'public.orders', node: 'w1', segment: 0, bytes: 1, rows: 1, sha256: '0' });

  it('resumes an old (table, node) checkpoint: done units kept, md5-era ones redone, leftovers of redone units deleted', async () => {
    const p = plan();
    const store = new MemoryStore();
    const sum = { rows: 1, sum: '1', algorithm: 'copy-rowhash64' as const };
    store.objects.set(CHECKPOINT_KEY, Buffer.from(JSON.stringify({
      kind: 'segferry-checkpoint', version: 1, planDigest: planDigest(p), createdAt: 'c0', updatedAt: 'u0',
      units: [
        { table: 'public.orders', node: 'w1', objects: [obj('orders_w1_segment.0')], rows: 1, bytes: 1, checksum: sum },
        { table: 'public.orders', node: 'w2', objects: [obj('orders_w2_segment.0')], rows: 1, bytes: 1, checksum: { rows: 1, sum: '9' } },
      ],
    })));
    for (const k of ['orders_w1_segment.0', 'orders_w2_segment.0', 'orders_w2_segment.1.segferry-partial-0a', 'items_w1_segment.0', 'notes.txt']) store.objects.set(k, Buffer.from('x'));
    const s = await startExport(store, p, true);
    expect(s.createdAt).toBe('c0');
    expect(s.done.map((r) => [r.unit.id, r.node, r.checksum])).toEqual([['orders_w1', 'w1', sum]]);
    expect(s.done[0]!.unit.table).toBe(p.tables[0]);
    expect(s.todo.map((u) => u.id)).toEqual(['orders_w2', 'nation_w3', 'items_w1', 'items_w2']);
    expect([...store.objects.keys()].sort()).toEqual(['notes.txt', 'orders_w1_segment.0', CHECKPOINT_KEY]);
    // The stored checkpoint keeps the kept unit only.
    const cp = JSON.parse(store.objects.get(CHECKPOINT_KEY)!.toString());
    expect(cp.units.map((u: CheckpointUnit) => [u.table, u.node])).toEqual([['public.orders', 'w1']]);
  });

  it('a fresh start stores an empty checkpoint; resume refuses a finished export and another plan', async () => {
    const p = plan();
    const store = new MemoryStore();
    const s = await startExport(store, p, false);
    expect(s.done).toEqual([]);
    expect(s.todo).toHaveLength(5);
    expect(JSON.parse(store.objects.get(CHECKPOINT_KEY)!.toString())).toMatchObject({ kind: 'segferry-checkpoint', planDigest: planDigest(p), units: [] });
    const other = { ...p, segmentSize: 2 << 20 };
    await expect(startExport(store, other, true)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    store.objects.set(MANIFEST_KEY, Buffer.from('{}'));
    await expect(startExport(store, p, true)).rejects.toMatchObject({ code: 'ERR_PREFIX_NOT_EMPTY' });
  });

  it('a refused resume names the first option or table that changed, and how to start again (--overwrite)', async () => {
    const p = plan();
    const store = new MemoryStore();
    await startExport(store, p, false);
    const refusal = (q: ExportPlan) => startExport(store, q, true).then(() => { throw new Error('resumed'); }, (e: SegferryError) => e);
    const said = async (q: ExportPlan) => {
      const e = await refusal(q);
      expect(e.code).toBe('ERR_INVALID_OPTION');
      expect(e.hint).toBe('resume with the same options as the first run, or pass overwrite (--overwrite) to start again');
      return e.message.replace(/^.*planned differently: /, '');
    };
    expect(await said({ ...p, segmentSize: 2 << 20 })).toBe('the segment size (--segment-size; segmentSize) changed');
    expect(await said({ ...p, filter: 'id > 1' })).toBe('the filter (--where; where) changed');
    // The first difference in the plan's order: the format comes before the segment size.
    expect(await said({ ...p, format: { kind: 'csv' } as ExportPlan['format'], segmentSize: 2 << 20 })).toBe('the format or its options (--format and its flags; format) changed');
    expect(await said({ ...p, compression: 'zstd' })).toBe('the compression (--compress; compress) changed');
    expect(await said({ ...p, checksums: false })).toBe('the row checksums (--no-checksums; checksums) changed');
    const [orders, nation, items] = p.tables as [TablePlan, TablePlan, TablePlan];
    expect(await said({ ...p, tables: [orders, nation] })).toBe('table public.items was left out (--table; tables)');
    expect(await said({ ...p, tables: [...p.tables, table('extra', 'extra', 'replicated', [read('w1', 'public', 'extra')], ['w1'])] })).toBe('table public.extra was added (--table; tables)');
    expect(await said({ ...p, tables: [{ ...orders, columns: [...orders.columns, { name: 'x', type: 'text' }] }, nation, items] }))
      .toBe('the columns of table public.orders changed (--columns; columns, or the table\'s definition)');
    expect(await said({ ...p, tables: [{ ...orders, reads: [orders.reads[0]!] }, nation, items] })).toBe('the nodes or relations read for table public.orders changed (the topology)');
    expect(await said({ ...p, tables: [nation, orders, items] })).toBe('the order of the tables (--table; tables) changed');
    // The checkpoint holds digests, never the filter itself.
    expect(store.objects.get(CHECKPOINT_KEY)!.toString()).not.toContain('id > 1');
    // A checkpoint of an earlier version (no planFields): the candidates are listed.
    const cp = JSON.parse(store.objects.get(CHECKPOINT_KEY)!.toString());
    delete cp.planFields;
    store.objects.set(CHECKPOINT_KEY, Buffer.from(JSON.stringify(cp)));
    expect(await said({ ...p, segmentSize: 2 << 20 })).toBe('tables, nodes, columns, format, segment size or filter changed');
    // The same plan resumes, and the checkpoint gains the per-part digests.
    await startExport(store, p, true);
    expect(JSON.parse(store.objects.get(CHECKPOINT_KEY)!.toString()).planFields).toEqual(planFields(p));
    // A finished export: the hint names the flag and the option.
    store.objects.set(MANIFEST_KEY, Buffer.from('{}'));
    await expect(startExport(store, p, true)).rejects.toMatchObject({ code: 'ERR_PREFIX_NOT_EMPTY', hint: 'choose another prefix, or pass overwrite (--overwrite) to replace it' });
  });

  it('records a manifest id fixed in advance; a resume keeps it, refuses another, and a malformed one is no checkpoint', async () => {
    const p = plan();
    const store = new MemoryStore();
    await startExport(store, p, false, undefined, undefined, undefined, 'copy-via:1');
    expect(JSON.parse(store.objects.get(CHECKPOINT_KEY)!.toString()).manifestId).toBe('copy-via:1');
    expect((await startExport(store, p, true)).manifestId).toBe('copy-via:1');
    expect((await startExport(store, p, true, undefined, undefined, undefined, 'copy-via:1')).manifestId).toBe('copy-via:1');
    await expect(startExport(store, p, true, undefined, undefined, undefined, 'copy-via:2')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    const cp = JSON.parse(store.objects.get(CHECKPOINT_KEY)!.toString());
    store.objects.set(CHECKPOINT_KEY, Buffer.from(JSON.stringify({ ...cp, manifestId: "x'; DROP TABLE t; --" })));
    await expect(startExport(store, p, true)).rejects.toMatchObject({ code: 'ERR_MANIFEST_INVALID' });
  });
});
