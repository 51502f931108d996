import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { exportTables, planExport, SegferryError } from '../../lib/index.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { exported, expectContiguous, expectResumed, gatedStore } from '../helpers/streams.js';

// ctid page-range streams inside one node, all reading one exported snapshot (docs/streams.md).

const ROWS = 60_000;
const CAP = 32 * 1024;

let server: PgServer;
const dirs: string[] = [];
let source: string[];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-streams-'));
  dirs.push(d);
  return d;
}

/** Every row of the table as COPY TEXT lines, sorted. */
async function sourceLines(sql = 'SELECT id, payload FROM items'): Promise<string[]> {
  const rows = await server.query<{ line: string }>(`SELECT concat_ws(E'\\t', id::text, payload) AS line FROM (${sql}) s`);
  return rows.map((r) => r.line).sort();
}

beforeAll(async () => {
  server = await startServer({ name: 'streams' });
  await server.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT g, md5(g::text) || repeat('x', g % 40) FROM generate_series(1, ${ROWS}) g;
    CREATE VIEW items_view AS SELECT * FROM items WHERE id <= 1000;
    CREATE TABLE tiny (id int, v text); INSERT INTO tiny VALUES (1, 'a'), (2, 'b');
    ANALYZE`);
  source = await sourceLines();
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('streams inside a node', () => {
  it('4 streams: objects load alone, n contiguous, union equal to the source and to 1 stream', async () => {
    const plan = await planExport({ source: server.url(), topology: 'postgres', tables: ['items'], streams: 4, segmentSize: CAP });
    const sp = plan.tables[0]!.streams!;
    expect(sp).toHaveLength(1);
    expect(sp[0]!.streams).toBe(4);
    expect(sp[0]!.pages).toBeGreaterThan(100);
    expect(plan.concurrency).toBe(4);

    const four = await tmp();
    const r4 = await exportTables({ source: server.url(), topology: 'postgres', tables: ['items'], streams: 4, segmentSize: CAP, to: four });
    const one = await tmp();
    await exportTables({ source: server.url(), topology: 'postgres', tables: ['items'], streams: 1, segmentSize: CAP, to: one });

    const a = await exported(four);
    const b = await exported(one);
    expect(a.lines).toEqual(source);
    expect(b.lines).toEqual(source);
    expectContiguous(a.manifest);
    expect(a.manifest.objects.length).toBeGreaterThan(8);
    // One entry per node in the manifest, whatever the number of streams.
    expect(r4.manifest.tables[0]!.nodes).toHaveLength(1);
    expect(r4.manifest.tables[0]!.rows).toBe(ROWS);
    expect(r4.manifest.tables[0]!.checksum).toEqual(b.manifest.tables[0]!.checksum);

    // Each object holds rows of one stream: its ids fall in one page range, so the objects of
    // 4 streams are 4 runs over the ids (the table was filled in id order).
    const c = new pg.Client({ connectionString: server.url() });
    await c.connect();
    try {
      await c.query('CREATE TEMP TABLE scratch (id int, payload text)');
      for (const o of a.manifest.objects) {
        await c.query('TRUNCATE scratch');
        await pipeline(Readable.from([await readFile(join(four, o.key))]), c.query(copyFrom('COPY scratch FROM STDIN')));
        const [row] = (await c.query<{ n: string }>('SELECT count(*)::int8 AS n FROM scratch')).rows;
        expect(Number(row!.n)).toBe(o.rows);
      }
    } finally {
      await c.end();
    }
  }, 120_000);

  it('rows inserted by another session during the export are in no stream (one snapshot)', async () => {
    const dir = await tmp();
    let inserted: Promise<unknown> | undefined;
    let insertDoneAt = 0;
    let exportDoneAt = 0;
    // Two sessions for four streams: streams 3 and 4 (the open-ended one, where new rows land)
    // start after the insert has committed, so only the shared snapshot hides it from them.
    // The export's writes wait until the insert has committed.
    await exportTables({
      source: server.url(), topology: 'postgres', tables: ['items'], streams: 4, concurrency: 2, segmentSize: CAP,
      to: gatedStore(dir, () => inserted ?? Promise.resolve()),
      onEvent: (e) => {
        if (e.type === 'segment' && !inserted) {
          inserted = server.query(`INSERT INTO items SELECT g, 'late' FROM generate_series(${ROWS + 1}, ${ROWS + 500}) g`).then(() => { insertDoneAt = performance.now(); });
        }
      },
    });
    exportDoneAt = performance.now();
    await inserted;
    expect(insertDoneAt).toBeGreaterThan(0);
    expect(insertDoneAt).toBeLessThan(exportDoneAt);
    const { lines, manifest } = await exported(dir);
    expect(lines).toEqual(source);
    expectContiguous(manifest);
    expect((await server.query('SELECT count(*)::int AS n FROM items'))[0].n).toBe(ROWS + 500);
    await server.query(`DELETE FROM items WHERE id > ${ROWS}`);
    await server.query('VACUUM items');
  }, 120_000);

  it('falls back to one stream for a view and a tiny table, and says so in the plan', async () => {
    const plan = await planExport({ source: server.url(), topology: 'postgres', tables: ['items_view', 'tiny'], streams: 4 });
    const [view, tiny] = plan.tables.map((t) => t.streams![0]!);
    expect(view!.streams).toBe(1);
    expect(view!.note).toMatch(/view has no ctid/);
    expect(tiny!.streams).toBe(1);
    expect(tiny!.note).toMatch(/too small/);
    const dir = await tmp();
    const r = await exportTables({ source: server.url(), topology: 'postgres', tables: ['items_view', 'tiny'], streams: 4, to: dir });
    expect(r.manifest.tables.map((t) => t.rows)).toEqual([1000, 2]);
    expect(r.manifest.objects.map((o) => o.key).sort()).toEqual(['items_view_coordinator_segment.0', 'tiny_coordinator_segment.0']);
    // Auto on a small table: one stream, no probe, no note.
    const auto = await planExport({ source: server.url(), topology: 'postgres', tables: ['items'] });
    expect(auto.tables[0]!.streams).toEqual([{ node: 'coordinator', streams: 1 }]);
  }, 60_000);

  it('resumes after a stream\'s connection is killed: kept ranges stay, every row once', async () => {
    const dir = await tmp();
    // One session at a time: when the kill comes, a range is done and the last one has not started.
    const opts = { source: server.url(), topology: 'postgres' as const, tables: ['items'], streams: 4, concurrency: 1, segmentSize: CAP, to: dir };
    // Writes wait at a gate while the kill runs, so the stream is still open when it lands.
    let gate: Promise<unknown> = Promise.resolve();
    const gated = gatedStore(dir, () => gate);
    let kill: Promise<unknown> | undefined;
    const err = await exportTables({
      ...opts,
      to: gated,
      onEvent: (e) => {
        if (e.type !== 'segment' || kill) return;
        // Once a range is recorded done, kill the stream reading.
        const cp = join(dir, 'segferry-checkpoint.json');
        if (!existsSync(cp) || (JSON.parse(readFileSync(cp, 'utf8')) as { units: unknown[] }).units.length === 0) return;
        // Every stream session (a stream whose COPY the server has finished sending is idle in transaction).
        kill = server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                              WHERE application_name = 'segferry export' AND pid <> pg_backend_pid()`);
        gate = kill;
      },
    }).then(() => undefined, (e: unknown) => e);
    await kill;
    expect(kill).toBeDefined();
    expect(err).toBeInstanceOf(SegferryError);
    const cp = JSON.parse(await readFile(join(dir, 'segferry-checkpoint.json'), 'utf8')) as { units: { unit: string; objects: { key: string; crc32: string }[] }[]; ranges: Record<string, number[]> };
    expect(cp.units.length).toBeGreaterThanOrEqual(1);
    expect(cp.units.length).toBeLessThan(4);
    expect(cp.ranges['items_coordinator']).toHaveLength(4);
    const kept = cp.units.flatMap((u) => u.objects);

    const r = await exportTables({ ...opts, resume: true });
    // The kept ranges' objects are the first run's.
    await expectResumed(dir, source, kept);
    expect(r.manifest.tables[0]!.rows).toBe(ROWS);
  }, 120_000);
});
