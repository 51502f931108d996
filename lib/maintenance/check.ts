/**
 * `segferry check`: the integrity of a stored export on its own, without a database (issue 18),
 * as `pgbackrest verify` and `restic check --read-data` do for backups.
 */
import { ObjectMissingError } from '../errors.js';
import { digestMatches, digestStream, recordedDigest, type ObjectChecksum } from '../manifest/digest.js';
import { readManifest } from '../manifest/io.js';
import { MANIFEST_KEY, isSegferryKey } from '../manifest/keys.js';
import { namedObjects, type NamedObject } from '../manifest/objects.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectInfo, ObjectStore } from '../store/types.js';
import { runPool, throwIfAborted } from '../util/pool.js';

/** Default objects read at once by {@link checkExport} with `readData`. */
export const DEFAULT_CHECK_CONCURRENCY = 4;

/** Events of {@link checkExport} and `replicateExport` (never credentials). */
export type MaintenanceEvent =
  | { type: 'object-checked'; operation: 'check' | 'replicate'; at: string; key: string; bytes: number; ok: boolean }
  | { type: 'read-progress'; operation: 'check' | 'replicate'; at: string; bytesDone: number; bytesTotal: number; objectsDone: number; objectsTotal: number }
  | { type: 'object-copied'; operation: 'replicate'; at: string; key: string; bytes: number; how: 'server-side' | 'streamed'; skipped?: boolean };

/** Options of {@link checkExport}. */
export interface CheckOptions {
  /** The export: `s3://bucket/prefix`, a directory or `file://` URL, or an open store (not closed). */
  at: string | ObjectStore;
  /** S3 settings when `at` is an `s3://` location (default: the SDK's standard sources). */
  s3?: S3Options;
  /**
   * Read every object and recompute its SHA-256 (default false: existence and size only, so a
   * same-size change goes unnoticed).
   */
  readData?: boolean;
  /**
   * Objects read at once with `readData` (default 4). Memory: about `concurrency` × one read
   * buffer (1 MiB for a directory, the socket's chunks for S3).
   */
  concurrency?: number;
  /** Cancels the check (default: none); it then rejects with ERR_ABORTED or the signal's reason. */
  signal?: AbortSignal;
  /** Progress: one `object-checked` per object read, `read-progress` at most twice a second. */
  onEvent?: (e: MaintenanceEvent) => void;
}

/** An object the manifest names that is not as recorded. */
export interface ChangedObject {
  key: string;
  /** `size`: its size differs (not read); `digest`: same size, other bytes. */
  reason: 'size' | 'digest';
  expectedBytes: number;
  actualBytes: number;
  /** Algorithm of the digest the manifest records for it (`crc32` or `sha256`). */
  algorithm: ObjectChecksum;
  /** The recorded digest (lower-case hex). */
  expectedDigest: string;
  /** Set for `digest`: the digest of the bytes read. */
  actualDigest?: string;
}

/** What {@link checkExport} found. */
export interface CheckResult {
  /** Display form of the location (no credentials). */
  location: string;
  manifestId: string;
  /** True when every named object exists with its size (and, with `readData`, its digest). */
  ok: boolean;
  readData: boolean;
  /** Objects the manifest names (segments and any other listed objects, e.g. DDL). */
  objects: number;
  /** Their bytes, as the manifest records them. */
  bytes: number;
  /** Bytes read and hashed (0 without `readData`). */
  bytesRead: number;
  missing: { key: string; bytes: number }[];
  changed: ChangedObject[];
  /**
   * Objects directly under the prefix that look like segferry's (segments, a checkpoint, a claim,
   * partial uploads) but that the manifest does not name. Reported, never a failure: an import
   * reads only what the manifest names. `segferry cleanup` removes leftovers of failed runs.
   */
  unexpected: { key: string; size: number }[];
  elapsedMs: number;
}

/** What a changed object's entry records: its size, algorithm and digest. */
function recorded(o: NamedObject): Pick<ChangedObject, 'key' | 'expectedBytes' | 'algorithm' | 'expectedDigest'> {
  const d = recordedDigest(o)!; // namedObjects made sure there is one
  return { key: o.key, expectedBytes: o.bytes, algorithm: d.algorithm, expectedDigest: d.hex };
}

