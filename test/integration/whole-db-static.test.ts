/**
 * Issue 14, static topologies: `import --create` into several nodes runs the DDL on every node
 * (the node-local definition); and a restore that fails in post-data (node-local keys that
 * collide once two nodes are merged into one server) keeps pre-data and the data, rolls
 * post-data back whole, and a rerun after the cause is fixed finishes it.
 * One server, one database per node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, SegferryError } from '../../lib/index.js';
import { findPgDump, runPgDump } from '../../lib/ddl/pgdump.js';
import { parseConnection } from '../../lib/pg/conn.js';
import { rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { startServer, type PgServer } from '../helpers/pg.js';

let pgs: PgServer;
let exported: string;
const dirs: string[] = [];

const NODE_SQL = (owner: string, from: number) => `
CREATE TYPE public.mood AS ENUM ('ok', 'meh');
CREATE TABLE public.owners (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE public.items (id int PRIMARY KEY, mood public.mood NOT NULL DEFAULT 'ok', owner int REFERENCES public.owners (id));
CREATE INDEX items_owner ON public.items (owner);
COMMENT ON TABLE public.items IS 'node-local rows';
INSERT INTO public.owners (name) SELECT '${owner}' || i FROM generate_series(1, 5) i;
INSERT INTO public.items SELECT i, (ARRAY['ok','meh'])[1 + i % 2]::public.mood, 1 + i % 5 FROM generate_series(${from}, ${from + 99}) i;
`;

beforeAll(async () => {
  pgs = await startServer({ name: 'wholedb-static' });
  for (const db of ['s1', 's2']) await pgs.query(`CREATE DATABASE ${db}`);
  await pgs.query(NODE_SQL('o', 1), [], 's1');
  await pgs.query(NODE_SQL('p', 101), [], 's2');
  exported = await mkdtemp(join(tmpdir(), 'sf-wholedb-static-'));
  dirs.push(exported);
  await exportTables({ topology: { nodes: [{ name: 'n1', url: pgs.url('s1') }, { name: 'n2', url: pgs.url('s2') }] }, all: true, to: exported });
});

afterAll(async () => {
  await pgs?.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const dump = (db: string) => runPgDump(findPgDump(15), parseConnection(pgs.url(db)), ['--schema-only', '--exclude-schema=segferry']);

describe('import --create into a static topology (issue 14)', () => {
  it('runs the DDL on every node: each node has the source node\'s definitions, its own rows, keys and sequence', async () => {
    for (const db of ['d1', 'd2']) await pgs.query(`CREATE DATABASE ${db}`);
    const res = await importTables({ from: exported, topology: { nodes: [{ name: 'n1', url: pgs.url('d1') }, { name: 'n2', url: pgs.url('d2') }] }, create: true });
    expect(res.rows).toBe(2 * (100 + 5));
    expect(res.notes.join('\n')).toContain('schema on each of the 2 nodes: n1 created, n2 created');
    for (const [s, d] of [['s1', 'd1'], ['s2', 'd2']] as const) {
      expect(await dump(d), d).toBe(await dump(s));
      for (const t of ['public.owners', 'public.items']) {
        expect(sameMultiset(await rowMultiset(pgs, `SELECT * FROM ${t}`, s), await rowMultiset(pgs, `SELECT * FROM ${t}`, d)), `${d} ${t}`).toBe(true);
      }
      const key = await pgs.query(`INSERT INTO public.items (id) VALUES ((SELECT min(id) FROM public.items))`, [], d).catch((e: { code?: string }) => e.code);
      expect(key, d).toBe('23505');
    }
    // The first node's sequence values, on every node (node-local definitions).
    expect(await pgs.query('SELECT last_value FROM public.owners_id_seq', [], 'd2')).toEqual([{ last_value: '5' }]);
  });

  it('a conflicting table on one node stops the import before pre-data runs on any node', async () => {
    for (const db of ['c1', 'c2']) await pgs.query(`CREATE DATABASE ${db}`);
    await pgs.query('CREATE TABLE public.owners (id bigint, name text)', [], 'c2');
    const e = await importTables({ from: exported, topology: { nodes: [{ name: 'n1', url: pgs.url('c1') }, { name: 'n2', url: pgs.url('c2') }] }, create: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_DDL_CONFLICT');
    expect((e as SegferryError).node).toBe('n2');
    expect((e as SegferryError).message).toContain('on node n2');
    expect(await pgs.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('owners', 'items')`, [], 'c1')).toEqual([{ n: 0 }]);
  });
});

describe('a failure in post-data (issue 14: "nothing half-created, or a rerun finishes it")', () => {
  it('node-local keys collide in one server: post-data rolls back whole (pre-data and rows stay), a rerun fails the same way and loads nothing, a rerun after the fix finishes', async () => {
    await pgs.query('CREATE DATABASE merged');
    const target = pgs.url('merged');
    const e = await importTables({ from: exported, target, create: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_DATABASE');
    expect((e as SegferryError).sqlState).toBe('23505');
    expect((e as SegferryError).message).toMatch(/DDL post-data statement at line \d+/);
    // Pre-data and the data are committed; nothing of post-data is.
    const state = `SELECT (SELECT count(*)::int FROM public.items) AS items, (SELECT count(*)::int FROM public.owners) AS owners,
                          (SELECT count(*)::int FROM pg_constraint WHERE conrelid IN ('public.items'::regclass, 'public.owners'::regclass)) AS constraints,
                          (SELECT count(*)::int FROM pg_indexes WHERE schemaname = 'public') AS indexes,
                          (SELECT string_agg(phase, ',' ORDER BY phase) FROM segferry.ddl_phases) AS phases`;
    expect(await pgs.query(state, [], 'merged')).toEqual([{ items: 200, owners: 10, constraints: 0, indexes: 0, phases: 'pre' }]);

    const again = await importTables({ from: exported, target, create: true }).catch((x: unknown) => x);
    expect((again as SegferryError).sqlState).toBe('23505');
    expect(await pgs.query(state, [], 'merged')).toEqual([{ items: 200, owners: 10, constraints: 0, indexes: 0, phases: 'pre' }]);

    // The fix: the second node's owners get ids of their own.
    await pgs.query(`UPDATE public.owners SET id = id + 100 WHERE name LIKE 'p%'; UPDATE public.items SET owner = owner + 100 WHERE id > 100`, [], 'merged');
    const done = await importTables({ from: exported, target, create: true });
    expect(done.loaded).toBe(0);
    expect(done.notes.join('\n')).toMatch(/finishing an earlier run; post-data: \d+ statements; sequences: 1 set; ANALYZE: 2 tables/);
    expect(await pgs.query(state, [], 'merged')).toEqual([{ items: 200, owners: 10, constraints: 4, indexes: 4, phases: 'post,pre' }]);
    expect(await dump('merged')).toBe(await dump('s1'));
  });
});
