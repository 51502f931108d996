import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ChecksumMismatchError, DdlConflictError, ObjectMissingError, fromDatabaseError } from '../errors.js';
import type { ManifestDdl, ManifestDdlObject, ManifestTable } from '../manifest/types.js';
import { quoteQualified } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import { findRelation, relationColumns } from '../topology/catalog.js';
import { checkDdlText, withoutTablespaces, type Statement } from './statements.js';
import type { BoundStatement } from './citus.js';

// The schema half of `import --create`: pre-data before the data, post-data, sequence values
// and materialized views after it. Each phase runs in one transaction and is recorded in
// segferry.ddl_phases in that transaction, so a rerun finishes what an interrupted one began.

/** The checked statements of both sections. */
export interface CheckedDdl {
  pre: Statement[];
  post: Statement[];
}

async function readChecked(store: ObjectStore, o: ManifestDdlObject, open?: (key: string, stored: Buffer) => Buffer): Promise<Statement[]> {
  const body = await store.getBytes(o.key);
  if (!body) throw new ObjectMissingError(`DDL object ${o.key} is missing`, { key: o.key });
  const sha = createHash('sha256').update(body).digest('hex');
  if (body.length !== o.bytes || sha !== o.sha256.toLowerCase()) {
    throw new ChecksumMismatchError(`DDL object ${o.key}: ${body.length} bytes with SHA-256 ${sha}, the manifest says ${o.bytes} bytes with ${o.sha256}`, {
      key: o.key, hint: 'the object was changed or damaged after the export: nothing was run',
    });
  }
  return withoutTablespaces(checkDdlText((open ? open(o.key, body) : body).toString('utf8')));
}

/**
 * Read both DDL objects, check their size and SHA-256 against the manifest
 * (ERR_CHECKSUM_MISMATCH) and every statement against the allowlist (ERR_DDL_REFUSED), before
 * anything runs; a named `SET default_tablespace` is left out (withoutTablespaces). `open` decrypts an encrypted export's objects after that check (lib/crypto;
 * default: none). Memory: both texts at once (docs/memory.md).
 */
export async function readCheckedDdl(store: ObjectStore, ddl: ManifestDdl, open?: (key: string, stored: Buffer) => Buffer): Promise<CheckedDdl> {
  return { pre: await readChecked(store, ddl.pre, open), post: await readChecked(store, ddl.post, open) };
}

/** The ledger of DDL phases: which of an export's phases ran on this destination. */
export async function ensurePhases(c: pg.Client): Promise<void> {
  await c.query(`CREATE SCHEMA IF NOT EXISTS segferry`);
  await c.query(`CREATE TABLE IF NOT EXISTS segferry.ddl_phases (
    export_id text NOT NULL, phase text NOT NULL, done_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (export_id, phase))`);
}

/** Phases recorded for an export (`pre`, `post`, `adopted`). */
export async function phasesDone(c: pg.Client, exportId: string): Promise<Set<string>> {
  const r = await c.query<{ phase: string }>('SELECT phase FROM segferry.ddl_phases WHERE export_id = $1', [exportId]);
  return new Set(r.rows.map((x) => x.phase));
}

/** How the destination's tables stand against the manifest's. */
export interface TableComparison {
  missing: string[];
  same: string[];
  /** `schema.name: difference`. */
  conflicts: string[];
}

/**
 * Compare every manifest table with the destination: absent, the same columns (names, types,
 * NOT NULL, in order; generated columns left out on both sides), or different (the difference).
 */
export async function compareTables(c: pg.Client, tables: readonly ManifestTable[]): Promise<TableComparison> {
  const out: TableComparison = { missing: [], same: [], conflicts: [] };
  for (const t of tables) {
    const name = `${t.schema}.${t.name}`;
    const rel = await findRelation(c, { schema: t.schema, name: t.name });
    if (!rel) { out.missing.push(name); continue; }
    const have = await relationColumns(c, rel.oid);
    const diffs: string[] = [];
    const max = Math.max(have.length, t.columns.length);
    for (let i = 0; i < max; i++) {
      const want = t.columns[i];
      const got = have[i];
      const show = (x: { name: string; type: string; notNull?: boolean }) => `${x.name} ${x.type}${x.notNull ? ' NOT NULL' : ''}`;
      if (!want) diffs.push(`extra column ${show(got!)} at the destination`);
      else if (!got) diffs.push(`column ${show(want)} missing at the destination`);
      else if (want.name !== got.name || want.type !== got.type || want.notNull !== (got.notNull ?? false)) {
        diffs.push(`column ${i + 1} is ${show(want)} in the export but ${show(got)} at the destination`);
      }
    }
    if (diffs.length > 0) out.conflicts.push(`${name}: ${diffs.join('; ')}`);
    else out.same.push(name);
  }
  return out;
}

