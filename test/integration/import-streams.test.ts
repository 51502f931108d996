import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DirectoryStore, exportTables, importTables, planImport, SegferryError, type Manifest } from '../../lib/index.js';
import { startServer, type PgServer } from '../helpers/pg.js';

// import --streams: several objects loaded into one destination node at once, each in its own
// transaction with its ledger row (docs/streams.md#import).

const ROWS = 30_000;
const CAP = 48 * 1024;

let server: PgServer;
let dir: string;
let manifest: Manifest;

/**
 * The export's directory, counting the reads open at once. `hold`: each read waits until that
 * many are open (or 5 s), so the loaders meet at a known point; `atHold` runs once when they do.
 */
function countingStore(o: { hold?: number; atHold?: () => Promise<void> } = {}) {
  const st = { open: 0, peak: 0, reads: 0 };
  let release: (() => void) | undefined;
  const met = new Promise<void>((r) => { release = r; });
  let fired = false;
  const store = new Proxy(new DirectoryStore(dir), {
    get(t, p) {
      if (p === 'read') {
        return async (key: string, opts?: { signal?: AbortSignal }): Promise<Readable> => {
          st.reads++;
          st.open++;
          st.peak = Math.max(st.peak, st.open);
          let closed = false;
          const close = () => { if (!closed) { closed = true; st.open--; } };
          try {
            if (o.hold !== undefined) {
              if (st.open >= o.hold && !fired) {
                fired = true;
                await o.atHold?.();
                release!();
              }
              await Promise.race([met, new Promise((r) => setTimeout(r, 5000))]);
            }
            const s = await t.read(key, opts);
            s.once('close', close);
            return s;
          } catch (e) {
            close();
            throw e;
          }
        };
      }
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
  return { store, st };
}

async function ledger(): Promise<{ key: string; n: number }[]> {
  const r = await server.query<{ key: string; n: string }>(`SELECT object_key AS key, count(*) AS n FROM segferry.loads GROUP BY 1 ORDER BY 1`, [], 'dst');
  return r.map((x) => ({ key: x.key, n: Number(x.n) }));
}

async function sameRows(): Promise<void> {
  const q = `SELECT count(*)::int8 AS n, sum(hashtext(id::text || payload))::int8 AS h FROM items`;
  const [a] = await server.query<{ n: string; h: string }>(q);
  const [b] = await server.query<{ n: string; h: string }>(q, [], 'dst');
  expect(b).toEqual(a);
}

beforeAll(async () => {
  server = await startServer({ name: 'imp-streams' });
  await server.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT g, md5(g::text) || repeat('y', g % 50) FROM generate_series(1, ${ROWS}) g`);
  await server.query('CREATE DATABASE dst');
  await server.query('CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL)', [], 'dst');
  dir = await mkdtemp(join(tmpdir(), 'sf-imp-streams-'));
  manifest = (await exportTables({ source: server.url(), tables: ['items'], to: dir, segmentSize: CAP, streams: 1 })).manifest;
  expect(manifest.objects.length).toBeGreaterThanOrEqual(12);
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('import --streams', () => {
  it('4 streams into one node: 4 objects at once, never more, each loaded exactly once; a rerun loads nothing', async () => {
    const { store, st } = countingStore({ hold: 4 });
    const r = await importTables({ from: store, target: server.url('dst'), streams: 4, concurrency: 8, truncate: true });
    expect(r.plan.streams).toEqual({ coordinator: 4 });
    expect(st.peak).toBe(4);
    expect(r.loaded).toBe(manifest.objects.length);
    const l = await ledger();
    expect(l.map((x) => x.key)).toEqual(manifest.objects.map((o) => o.key).sort());
    expect(l.every((x) => x.n === 1)).toBe(true);
    await sameRows();

    const again = countingStore();
    const r2 = await importTables({ from: again.store, target: server.url('dst'), streams: 4 });
    expect(r2.loaded).toBe(0);
    expect(r2.skipped).toBe(manifest.objects.length);
    expect(again.st.reads).toBe(0);
  }, 120_000);

  it('auto asks the node and plans one count per node; --streams 1 keeps loads one at a time', async () => {
    const { store, st } = countingStore();
    const r = await importTables({ from: store, target: server.url('dst'), streams: 1, concurrency: 8, truncate: true });
    expect(st.peak).toBe(1);
    expect(r.loaded).toBe(manifest.objects.length);
    const p = await planImport({ from: dir, target: server.url('dst'), truncate: true });
    // Test servers: max_parallel_workers 8, max_connections 100 → min(8, 4, free/4) = 4.
    expect(p.streams).toEqual({ coordinator: 4 });
    expect(p.concurrency).toBe(4);
  }, 120_000);

  it('a node\'s sessions killed mid-import: the import fails, the rerun completes, every object once', async () => {
    const { store } = countingStore({
      hold: 4,
      // Four loaders are inside their transactions (ledger row claimed, object opened): end them.
      atHold: async () => {
        await server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segferry import' AND datname = 'dst'`);
      },
    });
    const err = await importTables({ from: store, target: server.url('dst'), streams: 4, concurrency: 4, truncate: true }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SegferryError);
    const before = await ledger();
    expect(before.length).toBeLessThan(manifest.objects.length);

    const r = await importTables({ from: dir, target: server.url('dst'), streams: 4 });
    expect(r.loaded + r.skipped).toBe(manifest.objects.length);
    expect(r.loaded).toBe(manifest.objects.length - before.length);
    const l = await ledger();
    expect(l.map((x) => x.key)).toEqual(manifest.objects.map((o) => o.key).sort());
    expect(l.every((x) => x.n === 1)).toBe(true);
    await sameRows();
  }, 120_000);
});
