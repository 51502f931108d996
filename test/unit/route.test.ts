import { describe, expect, it } from 'vitest';
import type { SegferryError } from '../../lib/errors.js';
import type { CitusDestTable } from '../../lib/import/citus.js';
import type { DestSide, DestTable } from '../../lib/import/destination.js';
import { routeTable, type ImportRoute } from '../../lib/import/route.js';
import { isShardToShard, truncateRelations } from '../../lib/import/truncate.js';
import type { SourceTable } from '../../lib/import/source.js';
import type { CatalogColumn } from '../../lib/topology/catalog.js';
import type { ColumnInfo, DiscoveredTable, Distribution, PlanNode, RelationRead, TopologyKind } from '../../lib/topology/types.js';

// Plain-data fixtures: routing never connects, so endpoints are never used.
const node = (name: string): PlanNode => ({ name, endpoint: { host: '127.0.0.1', port: 5432, database: 'd', user: 'u' } });
const T = { schema: 'public', name: 'orders' };
const COLS: ColumnInfo[] = [{ name: 'id', type: 'bigint', notNull: true }, { name: 'note', type: 'text', notNull: false }];

function source(over: Partial<SourceTable> & { objectNodes?: string[] } = {}): SourceTable {
  const objectNodes = over.objectNodes ?? ['dn1', 'dn2'];
  const st: SourceTable = {
    table: T,
    name: 'public.orders',
    columns: COLS,
    distribution: { kind: 'distributed', method: 'hash', column: 'id' },
    nodes: [...new Set(objectNodes)],
    rows: 10,
    objects: objectNodes.map((n, i) => ({ key: `orders_${n}_segment.${i}`, node: n, segment: i, bytes: 100, rows: 5, sha256: 'ab' })),
  };
  const { objectNodes: _drop, ...rest } = over;
  return { ...st, ...rest };
}

function dest(kind: TopologyKind, nodes: string[], table: DestTable | undefined, replicated: string[] = []): Pick<DestSide, 'kind' | 'nodes' | 'replicated' | 'tables'> {
  return {
    kind,
    nodes: new Map(nodes.map((n) => [n, node(n)])),
    replicated: new Set(replicated),
    tables: new Map([['public.orders', table]]),
  };
}

const read = (n: string, name: string, columns?: string[]): RelationRead => ({ node: n, relation: { schema: 'public', name }, estimatedBytes: 0, ...(columns ? { columns } : {}) });

function discovered(distribution: Distribution, reads: RelationRead[], columns: ColumnInfo[] = COLS): DestTable {
  const d: DiscoveredTable = { table: T, columns, distribution, reads };
  return { discovered: d, missingOn: [], columns, nodeColumns: new Map() };
}

/** A postgres_fdw destination: hash partitions on foreign servers dn1, dn2 (remote tables orders_p0, orders_p1). */
const fdwTable = (over: { method?: string; column?: string; reads?: RelationRead[] } = {}) => discovered(
  { kind: 'distributed', method: over.method ?? 'hash', column: over.column ?? 'id' },
  over.reads ?? [read('dn1', 'orders_p0', ['id', 'note']), read('dn2', 'orders_p1', ['id', 'note'])],
);
const FDW_NODES = ['coordinator', 'dn1', 'dn2'];

function fails(fn: () => unknown): SegferryError {
  try {
    fn();
  } catch (e) {
    return e as SegferryError;
  }
  throw new Error('expected an error');
}

const routes: ImportRoute[] = ['auto', 'direct'];

