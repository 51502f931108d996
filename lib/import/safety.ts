/**
 * Import safety (issue 13): everything read from storage is untrusted input. Identifiers only
 * ever reach SQL quoted (quoteIdent); what cannot be quoted — column types for `create` — is
 * checked here before any statement changes the destination. Session settings are checked
 * against segferry's allowlist when the manifest is read (lib/manifest/io.ts).
 */
import type pg from 'pg';
import { SchemaMismatchError, SegferryError, UntrustedInputError, fromDatabaseError } from '../errors.js';
import { NodeClients } from '../topology/clients.js';
import type { PlanNode } from '../topology/types.js';
import type { ImportTablePlan } from './route.js';

/**
 * Resolve a type name from a manifest on a destination server, returning the server's own
 * canonical spelling (`format_type(oid, typmod)`), which is what CREATE TABLE then uses.
 *
 * Why this is sound: `to_regtype($1)` (the name is a bound parameter) parses the text with the
 * server's type-name grammar (PostgreSQL ≥ 14: raw_parser in RAW_PARSE_TYPE_NAME mode), which
 * accepts exactly one type name and nothing after it, and its type modifiers only as
 * constants. Only text that passed it (and holds no `;` or comment marker, as a second guard)
 * is placed into `SELECT NULL::<type>`, whose RowDescription gives the typmod
 * (`numeric(10,2)`, `character varying(20)[]`); the oid is to_regtype's, so domains stay
 * domains (RowDescription would report their base type). Throws UntrustedInputError when the
 * text is not a type name the server knows.
 */
export async function resolveType(client: pg.Client, type: string, where: { table: string; column: string; node: string }): Promise<string> {
  const refuse = (why: string, cause?: unknown) => new UntrustedInputError(
    `column ${JSON.stringify(where.column)} of ${where.table}: type ${JSON.stringify(type)} from the manifest ${why} on node ${where.node}`,
    { node: where.node, table: where.table, hint: 'the manifest must hold the type names an export writes (format_type output); create the table yourself, or fix the manifest', ...(cause !== undefined ? { cause } : {}) },
  );
  if (type.length === 0 || /[;\0]|--|\/\*/.test(type)) throw refuse('is not a plain type name');
  let found: { oid: number; typtype: string } | undefined;
  try {
    const r = await client.query<{ oid: number; typtype: string }>(
      `SELECT t.oid::int8::float8 AS oid, t.typtype::text AS typtype FROM pg_catalog.pg_type t WHERE t.oid = pg_catalog.to_regtype($1)`,
      [type],
    );
    found = r.rows[0];
  } catch (e) {
    // PostgreSQL 15's to_regtype raises syntax errors instead of returning NULL.
    const code = (e as { code?: string }).code ?? '';
    if (/^(42|22)/.test(code)) throw refuse('is not a type name', e);
    throw fromDatabaseError(e, { node: where.node, table: where.table, action: 'type lookup' });
  }
  // PostgreSQL 16 returns NULL for bad syntax too: one answer for both, before anything runs.
  if (!found) throw refuse('is not a type name the server knows (user-defined types must be created first)');
  let typmod = -1;
  if (found.typtype !== 'd') {
    const r = await client.query(`SELECT NULL::${type}\n`).catch((e) => { throw refuse('is not a type name', e); });
    typmod = r.fields[0]?.dataTypeModifier ?? -1;
  }
  const f = await client.query<{ t: string }>('SELECT pg_catalog.format_type($1::oid, $2::int4) AS t', [found.oid, typmod]);
  return f.rows[0]!.t;
}

/**
 * For every table to be created, resolve its column types on each node it is created on and
 * record the destination's spelling in `createTypes`. All nodes must agree. Runs only reads.
 */
export async function resolveCreateTypes(tables: ImportTablePlan[], nodes: ReadonlyMap<string, PlanNode>): Promise<void> {
  const todo = tables.filter((t) => t.create.length > 0);
  if (todo.length === 0) return;
  const cache = new NodeClients({ nodes, applicationName: 'segferry import' });
  try {
    for (const tp of todo) {
      let first: string[] | undefined;
      for (const node of tp.create) {
        let c: pg.Client;
        try {
          c = await cache.get(node);
        } catch (e) {
          throw e instanceof SegferryError ? e : fromDatabaseError(e, { node, action: 'connect' });
        }
        const types: string[] = [];
        for (const col of tp.columns) types.push(await resolveType(c, col.type, { table: tp.table, column: col.name, node }));
        if (!first) first = types;
        else if (types.join('\0') !== first.join('\0')) {
          throw new SchemaMismatchError(`the column types of ${tp.table} resolve differently on node ${node} (${types.join(', ')}) than on node ${tp.create[0]} (${first.join(', ')})`, {
            node, table: tp.table, hint: 'create the table on every node yourself',
          });
        }
      }
      tp.createTypes = first!;
    }
  } finally {
    await cache.closeAll();
  }
}
