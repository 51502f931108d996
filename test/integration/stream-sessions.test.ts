import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, planExport, SegferryError } from '../../lib/index.js';
import { CLAIM_KEY } from '../../lib/store/claim.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { startFdwCluster } from '../helpers/fixtures.js';
import pg from 'pg';

// The sessions of a --streams export (issue 17): the snapshot session and the first streams'
// sessions are opened together, ahead of the streams' first queries, and the disconnects are
// awaited after the manifest. Whatever path the export takes, none is left open once it returns.
// A run that is not a resume starts them right after planning, before its claim and checkpoint.

let server: PgServer;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-stream-sessions-'));
  dirs.push(d);
  return d;
}

/** segferry's sessions on the server, waited for until none is left (at most 100 × 50 ms). */
async function ourSessions(): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < 100; i++) {
    const r = await server.query<{ a: string }>(`SELECT application_name AS a FROM pg_stat_activity WHERE application_name LIKE 'segferry%'`);
    left = r.map((x) => x.a);
    if (left.length === 0) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return left;
}

beforeAll(async () => {
  server = await startServer({ name: 'stream-sessions' });
  await server.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g; ANALYZE`);
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('the sessions of a streams export', () => {
  it('a finished export leaves none open, and its streams read every row once', async () => {
    const to = await tmp();
    const r = await exportTables({ source: server.url(), tables: ['items'], to, streams: 4, segmentSize: 64 * 1024 });
    expect(r.plan.tables[0]!.streams![0]!.streams).toBe(4);
    expect(r.manifest.objects.reduce((a, o) => a + o.rows, 0)).toBe(20000);
    expect(await ourSessions()).toEqual([]);
  });

  it('a stream that fails before its first query closes the session opened for it', async () => {
    // A plan whose filter the exporter refuses (lib/pg/filter.ts): each stream fails after its
    // session was opened ahead and before it used it.
    const plan = await planExport({ source: server.url(), tables: ['items'], streams: 2 });
    expect(plan.tables[0]!.streams![0]!.streams).toBe(2);
    const err = await exportTables({ plan: { ...plan, filter: 'id > 0; DROP TABLE items' }, source: server.url(), tables: ['items'], to: await tmp() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SegferryError);
    expect((err as SegferryError).code).toBe('ERR_INVALID_OPTION');
    expect(await ourSessions()).toEqual([]);
    expect((await server.query<{ n: string }>('SELECT count(*) AS n FROM items'))[0]!.n).toBe('20000');
  });

  it('streams started after planning are closed when the claim is then refused', async () => {
    // Planning waits on a lock; meanwhile another run claims the prefix (after the export's check
    // of the prefix, before its claim). The streams' sessions connect while planning runs, the
    // snapshot is exported on the planning session once the plan is made, then the claim is refused: ERR_PREFIX_CLAIMED, nothing written, no session left. Every question
    // here goes through one session, so that pg_stat_database counts only the export's.
    const to = await tmp();
    const locker = new pg.Client({ connectionString: server.url() });
    await locker.connect();
    const one = async (sql: string) => Number((await locker.query<{ n: string }>(`SELECT pg_catalog.pg_stat_clear_snapshot(), (${sql}) AS n`)).rows[0]!.n);
    const sessions = () => one(`SELECT sessions FROM pg_stat_database WHERE datname = current_database()`);
    try {
      const before = await sessions();
      await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
      const run = exportTables({ source: server.url(), tables: ['items'], to, streams: 2 }).then(() => undefined, (e: unknown) => e);
      let waiting = 0;
      for (let i = 0; i < 200 && waiting === 0; i++) {
        await new Promise((res) => setTimeout(res, 25));
        waiting = await one(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segferry' AND wait_event_type = 'Lock'`);
      }
      expect(waiting).toBe(1);
      const claim = { kind: 'segferry-claim', version: 1, runId: 'run-of-someone-else', operation: 'export', host: 'elsewhere', pid: 4242, createdAt: new Date().toISOString() };
      await writeFile(join(to, CLAIM_KEY), JSON.stringify(claim));
      await locker.query('COMMIT');
      const err = await run;
      expect(err).toBeInstanceOf(SegferryError);
      expect((err as SegferryError).code).toBe('ERR_PREFIX_CLAIMED');
      expect(await readdir(to)).toEqual([CLAIM_KEY]);
      // The planning session (which then exported the snapshot) and both streams' sessions
      // (opened while planning ran) were opened and have ended (pg_stat_database counts a
      // session when it ends); a leaked one would also show in pg_stat_activity below.
      let ended = 0;
      for (let i = 0; i < 100 && ended < 3; i++) {
        ended = (await sessions()) - before;
        if (ended < 3) await new Promise((res) => setTimeout(res, 50));
      }
      await new Promise((res) => setTimeout(res, 200));
      expect((await sessions()) - before).toBe(3);
      expect(await ourSessions()).toEqual([]);
    } finally {
      await locker.end();
    }
  });

  it('sessions opened to the source while planning are closed unused when the plan reads other servers (postgres_fdw)', async () => {
    // topology auto guesses a single server: its first exporter session connects to the source
    // beside the planning session; the plan reads the data nodes, so that session goes unused.
    const cl = await startFdwCluster({ rows: 3000 });
    try {
      const r = await exportTables({ source: cl.coordinator.url(cl.database), tables: [cl.distributed], to: await tmp(), streams: 2 });
      expect(r.plan.topology).toBe('fdw');
      expect(r.manifest.tables[0]!.rows).toBe(3000);
      for (const s of [cl.coordinator, ...cl.nodes]) {
        const left = await s.query<{ a: string }>(`SELECT application_name AS a FROM pg_stat_activity WHERE application_name LIKE 'segferry%'`, [], cl.database);
        expect(left.map((x) => x.a)).toEqual([]);
      }
    } finally {
      await cl.destroy();
    }
  }, 120_000);
});
