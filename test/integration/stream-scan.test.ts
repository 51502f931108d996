import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { DirectoryStore, exportTables, finishPlan, parsePlanFile, planExport, planFile, runPlanPart, SegferryError, type Manifest } from '../../lib/index.js';
import { exportNode, scanSettingsSQL } from '../../lib/export/exporter.js';
import { selectSQL } from '../../lib/export/formats.js';
import { planUnits, type UnitResult } from '../../lib/export/units.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { exported, expectContiguous, expectResumed, gatedStore, itemsTable } from '../helpers/streams.js';

// How streams read their page ranges (issue 17, docs/streams.md): on a server whose
// shared_buffers (2MB, 256 pages) makes a small table larger than NBuffers (256 pages), `auto`
// reads its ranges as sequential scans with the range as a filter; a table of ≤ 256 pages keeps
// TID range scans. Which scan ran is read from pg_stat_user_tables.seq_scan (a TID range scan
// does not count there).

const ROWS = 40_000;
const SMALL_ROWS = 3000;
const CAP = 64 * 1024;

let server: PgServer;
let source: string[];
let smallSource: string[];
let base = '';
let made = 0;
const tmp = async () => join(base, `out${made++}`);

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'sf-stream-scan-'));
  server = await startServer({ name: 'stream-scan', settings: { shared_buffers: '2MB' } });
  source = await itemsTable(server, ROWS, 'y', 60);
  await server.query(`CREATE TABLE small (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO small SELECT g, md5(g::text) FROM generate_series(1, ${SMALL_ROWS}) g; ANALYZE small`);
  smallSource = (await server.query<{ line: string }>(`SELECT concat_ws(E'\\t', id::text, v) AS line FROM small`)).map((r) => r.line).sort();
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  if (base) await rm(base, { recursive: true, force: true });
});

