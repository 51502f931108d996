/**
 * The source side of an import: the manifest's tables and objects (only objects the manifest
 * lists are ever read), or a listing of bare objects written without a manifest.
 */
import { createHash } from 'node:crypto';
import { InvalidOptionError, ManifestMissingError, ObjectMissingError, TableNotFoundError } from '../errors.js';
import { normalizeFormat, type FormatKind, type FormatOptions } from '../format/options.js';
import { checkManifestObjects, readManifest } from '../manifest/io.js';
import { pickDigest, type ObjectDigest } from '../manifest/digest.js';
import { FORMAT_EXTENSIONS } from '../manifest/keys.js';
import { MANIFEST_KEY, type Manifest, type RowChecksum } from '../manifest/types.js';
import { SESSION_SETTINGS } from '../pg/conn.js';
import { displayName, parseTableName, quoteQualified, type QualifiedName } from '../pg/sql.js';
import type { ObjectInfo, ObjectStore } from '../store/types.js';
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
  /** Each with the digest its manifest entry records (`crc32` or `sha256`; none for bare objects). */
  objects: ({ key: string; node: string; segment: number; bytes: number; rows?: number; shards?: string[]; compression?: 'gzip' | 'zstd' } & ObjectDigest)[];
}

export interface SourceSide {
  id: string;
  bare: boolean;
  format: FormatOptions;
  sessionSettings: Record<string, string>;
  tables: SourceTable[];
  notes: string[];
}

/**
 * Import id of bare objects: a hash of the location, the table and every object's key, size,
 * ETag and modification time, so objects replaced under the same names are a new import
 * (their rows are not in the ledger), while a rerun over the same objects resumes.
 */
export function bareImportId(location: string, table: string, objects: readonly ObjectInfo[]): string {
  const h = createHash('sha256').update(`${location}\n${table}\n`);
  for (const o of [...objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    h.update(`${o.key}\0${o.size}\0${o.etag ?? ''}\0${o.lastModified ?? ''}\n`);
  }
  return 'bare:' + h.digest('hex').slice(0, 32);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Tables asked for: user text (`name`, `schema.name`, `"Quoted"`) parsed once, or a name already split. */
export type TableSelection = string | QualifiedName;

function selectName(t: TableSelection): QualifiedName {
  if (typeof t !== 'string') return { schema: t.schema, name: t.name };
  try { return parseTableName(t); } catch (e) { throw new InvalidOptionError((e as Error).message); }
}

function sameName(a: QualifiedName, b: QualifiedName): boolean {
  return a.schema === b.schema && a.name === b.name;
}

/** Read the manifest, or list the bare objects, and pick the requested tables. */
export async function readSource(store: ObjectStore, opts: { tables?: TableSelection[]; bare?: BareSource }): Promise<SourceSide & { manifest?: Manifest }> {
  if (opts.bare) {
    if (await store.head(MANIFEST_KEY)) {
      throw new InvalidOptionError(`${store.url} holds a manifest: import it as an export, without bare options`);
    }
    const b = opts.bare;
    let table: QualifiedName;
    try { table = parseTableName(b.table); } catch (e) { throw new InvalidOptionError((e as Error).message); }
    if (opts.tables && opts.tables.some((t) => !sameName(selectName(t), table))) {
      throw new InvalidOptionError('a bare import loads exactly one table: the one named in its bare options');
    }
    const format = normalizeFormat(typeof b.format === 'string' ? { kind: b.format } : b.format ?? { kind: 'text' }, { allowLossyNull: true });
    if (format.kind === 'arrow' || format.kind === 'binary') throw new InvalidOptionError('bare objects must be text, csv or parquet');
    const objectName = b.objectName ?? table.name;
    // `<objectName>_<node>_segment.<n>`, optionally with the extension of the format and codec
    // (`--extension`); `.gz` / `.zst` objects are read with that codec.
    const ext = `(${escapeRegExp(FORMAT_EXTENSIONS[format.kind]!)})?(\\.gz|\\.zst)?`;
    const re = new RegExp(`^${escapeRegExp(objectName)}_(.+)_segment\\.(\\d+)${ext}$`);
    const objects: SourceTable['objects'] = [];
    const infos: ObjectInfo[] = [];
    for await (const o of store.list(`${objectName}_`)) {
      const m = re.exec(o.key);
      if (m) {
        const codec = m[4] === '.gz' ? 'gzip' : m[4] === '.zst' ? 'zstd' : undefined;
        objects.push({ key: o.key, node: m[1]!, segment: Number(m[2]), bytes: o.size, ...(codec ? { compression: codec } : {}) });
        infos.push(o);
      }
    }
    if (objects.length === 0) {
      throw new ObjectMissingError(`no objects named ${objectName}_<node>_segment.<n> under ${store.url}`, {
        hint: 'check the location and the object name (bare objectName / --object-name)',
      });
    }
    objects.sort((a, b) => (a.node === b.node ? a.segment - b.segment : a.node < b.node ? -1 : 1));
    const name = displayName(table);
    return {
      id: bareImportId(store.url, name, infos),
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
    if (e instanceof ManifestMissingError && !e.hint?.includes('--resume')) {
      throw new ManifestMissingError(e.message, {
        key: MANIFEST_KEY,
        hint: 'check the location; for objects written without a manifest (e.g. GaussDB(DWS) export) give the table and format (bare, --bare)',
      });
    }
    throw e;
  }
  checkManifestObjects(m, store.url);
  let wanted = m.tables;
  if (opts.tables && opts.tables.length > 0) {
    // Compared as (schema, name): a display string `schema.name` is ambiguous once a name holds a dot.
    const wantedNames = opts.tables.map(selectName);
    for (const n of wantedNames) {
      if (!m.tables.some((t) => sameName(t, n))) {
        throw new TableNotFoundError(`table ${displayName(n)} is not in the export at ${store.url}`, {
          table: displayName(n), hint: `the export holds ${m.tables.map((t) => quoteQualified(t)).join(', ')}`,
        });
      }
    }
    wanted = m.tables.filter((t) => wantedNames.some((n) => sameName(t, n)));
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
      // Only objects the manifest lists are ever read. objects[].table is the display form
      // `schema.name`: matched by exact equality, never parsed (the check made it unambiguous).
      objects: m.objects.filter((o) => o.table === name).map((o) => ({
        key: o.key, node: o.node, segment: o.segment, bytes: o.bytes, rows: o.rows, ...pickDigest(o), ...(o.shards ? { shards: o.shards } : {}),
        ...(o.compression ? { compression: o.compression } : {}),
      })),
    };
    if (t.checksum) st.checksum = t.checksum;
    else notes.push(`${name}: the export recorded no checksum; verify can compare row counts only`);
    return st;
  });
  return { id: m.id, bare: false, format: m.format, sessionSettings: m.sessionSettings, tables, notes, manifest: m };
}