/**
 * Decide what the pre-data phase does: `run` when no table exists, `adopt` when every table
 * exists with the export's definition (the DDL is then not run at all). Anything else is a
 * DdlConflictError naming the tables and differences (and `node`, when given), raised before
 * any data is loaded.
 */
export function decide(cmp: TableComparison, node?: string): 'run' | 'adopt' {
  const on = node ? ` on node ${node}` : '';
  const at = node ? { node } : {};
  if (cmp.conflicts.length > 0) {
    throw new DdlConflictError(`destination tables${on} differ from the export: ${cmp.conflicts.join(' | ')}`, {
      ...at,
      table: cmp.conflicts[0]!.split(':')[0]!,
      hint: 'drop or rename the conflicting tables, or import into an empty database; nothing was loaded',
    });
  }
  if (cmp.same.length > 0 && cmp.missing.length > 0) {
    throw new DdlConflictError(`some tables of the export exist at the destination${on} (${cmp.same.join(', ')}) and others do not (${cmp.missing.join(', ')}): the DDL is restored into a destination with all of them or none`, {
      ...at,
      hint: 'drop the existing ones, create the missing ones, or import with ddl off (--no-ddl); nothing was loaded',
    });
  }
  return cmp.same.length > 0 ? 'adopt' : 'run';
}

/**
 * Run one phase's statements in one transaction (then `generated`, segferry's own bound
 * statements; `citus`: in Citus's sequential mode), each statement on its own (the lexer split
 * them, so none can carry a second), and record the phase in that transaction.
 */
export async function runPhase(c: pg.Client, exportId: string, phase: 'pre' | 'post' | 'adopted', statements: readonly Statement[], node: string, generated: readonly BoundStatement[] = [], citus = false): Promise<void> {
  let at: Statement | undefined;
  let gen: BoundStatement | undefined;
  try {
    await c.query('BEGIN');
    // Citus: DDL on distributed tables with foreign keys to reference tables, in one transaction,
    // must go over one connection per node (Citus refuses otherwise, XX000).
    if (citus) await c.query(`SET LOCAL citus.multi_shard_modify_mode TO 'sequential'`);
    for (const s of statements) {
      at = s;
      await c.query(s.text);
    }
    at = undefined;
    // segferry's own statements (the Citus distribution), in the same transaction.
    for (const g of generated) {
      gen = g;
      await c.query(g.text, g.values);
    }
    gen = undefined;
    await c.query('INSERT INTO segferry.ddl_phases (export_id, phase) VALUES ($1, $2)', [exportId, phase]);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw fromDatabaseError(e, { node, action: at ? `DDL ${phase}-data statement at line ${at.line}` : gen ? `DDL ${phase}-data: ${gen.text.replace(/^SELECT pg_catalog\.(\w+).*$/, '$1')}(${String(gen.values[0])})` : `DDL ${phase}-data` });
  }
}

/** Set every recorded sequence value: `setval($1::regclass, $2, $3)`, bound. */
export async function applySequences(c: pg.Client, ddl: Pick<ManifestDdl, 'sequences'>): Promise<number> {
  for (const s of ddl.sequences) {
    await c.query('SELECT pg_catalog.setval($1::regclass, $2::int8, $3)', [quoteQualified(s), s.lastValue, s.isCalled]);
  }
  return ddl.sequences.length;
}

/** Refresh the materialized views that were populated at the source. */
export async function refreshMatviews(c: pg.Client, ddl: Pick<ManifestDdl, 'matviews'>): Promise<void> {
  for (const m of ddl.matviews ?? []) await c.query(`REFRESH MATERIALIZED VIEW ${quoteQualified(m)}`);
}

/**
 * The data half of sequences and materialized views (a data-only import, or the import of a
 * data-only export): set the sequences that exist at the destination and refresh the
 * materialized views that exist there. Returns what it did and what it left out (missing).
 */
export async function applyDataExtras(c: pg.Client, x: Pick<ManifestDdl, 'sequences' | 'matviews'>): Promise<{ sequences: number; matviews: number; missing: string[] }> {
  const exists = async (q: { schema: string; name: string }, kind: string) =>
    (await c.query(`SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1) AND relkind = $2`, [quoteQualified(q), kind])).rows.length > 0;
  const missing: string[] = [];
  const seqs = [];
  for (const q of x.sequences) if (await exists(q, 'S')) seqs.push(q); else missing.push(`sequence ${q.schema}.${q.name}`);
  const mvs = [];
  for (const q of x.matviews ?? []) if (await exists(q, 'm')) mvs.push(q); else missing.push(`materialized view ${q.schema}.${q.name}`);
  await applySequences(c, { sequences: seqs });
  await refreshMatviews(c, { matviews: mvs });
  return { sequences: seqs.length, matviews: mvs.length, missing };
}
