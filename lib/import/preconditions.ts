/**
 * What must hold before an import loads anything: the destination columns fit the export's,
 * the ledgers agree with the routing, and every object to load is in storage at its size.
 */
import { ChecksumMismatchError, DestinationNotEmptyError, InvalidOptionError, ObjectMissingError, SchemaMismatchError, SegferryError, TableNotFoundError, fromDatabaseError } from '../errors.js';
import type { FormatKind } from '../format/options.js';
import { displayName, quoteQualified, type QualifiedName } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import { findRelation, relationColumns, type CatalogColumn } from '../topology/catalog.js';
import { NodeClients } from '../topology/clients.js';
import { COORDINATOR_NODE, type ColumnInfo, type PlanNode } from '../topology/types.js';
import type { DestSide } from './destination.js';
import { LEDGER_TABLE, readLedger } from './ledger.js';
import type { ImportTablePlan } from './route.js';
import { recordedDigest } from '../manifest/digest.js';

const INT_RANK: Record<string, number> = { smallint: 1, integer: 2, bigint: 3 };
/** Decimal digits the integer types need in a numeric(p,s): p - s must be at least this. */
const INT_DIGITS: Record<string, number> = { smallint: 5, integer: 10, bigint: 19 };

/** `numeric`, `numeric(p)`, `numeric(p,s)` → precision and scale (undefined: unconstrained). */
function numericMod(t: string): { p?: number; s: number } | undefined {
  if (t === 'numeric') return { s: 0 };
  const m = /^numeric\((\d+)(?:,(-?\d+))?\)$/.exec(t);
  return m ? { p: Number(m[1]), s: Number(m[2] ?? 0) } : undefined;
}

/** `character varying(n)` / `character varying` → n (Infinity: no limit). */
function varcharLen(t: string): number | undefined {
  if (t === 'character varying') return Infinity;
  const m = /^character varying\((\d+)\)$/.exec(t);
  return m ? Number(m[1]) : undefined;
}

/** `timestamp[(p)] with[out] time zone` → precision (6 without a typmod) and the zone flag. */
function timestampMod(t: string): { p: number; tz: boolean } | undefined {
  const m = /^timestamp(?:\((\d)\))? (with|without) time zone$/.exec(t);
  return m ? { p: m[1] === undefined ? 6 : Number(m[1]), tz: m[2] === 'with' } : undefined;
}

/**
 * Whether a column exported as type `from` (format_type text) may be loaded into a destination
 * column of type `to`: the same type, or a widening under which every value's text form is
 * read back unchanged: smallint → integer → bigint; integer types → numeric (unconstrained, or
 * with p - s ≥ the type's digits); real → double precision; varchar(n) → varchar(m ≥ n),
 * varchar or text; char(n) → text; text → varchar (no limit); timestamp(p) → timestamp(q ≥ p)
 * with the same zone; numeric(p,s) → numeric(p2 ≥ p, s) or unconstrained numeric.
 * Everything else is refused. Arrow objects are loaded in COPY BINARY, whose wire forms differ
 * between these types: there, only the same type is accepted.
 */
export function typeAccepts(from: string, to: string, format: FormatKind = 'text'): boolean {
  if (from === to) return true;
  if (format === 'arrow' || format === 'parquet') return false;
  const fi = INT_RANK[from];
  if (fi !== undefined) {
    const ti = INT_RANK[to];
    if (ti !== undefined) return ti >= fi;
    const n = numericMod(to);
    return n !== undefined && (n.p === undefined || n.p - n.s >= INT_DIGITS[from]!);
  }
  if (from === 'real') return to === 'double precision';
  const fv = varcharLen(from);
  if (fv !== undefined) {
    const tv = varcharLen(to);
    return to === 'text' || (tv !== undefined && tv >= fv);
  }
  if (/^character\(\d+\)$/.test(from) || from === 'bpchar') return to === 'text';
  if (from === 'text') return to === 'character varying';
  const ft = timestampMod(from);
  if (ft) {
    const tt = timestampMod(to);
    return tt !== undefined && tt.tz === ft.tz && tt.p >= ft.p;
  }
  const fn = numericMod(from);
  if (fn && fn.p !== undefined) {
    const tn = numericMod(to);
    return tn !== undefined && (tn.p === undefined || (tn.p >= fn.p && tn.s === fn.s));
  }
  return false;
}

