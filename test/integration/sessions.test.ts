import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseError, RowCountMismatchError } from '../../lib/errors.js';
import { Sessions } from '../../lib/import/sessions.js';
import { closeQuietly, connect, parseConnection } from '../../lib/pg/conn.js';
import { exportSnapshot } from '../../lib/pg/snapshot.js';
import { startServer, type PgServer } from '../helpers/pg.js';

// Sessions.withSession (lib/import/sessions.ts) and exportSnapshot (lib/pg/snapshot.ts) on one
// real server. withSession: a session given back after
// a step is the next step's; one whose step failed is dropped (its transaction rolled back,
// never reused) and the error names the node, the action and the table. Acquire failures, which
// need no server: test/unit/sessions.test.ts.

let server: PgServer;
let s: Sessions;
const pid = (c: { query(sql: string): Promise<{ rows: { p: number }[] }> }) => c.query('SELECT pg_backend_pid() AS p').then((r) => r.rows[0]!.p);

beforeAll(async () => {
  server = await startServer({ name: 'sessions' });
  await server.query('CREATE TABLE t (id int PRIMARY KEY)');
  s = new Sessions(new Map([['n1', { name: 'n1', endpoint: parseConnection(server.url()) }]]), { TimeZone: 'UTC' }, 'segferry sessions test');
}, 120_000);

afterAll(async () => {
  await s?.closeAll();
  await server?.destroy();
});

describe('Sessions.withSession', () => {
  it('gives the session back after a step that succeeded: the next step runs on it', async () => {
    const first = await s.withSession('n1', 'step', pid);
    expect(await s.withSession('n1', 'step', pid)).toBe(first);
  });

  it('drops the session of a failed step (its transaction rolls back) and wraps the database error with node, action and table', async () => {
    const before = await s.withSession('n1', 'step', pid);
    const where: { table?: string } = {};
    const err = await s.withSession('n1', 'fill', async (c) => {
      await c.query('BEGIN');
      await c.query('INSERT INTO t VALUES (1)');
      where.table = 'public.t';
      await c.query('INSERT INTO t VALUES (1)');
    }, where).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatabaseError);
    expect(err).toMatchObject({ code: 'ERR_DATABASE', node: 'n1', table: 'public.t', sqlState: '23505' });
    expect((err as Error).message).toMatch(/^fill failed on node n1 for public\.t: /);
    // Never reused: the next step has another backend, and the failed one is gone.
    const after = await s.withSession('n1', 'step', pid);
    expect(after).not.toBe(before);
    const alive = () => server.query(`SELECT 1 FROM pg_stat_activity WHERE pid = ${before}`);
    // The backend ends once it sees the closed socket: wait for that, not for a time.
    for (let i = 0; i < 100 && (await alive()).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await alive()).toEqual([]);
    expect(await server.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 0 }]);
  });

  it('throws a SegferryError of the step as it is, and still drops the session', async () => {
    const before = await s.withSession('n1', 'step', pid);
    const mine = new RowCountMismatchError('counted 3, expected 4', { node: 'n1', table: 'public.t' });
    await expect(s.withSession('n1', 'count', async () => { throw mine; }, { table: 'other' })).rejects.toBe(mine);
    expect(await s.withSession('n1', 'step', pid)).not.toBe(before);
  });
});

describe('exportSnapshot', () => {
  it('exports the snapshot of an open REPEATABLE READ transaction: a session that imports it does not see rows committed after the export', async () => {
    const endpoint = parseConnection(server.url());
    await server.query('TRUNCATE t; INSERT INTO t VALUES (10), (11)');
    const snap = await exportSnapshot(endpoint, { node: 'n1', applicationName: 'segferry snapshot test', serverVersion: true });
    const reader = await connect(endpoint, { node: 'n1' });
    try {
      expect(snap.serverVersionNum).toBeGreaterThanOrEqual(150000);
      expect(snap.serverVersion).toMatch(/^\d+\.\d+/);
      expect((await snap.client.query<{ s: string }>("SELECT current_setting('transaction_isolation') AS s")).rows[0]!.s).toBe('repeatable read');
      await server.query('INSERT INTO t VALUES (12)');
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await reader.query(`SET TRANSACTION SNAPSHOT '${snap.id}'`);
      expect((await reader.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows[0]!.n).toBe(2);
      await reader.query('COMMIT');
    } finally {
      await closeQuietly(reader);
      await snap.client.query('COMMIT');
      await closeQuietly(snap.client);
    }
    expect(await server.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 3 }]);
  });

  it('reads the server version only when asked (the streams\' and held snapshots do not use it)', async () => {
    const snap = await exportSnapshot(parseConnection(server.url()), { node: 'n1', applicationName: 'segferry snapshot test' });
    try {
      expect(Object.keys(snap).sort()).toEqual(['client', 'id']);
    } finally {
      await snap.client.query('COMMIT');
      await closeQuietly(snap.client);
    }
  });
});