describe('routeTable: static destination', () => {
  const present = (nodes: string[]): DestTable => ({
    missingOn: [], columns: COLS, nodeColumns: new Map(nodes.map((n) => [n, COLS as CatalogColumn[]])),
  });

  it.each(routes)('same node names: each object into the node of its name (route %s)', (route) => {
    const tp = routeTable(source(), dest('static', ['dn1', 'dn2'], present(['dn1', 'dn2'])), route, false);
    expect(tp.route).toBe('direct');
    expect(tp.objects.map((o) => [o.key, o.targets])).toEqual([['orders_dn1_segment.0', ['dn1']], ['orders_dn2_segment.1', ['dn2']]]);
    expect(tp.targets).toEqual([
      { node: 'dn1', relation: T, columns: ['id', 'note'] },
      { node: 'dn2', relation: T, columns: ['id', 'note'] },
    ]);
    expect(tp.truncate).toEqual(['dn1', 'dn2']);
    expect(tp.create).toEqual([]);
    expect(tp.objects.every((o) => o.loaded.length === 0 && o.rows === 5 && o.sha256 === 'ab')).toBe(true);
    expect(tp.source).toEqual({ rows: 10 });
  });

  it('objects from a node the destination lacks: TopologyError naming the node', () => {
    const e = fails(() => routeTable(source({ objectNodes: ['dn1', 'dn3'] }), dest('static', ['dn1', 'dn2'], present(['dn1', 'dn2'])), 'auto', false));
    expect(e.code).toBe('ERR_TOPOLOGY');
    expect(e.node).toBe('dn3');
  });

  it('route coordinator is refused: a static destination has none', () => {
    const e = fails(() => routeTable(source(), dest('static', ['dn1', 'dn2'], present(['dn1', 'dn2'])), 'coordinator', false));
    expect(e.code).toBe('ERR_INVALID_OPTION');
  });

  it('replicated in the manifest: every object into every node', () => {
    const st = source({ objectNodes: ['dn1'], distribution: { kind: 'replicated', method: 'static', replicas: ['dn1', 'dn2'] } });
    const tp = routeTable(st, dest('static', ['dn1', 'dn2', 'dn3'], present(['dn1', 'dn2', 'dn3'])), 'auto', false);
    expect(tp.route).toBe('direct');
    expect(tp.objects[0]!.targets).toEqual(['dn1', 'dn2', 'dn3']);
    expect(tp.targets.map((t) => t.node)).toEqual(['dn1', 'dn2', 'dn3']);
    expect(tp.truncate).toEqual(['dn1', 'dn2', 'dn3']);
  });

  it('replicated by the destination topology only: also into every node', () => {
    const tp = routeTable(source({ objectNodes: ['dn1'] }), dest('static', ['dn1', 'dn2'], present(['dn1', 'dn2']), ['public.orders']), 'auto', false);
    expect(tp.objects[0]!.targets).toEqual(['dn1', 'dn2']);
  });

  it('table missing on a target node: TableNotFoundError (42P01), or created there with create', () => {
    const partial: DestTable = { missingOn: ['dn2'], columns: COLS, nodeColumns: new Map([['dn1', COLS]]) };
    const e = fails(() => routeTable(source(), dest('static', ['dn1', 'dn2'], partial), 'auto', false));
    expect([e.code, e.node, e.sqlState]).toEqual(['ERR_TABLE_NOT_FOUND', 'dn2', '42P01']);
    const tp = routeTable(source(), dest('static', ['dn1', 'dn2'], partial), 'auto', true);
    expect(tp.create).toEqual(['dn2']);
    expect(tp.truncate).toEqual(['dn1', 'dn2']);
  });

  it('create makes the table on every node lacking it, also nodes that receive no object', () => {
    const tp = routeTable(source({ objectNodes: ['dn1'] }), dest('static', ['dn1', 'dn2'], undefined), 'auto', true);
    expect(tp.create).toEqual(['dn1', 'dn2']);
    expect(tp.targets.map((t) => t.node)).toEqual(['dn1']);
  });

  it('missing only on a node that receives nothing: no error without create, and it is not truncated', () => {
    const partial: DestTable = { missingOn: ['dn2'], columns: COLS, nodeColumns: new Map([['dn1', COLS]]) };
    const tp = routeTable(source({ objectNodes: ['dn1'] }), dest('static', ['dn1', 'dn2'], partial), 'auto', false);
    expect(tp.truncate).toEqual(['dn1']);
  });

  it('bare objects take their columns from the destination, and cannot be created', () => {
    const bare = source({ columns: undefined, rows: undefined });
    const tp = routeTable(bare, dest('static', ['dn1', 'dn2'], present(['dn1', 'dn2'])), 'auto', false);
    expect(tp.columns).toEqual([{ name: 'id', type: 'bigint', notNull: true }, { name: 'note', type: 'text', notNull: false }]);
    expect(tp.source).toEqual({});
    const e = fails(() => routeTable(bare, dest('static', ['dn1', 'dn2'], undefined), 'auto', true));
    expect(e.code).toBe('ERR_TABLE_NOT_FOUND');
  });
});

