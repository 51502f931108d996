/**
 * Issue 14, postgres_fdw: a coordinator's schema carried without its foreign parts. export
 * --all through the coordinator, import --create into a single server: the partitioned table
 * comes back locally partitioned with the same bounds, with no foreign server, user mapping or
 * foreign table, and the same rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, SegferryError } from '../../lib/index.js';
import { pgDumpEnv } from '../../lib/ddl/pgdump.js';
import { parseConnection } from '../../lib/pg/conn.js';
import { manifestSchemaErrors } from '../helpers/manifest-schema.js';
import { rowMultiset, sameMultiset, startFdwCluster, type SourceCluster } from '../helpers/fixtures.js';

let src: SourceCluster;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-wholedb-fdw-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  src = await startFdwCluster({ nodes: 2, rows: 3000, replicatedRows: 50 });
  // A local table beside the foreign ones: carried as pg_dump prints it, keys and all.
  await src.coordinator.query(`CREATE TABLE public.notes (id serial PRIMARY KEY, body text NOT NULL); INSERT INTO public.notes (body) SELECT 'n' || i FROM generate_series(1, 20) i`);
});

afterAll(async () => {
  await src?.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const BOUNDS = `SELECT c.relname AS name, c.relkind::text AS kind, pg_get_expr(c.relpartbound, c.oid) AS bound, pg_get_partkeydef(p.oid) AS parent_key
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = 'orders' ORDER BY 1`;

describe('postgres_fdw coordinator → single server with DDL (issue 14)', () => {
  it('export --all, import --create: locally partitioned table with the same bounds and rows; no foreign server, user mapping or foreign table in the DDL or at the destination', async () => {
    const dir = await tmp();
    const ex = await exportTables({ source: src.coordinator.url(), all: true, to: dir, segmentSize: 512 * 1024 });
    expect(ex.manifest.source.topology).toBe('fdw');
    expect(ex.manifest.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(['public.notes', 'public.orders']);
    expect(ex.manifest.ddl!.snapshot).toBe('before-data');
    expect(manifestSchemaErrors(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')))).toBe('');
    const pre = await readFile(join(dir, ex.manifest.ddl!.pre.key), 'utf8');
    const post = await readFile(join(dir, ex.manifest.ddl!.post.key), 'utf8');
    for (const text of [pre, post]) {
      expect(text).not.toMatch(/SERVER|USER MAPPING|FOREIGN|postgres_fdw/);
      for (const n of src.nodes) expect(text).not.toContain(n.password);
    }
    expect(pre).toContain('PARTITION BY HASH (id)');
    expect(pre).toContain('CREATE TABLE "public"."orders_p0" PARTITION OF "public"."orders" FOR VALUES WITH (modulus 2, remainder 0);');

    const db = `dst_${Math.random().toString(36).slice(2, 8)}`;
    await src.coordinator.query(`CREATE DATABASE ${db}`);
    const res = await importTables({ from: dir, target: src.coordinator.url(db), create: true });
    expect(res.rows).toBe(3000 + 20);
    const want = (await src.coordinator.query(BOUNDS)).map((r: { kind: string }) => ({ ...r, kind: 'r' }));
    expect(want).toHaveLength(2);
    expect(await src.coordinator.query(BOUNDS, [], db)).toEqual(want);
    const foreign = await src.coordinator.query(`SELECT (SELECT count(*)::int FROM pg_foreign_server) AS servers, (SELECT count(*)::int FROM pg_user_mappings) AS mappings,
                                                        (SELECT count(*)::int FROM pg_foreign_table) AS tables, (SELECT count(*)::int FROM pg_extension WHERE extname = 'postgres_fdw') AS ext`, [], db);
    expect(foreign).toEqual([{ servers: 0, mappings: 0, tables: 0, ext: 0 }]);
    for (const t of ['public.orders', 'public.notes']) {
      expect(sameMultiset(await rowMultiset(src.coordinator, `SELECT * FROM ${t}`), await rowMultiset(src.coordinator, `SELECT * FROM ${t}`, db)), t).toBe(true);
    }
    // The rows sit in the local partitions, routed by the same hash bounds as at the source.
    for (let i = 0; i < 2; i++) {
      const n = await src.coordinator.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.orders_p${i}`, [], db);
      expect(n).toEqual(await src.coordinator.query(`SELECT count(*)::int AS n FROM public.orders_p${i}`));
    }
    const dup = await src.coordinator.query(`INSERT INTO public.notes (id, body) VALUES (1, 'x')`, [], db).catch((e: { code?: string }) => e.code);
    expect(dup).toBe('23505');
  });

  it('a view over the partitioned table and a view calling a function: export --all, import --create into a single server gives both views, returning the same rows', async () => {
    await src.coordinator.query(`CREATE FUNCTION public.bucket(bigint) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT ($1 % 7)::int';
      CREATE VIEW public.recent_orders AS SELECT * FROM public.orders WHERE id > 2000;
      CREATE VIEW public.orders_by_bucket AS SELECT public.bucket(id) AS bucket, count(*) AS n FROM public.orders GROUP BY 1`);
    const dir = await tmp();
    const ex = await exportTables({ source: src.coordinator.url(), all: true, to: dir, segmentSize: 512 * 1024 });
    expect(ex.manifest.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(['public.notes', 'public.orders']);
    const db = `dst_${Math.random().toString(36).slice(2, 8)}`;
    await src.coordinator.query(`CREATE DATABASE ${db}`);
    await importTables({ from: dir, target: src.coordinator.url(db), create: true });
    const views = `SELECT c.relname AS name, c.relkind::text AS kind, pg_get_viewdef(c.oid) AS def FROM pg_class c WHERE c.relname IN ('recent_orders', 'orders_by_bucket') ORDER BY 1`;
    const want = await src.coordinator.query(views);
    expect(want.map((v: { name: string; kind: string }) => `${v.name}:${v.kind}`)).toEqual(['orders_by_bucket:v', 'recent_orders:v']);
    expect(await src.coordinator.query(views, [], db)).toEqual(want);
    for (const v of ['public.recent_orders', 'public.orders_by_bucket']) {
      const a = await rowMultiset(src.coordinator, `SELECT * FROM ${v}`);
      expect(a.size, v).toBeGreaterThan(1);
      expect(sameMultiset(a, await rowMultiset(src.coordinator, `SELECT * FROM ${v}`, db)), v).toBe(true);
    }
  });

  it('export --table orders --ddl (the table with what it depends on): its local parent and partitions with the same bounds, no foreign part, the same rows', async () => {
    const dir = await tmp();
    const ex = await exportTables({ source: src.coordinator.url(), tables: ['public.orders'], ddl: true, to: dir });
    expect(ex.manifest.ddl!.scope).toBe('tables');
    const pre = await readFile(join(dir, ex.manifest.ddl!.pre.key), 'utf8');
    expect(pre).not.toMatch(/SERVER|USER MAPPING|FOREIGN|postgres_fdw|notes|recent_orders/);
    const db = `dst_${Math.random().toString(36).slice(2, 8)}`;
    await src.coordinator.query(`CREATE DATABASE ${db}`);
    const res = await importTables({ from: dir, target: src.coordinator.url(db), create: true });
    expect(res.rows).toBe(3000);
    expect(await src.coordinator.query(BOUNDS, [], db)).toEqual((await src.coordinator.query(BOUNDS)).map((r: { kind: string }) => ({ ...r, kind: 'r' })));
    expect(sameMultiset(await rowMultiset(src.coordinator, 'SELECT * FROM public.orders'), await rowMultiset(src.coordinator, 'SELECT * FROM public.orders', db))).toBe(true);
  });

  it('the coordinator\'s own rows are read in the snapshot its DDL was dumped in: a row inserted once the DDL is taken (at its warning event) is not exported', async () => {
    await src.coordinator.query(`CREATE TABLE public.owners (id int PRIMARY KEY);
      CREATE TABLE public.pets (id int PRIMARY KEY, owner int REFERENCES public.owners (id));
      INSERT INTO public.owners SELECT generate_series(1, 3); INSERT INTO public.pets SELECT i, 1 + i % 3 FROM generate_series(1, 9) i`);
    const dir = await tmp();
    const inserted: (number | null)[] = [];
    // captureDdl warns (the foreign key to the unselected owners) after pg_dump ran in the DDL
    // snapshot and before any row is read; psql runs synchronously inside the event handler.
    const ex = await exportTables({
      source: src.coordinator.url(), tables: ['public.pets', 'public.orders'], ddl: true, to: dir,
      onEvent: (e) => {
        if (e.type !== 'warning' || e.code !== 'foreign-key-left-out') return;
        inserted.push(spawnSync('psql', ['-v', 'ON_ERROR_STOP=1', '-c', 'INSERT INTO public.pets VALUES (100, 1)'], { env: pgDumpEnv(parseConnection(src.coordinator.url())) }).status);
      },
    });
    expect(inserted).toEqual([0]);
    expect(await src.coordinator.query('SELECT count(*)::int AS n FROM public.pets')).toEqual([{ n: 10 }]);
    expect(ex.manifest.source.topology).toBe('fdw');
    expect(ex.manifest.ddl!.snapshot).toBe('before-data'); // the data nodes' rows: their own snapshots
    expect(ex.plan.snapshots?.coordinator).toMatch(/^[0-9A-F]+-[0-9A-F]+-\d+$/);
    expect(ex.manifest.tables.map((t) => `${t.schema}.${t.name}:${t.rows}`)).toEqual(['public.pets:9', 'public.orders:3000']);
  });

  it('a foreign table that is not a partition, selected with --ddl: ERR_DDL_UNSUPPORTED naming it, no manifest', async () => {
    const dir = await tmp();
    const e = await exportTables({ source: src.coordinator.url(), tables: ['nation'], ddl: true, to: dir }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_DDL_UNSUPPORTED');
    expect((e as SegferryError).message).toContain('public.nation is a foreign table');
    expect(existsSync(join(dir, 'manifest.json'))).toBe(false);
  });
});
