import type pg from 'pg';
import { InvalidOptionError, TableNotFoundError } from '../errors.js';
import { displayName, parseTableName, type QualifiedName } from '../pg/sql.js';

// Table selection: --all, --schema, pg_dump-style --table/--exclude-table patterns. The
// catalog is read with one fixed query; patterns are matched here, in JS, so no pattern ever
// becomes SQL text.

/** What to select. Patterns follow pg_dump: `*`, `?`, `schema.name`, `"Quoted"` parts exact. */
export interface Selection {
  /** Table names or patterns (default none). */
  tables?: string[];
  /** Every ordinary and partitioned table in the non-system schemas (default false). */
  all?: boolean;
  /** Every ordinary and partitioned table of these schemas (exact names, default none). */
  schemas?: string[];
  /** Patterns of tables to leave out (default none). */
  excludeTables?: string[];
}

/** One row of {@link listCatalogTables}. */
export interface CatalogTable {
  schema: string;
  name: string;
  /** pg_class.relkind: r, p, f, v, m. */
  relkind: string;
  /** pg_table_is_visible: found through the search_path without a schema. */
  visible: boolean;
}

/** A compiled pattern: anchored regexes over schema (absent: visible tables only) and name. */
export interface TablePattern {
  text: string;
  schema?: RegExp;
  name: RegExp;
  /** No wildcard: names one table exactly. */
  exact: boolean;
}

const RE_SPECIAL = /[\\^$.*+?()[\]{}|/-]/g;

/**
 * Compile a pg_dump-style pattern: outside double quotes letters fold to lower case, `*` is any
 * run of characters, `?` one character and `.` separates schema from name; inside quotes every
 * character is literal (`""` is a quote). Other regular-expression characters are literal too
 * (pg_dump would read them as a regex; segferry does not). Throws InvalidOptionError.
 */
export function compilePattern(input: string): TablePattern {
  const parts: string[] = [''];
  let exact = true;
  let inQuote = false;
  let any = false;
  const s = input.trim();
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') {
      if (inQuote && s[i + 1] === '"') { parts[parts.length - 1] += '"'; i++; continue; }
      inQuote = !inQuote;
      any = true;
      continue;
    }
    any = true;
    if (inQuote) { parts[parts.length - 1] += c.replace(RE_SPECIAL, '\\$&'); continue; }
    if (c === '.') { parts.push(''); continue; }
    if (c === '*') { parts[parts.length - 1] += '.*'; exact = false; continue; }
    if (c === '?') { parts[parts.length - 1] += '.'; exact = false; continue; }
    parts[parts.length - 1] += c.toLowerCase().replace(RE_SPECIAL, '\\$&');
  }
  if (inQuote) throw new InvalidOptionError(`unterminated quoted identifier in table pattern ${input}`);
  if (!any || parts.length > 2 || parts.some((p) => p === '')) {
    throw new InvalidOptionError(`cannot read table pattern ${JSON.stringify(input)}: use name, schema.name, * and ?`);
  }
  const re = (p: string) => new RegExp(`^(?:${p})$`, 'su');
  const out: TablePattern = { text: input, name: re(parts[parts.length - 1]!), exact };
  if (parts.length === 2) out.schema = re(parts[0]!);
  return out;
}

/** True when the pattern selects this catalog table (unqualified: search_path-visible ones only, as pg_dump). */
export function patternMatches(p: TablePattern, t: CatalogTable): boolean {
  if (!p.name.test(t.name)) return false;
  return p.schema ? p.schema.test(t.schema) : t.visible;
}

/** True when a selection needs the catalog (anything beyond exact table names). */
export function needsCatalog(sel: Selection): boolean {
  return sel.all === true || (sel.schemas?.length ?? 0) > 0 || (sel.excludeTables?.length ?? 0) > 0
    || (sel.tables ?? []).some((t) => !compilePattern(t).exact);
}

