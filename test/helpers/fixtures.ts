/**
 * Tricky test data and source-cluster layouts.
 *
 * The data is generated in SQL from `generate_series`, deterministically by `id`, so any test can
 * recompute what a given id range holds. Every value class a mover can get wrong appears many
 * times: text with tabs, LF, CRLF, lone CR, backslashes (also a literal `\N` and `\.`), quotes,
 * commas, semicolons, control characters; empty strings next to NULLs; multi-byte and combining
 * Unicode; ~100 KB texts; numeric(18,4) extremes; float NaN/±Infinity/-0/subnormals; bytea with
 * 0x00/0x0a; jsonb with nested quotes and JSON `null`; arrays with NULL elements, empty arrays and
 * elements with commas, quotes and braces; BC and far-future timestamps and dates.
 *
 * Deliberately *not* included (mention them in a test of their own if the library supports
 * them): numeric NaN/Infinity, timestamp/date ±infinity.
 */
import pg from 'pg';
import { startServers, type PgServer } from './pg.js';

// ---------------------------------------------------------------------------------------------
// Tricky table

/** Columns of the tricky table, in order. `id` is NOT NULL; every other column has NULLs. */
export const TRICKY_COLUMNS: { name: string; type: string }[] = [
  { name: 'id', type: 'bigint' },
  { name: 'grp', type: 'integer' },
  { name: 't', type: 'text' },
  { name: 'note', type: 'character varying(200)' },
  { name: 'amount', type: 'numeric(18,4)' },
  { name: 'f8', type: 'double precision' },
  { name: 'flag', type: 'boolean' },
  { name: 'ts', type: 'timestamp with time zone' },
  { name: 'd', type: 'date' },
  { name: 'js', type: 'jsonb' },
  { name: 'b', type: 'bytea' },
  { name: 'tags', type: 'text[]' },
];

/**
 * Rows with `id % BIG_TEXT_EVERY === BIG_TEXT_REMAINDER` have a ~100 KB `t` value (ids 1, 9974,
 * 19947, ...: 3 rows in 20k, 21 in 200k). All CASE moduli are primes >= 7 (or 23 for `t`) so that
 * a static cluster of 2..6 nodes, which places id on node `id % N`, still gets every value class
 * on every node.
 */
export const BIG_TEXT_EVERY = 9973;
/** See {@link BIG_TEXT_EVERY}. */
export const BIG_TEXT_REMAINDER = 1;
/** Repeated unit of the big texts (21 bytes of UTF-8) and its repeat count. */
const BIG_UNIT = 'big\t"row"\\,é漢🚀\n';
const BIG_REPEAT = 5000;
/** Approximate size in bytes of a big `t` value (105,000 bytes plus the id digits). */
export const BIG_TEXT_BYTES = Buffer.byteLength(BIG_UNIT) * BIG_REPEAT;

/** True when the tricky row with this id carries a ~100 KB text. */
export function isBigRow(id: number): boolean {
  return id % BIG_TEXT_EVERY === BIG_TEXT_REMAINDER;
}

/** Number of big-text rows among ids fromId..toId. */
export function countBigRows(fromId: number, toId: number): number {
  let n = 0;
  for (let id = fromId; id <= toId; id++) if (isBigRow(id)) n++;
  return n;
}

function columnList(): string {
  return TRICKY_COLUMNS.map((c) => c.name).join(', ');
}

/**
 * `CREATE TABLE <name> (id bigint NOT NULL, ...)`; with `partitionByHashOn` the table is
 * `PARTITION BY HASH (<column>)` (partitions are up to the caller). No primary key: a
 * partitioned parent with foreign partitions cannot have one.
 */
export function trickyTableDDL(qualifiedName: string, opts: { partitionByHashOn?: string } = {}): string {
  const cols = TRICKY_COLUMNS.map((c) => `  ${c.name} ${c.type}${c.name === 'id' ? ' NOT NULL' : ''}`).join(',\n');
  const part = opts.partitionByHashOn ? ` PARTITION BY HASH (${opts.partitionByHashOn})` : '';
  return `CREATE TABLE ${qualifiedName} (\n${cols}\n)${part}`;
}

const COMBINING_ACUTE = '\u0301';
const COMBINING_DIAERESIS = '\u0308';

