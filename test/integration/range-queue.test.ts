import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { exportTables, finishPlan, planExport, runPlanPart, SegferryError, type SegferryEvent } from '../../lib/index.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { exported, expectContiguous, expectResumed, gatedStore, itemsTable } from '../helpers/streams.js';

// Ranges handed out while a node's streams run (issue 17): 2 streams take ≥ 6 shrinking page
// ranges from one queue, each stream on one session for all the ranges it takes.

const ROWS = 40_000;
const CAP = 64 * 1024;
/** A floor low enough to cut this small table (≈ 400 pages) into many ranges. */
const FLOOR = 16;

let server: PgServer;
let source: string[];
/** Each test's destination: a fresh folder under one temporary directory (the export creates it). */
let base = '';
let made = 0;
const tmp = async () => join(base, `out${made++}`);

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'sf-range-queue-'));
  server = await startServer({ name: 'range-queue' });
  source = await itemsTable(server, ROWS, 'y', 60);
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  if (base) await rm(base, { recursive: true, force: true });
});

const opts = { topology: 'postgres' as const, tables: ['items'], streams: 2, minRangePages: FLOOR, segmentSize: CAP };

describe('ranges handed out while the streams run', () => {
  it('2 streams, ≥ 6 ranges: two sessions, contiguous numbers, every object loads alone, union equal to the source', async () => {
    const plan = await planExport({ source: server.url(), ...opts });
    const sp = plan.tables[0]!.streams![0]!;
    expect(sp.streams).toBe(2);
    expect(sp.ranges!.length).toBeGreaterThanOrEqual(6);
    expect(sp.ranges![0]).toBe(0);

    const dir = await tmp();
    // At each object's first write: the export's sessions on the server (a session per range would show more than 2).
    const pids = new Set<number>();
    const seen = new Set<string>();
    const units = new Map<string, string[]>();
    const r = await exportTables({
      ...opts, source: server.url(), plan,
      to: gatedStore(dir, async (key) => {
        if (seen.has(key)) return;
        seen.add(key);
        const rows = await server.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'segferry export'`);
        for (const x of rows) pids.add(x.pid);
      }),
      onEvent: (e: SegferryEvent) => { if (e.type === 'segment') units.set(e.unit!, [...(units.get(e.unit!) ?? []), e.key]); },
    });
    expect(pids.size).toBe(2);
    // Every range stored objects of its own (one unit each, as many as the plan's ranges).
    expect([...units.keys()].sort()).toEqual(sp.ranges!.map((_, k) => `items_coordinator#${k}`).sort());
    const { lines, manifest } = await exported(dir);
    expect(lines).toEqual(source);
    expectContiguous(manifest);
    expect(r.manifest.tables[0]!.rows).toBe(ROWS);

    // Each object holds rows of one range: its ids are one run of the ids (the table was filled in
    // id order), within the range's pages; and it loads alone.
    const c = new pg.Client({ connectionString: server.url() });
    await c.connect();
    try {
      await c.query('CREATE TEMP TABLE scratch (id int, payload text)');
      for (const [unit, keys] of units) {
        const k = Number(unit.split('#')[1]);
        const [from, to] = [sp.ranges![k]!, sp.ranges![k + 1] ?? null];
        for (const key of keys) {
          await c.query('TRUNCATE scratch');
          await pipeline(Readable.from([await readFile(join(dir, key))]), c.query(copyFrom('COPY scratch FROM STDIN')));
          const o = manifest.objects.find((x) => x.key === key)!;
          const { rows } = await c.query<{ n: string; outside: string }>(
            `SELECT count(*)::int8 AS n, count(*) FILTER (WHERE i.ctid < $1::tid OR ($2::tid IS NOT NULL AND i.ctid >= $2::tid))::int8 AS outside
               FROM scratch s JOIN items i USING (id)`, [`(${from},0)`, to === null ? null : `(${to},0)`]);
          expect(Number(rows[0]!.n)).toBe(o.rows);
          expect(Number(rows[0]!.outside)).toBe(0);
        }
      }
    } finally {
      await c.end();
    }
  }, 120_000);

  it('resume after the streams\' connections are killed mid-export redoes only the unfinished ranges', async () => {
    const dir = await tmp();
    let gate: Promise<unknown> = Promise.resolve();
    let kill: Promise<unknown> | undefined;
    const cpPath = join(dir, 'segferry-checkpoint.json');
    const err = await exportTables({
      ...opts, source: server.url(),
      to: gatedStore(dir, () => gate),
      onEvent: (e) => {
        if (e.type !== 'segment' || kill) return;
        // Once two ranges are recorded done, kill both streams' sessions; writes wait meanwhile.
        if (!existsSync(cpPath) || (JSON.parse(readFileSync(cpPath, 'utf8')) as { units: unknown[] }).units.length < 2) return;
        kill = server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segferry export'`);
        gate = kill;
      },
    }).then(() => undefined, (e: unknown) => e);
    await kill;
    expect(kill).toBeDefined();
    expect(err).toBeInstanceOf(SegferryError);
    const cp = JSON.parse(await readFile(cpPath, 'utf8')) as { units: { unit: string; objects: { key: string; sha256: string }[] }[]; ranges: Record<string, number[]> };
    const ranges = cp.ranges['items_coordinator']!;
    expect(ranges.length).toBeGreaterThanOrEqual(6);
    const keptUnits = cp.units.map((u) => u.unit);
    expect(keptUnits.length).toBeGreaterThanOrEqual(2);
    expect(keptUnits.length).toBeLessThan(ranges.length);
    const kept = cp.units.flatMap((u) => u.objects);

    const redone = new Set<string>();
    const r = await exportTables({ ...opts, source: server.url(), to: dir, resume: true, onEvent: (e) => { if (e.type === 'segment') redone.add(e.unit!); } });
    // Only the unfinished ranges ran again; together with the kept ones, every range once.
    expect([...redone].filter((u) => keptUnits.includes(u))).toEqual([]);
    expect([...redone, ...keptUnits].sort()).toEqual(ranges.map((_, k) => `items_coordinator#${k}`).sort());
    await expectResumed(dir, source, kept);
    expect(r.manifest.tables[0]!.rows).toBe(ROWS);
  }, 120_000);

  it('a plan run in 2 parts: each part\'s streams take their pair\'s ranges; finish gives every row once', async () => {
    await server.query('CREATE TABLE items2 AS SELECT * FROM items WHERE id % 2 = 0; ANALYZE items2');
    const plan = await planExport({ ...opts, source: server.url(), tables: ['items', 'items2'] });
    expect(plan.tables.map((t) => t.streams![0]!.ranges!.length >= 6)).toEqual([true, true]);
    const dir = await tmp();
    const parts = [];
    for (const k of [1, 2]) parts.push(await runPlanPart({ plan, to: dir, part: { k, n: 2 } }));
    // Each part holds one table's pair, whole.
    expect(parts.map((p) => p.units).sort()).toEqual(plan.tables.map((t) => t.streams![0]!.ranges!.length).sort());
    const m = await finishPlan({ plan, to: dir });
    expect(m.tables.map((t) => t.rows)).toEqual([ROWS, ROWS / 2]);
    const { lines } = await exported(dir);
    const evens = source.filter((l) => Number(l.split('\t')[0]) % 2 === 0);
    expect(lines).toEqual([...source, ...evens].sort());
  }, 120_000);
});