/**
 * Check a stored export: read and validate its manifest, then every object it names exists with
 * its size (one listing of the prefix); with `readData`, recompute each object's digest (its entry's algorithm),
 * streaming, `concurrency` at once. Lists missing, changed and unexpected objects.
 *
 * @throws ManifestMissingError / ManifestInvalidError when there is no readable manifest; a store
 * failure (StorageError). A damaged export is a result (`ok: false`), not an error.
 */
export async function checkExport(opts: CheckOptions): Promise<CheckResult> {
  const t0 = Date.now();
  const store = typeof opts.at === 'string' ? openStore(opts.at, opts.s3) : opts.at;
  try {
    throwIfAborted(opts.signal);
    const m = await readManifest(store);
    const named = namedObjects(m, store.url);
    const names = new Set(named.map((o) => o.key));
    // One listing gives sizes and look-alikes alike; only keys directly under the prefix count
    // (a nested export under `prefix/x/` is not this one's, as in lib/export/ownership.ts).
    const sizes = new Map<string, number>();
    const unexpected: { key: string; size: number }[] = [];
    for await (const o of store.list('')) {
      if (o.key.includes('/')) continue;
      if (names.has(o.key)) sizes.set(o.key, o.size);
      else if (o.key !== MANIFEST_KEY && isSegferryKey(o.key)) unexpected.push({ key: o.key, size: o.size });
    }
    const res: CheckResult = {
      location: store.url, manifestId: m.id, ok: false, readData: opts.readData === true,
      objects: named.length, bytes: named.reduce((s, o) => s + o.bytes, 0), bytesRead: 0,
      missing: [], changed: [], unexpected, elapsedMs: 0,
    };
    const toRead: NamedObject[] = [];
    for (const o of named) {
      const size = sizes.get(o.key);
      if (size === undefined) res.missing.push({ key: o.key, bytes: o.bytes });
      else if (size !== o.bytes) res.changed.push({ ...recorded(o), reason: 'size', actualBytes: size });
      else toRead.push(o);
    }
    if (opts.readData) await readAll(store, toRead, res, opts);
    const order = new Map(named.map((o, i) => [o.key, i]));
    res.changed.sort((a, b) => order.get(a.key)! - order.get(b.key)!);
    res.ok = res.missing.length === 0 && res.changed.length === 0;
    res.elapsedMs = Date.now() - t0;
    return res;
  } finally {
    if (typeof opts.at === 'string') store.close();
  }
}

async function readAll(store: ObjectStore, objs: NamedObject[], res: CheckResult, opts: CheckOptions): Promise<void> {
  const emit = opts.onEvent;
  const total = objs.reduce((s, o) => s + o.bytes, 0);
  let done = 0;
  let last = 0;
  const progress = (force: boolean) => {
    const now = Date.now();
    if (!emit || (!force && now - last < 500)) return;
    last = now;
    emit({ type: 'read-progress', operation: 'check', at: new Date().toISOString(), bytesDone: res.bytesRead, bytesTotal: total, objectsDone: done, objectsTotal: objs.length });
  };
  await runPool(objs, opts.concurrency ?? DEFAULT_CHECK_CONCURRENCY, async (o, signal) => {
    let body;
    try {
      body = await store.read(o.key, { signal });
    } catch (e) {
      // Deleted between the listing and the read.
      if (!(e instanceof ObjectMissingError)) throw e;
      res.missing.push({ key: o.key, bytes: o.bytes });
      done++;
      return;
    }
    const got = await digestStream(o, body, (n) => { res.bytesRead += n; progress(false); });
    const ok = digestMatches(o, got.hex) && got.bytes === o.bytes;
    if (!ok) {
      // Changed between the listing and the read: a size change is still a change.
      res.changed.push(got.bytes !== o.bytes
        ? { ...recorded(o), reason: 'size', actualBytes: got.bytes }
        : { ...recorded(o), reason: 'digest', actualBytes: got.bytes, actualDigest: got.hex });
    }
    done++;
    emit?.({ type: 'object-checked', operation: 'check', at: new Date().toISOString(), key: o.key, bytes: got.bytes, ok });
  }, opts.signal);
  progress(true);
}
