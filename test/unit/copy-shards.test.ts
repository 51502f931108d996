import { describe, expect, it } from 'vitest';
import { sourceTableOf } from '../../lib/copy/plan.js';
import { copyExportUnits, routeCopyTable, routeShardToShard, shardSourceTable, shardUnitId } from '../../lib/copy/shards.js';
import { isShardToShard, truncateRelations } from '../../lib/import/truncate.js';
import { planUnits } from '../../lib/export/units.js';
import type { CitusDestTable } from '../../lib/import/citus.js';
import type { DestSide, DestTable } from '../../lib/import/destination.js';
import type { ColumnInfo, PlanNode, RelationRead, TablePlan, TopologyKind } from '../../lib/topology/types.js';

// Plain data: shard routing never connects.
const node = (name: string): PlanNode => ({ name, endpoint: { host: '127.0.0.1', port: 5432, database: 'd', user: 'u' } });
const T = { schema: 'public', name: 'items' };
const COLS: ColumnInfo[] = [{ name: 'id', type: 'bigint', notNull: true }, { name: 'v', type: 'text', notNull: false }];
const RANGES = [['-2147483648', '-1073741825'], ['-1073741824', '-1'], ['0', '1073741823'], ['1073741824', '2147483647']] as const;

/** A source table of 4 hash shards (ids 11..14), read on w1 and w2 alternately. */
function srcTable(over: Partial<TablePlan> = {}): TablePlan {
  const reads: RelationRead[] = RANGES.map((r, i) => ({
    node: `worker-${(i % 2) + 1}`, relation: { schema: 'public', name: `items_${11 + i}` }, columns: ['id', 'v'], estimatedBytes: 100 * (i + 1),
    shardId: String(11 + i), hashRange: [r[0], r[1]],
  }));
  return {
    table: T, objectName: 'items', columns: COLS,
    distribution: { kind: 'distributed', method: 'citus-hash', column: 'id', shardCount: 4, shards: RANGES.map((r, i) => ({ id: String(11 + i), min: r[0], max: r[1] })) },
    reads, estimatedBytes: 1000, expectedSegments: 4,
    ...over,
  };
}

/** Destination shards 201..: the given ranges, placed round-robin on worker-1, worker-2 (the last also on worker-1 when `replicated`). */
function destCitus(ranges: readonly (readonly [string, string])[] = RANGES, columns: ColumnInfo[] = COLS, replicated = false): Pick<DestSide, 'kind' | 'nodes' | 'replicated' | 'tables'> {
  const citus: CitusDestTable = {
    info: { method: 'h', repmodel: 's', column: 'id', colocationId: 1 },
    shards: ranges.map((r, i) => ({
      id: String(201 + i), relation: { schema: 'public', name: `items_${201 + i}` }, min: r[0], max: r[1],
      groups: replicated && i === ranges.length - 1 ? [1, 2] : [(i % 2) + 1],
    })),
  };
  const dt: DestTable = {
    discovered: { table: T, columns, distribution: { kind: 'distributed', method: 'citus-hash', column: 'id' }, reads: [] },
    missingOn: [], columns, nodeColumns: new Map(), citus,
  };
  return dest('citus', dt);
}

function dest(kind: TopologyKind, dt: DestTable | undefined): Pick<DestSide, 'kind' | 'nodes' | 'replicated' | 'tables'> {
  return { kind, nodes: new Map(['coordinator', 'worker-1', 'worker-2'].map((n) => [n, node(n)])), replicated: new Set(), tables: new Map([['public.items', dt]]) };
}

