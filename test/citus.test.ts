/**
 * Citus: real clusters (a coordinator and two workers each), a hash-distributed table with 8
 * shards of tricky rows and a reference table. Skips with a message when the citus extension is
 * not installed next to the PostgreSQL server binaries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { exportTables, openStore, planExport, readManifest, type Manifest } from '../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from './helpers/citus.js';
import {
  describeMultisetDiff, replicatedInsertSQL, replicatedTableDDL, rowMultiset, sameMultiset, trickyInsertSQL, trickyTableDDL,
} from './helpers/fixtures.js';
import type { PgServer } from './helpers/pg.js';

const missing = citusMissing();
if (missing) console.warn(`skipping the Citus tests: ${missing}`);

const ROWS = 20_000;
const NATION_ROWS = 500;
const SHARDS = 8;
const CAP = 256 * 1024;
const KEY = /^(events|nation)_(worker-\d+|coordinator)_segment\.(\d+)$/;

let src: CitusCluster;
let dst: CitusCluster;
const tmpDirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-citus-'));
  tmpDirs.push(d);
  return d;
}

/** The tables of the test, created on a cluster's coordinator (empty). */
async function createTables(c: CitusCluster, shards = SHARDS): Promise<void> {
  await c.query(trickyTableDDL('events'));
  await c.query(`SET citus.shard_count = ${shards}; SELECT create_distributed_table('events', 'id')`);
  await c.query(replicatedTableDDL('nation'));
  await c.query(`SELECT create_reference_table('nation')`);
}

function logFile(s: PgServer): string {
  return join(s.dataDir, 'server.log');
}

async function logSince(s: PgServer, offset: number): Promise<string> {
  return (await readFile(logFile(s))).subarray(offset).toString('utf8');
}

/** Load every object of a table, each on its own COPY, into a plain scratch table. */
async function loadObjects(server: PgServer, location: string, manifest: Manifest, table: string, into: string, ddl: string): Promise<void> {
  const store = openStore(location);
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    for (const [k, v] of Object.entries(manifest.sessionSettings)) await client.query(`SELECT set_config($1, $2, false)`, [k, v]);
    await client.query(`DROP TABLE IF EXISTS ${into}`);
    await client.query(ddl);
    for (const o of manifest.objects.filter((x) => x.table === `public.${table}`)) {
      await pipeline(await store.read(o.key), client.query(copyFrom(`COPY ${into} FROM STDIN`)));
    }
  } finally {
    await client.end();
    store.close();
  }
}