/**
 * Resolve a selection against a catalog listing (pure). Exact names pass through as given (a
 * missing one is reported later by discovery, naming the node), in the order given; patterns,
 * `--schema` and `--all` add the ordinary and partitioned tables they match, in (schema, name)
 * order; excludes then remove. A pattern that matches nothing is a TableNotFoundError; the
 * same exact name twice is an InvalidOptionError. An empty result is an InvalidOptionError.
 */
export function resolveSelection(catalog: readonly CatalogTable[], sel: Selection): QualifiedName[] {
  const out: QualifiedName[] = [];
  const seen = new Set<string>();
  const add = (q: QualifiedName) => {
    const k = displayName(q);
    if (!seen.has(k)) { seen.add(k); out.push(q); }
  };
  const exactSeen = new Set<string>();
  const sorted = [...catalog].sort((a, b) => cmp(a.schema, b.schema) || cmp(a.name, b.name));
  const tableLike = (t: CatalogTable) => t.relkind === 'r' || t.relkind === 'p';
  for (const text of sel.tables ?? []) {
    const p = compilePattern(text);
    if (p.exact) {
      let q: QualifiedName;
      try { q = parseTableName(text); } catch (e) { throw new InvalidOptionError((e as Error).message); }
      // Unqualified: the visible table of that name when the catalog was read, else public.
      if (!p.schema) {
        const vis = sorted.find((t) => t.visible && t.name === q.name);
        if (vis) q = { schema: vis.schema, name: vis.name };
      }
      const k = displayName(q);
      if (exactSeen.has(k)) throw new InvalidOptionError(`table ${k} is given twice`);
      exactSeen.add(k);
      add(q);
      continue;
    }
    const hits = sorted.filter((t) => (tableLike(t) || t.relkind === 'f') && patternMatches(p, t));
    if (hits.length === 0) throw new TableNotFoundError(`no table matches the pattern ${text}`, { hint: 'patterns follow pg_dump: * and ?, schema.name, "Quoted" parts exact' });
    for (const t of hits) add({ schema: t.schema, name: t.name });
  }
  const schemas = new Set(sel.schemas ?? []);
  for (const s of schemas) {
    if (!sorted.some((t) => t.schema === s)) throw new TableNotFoundError(`schema ${s} has no tables`, { hint: 'schema names are exact (case-sensitive)' });
  }
  for (const t of sorted) {
    if (tableLike(t) && (sel.all === true || schemas.has(t.schema))) add({ schema: t.schema, name: t.name });
  }
  const ex = (sel.excludeTables ?? []).map(compilePattern);
  const kept = out.filter((q) => {
    const cat = catalog.find((t) => t.schema === q.schema && t.name === q.name);
    const row: CatalogTable = cat ?? { ...q, relkind: 'r', visible: q.schema === 'public' };
    return !ex.some((p) => patternMatches(p, row));
  });
  if (kept.length === 0) throw new InvalidOptionError('the selection is empty: no table left to export');
  return kept;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The catalog tables a selection can choose from, with one fixed query: ordinary, partitioned
 * and foreign tables, views and materialized views that are not partitions, outside the system
 * schemas and segferry's own `segferry` schema, and not owned by an extension (Citus's
 * metadata, for one).
 */
export async function listCatalogTables(client: pg.Client): Promise<CatalogTable[]> {
  const r = await client.query<CatalogTable>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
            pg_catalog.pg_table_is_visible(c.oid) AS visible
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p','f','v','m') AND NOT c.relispartition
        AND n.nspname <> ALL ($1::text[]) AND n.nspname !~ '^pg_(toast|temp_)'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                         WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')`,
    [SKIPPED_SCHEMAS],
  );
  return r.rows;
}

/** Schemas never selected: the system's and segferry's ledger schema. */
export const SKIPPED_SCHEMAS = ['pg_catalog', 'information_schema', 'segferry'];