describe('Citus shard to shard routing', () => {
  it('pairs each source shard with the destination shard of the same hash range, on the workers holding it', () => {
    const r = routeShardToShard(srcTable(), destCitus(RANGES, COLS, true));
    if (!r.ok) throw new Error(r.reason);
    const tp = r.table;
    expect(tp.route).toBe('direct');
    expect(tp.reason).toMatch(/^shard to shard: the 4 shards have the same hash ranges on both ends and id is bigint on both/);
    expect(tp.objects.map((o) => [o.key, o.sourceNode, o.relation?.name, o.targets])).toEqual([
      ['items_shard-11', 'worker-1', 'items_201', ['worker-1']],
      ['items_shard-12', 'worker-2', 'items_202', ['worker-2']],
      ['items_shard-13', 'worker-1', 'items_203', ['worker-1']],
      ['items_shard-14', 'worker-2', 'items_204', ['worker-1', 'worker-2']],
    ]);
    // Each worker empties the shard tables it holds, never the distributed table.
    expect(tp.truncate).toEqual(['worker-1', 'worker-2']);
    expect(truncateRelations(tp, 'worker-1').map((x) => x.name)).toEqual(['items_201', 'items_203', 'items_204']);
    expect(truncateRelations(tp, 'worker-2').map((x) => x.name)).toEqual(['items_202', 'items_204']);
    expect(isShardToShard(tp)).toBe(true);
  });

  it('pairs by range, not by position: destination shards listed in another order', () => {
    const r = routeShardToShard(srcTable(), destCitus([...RANGES].reverse()));
    if (!r.ok) throw new Error(r.reason);
    expect(r.table.objects.map((o) => [o.key, o.relation?.name])).toEqual([
      ['items_shard-11', 'items_204'], ['items_shard-12', 'items_203'], ['items_shard-13', 'items_202'], ['items_shard-14', 'items_201'],
    ]);
  });

  it.each([
    ['another shard count', srcTable(), destCitus(RANGES.slice(0, 2).map((r, i) => (i === 1 ? [r[0], '2147483647'] as const : r))), /destination's 2 shards have other hash ranges than the source's 4/],
    ['other ranges', srcTable(), destCitus([RANGES[0], RANGES[1], ['0', '5'], ['6', '2147483647']]), /other hash ranges/],
    ['another distribution column type', srcTable(), destCitus(RANGES, [{ name: 'id', type: 'integer' }, COLS[1]!]), /is bigint in the source and integer in the destination/],
    ['not a Citus destination', srcTable(), dest('fdw', undefined), /not a Citus coordinator/],
    ['a missing destination table', srcTable(), dest('citus', undefined), /has no table public.items yet/],
    ['a reference table', srcTable({ distribution: { kind: 'replicated', method: 'citus-reference', shardCount: 1 } }), destCitus(), /not hash-distributed by Citus/],
    ['ctid page ranges', srcTable({ reads: srcTable().reads.map((x) => ({ ...x, pages: [0, null] as [number, null] })) }), destCitus(), /not hash-distributed by Citus/],
  ])('%s: not shard to shard, with the reason', (_name, t, d, why) => {
    const r = routeShardToShard(t, d);
    expect(r.ok).toBe(false);
    expect((r as { reason: string }).reason).toMatch(why);
  });

  it('export units: one per source shard of a hash-distributed Citus table, keyed by shard, next to the per-node units', () => {
    const t = srcTable();
    const units = copyExportUnits({ tables: [t] });
    // The export's per-node units stay (for a non-Citus destination); a shard unit reads exactly its shard.
    expect([...units.keys()].sort()).toEqual(['items_shard-11', 'items_shard-12', 'items_shard-13', 'items_shard-14', 'items_worker-1', 'items_worker-2']);
    const u = units.get(shardUnitId('items', '13'))!;
    expect([u.node, u.group, u.reads.map((x) => x.shardId)]).toEqual(['worker-1', 'items_worker-1', ['13']]);
    expect(shardSourceTable(t)!.objects.map((o) => o.shards)).toEqual([['11'], ['12'], ['13'], ['14']]);
    // Not a hash-distributed Citus table: the export's units only.
    const plain = srcTable({ distribution: { kind: 'distributed', method: 'hash', column: 'id' } });
    expect([...copyExportUnits({ tables: [plain] }).keys()].sort()).toEqual(['items_worker-1', 'items_worker-2']);
  });
});

describe('routeCopyTable', () => {
  const t = srcTable();
  const st = sourceTableOf(t, planUnits({ tables: [t] }));
  const keys = ['items_shard-11', 'items_shard-12', 'items_shard-13', 'items_shard-14'];

  it('auto with matching shards: shard to shard, with each unit\'s source shard', () => {
    const r = routeCopyTable(t, st, destCitus(), { route: 'auto', create: false, staged: false });
    expect(isShardToShard(r.table)).toBe(true);
    expect([...r.shards!]).toEqual(keys.map((k) => [k, k.replace('items_shard-', '')]));
  });

  it('other ranges, or route coordinator: still one unit per source shard, into the coordinator, with the reason', () => {
    const other = routeCopyTable(t, st, destCitus(RANGES.slice(0, 2).map((r, i) => (i === 1 ? [r[0], '2147483647'] as const : r))), { route: 'auto', create: false, staged: false });
    const forced = routeCopyTable(t, st, destCitus(), { route: 'coordinator', create: false, staged: false });
    for (const r of [other, forced]) {
      expect(r.table.route).toBe('coordinator');
      expect(r.table.objects.map((o) => [o.key, o.targets, o.relation])).toEqual(keys.map((k) => [k, ['coordinator'], undefined]));
      expect([...r.shards!.keys()]).toEqual(keys);
      expect(r.table.truncate).toEqual(['coordinator']);
    }
    expect(other.table.reason).toBe("through the coordinator, not shard to shard: the destination's 2 shards have other hash ranges than the source's 4");
    expect(forced.table.reason).toBe('requested');
  });

  it('staged (via), or a destination that is not Citus: the export\'s units, routed as an import routes them', () => {
    const staged = routeCopyTable(t, st, destCitus(), { route: 'auto', create: false, staged: true });
    expect(staged.shards).toBeUndefined();
    expect(staged.table.objects.map((o) => o.key)).toEqual(['items_worker-1', 'items_worker-2']);
    expect(staged.table.route).toBe('coordinator');
  });
});