/**
 * One SELECT-list expression per tricky column, in terms of `g` (the bigint id).
 * The SQL uses standard_conforming_strings (the default): backslashes are literal in '...'
 * and escapes only in E'...'.
 */
const TRICKY_EXPRESSIONS: string[] = [
  // id
  String.raw`g`,
  // grp
  String.raw`(g % 100)::integer`,
  // t
  String.raw`CASE WHEN g % ${BIG_TEXT_EVERY} = ${BIG_TEXT_REMAINDER} THEN g::text || ': ' || repeat(E'big\t"row"\\,é漢🚀\n', ${BIG_REPEAT})
   ELSE CASE g % 23
    WHEN 0 THEN NULL
    WHEN 1 THEN ''
    WHEN 2 THEN E'tab\there\t' || g
    WHEN 3 THEN E'line1\nline2 ' || g
    WHEN 4 THEN E'crlf\r\nend ' || g
    WHEN 5 THEN E'lone\rcr ' || g
    WHEN 6 THEN E'back\\slash \\N and \\\\ ' || g
    WHEN 7 THEN E'\\N'
    WHEN 8 THEN 'double "quotes", ''single'' quotes; semi; ' || g
    WHEN 9 THEN 'unicode é 漢字 🚀 e${COMBINING_ACUTE} a${COMBINING_DIAERESIS} ' || g
    WHEN 10 THEN 'NULL'
    WHEN 11 THEN '  padded  '
    WHEN 12 THEN '"'
    WHEN 13 THEN ','
    WHEN 14 THEN E'\\'
    WHEN 15 THEN E'"a",b\n"c\r\nd"\t\\.'
    WHEN 16 THEN E'\\.'
    WHEN 17 THEN ' '
    WHEN 18 THEN E'ctrl \x01\x1f\x7f ' || g
    WHEN 19 THEN E'trailing backslash \\'
    WHEN 20 THEN E'\t'
    WHEN 21 THEN 'zwj 👩‍👩‍👧 flag 🇫🇷 ' || g
    ELSE 'plain ' || g
   END END`,
  // note varchar(200)
  String.raw`CASE g % 11
    WHEN 0 THEN ''
    WHEN 1 THEN NULL
    WHEN 2 THEN E'v\\N'
    WHEN 3 THEN 'naïve café ' || g
    WHEN 4 THEN E'q"\',x;' || g
    WHEN 5 THEN repeat('abc,', 50)
    WHEN 6 THEN E'multi\nline\r\nnote\t' || g
    WHEN 7 THEN repeat('漢', 200)
    ELSE 'n' || g
   END`,
  // amount numeric(18,4)
  String.raw`CASE g % 13
    WHEN 0 THEN NULL
    WHEN 1 THEN 99999999999999.9999
    WHEN 2 THEN -99999999999999.9999
    WHEN 3 THEN 0
    WHEN 4 THEN 0.0001
    WHEN 5 THEN -0.0001
    WHEN 6 THEN 12345678901234.5678
    ELSE ((g * 7919) % 100000000000)::numeric / 10000 * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END)
   END::numeric(18,4)`,
  // f8 double precision
  String.raw`CASE g % 17
    WHEN 0 THEN NULL
    WHEN 1 THEN 'NaN'::float8
    WHEN 2 THEN 'Infinity'::float8
    WHEN 3 THEN '-Infinity'::float8
    WHEN 4 THEN '-0'::float8
    WHEN 5 THEN '1.7976931348623157e308'::float8
    WHEN 6 THEN '4.9e-324'::float8
    WHEN 7 THEN '2.2250738585072014e-308'::float8
    WHEN 8 THEN '0.1'::float8
    WHEN 9 THEN -1.0::float8 / 3
    WHEN 10 THEN 0::float8
    WHEN 11 THEN '1e-310'::float8
    WHEN 12 THEN '-1.7976931348623157e308'::float8
    WHEN 13 THEN '9007199254740993'::float8
    WHEN 14 THEN '123456789.123456789'::float8
    ELSE g::float8 / 7 * (CASE WHEN g % 2 = 0 THEN -1e10 ELSE 1e-10 END)::float8
   END`,
  // flag
  String.raw`CASE g % 7 WHEN 0 THEN NULL WHEN 1 THEN true WHEN 2 THEN true WHEN 4 THEN true ELSE false END`,
  // ts timestamptz
  String.raw`CASE g % 19
    WHEN 0 THEN NULL
    WHEN 1 THEN '2000-01-01 00:00:00+00'::timestamptz
    WHEN 2 THEN '1970-01-01 00:00:00.000001+00'::timestamptz
    WHEN 3 THEN '1969-12-31 23:59:59.999999+00'::timestamptz
    WHEN 4 THEN '0044-03-15 12:00:00+00 BC'::timestamptz
    WHEN 5 THEN '9999-12-31 23:59:59.999999+00'::timestamptz
    WHEN 6 THEN '2021-03-28 01:30:00+00'::timestamptz
    WHEN 7 THEN '2016-12-31 23:59:59.5+00'::timestamptz
    WHEN 8 THEN '1900-01-01 00:00:00+00'::timestamptz
    ELSE '2024-02-29 12:34:56.789012+00'::timestamptz + g * interval '1.000001 second'
   END`,
  // d date
  String.raw`CASE g % 7
    WHEN 0 THEN NULL
    WHEN 1 THEN '2000-02-29'::date
    WHEN 2 THEN '1970-01-01'::date
    WHEN 3 THEN '0001-01-01'::date
    WHEN 4 THEN '9999-12-31'::date
    WHEN 5 THEN '1969-12-31'::date
    ELSE '2020-01-01'::date + (g % 3650)::integer
   END`,
  // js jsonb
  String.raw`CASE g % 13
    WHEN 0 THEN NULL
    WHEN 1 THEN '{}'::jsonb
    WHEN 2 THEN '[]'::jsonb
    WHEN 3 THEN 'null'::jsonb
    WHEN 4 THEN '"he said \"hi\" \\ back"'::jsonb
    WHEN 5 THEN jsonb_build_object('id', g, 'q', 'say "hi", ''yo''', 'nested',
                  jsonb_build_object('arr', jsonb_build_array(1, 'two', NULL, true, 1.5e300, -0.0), 'k"ey', E'tab\there'),
                  'bs', E'back\\slash', 'nl', E'x\ny', 'u', '漢🚀')
    WHEN 6 THEN '[1.0, 1e-7, 12345678901234567890, {"a": {"b": "}{"}}]'::jsonb
    ELSE jsonb_build_object('id', g)
   END`,
  // b bytea
  String.raw`CASE g % 11
    WHEN 0 THEN NULL
    WHEN 1 THEN ''::bytea
    WHEN 2 THEN '\x000a0d5c2c22270009'::bytea
    WHEN 3 THEN decode(md5(g::text), 'hex')
    WHEN 4 THEN '\x00'::bytea
    WHEN 5 THEN int8send(g)
    ELSE convert_to('bytes é ' || g, 'UTF8')
   END`,
  // tags text[]
  String.raw`CASE g % 13
    WHEN 0 THEN NULL
    WHEN 1 THEN '{}'::text[]
    WHEN 2 THEN ARRAY[NULL]::text[]
    WHEN 3 THEN ARRAY['a,b', 'c"d', '{e}', NULL, '', 'NULL', E'back\\slash']
    WHEN 4 THEN ARRAY['x' || g, E'tab\there', E'new\nline']
    WHEN 5 THEN ARRAY['漢字', '🚀', 'e${COMBINING_ACUTE}']
    WHEN 6 THEN ARRAY[' sp ', ';', '''single''']
    WHEN 7 THEN ARRAY['}', '{', '\', '"', ' ', E'\N', '']
    ELSE ARRAY['t' || (g % 10)]
   END`,
];

