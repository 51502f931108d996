/**
 * Citus: several shards of one worker read at once (`streams`), whole shards per stream, all
 * in one snapshot of the worker (docs/streams.md). Skips with a message without Citus.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryStore, exportTables, planExport, type Manifest } from '../../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../helpers/citus.js';

const missing = citusMissing();
if (missing) console.warn(`skipping the Citus streams tests: ${missing}`);

const ROWS = 12_000;
const CAP = 32 * 1024;
const KEY = /^events_(worker-\d+)_segment\.(\d+)$/;

let c: CitusCluster;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-citus-streams-'));
  dirs.push(d);
  return d;
}

/** A directory store whose writers' first write calls `first(node)` (awaited), and which counts open writers per node. */
function watchedStore(dir: string, first: (node: string, open: Map<string, number>) => Promise<void>) {
  const open = new Map<string, number>();
  const peak = new Map<string, number>();
  const store = new Proxy(new DirectoryStore(dir), {
    get(t, p) {
      if (p === 'createWriter') {
        return (key: string, o?: { signal?: AbortSignal }) => {
          const w = t.createWriter(key, o);
          const node = KEY.exec(key)?.[1];
          let started = false;
          let closed = false;
          const close = () => { if (started && !closed && node) { closed = true; open.set(node, open.get(node)! - 1); } };
          return {
            write: async (b: Buffer) => {
              if (!started && node) {
                started = true;
                open.set(node, (open.get(node) ?? 0) + 1);
                peak.set(node, Math.max(peak.get(node) ?? 0, open.get(node)!));
                await first(node, open);
              }
              return w.write(b);
            },
            finish: async () => { try { return await w.finish(); } finally { close(); } },
            abort: async () => { try { return await w.abort(); } finally { close(); } },
          };
        };
      }
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
  return { store, peak };
}

/** Rows per worker, counted on the workers' shard tables themselves. */
async function rowsPerWorker(): Promise<Record<string, number>> {
  const plan = await planExport({ source: c.coordinator.url(), tables: ['events'], streams: 1 });
  const out: Record<string, number> = {};
  for (const r of plan.tables[0]!.reads) {
    const node = plan.nodes.find((n) => n.name === r.node)!;
    const w = c.workers.find((x) => x.port === node.endpoint.port)!;
    const [n] = await w.query<{ n: string }>(`SELECT count(*) AS n FROM "${r.relation.schema}"."${r.relation.name}"`);
    out[r.node] = (out[r.node] ?? 0) + Number(n!.n);
  }
  return out;
}

async function manifestOf(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

describe.skipIf(missing !== undefined)('Citus: shards of one worker at once', () => {
  beforeAll(async () => {
    c = await startCitusCluster({ name: 'cstreams' });
    await c.query('CREATE TABLE events (id int NOT NULL, payload text NOT NULL)');
    await c.query(`SET citus.shard_count = 8; SELECT create_distributed_table('events', 'id')`);
    await c.query(`INSERT INTO events SELECT g, md5(g::text) || repeat('z', g % 30) FROM generate_series(1, ${ROWS}) g`);
  }, 180_000);

  afterAll(async () => {
    await c?.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('streams 2: each worker\'s 4 shards in 2 units of whole shards, read 2 at once; numbers contiguous, objects one shard each, every row once', async () => {
    const plan = await planExport({ source: c.coordinator.url(), tables: ['events'], segmentSize: CAP, streams: 2 });
    expect(plan.tables[0]!.streams!.map((s) => [s.node, s.streams]).sort()).toEqual([['worker-1', 2], ['worker-2', 2]]);
    expect(plan.concurrency).toBe(4);
    const dir = await tmp();
    // Each worker's first writer waits (up to 5 s) for a second one of the same worker.
    const { store, peak } = watchedStore(dir, async (node, open) => {
      for (let i = 0; i < 100 && open.get(node)! < 2; i++) await new Promise((r) => setTimeout(r, 50));
    });
    const res = await exportTables({ plan, to: store });
    expect(Object.fromEntries(peak)).toEqual({ 'worker-1': 2, 'worker-2': 2 });
    const m = await manifestOf(dir);
    expect(res.manifest.tables[0]!.rows).toBe(ROWS);
    expect(m.objects.reduce((a, o) => a + o.rows, 0)).toBe(ROWS);
    for (const node of ['worker-1', 'worker-2']) {
      const nums = m.objects.filter((o) => o.node === node).map((o) => o.segment).sort((a, b) => a - b);
      expect(nums).toEqual(nums.map((_, i) => i));
    }
    for (const o of m.objects) expect(o.shards).toHaveLength(1);
    // Every shard's rows are in objects of that shard only, and all of them.
    const shardRows = new Map<string, number>();
    for (const o of m.objects) shardRows.set(o.shards![0]!, (shardRows.get(o.shards![0]!) ?? 0) + o.rows);
    expect(shardRows.size).toBe(8);
    const ids = new Set<number>();
    for (const o of m.objects) for (const l of (await readFile(join(dir, o.key), 'utf8')).split('\n').slice(0, -1)) ids.add(Number(l.split('\t')[0]));
    expect(ids.size).toBe(ROWS);
  }, 120_000);

  it('one snapshot per worker: rows inserted after a worker\'s first stream began are in none of its streams', async () => {
    const before = await rowsPerWorker();
    const dir = await tmp();
    let inserted = false;
    // Concurrency 1: the worker's second stream starts after the insert, and must not see it.
    const { store } = watchedStore(dir, async (node) => {
      if (node !== 'worker-1' || inserted) return;
      inserted = true;
      await c.query(`INSERT INTO events SELECT g, 'late' FROM generate_series(${ROWS + 1}, ${ROWS + 400}) g`);
    });
    await exportTables({ source: c.coordinator.url(), tables: ['events'], segmentSize: CAP, streams: 2, concurrency: 1, to: store });
    expect(inserted).toBe(true);
    const after = await rowsPerWorker();
    expect(after['worker-1']).toBeGreaterThan(before['worker-1']!);
    const m = await manifestOf(dir);
    const w1 = m.objects.filter((o) => o.node === 'worker-1');
    expect(new Set(w1.map((o) => o.shards![0]!)).size).toBe(4);
    expect(w1.reduce((a, o) => a + o.rows, 0)).toBe(before['worker-1']);
    for (const o of w1) expect(await readFile(join(dir, o.key), 'utf8')).not.toContain('\tlate\n');
    await c.query(`DELETE FROM events WHERE id > ${ROWS}`);
  }, 120_000);
});