describe('routeTable: table missing on the coordinator', () => {
  it('without create: TableNotFoundError', () => {
    const e = fails(() => routeTable(source(), dest('fdw', ['coordinator'], undefined), 'auto', false));
    expect([e.code, e.node, e.sqlState]).toEqual(['ERR_TABLE_NOT_FOUND', 'coordinator', '42P01']);
  });

  it.each(['auto', 'coordinator'] as ImportRoute[])('with create (route %s): created and loaded on the coordinator', (route) => {
    const tp = routeTable(source(), dest('postgres', ['coordinator'], undefined), route, true);
    expect(tp.route).toBe('coordinator');
    expect(tp.create).toEqual(['coordinator']);
    expect(tp.truncate).toEqual(['coordinator']);
    expect(tp.targets).toEqual([{ node: 'coordinator', relation: T, columns: ['id', 'note'] }]);
    expect(tp.objects.map((o) => o.targets)).toEqual([['coordinator'], ['coordinator']]);
  });

  it('with create and route direct: TopologyError (no nodes to load into)', () => {
    expect(fails(() => routeTable(source(), dest('postgres', ['coordinator'], undefined), 'direct', true)).code).toBe('ERR_TOPOLOGY');
  });

  it('bare objects (no columns) cannot be created', () => {
    expect(fails(() => routeTable(source({ columns: undefined }), dest('postgres', ['coordinator'], undefined), 'auto', true)).code).toBe('ERR_TABLE_NOT_FOUND');
  });
});