/**
 * `INSERT INTO <name> (...) SELECT ... FROM generate_series(fromId, toId) g`, rows determined by
 * id. With `opts.modulus`/`opts.remainder` only ids with `id % modulus = remainder` are inserted.
 */
export function trickyInsertSQL(qualifiedName: string, fromId: number, toId: number, opts: { modulus?: number; remainder?: number } = {}): string {
  const exprs = TRICKY_EXPRESSIONS.map((e, i) => `  ${e} AS ${TRICKY_COLUMNS[i]!.name}`).join(',\n');
  const where = opts.modulus ? `\nWHERE g % ${opts.modulus} = ${opts.remainder ?? 0}` : '';
  return `INSERT INTO ${qualifiedName} (${columnList()})\nSELECT\n${exprs}\nFROM generate_series(${Math.trunc(fromId)}::bigint, ${Math.trunc(toId)}::bigint) AS g${where}`;
}

// ---------------------------------------------------------------------------------------------
// Replicated reference table

/** Columns of the replicated table (`code` is the primary key on data nodes). */
export const REPLICATED_COLUMNS: { name: string; type: string }[] = [
  { name: 'code', type: 'text' },
  { name: 'label', type: 'text' },
];

/** `CREATE TABLE <name> (code text PRIMARY KEY, label text)`. */
export function replicatedTableDDL(name: string): string {
  return `CREATE TABLE ${name} (\n  code text PRIMARY KEY,\n  label text\n)`;
}