/** Sequential scans of each table so far (backends flush their counts when they exit: wait for `want`). */
async function seqScans(want?: Record<string, number>): Promise<Record<string, number>> {
  for (let i = 0; ; i++) {
    const rows = await server.query<{ relname: string; n: string }>(`SELECT relname, seq_scan::text AS n FROM pg_stat_user_tables WHERE relname IN ('items', 'small', 'items2')`);
    const out = Object.fromEntries(rows.map((r) => [r.relname, Number(r.n)]));
    if (!want || Object.entries(want).every(([k, v]) => out[k] === v) || i >= 40) return out;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The sha256 of every object of an export, sorted (the numbers a stream's objects get depend on timing, their bytes do not). */
async function objectDigests(dir: string, m: Manifest): Promise<string[]> {
  return Promise.all(m.objects.map(async (o) => createHash('sha256').update(await readFile(join(dir, o.key))).digest('hex'))).then((d) => d.sort());
}

/** Load each object alone into an empty table like `items`: each holds whole rows. */
async function loadEach(dir: string, m: Manifest): Promise<void> {
  const c = new pg.Client({ connectionString: server.url() });
  await c.connect();
  try {
    await c.query('CREATE TEMP TABLE scratch (id int, payload text)');
    for (const o of m.objects) {
      await c.query('TRUNCATE scratch');
      await pipeline(Readable.from([await readFile(join(dir, o.key))]), c.query(copyFrom('COPY scratch FROM STDIN')));
      expect(Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM scratch')).rows[0]!.n)).toBe(o.rows);
    }
  } finally {
    await c.end();
  }
}

const opts = { topology: 'postgres' as const, tables: ['items'], segmentSize: CAP };

describe('stream scans: filtered sequential scans above shared_buffers', () => {
  it('the plan says seq-filter with one equal range per stream, and records NBuffers', async () => {
    const plan = await planExport({ source: server.url(), ...opts, tables: ['items', 'small'], streams: 2 });
    const [items, small] = plan.tables.map((t) => t.streams![0]!);
    expect(items!.sharedBuffers).toBe(256);
    expect(items!.pages).toBeGreaterThan(64);
    expect(items!.scan).toBe('seq-filter');
    expect(items!.ranges).toEqual([0, Math.floor(items!.pages! / 2)]);
    expect(small!.pages).toBeLessThanOrEqual(64);
    expect(small!.scan).toBe('tid-range');
  });

  it('2 and 4 streams: the same rows as 1 stream, n contiguous, each object loads alone, one sequential scan per stream', async () => {
    const one = await tmp();
    await exportTables({ source: server.url(), ...opts, streams: 1, to: one });
    expect((await exported(one)).lines).toEqual(source);
    for (const streams of [2, 4]) {
      const dir = await tmp();
      const before = await seqScans();
      const r = await exportTables({ source: server.url(), ...opts, streams, to: dir });
      expect(r.plan.tables[0]!.streams![0]!.scan).toBe('seq-filter');
      const { lines, manifest } = await exported(dir);
      expect(lines).toEqual(source);
      expectContiguous(manifest);
      expect(manifest.objects.length).toBeGreaterThan(streams);
      await loadEach(dir, manifest);
      // One scan of the whole table per stream, none other.
      expect((await seqScans({ items: before.items! + streams })).items).toBe(before.items! + streams);
    }
  }, 120_000);

  it('forced tid-range and forced seq-filter: both correct, byte-identical objects for the same ranges; tid-range scans no table sequentially', async () => {
    // A floor above the table's pages: the guided cut is then one equal range per stream too.
    const common = { source: server.url(), ...opts, streams: 2, minRangePages: 100_000 };
    const digests: Record<string, string[]> = {};
    for (const streamScan of ['tid-range', 'seq-filter'] as const) {
      const dir = await tmp();
      const before = await seqScans();
      const r = await exportTables({ ...common, streamScan, to: dir });
      const sp = r.plan.tables[0]!.streams![0]!;
      expect(sp.scan).toBe(streamScan);
      expect(sp.ranges).toEqual([0, Math.floor(sp.pages! / 2)]);
      const { lines, manifest } = await exported(dir);
      expect(lines).toEqual(source);
      expectContiguous(manifest);
      digests[streamScan] = await objectDigests(dir, manifest);
      const want = before.items! + (streamScan === 'seq-filter' ? 2 : 0);
      expect((await seqScans({ items: want })).items).toBe(want);
    }
    expect(digests['seq-filter']).toEqual(digests['tid-range']);
    // Forced seq-filter on a table inside shared_buffers, with more streams than the auto rule's 4.
    const dir = await tmp();
    const r = await exportTables({ source: server.url(), ...opts, tables: ['small'], streams: 6, streamScan: 'seq-filter', to: dir });
    expect(r.plan.tables[0]!.streams![0]!.scan).toBe('seq-filter');
    expect(r.plan.tables[0]!.streams![0]!.ranges).toHaveLength(6);
    expect((await exported(dir)).lines).toEqual(smallSource);
  }, 120_000);

  it('EXPLAIN: under the seq-filter settings a range is a Seq Scan with the ctid filter and no Gather, even where a parallel plan is cheaper', async () => {
    const plan = await planExport({ source: server.url(), ...opts, streams: 2 });
    const u = planUnits(plan)[1]!;
    expect(u.scan).toBe('seq-filter');
    const sql = selectSQL(u.reads[0]!, u.table, plan.filter);
    const c = new pg.Client({ connectionString: server.url() });
    await c.connect();
    const nodes = (p: { Plan: unknown }) => {
      const out: { type: string; filter?: string }[] = [];
      const walk = (n: { 'Node Type': string; Filter?: string; Plans?: unknown[] }) => {
        out.push({ type: n['Node Type'], ...(n.Filter ? { filter: n.Filter } : {}) });
        for (const k of n.Plans ?? []) walk(k as never);
      };
      walk(p.Plan as never);
      return out;
    };
    const explain = async () => nodes((await c.query<{ 'QUERY PLAN': [{ Plan: unknown }] }>(`EXPLAIN (FORMAT JSON) ${sql}`)).rows[0]!['QUERY PLAN'][0]);
    try {
      // Parallel plans made cheap, as on a big table: without the setting the filtered scan goes parallel.
      await c.query('SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0');
      await c.query('BEGIN');
      expect((await explain()).map((n) => n.type)).toEqual(['Tid Range Scan']);
      await c.query('SET LOCAL enable_tidscan = off');
      expect((await explain()).map((n) => n.type)).toContain('Gather');
      await c.query(scanSettingsSQL('seq-filter'));
      const seq = await explain();
      expect(seq.map((n) => n.type)).toEqual(['Seq Scan']);
      expect(seq[0]!.filter).toMatch(/ctid >= '\(\d+,0\)'::tid/);
      // Switched back in the same transaction: a TID range scan again.
      await c.query(scanSettingsSQL('tid-range'));
      expect((await explain()).map((n) => n.type)).toEqual(['Tid Range Scan']);
      await c.query('COMMIT');
      // Transaction-local: nothing stays in the session.
      expect((await c.query<{ v: string }>("SELECT current_setting('enable_tidscan') AS v")).rows[0]!.v).toBe('on');
    } finally {
      await c.end();
    }
  });

  it('a mixed session: one session reads a seq-filter table\'s and a tid-range table\'s ranges in turn, each its own way', async () => {
    const plan = await planExport({ source: server.url(), ...opts, tables: ['items', 'small'], streams: 2 });
    const units = planUnits(plan);
    const items = units.filter((u) => u.table.objectName === 'items');
    const small = units.filter((u) => u.table.objectName === 'small');
    expect(items.map((u) => u.scan)).toEqual(['seq-filter', 'seq-filter']);
    expect(small.map((u) => u.scan)).toEqual([undefined, undefined]);
    // Interleaved: the session switches at every unit (the first in its start query).
    const order = [items[0]!, small[0]!, items[1]!, small[1]!];
    const dir = await tmp();
    const store = new DirectoryStore(dir);
    const done: UnitResult[] = [];
    const before = await seqScans();
    await exportNode({ node: plan.nodes[0]!, units: order }, plan, store, new AbortController().signal, () => {}, async (r) => { done.push(r); }, (u) => (n) => u.stream!.index * 1000 + n);
    expect(done.map((r) => r.unit.id)).toEqual(order.map((u) => u.id));
    const lines = async (table: string) => {
      const out: string[] = [];
      for (const r of done.filter((x) => x.unit.table.objectName === table)) {
        for (const o of r.objects) out.push(...(await readFile(join(dir, o.key), 'utf8')).split('\n').filter(Boolean));
      }
      return out.sort();
    };
    expect(await lines('items')).toEqual(source);
    expect(await lines('small')).toEqual(smallSource);
    // items: its two ranges as sequential scans; small: TID range scans only.
    const after = await seqScans({ items: before.items! + 2 });
    expect(after).toEqual({ items: before.items! + 2, small: before.small! });
  });

  it('resume after the stream session is killed: the kept range stays, every row once, still seq-filter', async () => {
    const dir = await tmp();
    const common = { source: server.url(), ...opts, streams: 4, concurrency: 1, to: dir };
    let gate: Promise<unknown> = Promise.resolve();
    let kill: Promise<unknown> | undefined;
    const err = await exportTables({
      ...common,
      to: gatedStore(dir, () => gate),
      onEvent: (e) => {
        if (e.type !== 'segment' || kill) return;
        const cp = join(dir, 'segferry-checkpoint.json');
        if (!existsSync(cp) || (JSON.parse(readFileSync(cp, 'utf8')) as { units: unknown[] }).units.length === 0) return;
        kill = server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segferry export' AND pid <> pg_backend_pid()`);
        gate = kill;
      },
    }).then(() => undefined, (e: unknown) => e);
    await kill;
    expect(kill).toBeDefined();
    expect(err).toBeInstanceOf(SegferryError);
    const cp = JSON.parse(await readFile(join(dir, 'segferry-checkpoint.json'), 'utf8')) as { units: { objects: { key: string; crc32: string }[] }[]; ranges: Record<string, number[]> };
    expect(cp.units.length).toBeGreaterThanOrEqual(1);
    expect(cp.units.length).toBeLessThan(4);
    expect(cp.ranges['items_coordinator']).toHaveLength(4);
    const kept = cp.units.flatMap((u) => u.objects);
    const r = await exportTables({ ...common, resume: true });
    expect(r.plan.tables[0]!.streams![0]!.scan).toBe('seq-filter');
    await expectResumed(dir, source, kept);
    expect(r.manifest.tables[0]!.rows).toBe(ROWS);
  }, 120_000);

  it('a plan file run in 2 parts: the scan survives the file, each part reads its pair by filtered scans; finish gives every row once', async () => {
    // A copy of items, so that it too is larger than shared_buffers.
    await server.query('CREATE TABLE items2 AS SELECT * FROM items; ANALYZE items2');
    const dir = await tmp();
    const planned = await planExport({ source: server.url(), ...opts, tables: ['items', 'items2'], streams: 2 });
    const plan = parsePlanFile(JSON.stringify(planFile(planned, dir)), 'plan.json').plan;
    expect(plan.tables.map((t) => t.streams![0]!.scan)).toEqual(['seq-filter', 'seq-filter']);
    const before = await seqScans();
    for (const k of [1, 2]) await runPlanPart({ plan, to: dir, part: { k, n: 2 } });
    const m = await finishPlan({ plan, to: dir });
    expect(m.tables.map((t) => t.rows)).toEqual([ROWS, ROWS]);
    const { lines, manifest } = await exported(dir);
    expect(lines).toEqual([...source, ...source].sort());
    expect(manifest.objects.length).toBeGreaterThan(4);
    const want = { items: before.items! + 2, items2: (before.items2 ?? 0) + 2 };
    const after = await seqScans(want);
    expect([after.items, after.items2]).toEqual([want.items, want.items2]);
  }, 120_000);

  it('CLI: --stream-scan reaches the plan file; a bad value exits 2 with ERR_INVALID_OPTION before any database work', async () => {
    ensureBuilt();
    const dir = await tmp();
    const out = join(base, `plan${made++}.json`);
    const common = ['--source', server.url(), '--table', 'items', '--streams', '2', '--to', dir, '--out', out];
    const auto = await runCli(['plan', ...common]);
    expect(auto.code).toBe(0);
    expect(parsePlanFile(await readFile(out, 'utf8'), out).plan.tables[0]!.streams![0]!.scan).toBe('seq-filter');
    const tid = await runCli(['plan', ...common, '--stream-scan', 'tid-range']);
    expect(tid.code).toBe(0);
    expect(parsePlanFile(await readFile(out, 'utf8'), out).plan.tables[0]!.streams![0]!.scan).toBe('tid-range');
    const bad = await runCli(['plan', '--source', 'postgres://nobody@127.0.0.1:1/none', '--table', 'items', '--stream-scan', 'seq', '--to', dir, '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('ERR_INVALID_OPTION');
  }, 120_000);

  it('Parquet (its COPY asks the node first): 2 seq-filter streams give the row count and row checksum of 1 stream', async () => {
    const sums = [];
    for (const streams of [1, 2]) {
      const r = await exportTables({ source: server.url(), ...opts, format: 'parquet', streams, to: await tmp() });
      expect(r.plan.tables[0]!.streams![0]!.scan).toBe(streams === 2 ? 'seq-filter' : undefined);
      sums.push(r.manifest.tables[0]!.checksum);
    }
    expect(sums[0]!.rows).toBe(ROWS);
    expect(sums[1]).toEqual(sums[0]);
  }, 120_000);
});
