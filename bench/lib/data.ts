import { spawnSync } from 'node:child_process';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { BENCH_PASSWORD, psqlEnv, type BenchServer } from './cluster.js';
import { PG_SUPERUSER } from '../../test/helpers/pg.js';

/** The benchmark table: mixed types, and text that needs escaping in TEXT and quoting in CSV. */
export const TABLE = 'bench_t';
/** Import target (same shape, emptied before every repetition). */
export const IMPORT_TABLE = 'bench_in';

const COLUMNS = `
  id bigint NOT NULL,
  k integer,
  amount numeric(14,2),
  ratio double precision,
  flag boolean,
  created timestamptz,
  day date,
  name text,
  note text,
  tags text[],
  doc jsonb,
  uid uuid`;

export function tableDDL(name: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (${COLUMNS})`;
}

/** Rows of node `i` have ids in [i·1e12, (i+1)·1e12): disjoint, so the coordinator can range-partition. */
export const ID_SPAN = 1_000_000_000_000;

/** SELECT producing rows for ids g in [from, to]. The 7-way CASE covers tab, newline, backslash, quotes+comma, UTF-8, CR, plain. */
export function generateSQL(from: number, to: number): string {
  return `SELECT g,
    (g % 100000)::int,
    ((g * 7919) % 100000000) / 100.0,
    CASE WHEN g % 50 = 0 THEN NULL ELSE (g % 9973) / 7.0 END,
    CASE WHEN g % 17 = 0 THEN NULL ELSE g % 3 = 0 END,
    timestamptz '2020-01-01 00:00:00+00' + (g % 100000000) * interval '1 second',
    date '2000-01-01' + (g % 10000)::int,
    'name-' || g || CASE g % 7 WHEN 0 THEN E'\\ttab' WHEN 1 THEN E'new\\nline' WHEN 2 THEN E'back\\\\slash'
                              WHEN 3 THEN '"quoted", comma' WHEN 4 THEN 'üñíçødé ✓' WHEN 5 THEN E'cr\\rreturn' ELSE '' END,
    CASE WHEN g % 10 = 0 THEN NULL ELSE left(repeat(md5(g::text), 3), (g % 90)::int) END,
    ARRAY['a' || (g % 10), 'b,' || (g % 7), 'c"d', NULL],
    jsonb_build_object('id', g, 'name', 'x' || (g % 1000), 'nested', jsonb_build_object('q', 'he said "hi"', 'v', g % 13), 'list', jsonb_build_array(1, 2, g % 5)),
    md5(g::text)::uuid
  FROM generate_series(${from}::int8, ${to}::int8) g`;
}

/** Average bytes per row in COPY TEXT, measured on a sample. */
export async function bytesPerRow(s: BenchServer): Promise<number> {
  const n = 20000;
  const c = new pg.Client({ connectionString: s.url() });
  await c.connect();
  try {
    let bytes = 0;
    const st = c.query(pgCopy.to(`COPY (${generateSQL(1, n)}) TO STDOUT`));
    for await (const chunk of st) bytes += (chunk as Buffer).length;
    return bytes / n;
  } finally {
    await c.end();
  }
}

/** Rows currently on a node (its table holds ids i·1e12 + 1 … i·1e12 + count). */
export async function rowCount(s: BenchServer, table = TABLE): Promise<number> {
  const r = await s.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(r[0]!.n);
}

/** Grow node i's table to `rows` rows, in batches, then VACUUM FREEZE so reads never write hint bits. */
export async function growNode(s: BenchServer, i: number, rows: number): Promise<void> {
  await s.query(tableDDL(TABLE));
  await s.query(tableDDL(IMPORT_TABLE));
  let have = await rowCount(s);
  const batch = 500_000;
  while (have < rows) {
    const to = Math.min(rows, have + batch);
    await s.query(`INSERT INTO ${TABLE} ${generateSQL(i * ID_SPAN + have + 1, i * ID_SPAN + to)}`);
    have = to;
  }
  await s.query(`VACUUM (FREEZE, ANALYZE) ${TABLE}`);
  await s.query('CHECKPOINT');
}

/** Coordinator: postgres_fdw, one foreign range partition per node, so a plain SELECT runs through it. */
export async function setupCoordinator(coord: BenchServer, nodes: BenchServer[]): Promise<void> {
  await coord.query('CREATE EXTENSION IF NOT EXISTS postgres_fdw');
  await coord.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (${COLUMNS}) PARTITION BY RANGE (id)`);
  for (const [i, n] of nodes.entries()) {
    await coord.query(`CREATE SERVER ${n.name} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '${n.port}', dbname 'bench')`);
    await coord.query(`CREATE USER MAPPING FOR CURRENT_USER SERVER ${n.name} OPTIONS (user '${PG_SUPERUSER}', password '${BENCH_PASSWORD}')`);
    await coord.query(`CREATE FOREIGN TABLE ${TABLE}_${n.name} PARTITION OF ${TABLE} FOR VALUES FROM (${i * ID_SPAN}) TO (${(i + 1) * ID_SPAN}) SERVER ${n.name} OPTIONS (table_name '${TABLE}')`);
  }
}

/**
 * Read the bench table once with psql's COPY into /dev/null, untimed, before the first timed run:
 * the first read after loading cost the server ≈ 1.5× the later ones (measured: 0.84 against
 * 0.51–0.59 CPU-s for 200k rows), and a section with one repetition always ran the same
 * contestant first.
 */
export function warmTable(s: BenchServer): void {
  const r = spawnSync('psql', [...s.psqlArgs(), '-c', `\\copy (${nodeSelectSQL()}) TO '/dev/null'`], { env: psqlEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql warm-up read failed: ${r.stderr}`);
}

/** The SELECT segferry issues on each node (quoted column list): the limit runs the same. */
export const COLUMN_NAMES = ['id', 'k', 'amount', 'ratio', 'flag', 'created', 'day', 'name', 'note', 'tags', 'doc', 'uid'];
export function nodeSelectSQL(): string {
  return `SELECT ${COLUMN_NAMES.map((c) => `"${c}"`).join(', ')} FROM "public"."${TABLE}"`;
}