/**
 * Check that a destination relation has every exported column, each of the exported type or
 * a safe widening of it ({@link typeAccepts}; `format` default text).
 */
export function checkColumns(exported: ColumnInfo[], dest: CatalogColumn[], names: string[], table: string, node: string, format: FormatKind = 'text'): void {
  if (exported.length === 0 && dest.length > 0) {
    throw new SchemaMismatchError(`table ${table} was exported without columns, but on node ${node} it has ${dest.length}: its rows have no values to give them`, {
      node, table, hint: 'load it into a table without columns (create, --create, makes one)',
    });
  }
  exported.forEach((c, i) => {
    const want = names[i] ?? c.name;
    const d = dest.find((x) => x.name === want);
    if (!d) {
      throw new SchemaMismatchError(`table ${table} on node ${node} has no column ${JSON.stringify(want)} (exported as ${c.type})`, {
        node, table, hint: 'create the column, or let segferry create missing tables (create, --create) in an empty schema',
      });
    }
    if (!typeAccepts(c.type, d.type, format)) {
      throw new SchemaMismatchError(`table ${table} on node ${node}: column ${JSON.stringify(want)} is ${d.type}, but was exported as ${c.type}`, {
        node, table, hint: format === 'arrow'
          ? 'an Arrow export loads in binary: the destination column must have the exported type'
          : 'the destination column must have the exported type or a widening of it that reads every value back the same (docs/formats.md#types)',
      });
    }
  });
}

/** Check the columns of every existing target relation (tables to be created are skipped). */
export async function checkTargets(tables: ImportTablePlan[], dest: Pick<DestSide, 'kind' | 'nodes' | 'tables'>, format: FormatKind = 'text'): Promise<void> {
  const cache = new NodeClients({ nodes: dest.nodes, applicationName: 'segferry import' });
  try {
    for (const tp of tables) {
      for (const t of tp.targets) {
        if (tp.create.includes(t.node)) continue;
        let cols: CatalogColumn[] | undefined;
        const dt = dest.tables.get(tp.table);
        if (dest.kind === 'static') cols = dt?.nodeColumns.get(t.node);
        else if (t.node === COORDINATOR_NODE && dt?.discovered && displayName(dt.discovered.table) === displayName(t.relation)) cols = dt.columns;
        // Citus shard tables are hidden from catalog queries on workers; they have the table's columns.
        else if (dest.kind === 'citus' && tp.route === 'direct' && dt?.citus) cols = dt.columns;
        if (!cols) {
          const c = await cache.get(t.node);
          try {
            const rel = await findRelation(c, t.relation);
            if (!rel) {
              throw new TableNotFoundError(`relation ${displayName(t.relation)} of ${tp.table} not found on node ${t.node}`, { node: t.node, table: tp.table, sqlState: '42P01' });
            }
            cols = await relationColumns(c, rel.oid);
          } catch (e) {
            throw e instanceof SegferryError ? e : fromDatabaseError(e, { node: t.node, table: tp.table, action: 'catalog lookup' });
          }
        }
        checkColumns(tp.columns, cols, t.columns, tp.table, t.node, format);
      }
    }
  } finally {
    await cache.closeAll();
  }
}

/** Every object still to load must be in storage with the size the manifest records. */
export async function checkObjects(store: ObjectStore, tables: ImportTablePlan[]): Promise<void> {
  const want = tables.flatMap((t) => t.objects.filter((o) => o.loaded.length < o.targets.length).map((o) => ({ t, o })));
  if (want.length === 0) return;
  const sizes = new Map<string, number>();
  for await (const o of store.list('')) sizes.set(o.key, o.size);
  const missing = want.filter(({ o }) => !sizes.has(o.key));
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new ObjectMissingError(`object ${first.o.key} of ${first.t.table} is listed in the manifest but missing from ${store.url}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`, {
      key: first.o.key, table: first.t.table, hint: 'the export is incomplete or objects were removed; export again',
    });
  }
  for (const { t, o } of want) {
    const size = sizes.get(o.key)!;
    if (recordedDigest(o) !== undefined && size !== o.bytes) {
      throw new ChecksumMismatchError(`object ${o.key} of ${t.table} is ${size} bytes, but the manifest records ${o.bytes}: it is corrupt or truncated`, {
        key: o.key, table: t.table,
      });
    }
  }
}

/**
 * Read every node's ledger entries of this import, by node. Nodes in `used` must answer;
 * the others (they receive nothing) are read when reachable within 5 s, else a note is added.
 */
