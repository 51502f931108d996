import { CLIENT_ENCRYPTION_ALGORITHM } from '../crypto/algorithm.js';
import { ManifestInvalidError, ManifestMissingError } from '../errors.js';
import type { ObjectStore } from '../store/types.js';
import { checkFilterText } from '../pg/filter.js';
import { SESSION_SETTINGS } from '../pg/conn.js';
import { MANIFEST_KEY, MANIFEST_VERSION, type Manifest } from './types.js';
import { CHECKPOINT_KEY, DDL_POST_KEY, DDL_PRE_KEY } from './keys.js';
import { digestProblem } from './digest.js';

/** Read and check the manifest under a store's root. */
export async function readManifest(store: ObjectStore): Promise<Manifest> {
  const bytes = await store.getBytes(MANIFEST_KEY);
  if (!bytes) {
    // An export's checkpoint without its manifest: the export there was interrupted. Say so,
    // and how to finish it, rather than leave the user to guess between a wrong path and that.
    if (await store.head(CHECKPOINT_KEY).catch(() => undefined)) {
      throw new ManifestMissingError(`no ${MANIFEST_KEY} under ${store.url}: the export there did not finish (its ${CHECKPOINT_KEY} is there)`, {
        key: MANIFEST_KEY,
        hint: 'finish it first: run the same segferry export again with --resume (library: resume: true); it writes the manifest last',
      });
    }
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
 * Session settings a manifest may ask an importer to apply, each with the values segferry
 * writes (SESSION_SETTINGS; every manifest version so far wrote the same). Anything else
 * (e.g. `session_replication_role=replica`, which skips foreign-key checks) is refused.
 */
export const ALLOWED_SESSION_SETTINGS: Readonly<Record<string, readonly string[]>> = Object.freeze(
  Object.fromEntries(Object.entries(SESSION_SETTINGS).map(([k, v]) => [k, Object.freeze([v])])),
);

type Bad = (why: string) => ManifestInvalidError;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Structural check of a parsed manifest. A bucket is shared ground: everything read from it is
 * untrusted input, so every field an import or verify uses is checked for type and shape
 * (strings, whole numbers ≥ 0, arrays, names without NUL, keys that stay one path segment,
 * the WHERE filter one expression, session settings on the allowlist) before any statement
 * runs; identifiers are ones PostgreSQL keeps as written (at most 63 bytes), tables and
 * columns unique. Type names are not checked as SQL here: the import resolves them on the
 * destination before use (lib/import/safety.ts).
 *
 * @throws ManifestInvalidError naming the first field that is wrong.
 */
export function checkManifest(m: unknown, where = 'manifest'): Manifest {
  const bad: Bad = (why: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${why}`, { key: MANIFEST_KEY });
  if (!isObj(m)) throw bad('not an object');
  const o = m as Partial<Manifest>;
  if (o.kind !== 'segferry-manifest') throw bad('not a segferry manifest');
  if (o.version !== MANIFEST_VERSION) throw bad(`version ${String(o.version)} is not supported (this segferry reads version ${MANIFEST_VERSION})`);
  if (typeof o.id !== 'string' || !Array.isArray(o.tables) || !Array.isArray(o.objects) || !o.format || !o.sessionSettings) {
    throw bad('missing required fields');
  }
  if (o.id === '' || o.id.includes('\0')) throw bad('id must be a non-empty string without NUL');
  checkFormat(o.format, bad);
  if (o.compression !== undefined) compression(o.compression, 'compression', bad);
  if (o.compression !== undefined && (o.format.kind === 'arrow' || o.format.kind === 'parquet')) throw bad(`compression does not apply to ${o.format.kind} objects`);
  if (o.arrowCompression !== undefined && ((o.arrowCompression !== 'zstd' && o.arrowCompression !== 'lz4') || o.format.kind !== 'arrow')) throw bad('arrowCompression must be zstd or lz4, on arrow objects only');
  checkSessionSettings(o.sessionSettings, bad);
  if (o.segmentSize !== undefined) count(o.segmentSize, 'segmentSize', bad);
  if (o.replicatedFrom !== undefined) {
    const r = o.replicatedFrom as unknown;
    if (!isObj(r)) throw bad('replicatedFrom must be an object');
    for (const k of ['location', 'at', 'manifestId'] as const) name(r[k], `replicatedFrom.${k}`, bad);
  }
  const names = new Set<string>();
  o.tables.forEach((t, i) => {
    checkTable(t, `tables[${i}]`, bad);
    // objects[].table names a table by its display form: it must be unambiguous.
    const display = `${t.schema}.${t.name}`;
    if (names.has(display)) throw bad(`two tables are named ${JSON.stringify(display)}`);
    names.add(display);
  });
  for (const [i, obj] of o.objects.entries()) {
    if (!isObj(obj) || typeof obj.key !== 'string' || typeof obj.rows !== 'number' || typeof obj.bytes !== 'number') {
      throw bad('an object entry lacks key, rows or bytes');
    }
    const at = `objects[${i}]`;
    // Exactly one digest, well formed: it is compared as text, and names the algorithm to use.
    const digest = digestProblem(obj as unknown as Record<string, unknown>, at);
    if (digest !== undefined) throw bad(digest);
    checkKey(obj.key, `${at}.key`, bad);
    name(obj.table, `${at}.table`, bad);
    name(obj.node, `${at}.node`, bad);
    count(obj.segment, `${at}.segment`, bad);
    count(obj.bytes, `${at}.bytes`, bad);
    count(obj.rows, `${at}.rows`, bad);
    if (obj.shards !== undefined) strings(obj.shards, `${at}.shards`, bad);
    if (obj.compression !== undefined) {
      compression(obj.compression, `${at}.compression`, bad);
      if (obj.compression !== o.compression) throw bad(`${at}.compression ${obj.compression} differs from the export's compression ${String(o.compression ?? 'none')}`);
    } else if (o.compression !== undefined) throw bad(`${at} lacks the compression of the export (${o.compression})`);
  }
  if (o.ddl !== undefined) checkDdl(o.ddl, bad);
  if (o.planFingerprint !== undefined && (typeof o.planFingerprint !== 'string' || !/^[0-9a-f]{64}$/.test(o.planFingerprint))) throw bad('planFingerprint must be 64 hex digits');
  if (o.clientEncryption !== undefined) checkClientEncryption(o.clientEncryption, bad);
  if (o.schemaOnly !== undefined) {
    if (o.schemaOnly !== true) throw bad('schemaOnly must be true when present');
    if (o.ddl === undefined) throw bad('a schemaOnly manifest must carry ddl');
    if (o.objects.length > 0) throw bad('a schemaOnly manifest lists no objects');
  }
  if (o.sequences !== undefined) checkSequences(o.sequences, 'sequences', bad);
  if (o.matviews !== undefined) checkMatviews(o.matviews, 'matviews', bad);
  return o as Manifest;
}

/**
 * The `clientEncryption` entry: a known algorithm and key source, a wrapped key of a sane
 * size, a key id of the source's shape (it appears in messages and reaches KMS), a chunk size
 * within the format's limits (it sizes the decryptor's buffer).
 */
export function checkClientEncryption(c: unknown, bad: Bad): void {
  if (!isObj(c)) throw bad('clientEncryption must be an object');
  if (c.algorithm !== CLIENT_ENCRYPTION_ALGORITHM) throw bad(`clientEncryption.algorithm must be ${CLIENT_ENCRYPTION_ALGORITHM}`);
  if (c.keySource !== 'key-file' && c.keySource !== 'kms') throw bad('clientEncryption.keySource must be key-file or kms');
  if (typeof c.wrappedKey !== 'string' || c.wrappedKey.length > 8192 || !/^[A-Za-z0-9+/]+={0,2}$/.test(c.wrappedKey)) {
    throw bad('clientEncryption.wrappedKey must be base64 (at most 8192 characters)');
  }
  if (c.keySource === 'key-file' ? typeof c.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(c.keyId) : typeof c.keyId !== 'string' || !/^[A-Za-z0-9:/_+=,.@-]{1,2048}$/.test(c.keyId)) {
    throw bad(`clientEncryption.keyId must be ${c.keySource === 'key-file' ? '16 hexadecimal digits' : 'a KMS key id, ARN or alias'}`);
  }
  if (typeof c.chunkSize !== 'number' || !Number.isSafeInteger(c.chunkSize) || c.chunkSize < 1024 || c.chunkSize > 64 * 1024 * 1024) {
    throw bad('clientEncryption.chunkSize must be a whole number from 1024 to 67108864');
  }
}

/** The `ddl` entry: fixed keys only (a manifest cannot point the import at another object). */
function checkDdl(d: unknown, bad: Bad): void {
  if (!isObj(d)) throw bad('ddl must be an object');
  for (const [part, key] of [['pre', DDL_PRE_KEY], ['post', DDL_POST_KEY]] as const) {
    const x = d[part];
    if (!isObj(x)) throw bad(`ddl.${part} must be an object`);
    if (x.key !== key) throw bad(`ddl.${part}.key must be ${key}`);
    count(x.bytes, `ddl.${part}.bytes`, bad);
    if (typeof x.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(x.sha256)) throw bad(`ddl.${part}.sha256 must be 64 hexadecimal digits`);
  }
  optString(d.pgDumpVersion, 'ddl.pgDumpVersion', bad);
  optString(d.serverVersion, 'ddl.serverVersion', bad);
  if (d.snapshot !== 'shared' && d.snapshot !== 'before-data') throw bad('ddl.snapshot must be shared or before-data');
  if (d.scope !== 'database' && d.scope !== 'schemas' && d.scope !== 'tables') throw bad('ddl.scope must be database, schemas or tables');
  checkSequences(d.sequences, 'ddl.sequences', bad);
  if (d.matviews !== undefined) checkMatviews(d.matviews, 'ddl.matviews', bad);
  if (d.distribution !== undefined) {
    if (!Array.isArray(d.distribution)) throw bad('ddl.distribution must be an array');
    d.distribution.forEach((q: unknown, i: number) => {
      const at = `ddl.distribution[${i}]`;
      if (!isObj(q)) throw bad(`${at} must be an object`);
      name(q.schema, `${at}.schema`, bad);
      name(q.name, `${at}.name`, bad);
      if (q.kind === 'reference') return;
      if (q.kind === 'single-shard') {
        count(q.colocationGroup, `${at}.colocationGroup`, bad);
        if (q.tenantSchema !== undefined && typeof q.tenantSchema !== 'boolean') throw bad(`${at}.tenantSchema must be a boolean`);
        return;
      }
      if (q.kind !== 'distributed') throw bad(`${at}.kind must be distributed, reference or single-shard`);
      name(q.column, `${at}.column`, bad);
      count(q.shardCount, `${at}.shardCount`, bad);
      if ((q.shardCount as number) < 1 || (q.shardCount as number) > 64000) throw bad(`${at}.shardCount must be 1 to 64000`);
      count(q.colocationGroup, `${at}.colocationGroup`, bad);
    });
  }
}

/** Sequence values: names as identifiers, `lastValue` a decimal bigint (bound into setval). */
function checkSequences(seqs: unknown, where: string, bad: Bad): void {
  if (!Array.isArray(seqs)) throw bad(`${where} must be an array`);
  seqs.forEach((q: unknown, i: number) => {
    const at = `${where}[${i}]`;
    if (!isObj(q)) throw bad(`${at} must be an object`);
    name(q.schema, `${at}.schema`, bad);
    name(q.name, `${at}.name`, bad);
    if (typeof q.lastValue !== 'string' || !/^-?\d{1,19}$/.test(q.lastValue)) throw bad(`${at}.lastValue must be a decimal bigint`);
    if (typeof q.isCalled !== 'boolean') throw bad(`${at}.isCalled must be true or false`);
  });
}

function checkMatviews(mv: unknown, where: string, bad: Bad): void {
  if (!Array.isArray(mv)) throw bad(`${where} must be an array`);
  mv.forEach((q: unknown, i: number) => {
    if (!isObj(q)) throw bad(`${where}[${i}] must be an object`);
    name(q.schema, `${where}[${i}].schema`, bad);
    name(q.name, `${where}[${i}].name`, bad);
  });
}

/** A codec segferry reads (lib/format/compress.ts). */
function compression(v: unknown, at: string, bad: Bad): void {
  if (v !== 'gzip' && v !== 'zstd') throw bad(`${at} must be gzip or zstd`);
}

/** A whole number ≥ 0 (a safe integer). */
function count(v: unknown, at: string, bad: Bad): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${at} must be a whole number ≥ 0`);
}

/** A non-empty string without NUL (table, schema, column and node names). */
function name(v: unknown, at: string, bad: Bad): void {
  if (typeof v !== 'string' || v === '' || v.includes('\0')) throw bad(`${at} must be a non-empty string without NUL`);
}

/** An identifier PostgreSQL keeps as written (see {@link identifierProblem}). */
function ident(v: unknown, at: string, bad: Bad): void {
  const p = identifierProblem(v);
  if (p) throw bad(`${at} ${p}`);
}

function optString(v: unknown, at: string, bad: Bad): void {
  if (v !== undefined && (typeof v !== 'string' || v.includes('\0'))) throw bad(`${at} must be a string without NUL`);
}

function strings(v: unknown, at: string, bad: Bad): void {
  if (!Array.isArray(v)) throw bad(`${at} must be an array`);
  v.forEach((x, i) => name(x, `${at}[${i}]`, bad));
}

/** An object key relative to the export's prefix: one path segment, never `.`, `..` or absolute. */
function checkKey(k: string, at: string, bad: Bad): void {
  // Without a separator, `..` can only climb as the whole key; a name like `a..b` is one segment.
  if (k === '.' || k === '..' || /[/\\\x00-\x1f\x7f]/.test(k) || k.trim() === '') {
    throw bad(`${at} must be one path segment (no "/", "\\", control characters; not "." or "..")`);
  }
}

function checkFormat(f: unknown, bad: Bad): void {
  if (!isObj(f)) throw bad('format must be an object');
  if (f.kind !== 'text' && f.kind !== 'csv' && f.kind !== 'arrow' && f.kind !== 'binary' && f.kind !== 'parquet') throw bad('format.kind must be text, csv, arrow, binary or parquet');
  if (f.compression !== undefined && (f.kind !== 'parquet' || (f.compression !== 'zstd' && f.compression !== 'snappy' && f.compression !== 'none'))) {
    throw bad('format.compression must be zstd, snappy or none (parquet only)');
  }
  if (f.rowGroupBytes !== undefined && (f.kind !== 'parquet' || !Number.isSafeInteger(f.rowGroupBytes) || (f.rowGroupBytes as number) <= 0)) {
    throw bad('format.rowGroupBytes must be a positive integer (parquet only)');
  }
  optString(f.serverVersion, 'format.serverVersion', bad);
  for (const k of ['delimiter', 'quote', 'escape'] as const) {
    const v = f[k];
    if (v !== undefined && (typeof v !== 'string' || Buffer.byteLength(v) !== 1 || v === '\n' || v === '\r' || v === '\0')) {
      throw bad(`format.${k} must be one one-byte character`);
    }
  }
  optString(f.null, 'format.null', bad);
  if (typeof f.null === 'string' && /[\r\n]/.test(f.null)) throw bad('format.null must not contain a newline');
  if (f.header !== undefined && typeof f.header !== 'boolean') throw bad('format.header must be true or false');
}

function checkSessionSettings(s: unknown, bad: Bad): void {
  if (!isObj(s)) throw bad('sessionSettings must be an object');
  for (const [k, v] of Object.entries(s)) {
    const allowed = Object.hasOwn(ALLOWED_SESSION_SETTINGS, k) ? ALLOWED_SESSION_SETTINGS[k] : undefined;
    if (!allowed) throw bad(`sessionSettings: ${JSON.stringify(k.slice(0, 64))} is not a setting segferry records`);
    if (typeof v !== 'string' || !allowed.includes(v)) {
      throw bad(`sessionSettings.${k} must be ${allowed.map((a) => JSON.stringify(a)).join(' or ')}`);
    }
  }
}

/**
 * What an import also needs of a checked manifest: every object names one of `tables[]` by
 * its display form, and shard ids are made of digits. (Cleanup reads only the keys, so
 * {@link checkManifest} does not insist on these.)
 */
export function checkManifestObjects(m: Manifest, where = 'manifest'): void {
  const bad = (why: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${why}`, { key: MANIFEST_KEY });
  const names = new Set(m.tables.map((t) => `${t.schema}.${t.name}`));
  for (const obj of m.objects) {
    if (!names.has(obj.table)) throw bad(`object ${obj.key} names table ${JSON.stringify(obj.table)}, which is not among tables[]`);
    if (obj.shards !== undefined && obj.shards.some((s) => !/^[0-9]+$/.test(s))) {
      throw bad(`object ${obj.key}: shards must be shard ids made of digits`);
    }
  }
}

