/**
 * segferry copy between topologies: Citus → a single PostgreSQL server and a single server →
 * Citus (through the coordinators; skipped with a message when the citus extension is missing,
 * as the Citus suite is), and postgres_fdw → postgres_fdw with equal partition bounds,
 * node-direct. Every copy is verified, and the rows compared independently, order-free.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyTables } from '../../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../helpers/citus.js';
import {
  describeMultisetDiff, replicatedInsertSQL, replicatedTableDDL, rowMultiset, sameMultiset, startFdwCluster, trickyInsertSQL, trickyTableDDL,
  type SourceCluster,
} from '../helpers/fixtures.js';
import { startServers, type PgServer } from '../helpers/pg.js';

const missing = citusMissing();
if (missing) console.warn(`skipping the Citus copy tests: ${missing}`);

describe.skipIf(missing !== undefined)('segferry copy with Citus, through the coordinators', () => {
  const ROWS = 6000;
  let citus: CitusCluster;
  let single: PgServer;
  let events: Map<string, number>;
  let nation: Map<string, number>;

  beforeAll(async () => {
    let s: PgServer[];
    [citus, s] = await Promise.all([startCitusCluster({ name: 'cpy' }), startServers(['cpy-single'])]);
    single = s[0]!;
    await citus.query(trickyTableDDL('public.events'));
    await citus.query(`SET citus.shard_count = 6; SELECT create_distributed_table('public.events', 'id')`);
    await citus.query(replicatedTableDDL('public.nation'));
    await citus.query(`SELECT create_reference_table('public.nation')`);
    await citus.query(trickyInsertSQL('events', 1, ROWS));
    await citus.query(replicatedInsertSQL('nation', 200));
    events = await rowMultiset(citus.coordinator, 'SELECT * FROM public.events');
    nation = await rowMultiset(citus.coordinator, 'SELECT * FROM public.nation');
    await single.query(`${trickyTableDDL('public.events')}; ${replicatedTableDDL('public.nation')}`);
  }, 240_000);

  afterAll(async () => {
    await Promise.allSettled([citus?.destroy(), single?.destroy()]);
  });

  it('Citus → a single server: every shard read on its worker, the rows through the single server', async () => {
    const res = await copyTables({ source: citus.coordinator.url(), target: single.url(), tables: ['events', 'nation'], verify: true });
    expect(res.plan.source.topology).toBe('citus');
    // One unit per (table, worker) holding several shards each; the reference table read once.
    expect(res.plan.units.filter((u) => u.table === 'public.events').length).toBe(citus.workers.length);
    expect(res.plan.units.filter((u) => u.table === 'public.nation').length).toBe(1);
    expect(res.plan.tables.map((t) => t.route)).toEqual(['coordinator', 'coordinator']);
    expect(res.verify?.ok).toBe(true);
    expect(res.rows).toBe(ROWS + 200);
    const e = await rowMultiset(single, 'SELECT * FROM public.events');
    expect(sameMultiset(events, e), describeMultisetDiff(events, e)).toBe(true);
    const n = await rowMultiset(single, 'SELECT * FROM public.nation');
    expect(sameMultiset(nation, n), describeMultisetDiff(nation, n)).toBe(true);
  }, 120_000);

  it('a single server → Citus: through the coordinator, which routes the rows to the shards; COPY BINARY', async () => {
    await citus.query('TRUNCATE public.events, public.nation');
    const res = await copyTables({ source: single.url(), target: citus.coordinator.url(), tables: ['events', 'nation'], format: 'binary', verify: true });
    expect(res.plan.destination.topology).toBe('citus');
    expect(res.plan.tables.map((t) => t.route)).toEqual(['coordinator', 'coordinator']);
    expect(res.verify?.ok).toBe(true);
    const e = await rowMultiset(citus.coordinator, 'SELECT * FROM public.events');
    expect(sameMultiset(events, e), describeMultisetDiff(events, e)).toBe(true);
    const n = await rowMultiset(citus.coordinator, 'SELECT * FROM public.nation');
    expect(sameMultiset(nation, n), describeMultisetDiff(nation, n)).toBe(true);
    // Citus routed the rows: every one of the 6 shards holds some.
    const shards = await citus.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM public.events GROUP BY get_shard_id_for_distribution_column('public.events', id)`,
    );
    expect(shards.length).toBe(6);
    // The ledger is on the coordinator: a rerun copies nothing.
    const again = await copyTables({ source: single.url(), target: citus.coordinator.url(), tables: ['events', 'nation'], format: 'binary' });
    expect([again.loaded, again.rows]).toEqual([0, 0]);
  }, 120_000);
});

describe('segferry copy postgres_fdw → postgres_fdw, equal partition bounds', () => {
  const ROWS = 4000;
  let src: SourceCluster;
  let dst: SourceCluster;

  beforeAll(async () => {
    [src, dst] = await Promise.all([startFdwCluster({ rows: ROWS, nodes: 2 }), startFdwCluster({ nodes: 2, withData: false })]);
  }, 240_000);

  afterAll(async () => {
    await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  });

  it('copies each partition node into its namesake node directly, the replicated table through the coordinator', async () => {
    const res = await copyTables({
      source: src.coordinator.url(src.database), target: dst.coordinator.url(dst.database),
      tables: ['orders', 'nation'], replicated: ['nation'], verify: true,
    });
    expect(res.plan.source.topology).toBe('fdw');
    expect(res.plan.destination.topology).toBe('fdw');
    const orders = res.plan.tables.find((t) => t.table === 'public.orders')!;
    expect(orders.route).toBe('direct');
    expect(res.plan.units.filter((u) => u.table === 'public.orders').map((u) => `${u.sourceNode}>${u.targets.join(',')}`).sort()).toEqual(['dn1>dn1', 'dn2>dn2']);
    expect(res.plan.tables.find((t) => t.table === 'public.nation')!.route).toBe('coordinator');
    expect(res.verify?.ok).toBe(true);
    // Node by node: each destination node holds exactly its namesake's rows.
    for (let i = 0; i < 2; i++) {
      const a = await rowMultiset(src.nodes[i]!, 'SELECT * FROM orders');
      const b = await rowMultiset(dst.nodes[i]!, 'SELECT * FROM orders');
      expect(a.size).toBeGreaterThan(ROWS / 4);
      expect(sameMultiset(a, b), `dn${i + 1}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    const a = await rowMultiset(src.coordinator, 'SELECT * FROM nation');
    const b = await rowMultiset(dst.coordinator, 'SELECT * FROM nation');
    expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
  }, 120_000);
});