export async function readLedgers(nodes: ReadonlyMap<string, PlanNode>, used: ReadonlySet<string>, importId: string, notes: string[]): Promise<Map<string, Map<string, string>>> {
  const ledgers = new Map<string, Map<string, string>>();
  const cache = new NodeClients({ nodes, applicationName: 'segferry import' });
  // Nodes that receive nothing may be out of the importer's reach: do not wait long for them.
  const optional = new NodeClients({ nodes, applicationName: 'segferry import', connectTimeoutMs: 5000 });
  try {
    for (const n of nodes.keys()) {
      try {
        const c = await (used.has(n) ? cache : optional).get(n);
        ledgers.set(n, await readLedger(c, importId).catch((e) => { throw fromDatabaseError(e, { node: n, action: `reading ${LEDGER_TABLE}` }); }));
      } catch (e) {
        if (used.has(n)) throw e;
        notes.push(`node ${n}: ledger not readable (${(e as SegferryError).code ?? 'error'}); it receives nothing in this import`);
      }
    }
  } finally {
    await cache.closeAll();
    await optional.closeAll();
  }
  return ledgers;
}

/**
 * Fill each object's `loaded` from the ledgers (node → recorded keys). An object recorded on
 * a node that is not among its targets was routed differently by an earlier run: loading it
 * again would duplicate its rows, so that is an InvalidOptionError.
 */
export function markLoaded(tables: ImportTablePlan[], ledgers: ReadonlyMap<string, ReadonlyMap<string, string>>): void {
  for (const tp of tables) {
    for (const o of tp.objects) {
      o.loaded = o.targets.filter((n) => ledgers.get(n)?.has(o.key));
      for (const [n, l] of ledgers) {
        if (!o.targets.includes(n) && l.has(o.key)) {
          throw new InvalidOptionError(`object ${o.key} of this import was loaded into node ${n} by an earlier run that routed ${tp.table} differently`, {
            table: tp.table, key: o.key, node: n,
            hint: 'rerun with the same route (--route), or reload the table with truncate (--truncate)',
          });
        }
      }
    }
  }
}

/**
 * Refuse to load into a destination table that already holds rows, unless this import is being
 * resumed there (the ledgers hold rows of this import id for the table: those rows are its own).
 * One `SELECT EXISTS (SELECT 1 FROM t)` per table: through the coordinator when there is one
 * (it sees every node's rows), else on each static node that receives objects. Tables created
 * by this import are empty. Callers skip this for `truncate` and `append`.
 */
export async function checkEmpty(tables: ImportTablePlan[], dest: Pick<DestSide, 'kind' | 'nodes'>, ledgers: ReadonlyMap<string, ReadonlyMap<string, string>>): Promise<void> {
  const cache = new NodeClients({ nodes: dest.nodes, applicationName: 'segferry import' });
  const loadedHere = (node: string, table: string) => [...(ledgers.get(node)?.values() ?? [])].includes(table);
  try {
    for (const tp of tables) {
      const checks: { node: string; relation: QualifiedName; resumed: boolean }[] = [];
      if (dest.kind === 'static') {
        for (const t of tp.targets) {
          if (!tp.create.includes(t.node)) checks.push({ node: t.node, relation: t.relation, resumed: loadedHere(t.node, tp.table) });
        }
      } else if (!tp.create.includes(COORDINATOR_NODE)) {
        checks.push({ node: COORDINATOR_NODE, relation: tp.destination, resumed: [...ledgers.keys()].some((n) => loadedHere(n, tp.table)) });
      }
      for (const ch of checks) {
        if (ch.resumed) continue;
        let any: boolean;
        try {
          const c = await cache.get(ch.node);
          const r = await c.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteQualified(ch.relation)}) AS any`);
          any = r.rows[0]?.any === true;
        } catch (e) {
          throw e instanceof SegferryError ? e : fromDatabaseError(e, { node: ch.node, table: tp.table, action: 'check the table is empty' });
        }
        if (any) {
          throw new DestinationNotEmptyError(`table ${tp.table} on node ${ch.node} already holds rows that this import did not load`, {
            node: ch.node, table: tp.table,
            hint: 'pass append (--append) to add the export\'s rows to them, or truncate (--truncate) to replace them',
          });
        }
      }
    }
  } finally {
    await cache.closeAll();
  }
}
