/**
 * segferry copy Citus → Citus (two clusters, a coordinator and 2 workers each): a table with 8
 * shards on both ends goes shard to shard, each source shard read on its worker and written into
 * the destination shard of the same hash range on its worker; a table with 8 shards on the
 * source and 4 on the destination, and a reference table, go through the destination
 * coordinator. Then a rerun with truncate, and a destination worker stopped mid-copy. Skipped
 * with a message when the citus extension is missing (SEGFERRY_REQUIRE_CITUS=1: fails).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyTables, planCopy } from '../../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../helpers/citus.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import {
  describeMultisetDiff, replicatedInsertSQL, replicatedTableDDL, rowMultiset, sameMultiset, trickyInsertSQL, trickyTableDDL,
} from '../helpers/fixtures.js';
import type { PgServer } from '../helpers/pg.js';
import { holdInTransaction } from '../helpers/hold.js';

const missing = citusMissing();
if (missing) console.warn(`skipping the Citus shard-to-shard copy tests: ${missing}`);

type Ev = { type: string; phase?: string; node?: string; key?: string; skipped?: boolean; step?: string; table?: string; route?: string; reason?: string };

describe.skipIf(missing !== undefined)('segferry copy Citus → Citus, shard to shard', () => {
  const ROWS = 4000;
  let a: CitusCluster;
  let b: CitusCluster;
  const src = () => a.coordinator.url();
  const dst = () => b.coordinator.url();
  const TABLES = ['events', 'other', 'nation'];

  beforeAll(async () => {
    ensureBuilt();
    // The destination workers commit durably: the harness's synchronous_commit = off could lose the
    // last commits before an immediate stop, and the stop test counts units committed before it.
    [a, b] = await Promise.all([startCitusCluster({ name: 'ssa' }), startCitusCluster({ name: 'ssb', workerSettings: { synchronous_commit: 'on' } })]);
    const ddl = `${trickyTableDDL('public.events')}; ${trickyTableDDL('public.other')}; ${replicatedTableDDL('public.nation')}`;
    const dist = (otherShards: number) => `SET citus.shard_count = 8; SELECT create_distributed_table('public.events', 'id');
      SET citus.shard_count = ${otherShards}; SELECT create_distributed_table('public.other', 'id'); SELECT create_reference_table('public.nation')`;
    await Promise.all([a.query(`${ddl}; ${dist(8)}`), b.query(`${ddl}; ${dist(4)}`)]);
    await a.query(`${trickyInsertSQL('public.events', 1, ROWS)}; ${trickyInsertSQL('public.other', 1, 1500)}; ${replicatedInsertSQL('public.nation', 100)}`);
  }, 300_000);

  afterAll(async () => {
    await Promise.allSettled([a?.destroy(), b?.destroy()]);
  });

  /** The server of a Citus node name (`worker-<groupid>`) in a cluster. */
  async function server(c: CitusCluster, node: string): Promise<PgServer> {
    const group = Number(node.replace('worker-', ''));
    const [row] = await c.query<{ port: number }>(`SELECT nodeport AS port FROM pg_dist_node WHERE groupid = $1 AND noderole = 'primary'`, [group]);
    return c.workers.find((w) => w.port === row!.port)!;
  }
  const count = async (s: PgServer, rel: string) => Number((await s.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${rel}`))[0]!.n);
  const same = async (table: string) => {
    const x = await rowMultiset(a.coordinator, `SELECT * FROM public.${table}`);
    const y = await rowMultiset(b.coordinator, `SELECT * FROM public.${table}`);
    expect(sameMultiset(x, y), `${table}: ${describeMultisetDiff(x, y)}`).toBe(true);
  };
  /** Per unit: the source shard's rows on its source worker equal the destination shard's on each of its workers. */
  const shardCounts = async (units: { sourceNode: string; targets: string[]; shard?: { source: string; destination?: string } }[]) => {
    for (const u of units) {
      const n = await count(await server(a, u.sourceNode), `public.events_${u.shard!.source}`);
      expect(n).toBeGreaterThan(0);
      for (const t of u.targets) expect(await count(await server(b, t), u.shard!.destination!)).toBe(n);
    }
  };
  const ledgerKeys = async (s: PgServer) => (await s.query<{ k: string }>(`SELECT object_key AS k FROM segferry.loads WHERE table_name = 'public.events'`)).map((r) => r.k).sort();

  it('plans events shard to shard, other (8 → 4 shards) and the reference table through the coordinator, and says why', async () => {
    const r = await runCli(['copy', '--source', src(), '--target', dst(), '--table', 'events', '--table', 'other', '--table', 'nation', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as Awaited<ReturnType<typeof planCopy>>;
    const route = Object.fromEntries(plan.tables.map((t) => [t.table, [t.route, t.reason]]));
    expect(route['public.events']![0]).toBe('direct');
    expect(route['public.events']![1]).toMatch(/^shard to shard: the 8 shards have the same hash ranges on both ends and id is bigint on both/);
    expect(route['public.other']).toEqual(['coordinator', "through the coordinator, not shard to shard: the destination's 4 shards have other hash ranges than the source's 8"]);
    expect(route['public.nation']).toEqual(['coordinator', 'replicated: loaded once through the coordinator']);
    const units = plan.units.filter((u) => u.table === 'public.events');
    expect(units).toHaveLength(8);
    // Each source shard once, each destination shard once, into a worker, never the coordinator.
    expect(new Set(units.map((u) => u.shard!.source)).size).toBe(8);
    expect(new Set(units.map((u) => u.shard!.destination)).size).toBe(8);
    expect(units.every((u) => u.id === `events_shard-${u.shard!.source}` && /^worker-\d+$/.test(u.sourceNode) && u.targets.length === 1 && /^worker-\d+$/.test(u.targets[0]!))).toBe(true);
    // The pairing is by hash range: the destination shard of each unit has the source shard's range.
    const ranges = async (c: CitusCluster, table: string) => new Map((await c.query<{ id: string; r: string }>(
      `SELECT shardid::text AS id, shardminvalue || '..' || shardmaxvalue AS r FROM pg_dist_shard WHERE logicalrelid = $1::regclass`, [table],
    )).map((x) => [x.id, x.r]));
    const [ra, rb] = await Promise.all([ranges(a, 'public.events'), ranges(b, 'public.events')]);
    for (const u of units) expect(rb.get(u.shard!.destination!.replace('public.events_', ''))).toBe(ra.get(u.shard!.source));
    expect(plan.units.filter((u) => u.table !== 'public.events').every((u) => u.targets.join() === 'coordinator')).toBe(true);
    // other: still one unit per source shard (the same ledger keys on either route), into the coordinator.
    const other = plan.units.filter((u) => u.table === 'public.other');
    expect(other).toHaveLength(8);
    expect(other.every((u) => u.id === `other_shard-${u.shard!.source}` && u.shard!.destination === undefined)).toBe(true);
  }, 60_000);

  it('copies: rows equal, each destination shard holds its source shard\'s rows, the ledger rows of events on the workers; verify matches', async () => {
    const r = await runCli(['copy', '--source', src(), '--target', dst(), ...TABLES.flatMap((t) => ['--table', t]), '--verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    // The routes, right after the start event.
    expect(events[0]!.type).toBe('start');
    expect(events.filter((e) => e.step === 'route').map((e) => [e.table, e.route])).toEqual([
      ['public.events', 'direct'], ['public.other', 'coordinator'], ['public.nation', 'coordinator'],
    ]);
    const imports = events.filter((e) => e.type === 'segment' && e.phase === 'import');
    const ev = imports.filter((e) => e.key!.startsWith('events_shard-'));
    expect(ev).toHaveLength(8);
    expect(ev.every((e) => /^worker-\d+$/.test(e.node!))).toBe(true);
    expect(imports.filter((e) => !e.key!.startsWith('events_shard-')).every((e) => e.node === 'coordinator')).toBe(true);
    expect((events.find((e) => e.step === 'verify') as unknown as { ok: boolean }).ok).toBe(true);
    for (const t of TABLES) await same(t);

    const plan = await planCopy({ source: src(), target: dst(), tables: TABLES });
    const units = plan.units.filter((u) => u.table === 'public.events');
    expect(units.every((u) => u.loaded.length === 1)).toBe(true);
    await shardCounts(units);
    // The ledger rows of the shard units are on the destination workers, none on its coordinator.
    const onWorkers = (await Promise.all(b.workers.map(ledgerKeys))).flat().sort();
    expect(onWorkers).toEqual(units.map((u) => u.id).sort());
    expect(await ledgerKeys(b.coordinator)).toEqual([]);
    for (const u of units) expect(await ledgerKeys(await server(b, u.targets[0]!))).toContain(u.id);
  }, 120_000);

  it('a finished copy run again copies nothing; another route is refused, with truncate it copies afresh both ways', async () => {
    // The same command (same tables: the copy id hashes them): 8 shard units each of events and other, 1 of nation.
    const again = await copyTables({ source: src(), target: dst(), tables: TABLES });
    expect([again.loaded, again.skipped, again.rows]).toEqual([0, 17, 0]);
    // The same copy through the coordinator would copy the events shards again: refused.
    const err = await planCopy({ source: src(), target: dst(), tables: TABLES, route: 'coordinator' }).then(() => undefined, (e: unknown) => e as Error & { code?: string });
    expect([err?.code, err?.message]).toEqual(['ERR_INVALID_OPTION', expect.stringMatching(/^object events_shard-\d+ of this import was loaded into node worker-\d+ by an earlier run that routed public.events differently/)]);
    // With truncate: afresh through the coordinator, the workers' ledger rows forgotten...
    const coord = await copyTables({ source: src(), target: dst(), tables: TABLES, route: 'coordinator', truncate: true, verify: true });
    expect([coord.loaded, coord.skipped, coord.rows, coord.verify?.ok]).toEqual([17, 0, ROWS + 1500 + 100, true]);
    expect(coord.notes.join('\n')).toMatch(/another route: starting afresh, its ledger rows forgotten on coordinator, worker-\d+, worker-\d+/);
    expect(coord.plan.units.every((u) => u.targets.join() === 'coordinator')).toBe(true);
    expect((await Promise.all(b.workers.map(ledgerKeys))).flat()).toEqual([]);
    for (const t of TABLES) await same(t);
    // ...and back shard to shard, each worker emptying its own shards.
    const fresh = await copyTables({ source: src(), target: dst(), tables: TABLES, truncate: true, verify: true });
    expect([fresh.loaded, fresh.skipped, fresh.rows, fresh.verify?.ok]).toEqual([17, 0, ROWS + 1500 + 100, true]);
    expect(fresh.tables[0]!.route).toBe('direct');
    expect(await ledgerKeys(b.coordinator)).toEqual([]);
    // COPY BINARY shard to shard (another copy id: a fresh start, each worker's shards emptied first).
    const bin = await copyTables({ source: src(), target: dst(), tables: ['events'], format: 'binary', truncate: true, verify: true });
    expect([bin.plan.tables[0]!.route, bin.loaded, bin.rows, bin.verify?.ok]).toEqual(['direct', 8, ROWS, true]);
    expect(fresh.tables.map((t) => t.truncated)).toEqual([true, true, true]);
    for (const t of TABLES) await same(t);
    await shardCounts(fresh.plan.units.filter((u) => u.table === 'public.events'));
  }, 120_000);

  it('a truncating run that changes route and fails mid-way leaves marks: a rerun without truncate is refused on either route, with truncate it copies afresh', async () => {
    // A finished shard-to-shard copy of the three tables to start from (the binary copy above forgot events' rows).
    const base = await copyTables({ source: src(), target: dst(), tables: TABLES, truncate: true });
    expect([base.loaded + base.skipped, base.plan.tables[0]!.route]).toEqual([17, 'direct']);
    const before = await count(b.coordinator, 'public.events');
    // One of the destination's events shards held on its worker: the coordinator route's TRUNCATE waits there.
    const w = b.workers[0]!;
    const [sh] = await b.coordinator.query<{ n: string }>(`SELECT shard_name::text AS n FROM citus_shards WHERE table_name = 'public.events'::regclass AND nodeport = $1 LIMIT 1`, [w.port]);
    const holder = await holdInTransaction(w.url(), 'SET LOCAL citus.enable_manual_changes_to_shards = on', `LOCK TABLE ${sh!.n} IN ACCESS SHARE MODE`);
    const run = copyTables({ source: src(), target: dst(), tables: TABLES, route: 'coordinator', truncate: true }).then(() => undefined, (e: unknown) => e as Error & { code?: string });
    const blocked = async () => (await w.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()`)).map((x) => x.pid);
    for (let i = 0; i < 600 && (await blocked()).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    // Meanwhile every node's earlier ledger rows of the tables are gone and marked.
    const marks = async (s: PgServer) => (await s.query<{ k: string }>(`SELECT object_key AS k FROM segferry.loads WHERE object_key LIKE 'segferry:truncating:%' ORDER BY 1`)).map((x) => x.k);
    for (const x of b.workers) expect(await marks(x)).toEqual(['segferry:truncating:public.events', 'segferry:truncating:public.nation', 'segferry:truncating:public.other']);
    for (const pid of await blocked()) await w.query('SELECT pg_cancel_backend($1::int)', [pid]);
    const err = await run;
    expect(err?.code).toBe('ERR_DATABASE');
    await holder.query('ROLLBACK');
    await holder.end();
    // The events rows are still there (the truncate rolled back) and no ledger counts them: refused either way without truncate.
    expect(await count(b.coordinator, 'public.events')).toBe(before);
    for (const route of ['auto', 'coordinator'] as const) {
      const e = await planCopy({ source: src(), target: dst(), tables: TABLES, route }).then(() => undefined, (x: unknown) => x as Error & { code?: string });
      expect([e?.code, e?.message]).toEqual(['ERR_INVALID_OPTION', expect.stringMatching(/^an earlier run of this copy with truncate stopped while emptying the tables \(its marks are on (coordinator, )?worker-\d+, worker-\d+\)/)]);
    }
    // With truncate: afresh, marks gone, every row exactly once.
    const fixed = await copyTables({ source: src(), target: dst(), tables: TABLES, truncate: true, verify: true });
    expect([fixed.loaded, fixed.rows, fixed.verify?.ok]).toEqual([17, ROWS + 1500 + 100, true]);
    expect(fixed.notes.join('\n')).toMatch(/with truncate did not finish: starting afresh/);
    for (const s of [b.coordinator, ...b.workers]) expect(await marks(s)).toEqual([]);
    for (const t of TABLES) await same(t);
  }, 120_000);

  it('a destination worker stopped mid-copy fails the copy naming it; after a restart the rerun copies every row exactly once', async () => {
    await b.query('TRUNCATE public.events');
    // Forget the earlier copies of events (when run alone, there were none).
    for (const w of b.workers) {
      await w.query(`DO $$ BEGIN IF to_regclass('segferry.loads') IS NOT NULL THEN DELETE FROM segferry.loads WHERE table_name = 'public.events'; END IF; END $$`);
    }
    const plan = await planCopy({ source: src(), target: dst(), tables: ['events'] });
    // Hold one destination shard on its worker: the unit copying into it waits there, mid-unit.
    // SHARE mode blocks COPY FROM (ROW EXCLUSIVE), not the planner's size look-ups (ACCESS SHARE).
    const held = plan.units[0]!;
    const node = held.targets[0]!;
    const w = await server(b, node);
    const holder = await holdInTransaction(w.url(), 'SET LOCAL citus.enable_manual_changes_to_shards = on', `LOCK TABLE ${held.shard!.destination} IN SHARE MODE`);
    const args = ['copy', '--source', src(), '--target', dst(), '--table', 'events'];
    let ended: string | undefined;
    const run = runCli(args).then((x) => { ended = `exit ${x.code}: ${x.stderr}`; return x; });
    const ledgered = async () => (await Promise.all(b.workers.map((x) => ledgerKeys(x).catch(() => [])))).flat().length;
    const waiting = async () => Number((await w.query<{ c: string }>(`SELECT count(*)::text AS c FROM pg_stat_activity WHERE application_name = 'segferry copy' AND wait_event_type = 'Lock'`))[0]!.c);
    for (let i = 0; i < 600 && ((await waiting()) === 0 || (await ledgered()) < 7); i++) await new Promise((r) => setTimeout(r, 100));
    expect(ended).toBeUndefined();
    expect([await waiting(), await ledgered()]).toEqual([1, 7]);
    await w.stop('immediate');
    const r = await run;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error ERR_[A-Z_]+: .*${node}`));
    await holder.end().catch(() => {});
    await w.start();
    expect(await count(w, held.shard!.destination!)).toBe(0);

    const again = await runCli([...args, '--verify', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const events = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    const imports = events.filter((e) => e.type === 'segment' && e.phase === 'import');
    expect(imports.filter((e) => !e.skipped).map((e) => `${e.key}@${e.node}`)).toEqual([`${held.id}@${node}`]);
    expect(imports.filter((e) => e.skipped)).toHaveLength(7);
    expect((events.find((e) => e.step === 'verify') as unknown as { ok: boolean }).ok).toBe(true);
    await same('events');
    await shardCounts(plan.units);
  }, 180_000);
});