describe.skipIf(missing !== undefined)('Citus', () => {
  beforeAll(async () => {
    [src, dst] = await Promise.all([
      startCitusCluster({
        name: 'src',
        // Every statement and connection on the source coordinator is logged, with its application name.
        coordinatorSettings: { log_statement: 'all', log_connections: 'on', log_line_prefix: '%m [%p] app=%a %q%u@%d ' },
        workerSettings: { log_statement: 'all' },
      }),
      startCitusCluster({ name: 'dst' }),
    ]);
    await createTables(src);
    await src.query(trickyInsertSQL('events', 1, ROWS));
    await src.query(replicatedInsertSQL('nation', NATION_ROWS));
  });

  afterAll(async () => {
    await Promise.allSettled([src?.destroy(), dst?.destroy()]);
    for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
  });

  it('plans one read per shard on the workers, the reference table on one worker', async () => {
    const plan = await planExport({ source: src.coordinator.url(), tables: ['events', 'nation'], segmentSize: CAP });
    expect(plan.topology).toBe('citus');
    expect(plan.nodes.map((n) => n.name)).toEqual(['worker-1', 'worker-2']);
    expect(plan.nodes.map((n) => n.endpoint.port).sort()).toEqual(src.workers.map((w) => w.port).sort());
    expect(JSON.stringify(plan)).not.toContain(src.password);
    const [events, nation] = plan.tables;
    expect(events!.distribution).toMatchObject({ kind: 'distributed', method: 'citus-hash', column: 'id', shardCount: SHARDS });
    expect(events!.distribution.shards).toHaveLength(SHARDS);
    expect(events!.reads).toHaveLength(SHARDS);
    const dbShards = await src.query<{ id: string; min: string; max: string; port: number }>(
      `SELECT s.shardid::text AS id, s.shardminvalue AS min, s.shardmaxvalue AS max, n.nodeport AS port
         FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
        WHERE s.logicalrelid = 'events'::regclass ORDER BY s.shardminvalue::int4`);
    expect(events!.reads.map((r) => [r.shardId, r.hashRange, `${r.relation.schema}.${r.relation.name}`])).toEqual(
      dbShards.map((s) => [s.id, [s.min, s.max], `public.events_${s.id}`]));
    const portOf = new Map(plan.nodes.map((n) => [n.name, n.endpoint.port]));
    expect(events!.reads.map((r) => portOf.get(r.node))).toEqual(dbShards.map((s) => s.port));
    expect(events!.distribution.shards!.map((s) => [s.id, s.min, s.max])).toEqual(dbShards.map((s) => [s.id, s.min, s.max]));
    expect(nation!.distribution).toMatchObject({ kind: 'replicated', method: 'citus-reference' });
    expect([...nation!.distribution.replicas!].sort()).toEqual(['coordinator', 'worker-1', 'worker-2']);
    expect(nation!.reads).toHaveLength(1);
    expect(nation!.reads[0]!.node).toMatch(/^worker-\d$/);
  });

  it('segferry export --source <coordinator>: segments only from the workers, rows equal the source, the coordinator serves no COPY', async () => {
    const dir = await tmp();
    const coordLog = logFile(src.coordinator);
    const plan = await planExport({ source: src.coordinator.url(), tables: ['events', 'nation'], segmentSize: CAP });
    // Planning is over: from here on the coordinator must see no exporter.
    const offset = (await stat(coordLog)).size;
    const workerOffsets = await Promise.all(src.workers.map(async (w) => (await stat(logFile(w))).size));
    const res = await exportTables({ source: src.coordinator.url(), tables: [], plan, to: dir });
    const m = res.manifest;

    // The statement log works: planning itself shows up in it.
    const planning = (await readFile(coordLog)).subarray(0, offset).toString('utf8');
    expect(planning).toMatch(/app=segferry .*statement: .*pg_dist_shard/);
    const after = await logSince(src.coordinator, offset);
    expect(after).not.toMatch(/\bCOPY\b/i);
    expect(after).not.toContain('app=segferry');
    expect(after).not.toContain('application_name=segferry');
    // ...while the workers served COPY of their shard tables.
    const workerLogs = await Promise.all(src.workers.map((w, i) => logSince(w, workerOffsets[i]!)));
    for (const log of workerLogs) expect(log).toMatch(/COPY \(SELECT .* FROM "public"\."events_\d+"\) TO STDOUT/);

    // Objects: only from nodes holding placements; nation from exactly one node.
    const byTable = (t: string) => m.objects.filter((o) => o.table === `public.${t}`);
    for (const o of m.objects) expect(o.key).toMatch(KEY);
    expect(new Set(byTable('events').map((o) => o.node))).toEqual(new Set(['worker-1', 'worker-2']));
    expect(new Set(byTable('nation').map((o) => o.node)).size).toBe(1);
    expect(byTable('nation')[0]!.node).toMatch(/^worker-\d$/);

    // Manifest: distribution column, shard count, ranges; every object holds exactly one shard.
    const et = m.tables.find((t) => t.name === 'events')!;
    expect(et.distribution).toMatchObject({ column: 'id', shardCount: SHARDS, method: 'citus-hash' });
    expect(et.distribution.shards!.every((s) => /^-?\d+$/.test(s.min!) && /^-?\d+$/.test(s.max!))).toBe(true);
    const shardIds = new Set(et.distribution.shards!.map((s) => s.id));
    for (const o of byTable('events')) {
      expect(o.shards).toHaveLength(1);
      expect(shardIds.has(o.shards![0]!)).toBe(true);
    }
    expect(new Set(byTable('events').flatMap((o) => o.shards!))).toEqual(shardIds);
    expect(byTable('nation').every((o) => o.shards?.length === 1)).toBe(true);
    // Objects respect the cap, and the big rows forced several objects for some shard.
    for (const o of m.objects) expect(o.bytes).toBeLessThanOrEqual(CAP);
    expect(byTable('events').length).toBeGreaterThan(SHARDS);
    expect(et.rows).toBe(ROWS);
    expect(m.tables.find((t) => t.name === 'nation')!.rows).toBe(NATION_ROWS);

    // The union of the objects' rows is the source table, row for row.
    await loadObjects(dst.coordinator, dir, m, 'events', 'chk_events', trickyTableDDL('chk_events'));
    await loadObjects(dst.coordinator, dir, m, 'nation', 'chk_nation', replicatedTableDDL('chk_nation'));
    for (const [t, chk] of [['events', 'chk_events'], ['nation', 'chk_nation']] as const) {
      const a = await rowMultiset(src.coordinator, `SELECT * FROM ${t}`);
      const b = await rowMultiset(dst.coordinator, `SELECT * FROM ${chk}`);
      expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
    }
    await dst.query('DROP TABLE chk_events, chk_nation');

    // The manifest checksum equals one computed through the coordinator.
    const [sum] = await src.query<{ rows: string; sum: string }>(
      `SELECT count(*)::int8 AS rows, COALESCE(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::int8::numeric), 0)::text AS sum FROM (SELECT * FROM events) t`);
    expect(et.checksum).toBeDefined();
    expect(et.checksum!.rows).toBe(Number(sum!.rows));
  });

  it('the CLI exports a Citus cluster from the coordinator URL', async () => {
    const dir = await tmp();
    const r = spawnSync(process.execPath, ['bin/segferry.js', 'export', '--source', src.coordinator.url(), '--table', 'events',
      '--table', 'nation', '--to', dir, '--segment-size', '256KiB', '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(src.password);
    const store = openStore(dir);
    const m = await readManifest(store);
    store.close();
    expect(m.source.topology).toBe('citus');
    expect(m.source.nodes.map((n) => n.name)).toEqual(['worker-1', 'worker-2']);
    expect(m.tables.map((t) => t.rows)).toEqual([ROWS, NATION_ROWS]);
  });
});
