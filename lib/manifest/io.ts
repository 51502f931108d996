import { ManifestInvalidError, ManifestMissingError } from '../errors.js';
import type { ObjectStore } from '../store/types.js';
import { MANIFEST_KEY, MANIFEST_VERSION, type Manifest } from './types.js';

/** Read and check the manifest under a store's root. */
export async function readManifest(store: ObjectStore): Promise<Manifest> {
  const bytes = await store.getBytes(MANIFEST_KEY);
  if (!bytes) {
    throw new ManifestMissingError(`no ${MANIFEST_KEY} under ${store.url}: the export is missing or did not finish`, {
      key: MANIFEST_KEY,
      hint: 'check the location; an export writes its manifest last, only when every object is stored',
    });
  }
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ManifestInvalidError(`${store.url}${MANIFEST_KEY} is not valid JSON`, { key: MANIFEST_KEY, cause: e });
  }
  return checkManifest(m, store.url);
}

/** Longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer ones are cut silently. */
const MAX_IDENT_BYTES = 63;

/** Why `v` is not a usable identifier (a string PostgreSQL keeps as it is), or undefined. */
export function identifierProblem(v: unknown): string | undefined {
  if (typeof v !== 'string') return 'is not a string';
  if (v.length === 0) return 'is empty';
  if (v.includes('\0')) return 'contains a NUL byte';
  if (Buffer.byteLength(v, 'utf8') > MAX_IDENT_BYTES) return `is longer than ${MAX_IDENT_BYTES} bytes (PostgreSQL would cut it)`;
  return undefined;
}

/**
 * Structural check of a parsed manifest: required fields and their types, identifiers that
 * PostgreSQL keeps as written (non-empty, no NUL, at most 63 bytes), unique tables, every
 * object belonging to exactly one table. Everything read from storage is untrusted: the
 * import path also resolves column types on the destination before using them (lib/import/safety.ts).
 */
export function checkManifest(m: unknown, where = 'manifest'): Manifest {
  const bad = (why: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${why}`, { key: MANIFEST_KEY });
  if (!m || typeof m !== 'object') throw bad('not an object');
  const o = m as Partial<Manifest>;
  if (o.kind !== 'segferry-manifest') throw bad('not a segferry manifest');
  if (o.version !== MANIFEST_VERSION) throw bad(`version ${String(o.version)} is not supported (this segferry reads version ${MANIFEST_VERSION})`);
  if (typeof o.id !== 'string' || !Array.isArray(o.tables) || !Array.isArray(o.objects) || !o.format || !o.sessionSettings) {
    throw bad('missing required fields');
  }
  if (typeof o.sessionSettings !== 'object' || Object.values(o.sessionSettings).some((v) => typeof v !== 'string')) {
    throw bad('sessionSettings must map names to strings');
  }
  const names = new Set<string>();
  o.tables.forEach((t, i) => {
    if (!t || typeof t !== 'object') throw bad(`tables[${i}] is not an object`);
    for (const k of ['schema', 'name'] as const) {
      const p = identifierProblem(t[k]);
      if (p) throw bad(`tables[${i}].${k} ${p}`);
    }
    const display = `${t.schema}.${t.name}`;
    // objects[].table names a table by this display form: it must be unambiguous.
    if (names.has(display)) throw bad(`two tables are named ${JSON.stringify(display)}`);
    names.add(display);
    if (typeof t.objectName !== 'string') throw bad(`tables[${i}].objectName is not a string`);
    if (!Array.isArray(t.columns)) throw bad(`tables[${i}].columns is not a list`);
    const cols = [...t.columns, ...(t.generated === undefined ? [] : Array.isArray(t.generated) ? t.generated : [null])];
    const seen = new Set<string>();
    cols.forEach((c, j) => {
      if (!c || typeof c !== 'object') throw bad(`tables[${i}] (${display}): column ${j} is not an object`);
      const p = identifierProblem(c.name);
      if (p) throw bad(`tables[${i}] (${display}): column name ${p}`);
      if (seen.has(c.name)) throw bad(`tables[${i}] (${display}): column ${JSON.stringify(c.name)} appears twice`);
      seen.add(c.name);
      if (typeof c.type !== 'string' || c.type.length === 0) throw bad(`tables[${i}] (${display}): column ${JSON.stringify(c.name)} has no type`);
    });
    if (!t.distribution || typeof t.distribution !== 'object') throw bad(`tables[${i}].distribution is not an object`);
    const d = t.distribution;
    if (d.column !== undefined && typeof d.column !== 'string') throw bad(`tables[${i}].distribution.column is not a string`);
    if (d.shards !== undefined && (!Array.isArray(d.shards) || d.shards.some((s) => !s || typeof s.id !== 'string' || !/^[0-9]+$/.test(s.id)))) {
      throw bad(`tables[${i}].distribution.shards must list shard ids made of digits`);
    }
    if (t.filter !== null && t.filter !== undefined && typeof t.filter !== 'string') throw bad(`tables[${i}].filter is not a string`);
    if (!Array.isArray(t.nodes) || t.nodes.some((n) => !n || typeof n.node !== 'string' || !Array.isArray(n.relations) || n.relations.some((r) => typeof r !== 'string'))) {
      throw bad(`tables[${i}].nodes must list node names with their relations`);
    }
  });
  for (const obj of o.objects) {
    if (typeof obj.key !== 'string' || typeof obj.sha256 !== 'string' || typeof obj.rows !== 'number' || typeof obj.bytes !== 'number') {
      throw bad('an object entry lacks key, sha256, rows or bytes');
    }
  }
  return o as Manifest;
}

/**
 * What an import also needs of a checked manifest: every object names one of `tables[]` by
 * its display form, its node and segment number, and shard ids made of digits. (Cleanup reads
 * only the keys, so {@link checkManifest} does not insist on these.)
 */
export function checkManifestObjects(m: Manifest, where = 'manifest'): void {
  const bad = (why: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${why}`, { key: MANIFEST_KEY });
  const names = new Set(m.tables.map((t) => `${t.schema}.${t.name}`));
  for (const obj of m.objects) {
    if (typeof obj.table !== 'string' || !names.has(obj.table)) throw bad(`object ${obj.key} names table ${JSON.stringify(obj.table)}, which is not among tables[]`);
    if (typeof obj.node !== 'string' || !Number.isInteger(obj.segment)) throw bad(`object ${obj.key} lacks its node or segment number`);
    if (obj.shards !== undefined && (!Array.isArray(obj.shards) || obj.shards.some((s) => typeof s !== 'string' || !/^[0-9]+$/.test(s)))) {
      throw bad(`object ${obj.key}: shards must be shard ids made of digits`);
    }
  }
}

/** Serialise a manifest (stable key order as built, two-space indent). */
export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}
