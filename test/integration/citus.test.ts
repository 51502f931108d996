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
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import {
  exportTables, importTables, openStore, planExport, planImport, readManifest, SegferryError, verifyImport, type Manifest,
} from '../../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../helpers/citus.js';
import {
  describeMultisetDiff, replicatedInsertSQL, replicatedTableDDL, rowMultiset, sameMultiset, trickyInsertSQL, trickyTableDDL,
} from '../helpers/fixtures.js';
import type { PgServer } from '../helpers/pg.js';
import { applySettings } from '../../lib/pg/conn.js';
import { copyOut } from '../../lib/pg/copy-out.js';
import { RowHasher } from '../../lib/format/row-hash.js';
import { columnListSQL, copyOptionsSQL } from '../../lib/format/options.js';

// ajv-formats is CommonJS; its default export arrives as the module or as `.default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;

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
  await c.query(trickyTableDDL('public.events'));
  await c.query(`SET citus.shard_count = ${shards}; SELECT create_distributed_table('public.events', 'id')`);
  await c.query(replicatedTableDDL('public.nation'));
  await c.query(`SELECT create_reference_table('public.nation')`);
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
      startCitusCluster({
        name: 'dst',
        coordinatorSettings: { log_statement: 'all', log_line_prefix: '%m [%p] app=%a %q%u@%d ' },
        workerSettings: { log_statement: 'all' },
      }),
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
    expect(planning).toMatch(/app=segferry segferry@postgres LOG: {2}(statement|execute <unnamed>): [^\n]*\n[^]*pg_dist_shard/);
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

    // The manifest (shard ranges, per-object shards) is valid under docs/manifest.schema.json.
    const schema = JSON.parse(await readFile(join('docs', 'manifest.schema.json'), 'utf8')) as Record<string, unknown>;
    const validate = addFormats(new Ajv2020({ allErrors: true, strict: true, strictRequired: false })).compile(schema);
    expect(validate(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))), JSON.stringify(validate.errors)).toBe(true);

    // The manifest checksum (summed over shards and workers) equals the rows of one COPY
    // through the coordinator, hashed here.
    const c = new pg.Client({ connectionString: src.coordinator.url() });
    await c.connect();
    try {
      await applySettings(c, m.sessionSettings);
      const h = new RowHasher();
      for await (const rc of copyOut(c, `COPY (SELECT ${columnListSQL(et.columns.map((x) => x.name))} FROM events) TO STDOUT (${copyOptionsSQL(m.format)})`)) h.update(rc);
      expect(et.checksum).toEqual(h.result());
      expect(h.rows).toBe(ROWS);
    } finally {
      await c.end();
    }
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
  it('arrow: objects are cut at shard boundaries too', async () => {
    const dir = await tmp();
    const m = (await exportTables({ source: src.coordinator.url(), tables: ['events'], format: 'arrow', segmentSize: 1024 * 1024, to: dir })).manifest;
    expect(m.tables[0]!.rows).toBe(ROWS);
    expect(m.objects.every((o) => o.shards?.length === 1)).toBe(true);
    expect(new Set(m.objects.flatMap((o) => o.shards!))).toEqual(new Set(m.tables[0]!.distribution.shards!.map((s) => s.id)));
    for (const sh of m.tables[0]!.distribution.shards!) {
      const [c] = await src.query<{ n: string }>(`SELECT count(*) AS n FROM public.events WHERE get_shard_id_for_distribution_column('public.events', id) = ${sh.id}`);
      expect(m.objects.filter((o) => o.shards![0] === sh.id).reduce((a, o) => a + o.rows, 0)).toBe(Number(c!.n));
    }
  });

  it('other table kinds: plain and Citus local tables on the coordinator, replicated shards spread, partitioned shards', async () => {
    await src.query(`CREATE TABLE public.plain_local (id int, v text); INSERT INTO public.plain_local SELECT g, 'p' || g FROM generate_series(1, 10) g`);
    await src.query(`CREATE TABLE public.clocal (id int, v text); SELECT citus_add_local_table_to_metadata('public.clocal')`);
    await src.query(`INSERT INTO public.clocal SELECT g, 'c' || g FROM generate_series(1, 20) g`);
    await src.query(`CREATE TABLE public.rf2 (id int, v text); SET citus.shard_replication_factor = 2; SET citus.shard_count = 4; SELECT create_distributed_table('public.rf2', 'id')`);
    await src.query(`INSERT INTO public.rf2 SELECT g, 'r' || g FROM generate_series(1, 100) g`);
    await src.query(`CREATE TABLE public.pevents (id int, v text) PARTITION BY RANGE (id);
      CREATE TABLE public.pevents_a PARTITION OF public.pevents FOR VALUES FROM (0) TO (50);
      CREATE TABLE public.pevents_b PARTITION OF public.pevents FOR VALUES FROM (50) TO (1000);
      SET citus.shard_count = 4; SELECT create_distributed_table('public.pevents', 'id')`);
    await src.query(`INSERT INTO public.pevents SELECT g, 'x' || g FROM generate_series(1, 120) g`);
    const tables = ['plain_local', 'clocal', 'rf2', 'pevents'];
    const plan = await planExport({ source: src.coordinator.url(), tables, segmentSize: CAP });
    const [plain, clocal, rf2, pev] = plan.tables;
    expect(plain!.distribution.kind).toBe('single');
    expect(plain!.reads.map((r) => [r.node, r.relation.name, r.shardId])).toEqual([['coordinator', 'plain_local', undefined]]);
    expect(clocal!.distribution).toMatchObject({ kind: 'single', method: 'citus-local', shardCount: 1 });
    expect(clocal!.reads).toHaveLength(1);
    expect(clocal!.reads[0]!.node).toBe('coordinator');
    expect(clocal!.reads[0]!.relation.name).toBe(`clocal_${clocal!.reads[0]!.shardId}`);
    // Every rf2 shard is on both workers: the reads are spread, two on each.
    expect(rf2!.reads).toHaveLength(4);
    expect(rf2!.reads.filter((r) => r.node === 'worker-1')).toHaveLength(2);
    expect(rf2!.reads.filter((r) => r.node === 'worker-2')).toHaveLength(2);
    expect(pev!.distribution).toMatchObject({ kind: 'distributed', method: 'citus-hash', column: 'id', shardCount: 4 });
    expect(pev!.reads.every((r) => r.relation.name === `pevents_${r.shardId}`)).toBe(true);

    const dir = await tmp();
    const m = (await exportTables({ source: src.coordinator.url(), tables: [], plan, to: dir })).manifest;
    expect(m.tables.map((t) => t.rows)).toEqual([10, 20, 100, 120]);
    for (const t of m.tables) {
      // Nothing twice, nothing missing: the manifest checksum equals the source's rows, by count here.
      const [c] = await src.query<{ n: string }>(`SELECT count(*) AS n FROM public.${t.name}`);
      expect(t.checksum?.rows).toBe(Number(c!.n));
    }
    expect(new Set(m.objects.filter((o) => o.table === 'public.pevents').flatMap((o) => o.shards!))).toEqual(new Set(pev!.reads.map((r) => r.shardId)));
    await src.query('DROP TABLE public.plain_local, public.clocal, public.rf2, public.pevents');
  });

  describe('import into a second Citus cluster', () => {
    let dir: string;
    let manifest: Manifest;
    const url = () => dst.coordinator.url();

    beforeAll(async () => {
      dir = await tmp();
      manifest = (await exportTables({ source: src.coordinator.url(), tables: ['events', 'nation'], segmentSize: CAP, to: dir })).manifest;
      await createTables(dst);
    });

    async function sameAsSource(): Promise<void> {
      for (const t of ['events', 'nation']) {
        const a = await rowMultiset(src.coordinator, `SELECT * FROM public.${t}`);
        const b = await rowMultiset(dst.coordinator, `SELECT * FROM public.${t}`);
        expect(sameMultiset(a, b), `${t}: ${describeMultisetDiff(a, b)}`).toBe(true);
      }
    }

    /** Rows of every destination shard that sit in the shard their distribution value hashes to, and the others. */
    async function shardPlacementCheck(): Promise<{ rows: number; misplaced: number; byRange: Map<string, number> }> {
      const shards = await dst.query<{ id: string; min: string; max: string; port: number }>(
        `SELECT s.shardid::text AS id, s.shardminvalue AS min, s.shardmaxvalue AS max, n.nodeport AS port
           FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
          WHERE s.logicalrelid = 'public.events'::regclass`);
      let rows = 0;
      let misplaced = 0;
      const byRange = new Map<string, number>();
      for (const sh of shards) {
        const w = dst.servers.find((x) => x.port === sh.port)!;
        const [r] = await w.query<{ n: string; bad: string }>(
          `SELECT count(*) AS n, count(*) FILTER (WHERE get_shard_id_for_distribution_column('public.events', id) <> ${sh.id}) AS bad FROM public.events_${sh.id}`);
        rows += Number(r!.n);
        misplaced += Number(r!.bad);
        byRange.set(`${sh.min}..${sh.max}`, Number(r!.n));
      }
      return { rows, misplaced, byRange };
    }

    it('through the coordinator: COPY into the distributed table, Citus routes the rows; verify matches', async () => {
      const res = await importTables({ from: dir, target: url(), route: 'coordinator', verify: true });
      expect(res.tables.map((t) => [t.table, t.route])).toEqual([['public.events', 'coordinator'], ['public.nation', 'coordinator']]);
      expect(res.rows).toBe(ROWS + NATION_ROWS);
      expect(res.verify?.ok, JSON.stringify(res.verify)).toBe(true);
      await sameAsSource();
      const placed = await shardPlacementCheck();
      expect(placed).toMatchObject({ rows: ROWS, misplaced: 0 });
      const [ledger] = await dst.query<{ n: string }>(`SELECT count(*) AS n FROM segferry.loads WHERE import_id = $1`, [manifest.id]);
      expect(Number(ledger!.n)).toBe(manifest.objects.length);
    });

    it('shard-direct: each object into its shard placement on the workers, the reference table through the coordinator; verify matches', async () => {
      const plan = await planImport({ from: dir, target: url(), truncate: true });
      const events = plan.tables.find((t) => t.table === 'public.events')!;
      const nation = plan.tables.find((t) => t.table === 'public.nation')!;
      expect(events.route, events.reason).toBe('direct');
      expect(nation.route).toBe('coordinator');
      expect(events.targets.map((t) => t.node)).toEqual(['worker-1', 'worker-2']);
      const destShards = await dst.query<{ id: string; min: string; max: string }>(
        `SELECT shardid::text AS id, shardminvalue AS min, shardmaxvalue AS max FROM pg_dist_shard WHERE logicalrelid = 'public.events'::regclass`);
      const srcShards = manifest.tables.find((t) => t.name === 'events')!.distribution.shards!;
      for (const o of events.objects) {
        // The destination shard has the range of the source shard the object holds.
        const srcShard = srcShards.find((x) => x.id === manifest.objects.find((m) => m.key === o.key)!.shards![0])!;
        const d = destShards.find((x) => x.min === srcShard.min && x.max === srcShard.max)!;
        expect(o.relation).toEqual({ schema: 'public', name: `events_${d.id}` });
        expect(o.targets).toHaveLength(1);
      }

      const coordLog = join(dst.coordinator.dataDir, 'server.log');
      const offset = (await stat(coordLog)).size;
      const workerOffsets = await Promise.all(dst.workers.map(async (w) => (await stat(logFile(w))).size));
      const res = await importTables({ from: dir, target: url(), plan });
      expect(res.rows).toBe(ROWS + NATION_ROWS);
      const after = await logSince(dst.coordinator, offset);
      expect(after).toMatch(/COPY "public"\."nation"/);
      // Truncated on the workers, each shard with that worker's ledger rows: not through the coordinator.
      expect(after).not.toMatch(/TRUNCATE "public"\."events"/);
      expect(after).not.toMatch(/COPY "public"\."events/);
      const workerLogs = (await Promise.all(dst.workers.map((w, i) => logSince(w, workerOffsets[i]!)))).join('\n');
      const truncated = workerLogs.split('\n').filter((l) => /TRUNCATE /.test(l)).flatMap((l) => [...l.matchAll(/"public"\."events_(\d+)"/g)].map((m) => m[1]));
      expect(new Set(truncated)).toEqual(new Set(destShards.map((d) => d.id)));
      expect(new Set([...workerLogs.matchAll(/COPY "public"\."events_(\d+)"/g)].map((m) => m[1]))).toEqual(new Set(destShards.map((d) => d.id)));

      const v = await verifyImport({ from: dir, target: url() });
      expect(v.ok, JSON.stringify(v)).toBe(true);
      await sameAsSource();
      // Every row sits in the shard its id hashes to, and each shard got its source shard's rows.
      const placed = await shardPlacementCheck();
      expect(placed.rows).toBe(ROWS);
      expect(placed.misplaced).toBe(0);
      for (const sh of srcShards) {
        const rows = manifest.objects.filter((o) => o.shards?.[0] === sh.id).reduce((a, o) => a + o.rows, 0);
        expect(placed.byRange.get(`${sh.min}..${sh.max}`)).toBe(rows);
      }
      // The ledger rows sit with the rows: events objects on the workers, nation on the coordinator.
      const eventsKeys = manifest.objects.filter((o) => o.table === 'public.events').map((o) => o.key).sort();
      const onWorkers = (await Promise.all(dst.workers.map((w) => w.query<{ k: string }>(`SELECT object_key AS k FROM segferry.loads WHERE import_id = $1`, [manifest.id]))))
        .flat().map((r) => r.k).sort();
      expect(onWorkers).toEqual(eventsKeys);
      const onCoord = (await dst.query<{ k: string }>(`SELECT object_key AS k FROM segferry.loads WHERE import_id = $1`, [manifest.id])).map((r) => r.k).sort();
      expect(onCoord).toEqual(manifest.objects.filter((o) => o.table === 'public.nation').map((o) => o.key).sort());
    });

    it('a second shard-direct run finds every object in the workers\' ledgers and loads nothing', async () => {
      const res = await importTables({ from: dir, target: url() });
      expect(res.tables.find((t) => t.table === 'public.events')!.route).toBe('direct');
      expect(res.loaded).toBe(0);
      expect(res.skipped).toBe(manifest.objects.length);
      const placed = await shardPlacementCheck();
      expect(placed.rows).toBe(ROWS);
    });

    it('the CLI imports shard-direct and verifies', async () => {
      const r = spawnSync(process.execPath, ['bin/segferry.js', 'import', '--from', dir, '--target', url(), '--truncate', '--verify', '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(dst.password);
      const v = spawnSync(process.execPath, ['bin/segferry.js', 'verify', '--from', dir, '--target', url()], { encoding: 'utf8' });
      expect(v.status, v.stderr + v.stdout).toBe(0);
      expect((await shardPlacementCheck()).misplaced).toBe(0);
    });

    it('other shard ranges on the destination: auto goes through the coordinator and says why; direct is refused', async () => {
      // Qualified: the ledger schema `segferry` is first on the search path of the role `segferry`.
      await dst.query('DROP TABLE public.events');
      await dst.query(trickyTableDDL('public.events'));
      await dst.query(`SELECT create_distributed_table('public.events', 'id', shard_count := 4)`);
      try {
        let err: unknown;
        try {
          await planImport({ from: dir, target: url(), route: 'direct', tables: ['events'] });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(SegferryError);
        expect((err as SegferryError).code).toBe('ERR_TOPOLOGY');
        expect((err as SegferryError).message).toMatch(/hash ranges/);
        const res = await importTables({ from: dir, target: url(), truncate: true, verify: true });
        const events = res.plan.tables.find((t) => t.table === 'public.events')!;
        expect(events.route).toBe('coordinator');
        expect(events.reason).toMatch(/4 shards have other hash ranges than the source's 8/);
        expect(res.verify?.ok).toBe(true);
        await sameAsSource();
      } finally {
        await dst.query('DROP TABLE public.events');
        await dst.query(trickyTableDDL('public.events'));
        await dst.query(`SET citus.shard_count = ${SHARDS}; SELECT create_distributed_table('public.events', 'id')`);
      }
    });

    it('from a non-Citus export: through the coordinator', async () => {
      const plain = await tmp();
      const m = (await exportTables({ source: src.coordinator.url(), topology: 'postgres', tables: ['events'], segmentSize: CAP, to: plain })).manifest;
      expect(m.source.topology).toBe('postgres');
      const res = await importTables({ from: plain, target: url(), truncate: true, verify: true });
      expect(res.tables[0]!.route).toBe('coordinator');
      expect(res.verify?.ok).toBe(true);
      const a = await rowMultiset(src.coordinator, 'SELECT * FROM public.events');
      const b = await rowMultiset(dst.coordinator, 'SELECT * FROM public.events');
      expect(sameMultiset(a, b), describeMultisetDiff(a, b)).toBe(true);
      expect((await shardPlacementCheck()).misplaced).toBe(0);
    });
  });
});
