/**
 * The demo's whole-database part: a small database with types, keys, a foreign key, a
 * partitioned table, a view and comments is exported with `all` (its DDL through pg_dump) and
 * restored with `create` into an empty database; then row counts and pg_dump --schema-only of
 * both are compared.
 */
import { findPgDump, runPgDump } from '../ddl/pgdump.js';
import { exportTables } from '../export/export.js';
import { importTables } from '../import/import.js';
import type { PgServer } from '../launch/postgres.js';
import { parseConnection } from '../pg/conn.js';
import { quoteIdent } from '../pg/sql.js';
import type { S3Options } from '../store/s3.js';

/** The whole-database sample's source database (on the source coordinator's server). */
export const WHOLE_DB = 'shop_full';
/** Its empty destination database (on the destination coordinator's server). */
export const WHOLE_DB_RESTORED = 'shop_restored';

/** The sample: an enum, identity and serial keys, a unique column, a CHECK, a foreign key, a range-partitioned table, an index, a view, comments. */
export const WHOLE_DB_SQL = `
CREATE SCHEMA billing;
CREATE TYPE billing.state AS ENUM ('new', 'paid', 'void');
CREATE TABLE billing.customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, email text UNIQUE);
COMMENT ON TABLE billing.customers IS 'who pays';
CREATE TABLE billing.invoices (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES billing.customers (id),
  state billing.state NOT NULL DEFAULT 'new',
  amount numeric(12,2) NOT NULL CHECK (amount >= 0),
  issued date NOT NULL);
CREATE INDEX invoices_customer ON billing.invoices (customer_id);
CREATE TABLE billing.events (at date NOT NULL, kind text NOT NULL, n int) PARTITION BY RANGE (at);
CREATE TABLE billing.events_q1 PARTITION OF billing.events FOR VALUES FROM ('2025-01-01') TO ('2025-04-01');
CREATE TABLE billing.events_q2 PARTITION OF billing.events FOR VALUES FROM ('2025-04-01') TO ('2025-07-01');
CREATE TABLE billing.events_q3 PARTITION OF billing.events FOR VALUES FROM ('2025-07-01') TO ('2025-10-01');
CREATE TABLE billing.events_q4 PARTITION OF billing.events FOR VALUES FROM ('2025-10-01') TO ('2026-01-01');
CREATE TABLE billing.events_other PARTITION OF billing.events DEFAULT;
CREATE VIEW billing.open_invoices AS SELECT id, customer_id, amount FROM billing.invoices WHERE state = 'new';
INSERT INTO billing.customers (name, email) SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 1000) i;
INSERT INTO billing.invoices (customer_id, state, amount, issued)
  SELECT 1 + i % 1000, (ARRAY['new','paid','void'])[1 + i % 3]::billing.state, (i % 500) * 1.5, date '2025-01-01' + i % 365 FROM generate_series(1, 20000) i;
INSERT INTO billing.events SELECT date '2024-12-01' + i % 420, 'kind ' || i % 5, i FROM generate_series(1, 10000) i;
`;

/** What the whole-database part did. */
export interface WholeDbResult {
  location: string;
  tables: number;
  rows: number;
  /** The import's notes (what the restore did). */
  notes: string[];
  /** Rows per table at the source and at the destination. */
  counts: { table: string; source: number; destination: number }[];
  /** pg_dump --schema-only of source and destination are identical (segferry's ledger schema left out). */
  schemaIdentical: boolean;
  /** Lines of that schema dump. */
  schemaLines: number;
}

/** Create the sample database on `source`'s server and the empty one on `dest`'s. */
export async function prepareWholeDb(source: PgServer, dest: PgServer): Promise<void> {
  await Promise.all([
    source.query(`CREATE DATABASE ${quoteIdent(WHOLE_DB)}`).then(() => source.query(WHOLE_DB_SQL, [], WHOLE_DB)),
    dest.query(`CREATE DATABASE ${quoteIdent(WHOLE_DB_RESTORED)}`),
  ]);
}

/**
 * Export the sample ({@link prepareWholeDb}) with `all` to `to`, import it with `create` into
 * the empty database on `dest`'s server, compare counts and schema dumps.
 */
export async function runWholeDb(source: PgServer, dest: PgServer, to: string, s3: S3Options | undefined, signal?: AbortSignal): Promise<WholeDbResult> {
  const common = { ...(s3 ? { s3 } : {}), ...(signal ? { signal } : {}) };
  const exp = await exportTables({ source: source.url(WHOLE_DB), all: true, to, ...common });
  const imp = await importTables({ from: to, target: dest.url(WHOLE_DB_RESTORED), create: true, ...common });
  const counts: WholeDbResult['counts'] = [];
  for (const t of exp.manifest.tables) {
    const sql = `SELECT count(*)::int AS n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
    const [a] = await source.query<{ n: number }>(sql, [], WHOLE_DB);
    const [b] = await dest.query<{ n: number }>(sql, [], WHOLE_DB_RESTORED);
    counts.push({ table: `${t.schema}.${t.name}`, source: a!.n, destination: b!.n });
  }
  const prog = findPgDump(Number(exp.manifest.ddl!.serverVersion.split('.')[0]));
  const dump = (s: PgServer, db: string) => runPgDump(prog, parseConnection(s.url(db)), ['--schema-only', '--exclude-schema=segferry'], signal);
  const [a, b] = await Promise.all([dump(source, WHOLE_DB), dump(dest, WHOLE_DB_RESTORED)]);
  return {
    location: exp.location,
    tables: exp.manifest.tables.length,
    rows: imp.rows,
    notes: imp.notes,
    counts,
    schemaIdentical: a === b,
    schemaLines: a.split('\n').length,
  };
}