function checksum(c: unknown, at: string, bad: Bad): void {
  if (c === undefined) return;
  if (!isObj(c)) throw bad(`${at} must be an object`);
  count(c.rows, `${at}.rows`, bad);
  if (typeof c.sum !== 'string' || !/^\d{1,40}$/.test(c.sum)) throw bad(`${at}.sum must be a decimal string`);
  if (c.algorithm !== undefined && c.algorithm !== 'copy-rowhash64') throw bad(`${at}.algorithm is unknown`);
}

function checkTable(t: unknown, at: string, bad: Bad): void {
  if (!isObj(t)) throw bad(`${at} must be an object`);
  ident(t.schema, `${at}.schema`, bad);
  ident(t.name, `${at}.name`, bad);
  if (t.objectName !== undefined) {
    name(t.objectName, `${at}.objectName`, bad);
    checkKey(t.objectName as string, `${at}.objectName`, bad);
  }
  if (!Array.isArray(t.columns)) throw bad(`${at}.columns must be an array`);
  if (t.generated !== undefined && !Array.isArray(t.generated)) throw bad(`${at}.generated must be an array`);
  const seen = new Set<string>();
  for (const [list, cols] of [['columns', t.columns], ['generated', t.generated ?? []]] as const) {
    (cols as unknown[]).forEach((c: unknown, i: number) => {
      if (!isObj(c)) throw bad(`${at}.${list}[${i}] must be an object`);
      ident(c.name, `${at}.${list}[${i}].name`, bad);
      name(c.type, `${at}.${list}[${i}].type`, bad);
      if (c.notNull !== undefined && typeof c.notNull !== 'boolean') throw bad(`${at}.${list}[${i}].notNull must be true or false`);
      if (seen.has(c.name as string)) throw bad(`${at}: column ${JSON.stringify(c.name)} appears twice`);
      seen.add(c.name as string);
    });
  }
  const d = t.distribution;
  if (!isObj(d) || (d.kind !== 'distributed' && d.kind !== 'replicated' && d.kind !== 'single')) {
    throw bad(`${at}.distribution.kind must be distributed, replicated or single`);
  }
  optString(d.method, `${at}.distribution.method`, bad);
  optString(d.column, `${at}.distribution.column`, bad);
  if (d.replicas !== undefined) strings(d.replicas, `${at}.distribution.replicas`, bad);
  if (d.shardCount !== undefined) count(d.shardCount, `${at}.distribution.shardCount`, bad);
  if (d.shards !== undefined) {
    if (!Array.isArray(d.shards)) throw bad(`${at}.distribution.shards must be an array`);
    d.shards.forEach((sh: unknown, i: number) => {
      if (!isObj(sh)) throw bad(`${at}.distribution.shards[${i}] must be an object`);
      if (typeof sh.id !== 'string' || !/^[0-9]+$/.test(sh.id)) throw bad(`${at}.distribution.shards[${i}].id must be a shard id made of digits`);
      optString(sh.min, `${at}.distribution.shards[${i}].min`, bad);
      optString(sh.max, `${at}.distribution.shards[${i}].max`, bad);
    });
  }
  if (t.filter !== undefined && t.filter !== null) {
    if (typeof t.filter !== 'string') throw bad(`${at}.filter must be a string or null`);
    // verify runs it on the source again: it must stay one expression (lib/pg/filter.ts).
    try { checkFilterText(t.filter); } catch (e) { throw bad(`${at}.filter: ${(e as Error).message}`); }
  }
  if (t.rows !== undefined) count(t.rows, `${at}.rows`, bad);
  if (t.bytes !== undefined) count(t.bytes, `${at}.bytes`, bad);
  if (!Array.isArray(t.nodes)) throw bad(`${at}.nodes must be an array`);
  t.nodes.forEach((n: unknown, i: number) => {
    if (!isObj(n)) throw bad(`${at}.nodes[${i}] must be an object`);
    name(n.node, `${at}.nodes[${i}].node`, bad);
    if (n.relations !== undefined) strings(n.relations, `${at}.nodes[${i}].relations`, bad);
    for (const k of ['rows', 'bytes', 'objects'] as const) if (n[k] !== undefined) count(n[k], `${at}.nodes[${i}].${k}`, bad);
    checksum(n.checksum, `${at}.nodes[${i}].checksum`, bad);
  });
  checksum(t.checksum, `${at}.checksum`, bad);
}

/** Serialise a manifest (stable key order as built, two-space indent). */
export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}