/** Inserts `n` rows (codes `N0001`..), labels with tricky characters, NULL and ''. */
export function replicatedInsertSQL(name: string, n: number): string {
  return String.raw`INSERT INTO ${name} (code, label)
SELECT 'N' || lpad(g::text, 4, '0'),
  CASE g % 10
    WHEN 0 THEN NULL
    WHEN 1 THEN ''
    WHEN 2 THEN E'tab\t' || g
    WHEN 3 THEN E'nl\n' || g
    WHEN 4 THEN 'quote "q" ''s'' ,; ' || g
    WHEN 5 THEN E'\\N'
    WHEN 6 THEN 'Côte d''Ivoire 漢字 🚀 ' || g
    WHEN 7 THEN E'back\\' || g
    WHEN 8 THEN E'cr\r' || g
    ELSE 'nation ' || g
  END
FROM generate_series(1, ${Math.trunc(n)}) AS g`;
}

// ---------------------------------------------------------------------------------------------
// Clusters

/** A source cluster of throw-away servers. */
export interface SourceCluster {
  /**
   * fdw: the coordinator holding postgres_fdw foreign tables. static: the first data node (there
   * is no coordinator in a static topology; this is the same object as `nodes[0]`).
   */
  coordinator: PgServer;
  /** Data nodes, named dn1, dn2, ... */
  nodes: PgServer[];
  /** Database of all tables: `postgres`. */
  database: string;
  /** Name of the distributed table as created (default `orders`). */
  distributed: string;
  /** Name of the replicated table as created (default `nation`). */
  replicated: string;
  /** Rows loaded into the distributed table (0 with withData: false). */
  rows: number;
  /** Rows loaded into the replicated table on every node (0 with withData: false). */
  replicatedRows: number;
  /** Static topology of the data nodes (URLs include passwords). */
  staticTopology(): { nodes: { name: string; url: string }[]; replicated: string[] };
  /** Destroys every server of the cluster. */
  destroy(): Promise<void>;
}

/** Options for {@link startFdwCluster} and {@link startStaticCluster}. */
export interface ClusterOptions {
  /** Rows of tricky data in the distributed table, ids 1..rows (default 200_000). */
  rows?: number;
  /** Number of data nodes (default 3). */
  nodes?: number;
  /** Distributed table name, optionally `schema.name` (default `orders`). */
  distributed?: string;
  /** Replicated table name, optionally `schema.name` (default `nation`). */
  replicated?: string;
  /** Load data (default true); false creates only the DDL. */
  withData?: boolean;
  /** Rows in the replicated table (default 500). */
  replicatedRows?: number;
}

/** Default number of rows in the replicated table. */
export const REPLICATED_ROWS = 500;

function splitName(name: string): { schema: string; table: string } {
  const i = name.indexOf('.');
  return i < 0 ? { schema: 'public', table: name } : { schema: name.slice(0, i), table: name.slice(i + 1) };
}

function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

async function ensureSchema(server: PgServer, name: string): Promise<void> {
  const { schema } = splitName(name);
  if (schema !== 'public') await server.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
}

function nodeNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `dn${i + 1}`);
}

