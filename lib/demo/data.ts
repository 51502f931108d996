/**
 * The demo's sample cluster layout: a coordinator whose `orders` table is hash-partitioned
 * into postgres_fdw foreign partitions on data nodes dn1..dnN (one partition each), and a
 * replicated `products` table present on every data node, which the coordinator reads
 * through a foreign table on dn1.
 */
import { PrerequisiteError } from '../errors.js';
import { quoteIdent, quoteLiteral } from '../pg/sql.js';
import type { PgServer } from '../launch/postgres.js';

/** Database the demo creates on every server. */
export const DEMO_DB = 'shop';

/** The distributed table: mixed types, NULLs, tabs, newlines, backslashes, quotes, non-ASCII. */
export const ORDERS_COLUMNS = `
  id          bigint NOT NULL,
  customer_id integer NOT NULL,
  placed_at   timestamptz NOT NULL,
  amount      numeric(12,2),
  status      text NOT NULL,
  note        text,
  tags        text[],
  attrs       jsonb,
  express     boolean NOT NULL,
  ship_date   date`;

/** The replicated table. */
export const PRODUCTS_COLUMNS = `
  sku        text NOT NULL,
  name       text NOT NULL,
  price      numeric(10,2) NOT NULL,
  weight_kg  real,
  created    date NOT NULL`;

/** Rows of the replicated table. */
export const PRODUCT_ROWS = 2000;

/** The generated `orders` rows, a function of `i` only, so any node can make its share. */
export function ordersSelect(): string {
  return `SELECT i,
       (i * 7919) % 50000 + 1,
       timestamptz '2024-01-01 00:00:00+00' + ((i * 37) % 31536000) * interval '1 second',
       CASE WHEN i % 97 = 0 THEN NULL ELSE ((i * 131) % 10000000) / 100.0 END,
       (ARRAY['new','paid','shipped','delivered','returned'])[i % 5 + 1],
       CASE WHEN i % 50 = 0 THEN E'tab\\there, newline\\nhere, backslash \\\\ and "quotes"'
            WHEN i % 51 = 0 THEN 'unicode: żółw 🐢 ' || i
            WHEN i % 53 = 0 THEN NULL
            ELSE md5(i::text) END,
       ARRAY['t' || (i % 7), 't' || (i % 11)],
       jsonb_build_object('sku', 'SKU-' || (i % ${PRODUCT_ROWS}), 'qty', i % 9 + 1, 'gift', i % 13 = 0),
       i % 3 = 0,
       CASE WHEN i % 89 = 0 THEN NULL ELSE date '2024-01-01' + (i % 400)::int END`;
}

const PRODUCTS_INSERT = `INSERT INTO products
SELECT 'SKU-' || i, 'product ' || i || CASE WHEN i % 17 = 0 THEN E' \\t"special"' ELSE '' END,
       (i % 500) + 0.99, CASE WHEN i % 23 = 0 THEN NULL ELSE (i % 40) / 4.0 END, date '2020-01-01' + i
  FROM generate_series(0, ${PRODUCT_ROWS - 1}) i`;

/** Options of {@link createFdwCluster}. */
export interface FdwClusterOptions {
  /** Rows of `orders` over all nodes; 0 makes empty tables (a destination). */
  rows: number;
  /** Foreign server (node) names, in node order (default dn1, dn2, …). */
  nodeNames?: string[];
}

/**
 * Create the database and tables on a coordinator and its data nodes, fill them (rows > 0),
 * and wire the coordinator to the nodes with postgres_fdw (foreign servers named like the
 * nodes). Data nodes make their own share of the rows in parallel: node k keeps the ids that
 * `satisfies_hash_partition(…, N, k, id)` assigns to it, exactly the coordinator's routing.
 */
export async function createFdwCluster(coordinator: PgServer, nodes: PgServer[], opts: FdwClusterOptions): Promise<void> {
  await Promise.all([coordinator, ...nodes].map((s) => s.query(`CREATE DATABASE ${quoteIdent(DEMO_DB)}`)));
  const n = nodes.length;
  const names = opts.nodeNames ?? nodes.map((_, k) => `dn${k + 1}`);
  await Promise.all(nodes.map((s, k) => {
    // Tables are created and filled in one transaction: with wal_level=minimal the rows skip the WAL.
    const fill = opts.rows > 0
      ? `CREATE TEMP TABLE segferry_demo_route (id bigint) PARTITION BY HASH (id);
         INSERT INTO orders ${ordersSelect()}
           FROM generate_series(1, ${Math.floor(opts.rows)}::bigint) i
          WHERE satisfies_hash_partition('segferry_demo_route'::regclass, ${n}, ${k}, i);
         ${PRODUCTS_INSERT};`
      : '';
    return s.query(
      `BEGIN;
       CREATE TABLE orders (${ORDERS_COLUMNS}, PRIMARY KEY (id));
       CREATE TABLE products (${PRODUCTS_COLUMNS}, PRIMARY KEY (sku));
       ${fill}
       COMMIT;
       ANALYZE;`,
      [],
      DEMO_DB,
    );
  }));
  const user = (await coordinator.query<{ u: string }>('SELECT current_user AS u', [], DEMO_DB))[0]!.u;
  const servers = nodes.map((s, k) =>
    `CREATE SERVER ${quoteIdent(names[k]!)} FOREIGN DATA WRAPPER postgres_fdw
       OPTIONS (host ${quoteLiteral(s.host)}, port ${quoteLiteral(String(s.port))}, dbname ${quoteLiteral(DEMO_DB)});
     CREATE USER MAPPING FOR ${quoteIdent(user)} SERVER ${quoteIdent(names[k]!)} OPTIONS (user ${quoteLiteral(user)}${s.password !== undefined ? `, password ${quoteLiteral(s.password)}` : ''});`).join('\n');
  const parts = nodes.map((_s, k) =>
    `CREATE FOREIGN TABLE orders_p${k} PARTITION OF orders FOR VALUES WITH (MODULUS ${n}, REMAINDER ${k})
       SERVER ${quoteIdent(names[k]!)} OPTIONS (schema_name 'public', table_name 'orders');`).join('\n');
  try {
    await coordinator.query('CREATE EXTENSION postgres_fdw', [], DEMO_DB);
  } catch (e) {
    throw new PrerequisiteError(`postgres_fdw is not installed with the PostgreSQL server: ${(e as Error).message}`, {
      cause: e,
      hint: 'install the PostgreSQL contrib modules (Debian/Ubuntu: they come with "postgresql"; Fedora/RHEL: "postgresql-contrib")',
    });
  }
  await coordinator.query(
    `
     ${servers}
     CREATE TABLE orders (${ORDERS_COLUMNS}) PARTITION BY HASH (id);
     ${parts}
     CREATE FOREIGN TABLE products (${PRODUCTS_COLUMNS}) SERVER ${quoteIdent(names[0]!)} OPTIONS (schema_name 'public', table_name 'products');`,
    [],
    DEMO_DB,
  );
}
