import type pg from 'pg';

/**
 * The import ledger: one row per object loaded into a node, written in the same transaction
 * as the object's rows, on the node that holds them. A row therefore exists exactly when the
 * object's rows are committed there; reruns skip what it lists. Its identity is (import id,
 * object key), whatever the digest. The `sha256` column (named so since the first ledger) holds
 * the object's digest as text: SHA-256 hex alone, other algorithms prefixed (`crc32:<hex>`,
 * lib/manifest/digest.ts `ledgerDigest`), a copy's row checksum `copy-rowhash64:<sum>`.
 */
export const LEDGER_SCHEMA = 'segferry';
/** Qualified ledger table name (for messages). */
export const LEDGER_TABLE = `${LEDGER_SCHEMA}.loads`;

const DDL = [
  `CREATE SCHEMA IF NOT EXISTS ${LEDGER_SCHEMA}`,
  `CREATE TABLE IF NOT EXISTS ${LEDGER_TABLE} (
     import_id  text NOT NULL,
     object_key text NOT NULL,
     table_name text NOT NULL,
     sha256     text,
     rows       bigint,
     loaded_at  timestamptz NOT NULL DEFAULT now(),
     rejected   bigint NOT NULL DEFAULT 0,
     rejected_sum text,
     PRIMARY KEY (import_id, object_key))`,
];

/**
 * Columns added since the first ledger (issue 18: rows set aside under a reject limit), with
 * their definitions: added to an existing ledger when missing. `rejected`: rows of the object the
 * destination refused (the object's other `rows - rejected` rows are committed); `rejected_sum`:
 * their `copy-rowhash64` sum (decimal, modulo 2^64), for verify; NULL where unknown (Arrow, Parquet).
 */
const ADDED_COLUMNS: [string, string][] = [
  ['rejected', 'bigint NOT NULL DEFAULT 0'],
  ['rejected_sum', 'text'],
];

/**
 * Create the ledger if missing. Two importers creating it at once can collide on the catalog's
 * unique indexes (23505) or on the name (42P07): the loser retries and finds it there.
 * `migrate` (default false): also add the columns a ledger of an earlier version lacks (an import
 * with a reject limit needs them; others leave an existing ledger as it is).
 */
export async function ensureLedger(client: pg.Client, migrate = false): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      // A Citus worker refuses CREATE SCHEMA even with IF NOT EXISTS: skip it when the schema is there.
      const has = await client.query(`SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1`, [LEDGER_SCHEMA]);
      for (const sql of has.rows.length > 0 ? DDL.slice(1) : DDL) await client.query(sql);
      if (migrate) await migrateLedger(client);
      return;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (attempt < 3 && (code === '23505' || code === '42P07' || code === '42P06')) continue;
      throw e;
    }
  }
}

/**
 * Add the columns a ledger of an earlier version lacks. Looked up first, so that the ALTER (which
 * locks the ledger against every running import) runs once per node, not once per import.
 */
async function migrateLedger(client: pg.Client): Promise<void> {
  const r = await client.query<{ n: string }>(
    `SELECT attname AS n FROM pg_catalog.pg_attribute WHERE attrelid = '${LEDGER_TABLE}'::regclass AND attnum > 0 AND NOT attisdropped`,
  );
  const have = new Set(r.rows.map((x) => x.n));
  for (const [name, def] of ADDED_COLUMNS) {
    if (!have.has(name)) await client.query(`ALTER TABLE ${LEDGER_TABLE} ADD COLUMN IF NOT EXISTS ${name} ${def}`);
  }
}

/** Keys (with their table) this import has loaded into the node; empty when there is no ledger. */
export async function readLedger(client: pg.Client, importId: string): Promise<Map<string, string>> {
  const exists = await client.query<{ r: string | null }>(`SELECT to_regclass('${LEDGER_TABLE}')::text AS r`);
  if (!exists.rows[0]?.r) return new Map();
  const r = await client.query<{ k: string; t: string }>(`SELECT object_key AS k, table_name AS t FROM ${LEDGER_TABLE} WHERE import_id = $1`, [importId]);
  return new Map(r.rows.map((x) => [x.k, x.t]));
}

/**
 * Record an object as loaded, inside the loading transaction. Returns false when the ledger
 * already has it: another run committed it (a concurrent claim waits for that run's
 * transaction and then finds the row), so this load must be skipped.
 */
export async function claimObject(
  client: pg.Client,
  row: { importId: string; key: string; table: string; digest?: string; rows?: number },
  force: boolean,
): Promise<boolean> {
  if (force) await client.query(`DELETE FROM ${LEDGER_TABLE} WHERE import_id = $1 AND object_key = $2`, [row.importId, row.key]);
  const r = await client.query(
    `INSERT INTO ${LEDGER_TABLE} (import_id, object_key, table_name, sha256, rows) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (import_id, object_key) DO NOTHING`,
    [row.importId, row.key, row.table, row.digest ?? null, row.rows ?? null],
  );
  return r.rowCount === 1;
}

/** Fill in what a bare object turned out to hold (no manifest figures existed before loading). */
export async function completeClaim(client: pg.Client, importId: string, key: string, digest: string, rows: number): Promise<void> {
  await client.query(`UPDATE ${LEDGER_TABLE} SET sha256 = $3, rows = $4 WHERE import_id = $1 AND object_key = $2`, [importId, key, digest, rows]);
}

/** Forget every load of a table (all imports), after it was truncated: its rows are gone. */
export async function forgetTable(client: pg.Client, table: string): Promise<void> {
  const exists = await client.query<{ r: string | null }>(`SELECT to_regclass('${LEDGER_TABLE}')::text AS r`);
  if (!exists.rows[0]?.r) return;
  await client.query(`DELETE FROM ${LEDGER_TABLE} WHERE table_name = $1`, [table]);
}

/** Record, inside the loading transaction, how many of the object's rows were set aside and their checksum sum (null: unknown). */
export async function recordRejected(client: pg.Client, importId: string, key: string, rejected: number, sum: string | null): Promise<void> {
  await client.query(`UPDATE ${LEDGER_TABLE} SET rejected = $3, rejected_sum = $4 WHERE import_id = $1 AND object_key = $2`, [importId, key, rejected, sum]);
}

/** One ledger row with rejected rows. */
export interface RejectedEntry {
  key: string;
  table: string;
  rejected: number;
  /** `copy-rowhash64` sum of the rejected rows, or null where unknown. */
  sum: string | null;
}

/**
 * The objects of this import that had rows set aside on this node; empty when there is no ledger
 * (or one of a version before reject limits, which has none).
 */
export async function readRejected(client: pg.Client, importId: string): Promise<RejectedEntry[]> {
  const r = await client.query<{ k: string; t: string; n: string; s: string | null; has: boolean }>(
    `SELECT c.relname IS NOT NULL AS has FROM (SELECT to_regclass('${LEDGER_TABLE}') AS o) x
       LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.o AND a.attname = 'rejected' AND NOT a.attisdropped
       LEFT JOIN pg_catalog.pg_class c ON c.oid = a.attrelid`,
  );
  if (!r.rows[0]?.has) return [];
  const q = await client.query<{ k: string; t: string; n: string; s: string | null }>(
    `SELECT object_key AS k, table_name AS t, rejected AS n, rejected_sum AS s FROM ${LEDGER_TABLE} WHERE import_id = $1 AND rejected > 0`,
    [importId],
  );
  return q.rows.map((x) => ({ key: x.k, table: x.t, rejected: Number(x.n), sum: x.s }));
}
