/**
 * The source side of an import: the manifest's tables and objects (only objects the manifest
 * lists are ever read), or a listing of bare objects written without a manifest.
 */
import { createHash } from 'node:crypto';
import { InvalidOptionError, ManifestMissingError, ObjectMissingError, TableNotFoundError } from '../errors.js';
import { normalizeFormat, type FormatKind, type FormatOptions } from '../format/options.js';
import { readManifest } from '../manifest/io.js';
import { MANIFEST_KEY, type Manifest, type RowChecksum } from '../manifest/types.js';
import { SESSION_SETTINGS } from '../pg/conn.js';
import { displayName, parseTableName, type QualifiedName } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import type { ColumnInfo, Distribution } from '../topology/types.js';

/**
 * Objects without a manifest (for example written by GaussDB(DWS)'s own OBS export): every
 * `<objectName>_<node>_segment.<n>` under the prefix belongs to one table. There is no
 * SHA-256 or row count to compare, so the import checks neither, and verify has nothing to
 * compare against.
 */
export interface BareSource {
  /** Destination table the objects hold: `name`, `schema.name` or `"Quoted"`. It must exist. */
  table: string;
  /** Format of the objects: `text` (default) or `csv`, or options (delimiter, null, quote, escape, header). */
  format?: FormatKind | (Partial<FormatOptions> & { kind: FormatKind });
  /** The `<objectName>` part of the keys (default: the table's name without its schema). */
  objectName?: string;
}

/** One table of the source (manifest or bare listing). */
export interface SourceTable {
  table: QualifiedName;
  name: string;
  columns?: ColumnInfo[];
  distribution: Distribution;
  /** Source node names that hold (held) a part, from the manifest. */
  nodes: string[];
  rows?: number;
  checksum?: RowChecksum;
  objects: { key: string; node: string; segment: number; bytes: number; rows?: number; sha256?: string; shards?: string[] }[];
}

export interface SourceSide {
  id: string;
  bare: boolean;
  format: FormatOptions;
  sessionSettings: Record<string, string>;
  tables: SourceTable[];
  notes: string[];
}

/** Import id of a bare prefix: stable for one location and table. */
export function bareImportId(location: string, table: string): string {
  return 'bare:' + createHash('sha256').update(`${location}\n${table}`).digest('hex').slice(0, 32);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Read the manifest, or list the bare objects, and pick the requested tables. */
export async function readSource(store: ObjectStore, opts: { tables?: string[]; bare?: BareSource }): Promise<SourceSide & { manifest?: Manifest }> {
  if (opts.bare) {
    if (await store.head(MANIFEST_KEY)) {
      throw new InvalidOptionError(`${store.url} holds a manifest: import it as an export, without bare options`);
    }
    const b = opts.bare;
    let table: QualifiedName;
    try { table = parseTableName(b.table); } catch (e) { throw new InvalidOptionError((e as Error).message); }
    if (opts.tables && opts.tables.some((t) => displayName(parseTableName(t)) !== displayName(table))) {
      throw new InvalidOptionError('a bare import loads exactly one table: the one named in its bare options');
    }
    const format = normalizeFormat(typeof b.format === 'string' ? { kind: b.format } : b.format ?? { kind: 'text' }, { allowLossyNull: true });
    if (format.kind === 'arrow' || format.kind === 'binary') throw new InvalidOptionError('bare objects must be text or csv');
    const objectName = b.objectName ?? table.name;
    const re = new RegExp(`^${escapeRegExp(objectName)}_(.+)_segment\\.(\\d+)$`);
    const objects: SourceTable['objects'] = [];
    for await (const o of store.list(`${objectName}_`)) {
      const m = re.exec(o.key);
      if (m) objects.push({ key: o.key, node: m[1]!, segment: Number(m[2]), bytes: o.size });
    }
    if (objects.length === 0) {
      throw new ObjectMissingError(`no objects named ${objectName}_<node>_segment.<n> under ${store.url}`, {
        hint: 'check the location and the object name (bare objectName / --object-name)',
      });
    }
    objects.sort((a, b) => (a.node === b.node ? a.segment - b.segment : a.node < b.node ? -1 : 1));
    const name = displayName(table);
    return {
      id: bareImportId(store.url, name),
      bare: true,
      format,
      sessionSettings: { ...SESSION_SETTINGS },
      tables: [{
        table, name, distribution: { kind: 'distributed' }, nodes: [...new Set(objects.map((o) => o.node))], objects,
      }],
      notes: [`${name}: objects without a manifest: no SHA-256, row count or checksum to compare`],
    };
  }
  let m: Manifest;
  try {
    m = await readManifest(store);
  } catch (e) {
    if (e instanceof ManifestMissingError) {
      throw new ManifestMissingError(e.message, {
        key: MANIFEST_KEY,
        hint: 'check the location; for objects written without a manifest (e.g. GaussDB(DWS) export) give the table and format (bare, --bare)',
      });
    }
    throw e;
  }
  let wanted = m.tables;
  if (opts.tables && opts.tables.length > 0) {
    const names = opts.tables.map((t) => {
      try { return displayName(parseTableName(t)); } catch (e) { throw new InvalidOptionError((e as Error).message); }
    });
    for (const n of names) {
      if (!m.tables.some((t) => `${t.schema}.${t.name}` === n)) {
        throw new TableNotFoundError(`table ${n} is not in the export at ${store.url}`, {
          table: n, hint: `the export holds ${m.tables.map((t) => `${t.schema}.${t.name}`).join(', ')}`,
        });
      }
    }
    wanted = m.tables.filter((t) => names.includes(`${t.schema}.${t.name}`));
  }
  const notes: string[] = [];
  const tables = wanted.map((t): SourceTable => {
    const name = `${t.schema}.${t.name}`;
    const st: SourceTable = {
      table: { schema: t.schema, name: t.name },
      name,
      columns: t.columns,
      distribution: t.distribution,
      nodes: t.nodes.map((n) => n.node),
      rows: t.rows,
      // Only objects the manifest lists are ever read.
      objects: m.objects.filter((o) => o.table === name).map((o) => ({
        key: o.key, node: o.node, segment: o.segment, bytes: o.bytes, rows: o.rows, sha256: o.sha256, ...(o.shards ? { shards: o.shards } : {}),
      })),
    };
    if (t.checksum) st.checksum = t.checksum;
    else notes.push(`${name}: the export recorded no checksum; verify can compare row counts only`);
    return st;
  });
  return { id: m.id, bare: false, format: m.format, sessionSettings: m.sessionSettings, tables, notes, manifest: m };
}
