/**
 * `import --truncate` into Citus shard-direct is atomic per worker: one cluster (a coordinator
 * and 2 workers) exports its 8-shard table and imports that export back into itself shard-direct,
 * then again with truncate, then with truncate while the second worker's ledger is locked, so
 * that the first worker has committed and the second fails: exit 1, the first worker emptied and
 * forgotten, the second untouched; the rerun then loads each row exactly once. Skipped with a
 * message when the citus extension is missing (SEGFERRY_REQUIRE_CITUS=1: fails).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { exportTables, importTables, verifyImport, type ImportTablePlan, type Manifest } from '../../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../helpers/citus.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { describeMultisetDiff, rowMultiset, sameMultiset, trickyInsertSQL, trickyTableDDL } from '../helpers/fixtures.js';
import type { PgServer } from '../helpers/pg.js';

const missing = citusMissing();
if (missing) console.warn(`skipping the Citus import --truncate tests: ${missing}`);

type Ev = { type: string; node?: string; key?: string; skipped?: boolean; ok?: boolean };

describe.skipIf(missing !== undefined)('import --truncate into Citus shard-direct', () => {
  const ROWS = 4000;
  let c: CitusCluster;
  let dir: string;
  let manifest: Manifest;
  let source: Map<string, number>;
  const url = () => c.coordinator.url();

  beforeAll(async () => {
    ensureBuilt();
    c = await startCitusCluster({ name: 'trunc' });
    await c.query(`${trickyTableDDL('public.events')}; SET citus.shard_count = 8; SELECT create_distributed_table('public.events', 'id')`);
    await c.query(trickyInsertSQL('public.events', 1, ROWS));
    dir = await mkdtemp(join(tmpdir(), 'sf-trunc-'));
    manifest = (await exportTables({ source: url(), tables: ['events'], to: dir })).manifest;
    source = await rowMultiset(c.coordinator, 'SELECT * FROM public.events');
  }, 300_000);

  afterAll(async () => {
    await c?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The server of a Citus node name (`worker-<groupid>`). */
  async function server(node: string): Promise<PgServer> {
    const [row] = await c.query<{ port: number }>(`SELECT nodeport AS port FROM pg_dist_node WHERE groupid = $1 AND noderole = 'primary'`, [Number(node.replace('worker-', ''))]);
    return c.workers.find((w) => w.port === row!.port)!;
  }
  /** Rows in the shard tables a worker holds (read there, not through the coordinator). */
  async function shardRows(node: string): Promise<number> {
    const w = await server(node);
    const shards = await c.query<{ id: string }>(
      `SELECT s.shardid::text AS id FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
        WHERE s.logicalrelid = 'public.events'::regclass AND n.nodeport = $1`, [w.port]);
    expect(shards.length).toBeGreaterThan(0);
    let n = 0;
    for (const s of shards) n += Number((await w.query<{ n: string }>(`SELECT count(*)::text AS n FROM public.events_${s.id}`))[0]!.n);
    return n;
  }
  const ledger = async (s: PgServer) => (await s.query<{ k: string }>(`SELECT object_key AS k FROM segferry.loads WHERE import_id = $1 AND table_name = 'public.events'`, [manifest.id])).map((r) => r.k).sort();
  /** Every row of the export exactly once, and verify agrees. */
  async function exactlyOnce(): Promise<void> {
    const now = await rowMultiset(c.coordinator, 'SELECT * FROM public.events');
    expect(sameMultiset(source, now), describeMultisetDiff(source, now)).toBe(true);
    const v = await verifyImport({ from: dir, target: url() });
    expect(v.ok, JSON.stringify(v)).toBe(true);
  }
  /** Per worker, the keys of the objects loaded into it. */
  const expectedLedgers = (tp: ImportTablePlan) => ['worker-1', 'worker-2'].map((n) => tp.objects.filter((o) => o.targets.includes(n)).map((o) => o.key).sort());

  it('import, then import --truncate of the same export: each row once, the ledger rows with their worker\'s shards', async () => {
    const first = await importTables({ from: dir, target: url(), truncate: true });
    const tp = first.plan.tables[0]!;
    expect(tp.route, tp.reason).toBe('direct');
    // Truncated on the workers, where the ledger rows live; never through the coordinator.
    expect(tp.truncate).toEqual(['worker-1', 'worker-2']);
    expect(Object.values(tp.truncateShards ?? {}).flat()).toHaveLength(8);
    expect(first.rows).toBe(ROWS);
    const [l1, l2] = expectedLedgers(tp);
    expect(l1!.length).toBeGreaterThan(0);
    expect(l2!.length).toBeGreaterThan(0);
    await exactlyOnce();

    const again = await importTables({ from: dir, target: url(), truncate: true });
    expect(again.tables[0]).toMatchObject({ truncated: true, loaded: manifest.objects.length, skipped: 0, rows: ROWS });
    await exactlyOnce();
    expect(await ledger(await server('worker-1'))).toEqual(l1);
    expect(await ledger(await server('worker-2'))).toEqual(l2);
    expect(await ledger(c.coordinator)).toEqual([]);
    expect(await shardRows('worker-1') + await shardRows('worker-2')).toBe(ROWS);
  }, 120_000);

  it('a failure between workers (the second one\'s ledger locked): exit 1, the first emptied and forgotten, the second untouched; the rerun loads each row once', async () => {
    const w1 = await server('worker-1');
    const w2 = await server('worker-2');
    const before = [await shardRows('worker-1'), await shardRows('worker-2')];
    const ledger2 = await ledger(w2);
    // SHARE blocks the DELETE of worker-2's ledger rows (ROW EXCLUSIVE), which runs in its truncating transaction.
    const holder = new pg.Client({ connectionString: w2.url() });
    holder.on('error', () => {});
    await holder.connect();
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE segferry.loads IN SHARE MODE');
      const run = runCli(['import', '--from', dir, '--target', url(), '--truncate', '--json']);
      const waiting = async () => (await w2.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'segferry import' AND wait_event_type = 'Lock'`)).map((x) => x.pid);
      let pids: number[] = [];
      for (let i = 0; i < 600 && pids.length === 0; i++) {
        pids = await waiting();
        if (pids.length === 0) await new Promise((res) => setTimeout(res, 100));
      }
      expect(pids).toHaveLength(1);
      // worker-1 committed before worker-2 began: emptied, its ledger rows of the table gone.
      expect(await shardRows('worker-1')).toBe(0);
      expect(await ledger(w1)).toEqual([]);
      // The failure: the waiting statement is cancelled, as a lock_timeout would.
      await w2.query('SELECT pg_cancel_backend($1::int)', [pids[0]]);
      r = await run;
    } finally {
      await holder.end().catch(() => {});
    }
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/error ERR_[A-Z_]+: .*worker-2/);
    // worker-2 rolled back whole: its shards and its ledger rows as before.
    expect(await shardRows('worker-2')).toBe(before[1]);
    expect(await ledger(w2)).toEqual(ledger2);
    expect(before[0]).toBeGreaterThan(0);

    // The rerun without truncate resumes: worker-1's objects loaded, worker-2's skipped as recorded.
    const again = await runCli(['import', '--from', dir, '--target', url(), '--verify', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const events = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    const segs = events.filter((e) => e.type === 'segment');
    expect([...new Set(segs.filter((e) => !e.skipped).map((e) => e.node))]).toEqual(['worker-1']);
    expect(segs.filter((e) => e.skipped).map((e) => e.key).sort()).toEqual(ledger2);
    expect(events.find((e) => e.type === 'verify')?.ok).toBe(true);
    await exactlyOnce();
    expect(await shardRows('worker-1')).toBe(before[0]);
  }, 180_000);
});