describe('routeTable: postgres_fdw destination', () => {
  it('equal layout: each object into its node\'s remote relation, truncated on each node (with its ledger rows)', () => {
    const tp = routeTable(source(), dest('fdw', FDW_NODES, fdwTable()), 'auto', false);
    expect(tp.route).toBe('direct');
    expect(tp.targets).toEqual([
      { node: 'dn1', relation: { schema: 'public', name: 'orders_p0' }, columns: ['id', 'note'] },
      { node: 'dn2', relation: { schema: 'public', name: 'orders_p1' }, columns: ['id', 'note'] },
    ]);
    expect(tp.objects.map((o) => o.targets)).toEqual([['dn1'], ['dn2']]);
    expect(tp.truncate).toEqual(['dn1', 'dn2']);
    expect(truncateRelations(tp, 'dn2')).toEqual([{ schema: 'public', name: 'orders_p1' }]);
    expect(isShardToShard(tp)).toBe(false);
  });

  it('equal layout: remote column names (postgres_fdw column_name) are used on the nodes', () => {
    const t = fdwTable({ reads: [read('dn1', 'orders_p0', ['rid', 'rnote']), read('dn2', 'orders_p1', ['id', 'note'])] });
    const tp = routeTable(source(), dest('fdw', FDW_NODES, t), 'direct', false);
    expect(tp.targets.map((x) => x.columns)).toEqual([['rid', 'rnote'], ['id', 'note']]);
  });

  it('an exported column the destination lacks: SchemaMismatchError', () => {
    const t = discovered({ kind: 'distributed', method: 'hash', column: 'id' }, [read('dn1', 'orders_p0'), read('dn2', 'orders_p1')], [COLS[0]!]);
    expect(fails(() => routeTable(source(), dest('fdw', FDW_NODES, t), 'auto', false)).code).toBe('ERR_SCHEMA_MISMATCH');
  });

  const differ: [string, DestTable, string[], RegExp][] = [
    ['more partitions than nodes (two on dn2)', fdwTable({ reads: [read('dn1', 'orders_p0'), read('dn2', 'orders_p1'), read('dn2', 'orders_p2')] }), FDW_NODES, /several partitions/],
    ['other node names', fdwTable({ reads: [read('dn1', 'orders_p0'), read('dn3', 'orders_p1')] }), ['coordinator', 'dn1', 'dn3'], /source nodes \(dn1, dn2\) and destination nodes \(dn1, dn3\) differ/],
    ['fewer partitions (one node)', fdwTable({ reads: [read('dn1', 'orders_p0')] }), ['coordinator', 'dn1'], /differ/],
    ['another partitioning method', fdwTable({ method: 'range' }), FDW_NODES, /partitioned by range on the destination but hash on the source/],
    ['another partition key', fdwTable({ column: 'note' }), FDW_NODES, /partition keys differ \(id \/ note\)/],
  ];
  it.each(differ)('%s: auto goes through the coordinator', (_what, t, nodes, why) => {
    const tp = routeTable(source(), dest('fdw', nodes, t), 'auto', false);
    expect(tp.route).toBe('coordinator');
    expect(tp.reason).toMatch(why);
    expect(tp.targets).toEqual([{ node: 'coordinator', relation: T, columns: ['id', 'note'] }]);
    expect(tp.objects.map((o) => o.targets)).toEqual([['coordinator'], ['coordinator']]);
    expect(tp.truncate).toEqual(['coordinator']);
  });
  it.each(differ)('%s: route direct is a TopologyError', (_what, t, nodes, why) => {
    const e = fails(() => routeTable(source(), dest('fdw', nodes, t), 'direct', false));
    expect(e.code).toBe('ERR_TOPOLOGY');
    expect(e.message).toMatch(why);
  });

  it('source nodes recorded in the manifest without objects count for the layout', () => {
    const tp = routeTable(source({ objectNodes: ['dn1'], nodes: ['dn1', 'dn2'] }), dest('fdw', FDW_NODES, fdwTable()), 'auto', false);
    expect(tp.route).toBe('direct');
    expect(tp.objects.map((o) => o.targets)).toEqual([['dn1']]);
  });

  it('unknown method or key on one side does not block direct', () => {
    const noMethod = routeTable(source({ distribution: { kind: 'distributed', column: 'id' } }), dest('fdw', FDW_NODES, fdwTable({ method: 'range' })), 'auto', false);
    expect(noMethod.route).toBe('direct');
    const noKey = routeTable(source({ distribution: { kind: 'distributed', method: 'hash' } }), dest('fdw', FDW_NODES, fdwTable({ column: 'note' })), 'auto', false);
    expect(noKey.route).toBe('direct');
  });

  it('route coordinator: through the coordinator even with equal layout', () => {
    const tp = routeTable(source(), dest('fdw', FDW_NODES, fdwTable()), 'coordinator', false);
    expect([tp.route, tp.reason]).toEqual(['coordinator', 'requested']);
  });

  const repl = discovered({ kind: 'replicated', replicas: ['dn1', 'dn2'] }, [read('dn1', 'nation_r', ['id', 'note'])]);
  const replSource = () => source({ objectNodes: ['dn1'], distribution: { kind: 'replicated', replicas: ['dn1', 'dn2'] } });
  it('replicated table, auto: loaded once through the coordinator', () => {
    const tp = routeTable(replSource(), dest('fdw', FDW_NODES, repl), 'auto', false);
    expect(tp.route).toBe('coordinator');
    expect(tp.reason).toMatch(/replicated/);
    expect(tp.objects[0]!.targets).toEqual(['coordinator']);
  });
  it('replicated table, direct: into every replica, each truncated', () => {
    const tp = routeTable(replSource(), dest('fdw', FDW_NODES, repl), 'direct', false);
    expect(tp.route).toBe('direct');
    expect(tp.objects[0]!.targets).toEqual(['dn1', 'dn2']);
    expect(tp.targets).toEqual([
      { node: 'dn1', relation: { schema: 'public', name: 'nation_r' }, columns: ['id', 'note'] },
      { node: 'dn2', relation: { schema: 'public', name: 'nation_r' }, columns: ['id', 'note'] },
    ]);
    expect(tp.truncate).toEqual(['dn1', 'dn2']);
  });
});