function makeCluster(coordinator: PgServer, nodes: PgServer[], o: Required<ClusterOptions>, all: PgServer[]): SourceCluster {
  const withData = o.withData;
  return {
    coordinator,
    nodes,
    database: 'postgres',
    distributed: o.distributed,
    replicated: o.replicated,
    rows: withData ? o.rows : 0,
    replicatedRows: withData ? o.replicatedRows : 0,
    staticTopology: () => ({
      nodes: nodes.map((n) => ({ name: n.name, url: n.url('postgres') })),
      replicated: [o.replicated],
    }),
    destroy: async () => {
      await Promise.all(all.map((s) => s.destroy().catch(() => {})));
    },
  };
}

function withDefaults(opts: ClusterOptions): Required<ClusterOptions> {
  return {
    rows: opts.rows ?? 200_000,
    nodes: opts.nodes ?? 3,
    distributed: opts.distributed ?? 'orders',
    replicated: opts.replicated ?? 'nation',
    withData: opts.withData ?? true,
    replicatedRows: opts.replicatedRows ?? REPLICATED_ROWS,
  };
}

/** Tables on a data node: the plain distributed table and the replicated table (+ its rows). */
async function prepareDataNode(node: PgServer, o: Required<ClusterOptions>): Promise<void> {
  await ensureSchema(node, o.distributed);
  await ensureSchema(node, o.replicated);
  await node.query(trickyTableDDL(o.distributed));
  await node.query(replicatedTableDDL(o.replicated));
  if (o.withData && o.replicatedRows > 0) await node.query(replicatedInsertSQL(o.replicated, o.replicatedRows));
}

/** Splits 1..rows into `parts` contiguous id ranges (empty ranges dropped). */
function idRanges(rows: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  const per = Math.ceil(rows / parts);
  for (let from = 1; from <= rows; from += per) out.push([from, Math.min(rows, from + per - 1)]);
  return out;
}

/**
 * A postgres_fdw cluster: a coordinator plus `nodes` data nodes (dn1..dnN).
 *
 * Data nodes hold a plain `orders` table with the tricky columns and a `nation` table. The
 * coordinator has one foreign server per data node, named like the node, with OPTIONS (host,
 * port, dbname 'postgres', batch_size '1000', fetch_size '10000') and a user mapping for
 * CURRENT_USER; `orders` is `PARTITION BY HASH (id)` with foreign partitions
 * `orders_p0..p{N-1}` (MODULUS N, REMAINDER i on server dn{i+1}); `nation` is a foreign table on
 * dn1. Rows 1..rows are inserted through the coordinator (hash routing), the replicated rows
 * directly into every data node. Data nodes are ANALYZEd after loading.
 */
export async function startFdwCluster(opts: ClusterOptions = {}): Promise<SourceCluster> {
  const o = withDefaults(opts);
  const names = nodeNames(o.nodes);
  const servers = await startServers(['coordinator', ...names]);
  const coordinator = servers[0]!;
  const nodes = servers.slice(1);
  const cluster = makeCluster(coordinator, nodes, o, servers);
  try {
    const dist = splitName(o.distributed);
    const repl = splitName(o.replicated);
    await Promise.all(nodes.map((n) => prepareDataNode(n, o)));

    await coordinator.query('CREATE EXTENSION IF NOT EXISTS postgres_fdw').catch((e: Error) => {
      throw new Error(`postgres_fdw is not available (${e.message}): it ships with the server package (Debian: postgresql-15; elsewhere postgresql-contrib)`);
    });
    await ensureSchema(coordinator, o.distributed);
    await ensureSchema(coordinator, o.replicated);
    for (const n of nodes) {
      await coordinator.query(
        `CREATE SERVER ${n.name} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port ${lit(String(n.port))}, dbname 'postgres', batch_size '1000', fetch_size '10000')`,
      );
      await coordinator.query(`CREATE USER MAPPING FOR CURRENT_USER SERVER ${n.name} OPTIONS (user ${lit(n.user)}, password ${lit(n.password)})`);
    }
    await coordinator.query(trickyTableDDL(o.distributed, { partitionByHashOn: 'id' }));
    const partSchema = dist.schema === 'public' ? '' : `${dist.schema}.`;
    for (let i = 0; i < nodes.length; i++) {
      await coordinator.query(
        `CREATE FOREIGN TABLE ${partSchema}${dist.table}_p${i} PARTITION OF ${o.distributed} FOR VALUES WITH (MODULUS ${nodes.length}, REMAINDER ${i}) ` +
          `SERVER ${nodes[i]!.name} OPTIONS (schema_name ${lit(dist.schema)}, table_name ${lit(dist.table)})`,
      );
    }
    const replCols = REPLICATED_COLUMNS.map((c) => `${c.name} ${c.type}${c.name === 'code' ? ' NOT NULL' : ''}`).join(', ');
    await coordinator.query(
      `CREATE FOREIGN TABLE ${o.replicated} (${replCols}) SERVER ${nodes[0]!.name} OPTIONS (schema_name ${lit(repl.schema)}, table_name ${lit(repl.table)})`,
    );

    if (o.withData && o.rows > 0) {
      // Two concurrent INSERTs keep both cores busy (coordinator generates, data nodes store).
      await Promise.all(idRanges(o.rows, 2).map(([a, b]) => coordinator.query(trickyInsertSQL(o.distributed, a, b))));
      await Promise.all(nodes.map((n) => n.query(`ANALYZE ${o.distributed}; ANALYZE ${o.replicated}`)));
    }
    return cluster;
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
}

/**
 * A static cluster: `nodes` data nodes (dn1..dnN) with the same tables as {@link startFdwCluster},
 * no coordinator (`coordinator` is `nodes[0]`). Row `id` lives on node `id % N` (0-based), inserted
 * directly; the replicated table is identical on all nodes.
 */
export async function startStaticCluster(opts: ClusterOptions = {}): Promise<SourceCluster> {
  const o = withDefaults(opts);
  const nodes = await startServers(nodeNames(o.nodes));
  const cluster = makeCluster(nodes[0]!, nodes, o, nodes);
  try {
    await Promise.all(
      nodes.map(async (n, i) => {
        await prepareDataNode(n, o);
        if (o.withData && o.rows > 0) {
          await n.query(trickyInsertSQL(o.distributed, 1, o.rows, { modulus: nodes.length, remainder: i }));
          await n.query(`ANALYZE ${o.distributed}; ANALYZE ${o.replicated}`);
        }
      }),
    );
    return cluster;
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Order-free comparison

/** Session settings that make text output of every type deterministic. */
export const CANONICAL_SESSION_SQL =
  "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; " +
  "SET bytea_output = 'hex'; SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'";

/**
 * Multiset of the rows of `sqlSelect` on `server`: md5 of each row's text form
 * (`ROW(r.*)::text`, the composite output) → count. Hashing
 * and grouping happen on the server under {@link CANONICAL_SESSION_SQL}. Compare with
 * {@link sameMultiset}; combine per-node results with {@link mergeMultisets}.
 */
export async function rowMultiset(server: PgServer, sqlSelect: string, database = 'postgres'): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: server.url(database) });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(CANONICAL_SESSION_SQL);
    const res = await client.query<{ h: string; c: string }>(
      `SELECT md5(ROW(_sf_row.*)::text) AS h, count(*)::text AS c FROM (${sqlSelect}) AS _sf_row GROUP BY 1`,
    );
    const out = new Map<string, number>();
    for (const r of res.rows) out.set(r.h, Number(r.c));
    return out;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Sum of multisets. */
export function mergeMultisets(...maps: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

/** True when both multisets hold the same rows with the same multiplicities. */
export function sameMultiset(a: Map<string, number>, b: Map<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** Total number of rows in a multiset. */
export function multisetSize(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** Short human-readable difference, for assertion messages. */
export function describeMultisetDiff(a: Map<string, number>, b: Map<string, number>, limit = 5): string {
  const onlyA: string[] = [];
  const onlyB: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k) ?? 0;
    if (v > w) onlyA.push(`${k}×${v - w}`);
  }
  for (const [k, v] of b) {
    const w = a.get(k) ?? 0;
    if (v > w) onlyB.push(`${k}×${v - w}`);
  }
  if (!onlyA.length && !onlyB.length) return 'multisets are equal';
  return (
    `rows: ${multisetSize(a)} vs ${multisetSize(b)}; ${onlyA.length} hashes more in first` +
    (onlyA.length ? ` (${onlyA.slice(0, limit).join(', ')})` : '') +
    `; ${onlyB.length} more in second` +
    (onlyB.length ? ` (${onlyB.slice(0, limit).join(', ')})` : '')
  );
}