describe('routeTable: single server', () => {
  const single = discovered({ kind: 'single', replicas: ['coordinator'] }, [read('coordinator', 'orders', ['id', 'note'])]);
  it('auto: through the coordinator', () => {
    const tp = routeTable(source(), dest('postgres', ['coordinator'], single), 'auto', false);
    expect([tp.route, tp.reason]).toEqual(['coordinator', 'the destination is a single server']);
  });
  it('direct: TopologyError (its one node is not the source\'s)', () => {
    expect(fails(() => routeTable(source(), dest('postgres', ['coordinator'], single), 'direct', false)).code).toBe('ERR_TOPOLOGY');
  });
});

describe('routeTable: Citus destination', () => {
  const LOW = ['-2147483648', '-1'] as const;
  const HIGH = ['0', '2147483647'] as const;
  const citusSource = (over: Partial<SourceTable> = {}): SourceTable => source({
    distribution: {
      kind: 'distributed', method: 'citus-hash', column: 'id', shardCount: 2,
      shards: [{ id: '11', min: LOW[0], max: LOW[1] }, { id: '12', min: HIGH[0], max: HIGH[1] }],
    },
    nodes: ['worker-1', 'worker-2'],
    objects: [
      { key: 'orders_worker-1_segment.0', node: 'worker-1', segment: 0, bytes: 10, rows: 1, sha256: 'a', shards: ['11'] },
      { key: 'orders_worker-2_segment.0', node: 'worker-2', segment: 0, bytes: 10, rows: 1, sha256: 'b', shards: ['12'] },
    ],
    ...over,
  });
  const shard = (id: string, r: readonly [string, string], groups: number[]) => ({ id, relation: { schema: 'public', name: `orders_${id}` }, min: r[0], max: r[1], groups });
  const citusMeta = (over: Partial<CitusDestTable['info']> = {}, shards = [shard('201', LOW, [2]), shard('202', HIGH, [1, 2])]): CitusDestTable => ({
    info: { method: 'h', repmodel: 's', column: 'id', colocationId: 1, ...over },
    shards,
  });
  const citusTable = (citus: CitusDestTable | undefined, columns: ColumnInfo[] = COLS): DestTable => {
    const t = discovered({ kind: 'distributed', method: 'citus-hash', column: 'id' }, [read('worker-1', 'orders_201'), read('worker-2', 'orders_202')], columns);
    if (citus) t.citus = citus;
    return t;
  };
  const NODES = ['coordinator', 'worker-1', 'worker-2'];

  it.each(routes)('same shard ranges and column type (route %s): each object into its shard on every placement', (route) => {
    const tp = routeTable(citusSource(), dest('citus', NODES, citusTable(citusMeta())), route, false);
    expect(tp.route).toBe('direct');
    expect(tp.objects.map((o) => [o.key, o.targets, o.relation])).toEqual([
      ['orders_worker-1_segment.0', ['worker-2'], { schema: 'public', name: 'orders_201' }],
      ['orders_worker-2_segment.0', ['worker-1', 'worker-2'], { schema: 'public', name: 'orders_202' }],
    ]);
    expect(tp.targets).toEqual([
      { node: 'worker-1', relation: T, columns: ['id', 'note'] },
      { node: 'worker-2', relation: T, columns: ['id', 'note'] },
    ]);
    // Truncated worker by worker, where the ledger rows live: never through the coordinator.
    expect(tp.truncate).toEqual(['worker-1', 'worker-2']);
    expect(tp.truncateShards).toEqual({ 'worker-1': [{ schema: 'public', name: 'orders_202' }], 'worker-2': [{ schema: 'public', name: 'orders_201' }, { schema: 'public', name: 'orders_202' }] });
  });

  it('truncation covers every destination shard placement, also of shards no object goes to', () => {
    // Only the high shard's object is listed (an export without an object for the low shard).
    const st = citusSource({ objects: [{ key: 'orders_worker-2_segment.0', node: 'worker-2', segment: 0, bytes: 10, rows: 1, sha256: 'b', shards: ['12'] }] });
    const tp = routeTable(st, dest('citus', NODES, citusTable(citusMeta({}, [shard('201', LOW, [1]), shard('202', HIGH, [2])]))), 'auto', false);
    expect(tp.route).toBe('direct');
    expect(tp.targets.map((x) => x.node)).toEqual(['worker-2']);
    expect(tp.truncate).toEqual(['worker-1', 'worker-2']);
    expect(truncateRelations(tp, 'worker-1')).toEqual([{ schema: 'public', name: 'orders_201' }]);
    expect(truncateRelations(tp, 'worker-2')).toEqual([{ schema: 'public', name: 'orders_202' }]);
    expect(isShardToShard(tp)).toBe(true);
  });

  const mismatches: [string, SourceTable, DestTable, RegExp][] = [
    ['other hash ranges', citusSource(), citusTable(citusMeta({}, [shard('201', ['-2147483648', '0'], [1]), shard('202', ['1', '2147483647'], [2])])), /other hash ranges/],
    ['another shard count', citusSource(), citusTable(citusMeta({}, [shard('201', ['-2147483648', '2147483647'], [1])])), /1 shards have other hash ranges than the source's 2/],
    ['another distribution column type', citusSource(), citusTable(citusMeta(), [{ name: 'id', type: 'integer' }, COLS[1]!]), /is bigint in the source and integer in the destination/],
    ['another distribution column', citusSource(), citusTable(citusMeta({ column: 'note' })), /distributed by note, the source by id/],
    ['destination not a Citus table', citusSource(), citusTable(undefined), /not a Citus table/],
    ['destination not hash-distributed', citusSource(), citusTable(citusMeta({ method: 'a' })), /not hash-distributed/],
    ['source not hash-distributed by Citus', source({ nodes: ['worker-1', 'worker-2'], objectNodes: ['worker-1', 'worker-2'] }), citusTable(citusMeta()), /not hash-distributed by Citus/],
    ['a placement on an unknown node', citusSource(), citusTable(citusMeta({}, [shard('201', LOW, [3]), shard('202', HIGH, [1])])), /no active placement on a reachable primary/],
  ];
  it.each(mismatches)('%s: auto goes through the coordinator', (_what, st, t, why) => {
    const tp = routeTable(st, dest('citus', NODES, t), 'auto', false);
    expect(tp.route).toBe('coordinator');
    expect(tp.reason).toMatch(why);
    expect(tp.objects.every((o) => o.targets.length === 1 && o.targets[0] === 'coordinator' && o.relation === undefined)).toBe(true);
  });
  it.each(mismatches)('%s: route direct is a TopologyError', (_what, st, t, why) => {
    const e = fails(() => routeTable(st, dest('citus', NODES, t), 'direct', false));
    expect(e.code).toBe('ERR_TOPOLOGY');
    expect(e.message).toMatch(why);
  });

  it('reference table: auto through the coordinator, direct into every replica', () => {
    const ref = discovered({ kind: 'replicated', method: 'citus-reference', replicas: ['worker-1', 'coordinator', 'worker-2'] }, [read('worker-1', 'orders_300')]);
    const st = source({ objectNodes: ['worker-1'], distribution: { kind: 'replicated', method: 'citus-reference' } });
    expect(routeTable(st, dest('citus', NODES, ref), 'auto', false).route).toBe('coordinator');
    const tp = routeTable(st, dest('citus', NODES, ref), 'direct', false);
    expect(tp.objects[0]!.targets).toEqual(['worker-1', 'coordinator', 'worker-2']);
    expect(tp.targets.every((x) => x.relation.name === 'orders_300')).toBe(true);
  });
});
