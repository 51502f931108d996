/**
 * `segferry replicate`: copy a finished export from one location to another (issue 18): its
 * objects first, each checked against the source manifest's digest (CRC-32 or SHA-256) on arrival, then its
 * manifest, last, as the commit point. The destination prefix obeys an export's rules.
 */
import { ChecksumMismatchError, ManifestInvalidError, PrefixNotEmptyError } from '../errors.js';
import { checkManifest, readManifest, serializeManifest } from '../manifest/io.js';
import { CLAIM_KEY, MANIFEST_KEY, PARTIAL_SUFFIX } from '../manifest/keys.js';
import { namedObjects, type NamedObject } from '../manifest/objects.js';
import type { Manifest } from '../manifest/types.js';
import { acquireClaim, commitExclusive, readClaim, type PrefixClaim } from '../store/claim.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';
import { runPool, throwIfAborted } from '../util/pool.js';
import { checkExport, type CheckResult, type MaintenanceEvent } from './check.js';
import { describeDigest, digestMatches, digestStream, ObjectHasher, recordedDigest } from '../manifest/digest.js';

/** Default objects copied at once by {@link replicateExport}. */
export const DEFAULT_REPLICATE_CONCURRENCY = 4;

/** Options of {@link replicateExport}. */
export interface ReplicateOptions {
  /** The finished export to copy: `s3://bucket/prefix`, a directory or `file://` URL, or an open store (not closed). */
  from: string | ObjectStore;
  /** Where the copy goes (same forms). Must be empty, unless `resume`. */
  to: string | ObjectStore;
  /** S3 settings for both sides (default: the SDK's standard sources). */
  s3?: S3Options;
  /** S3 settings of the source, when they differ (default: `s3`). */
  fromS3?: S3Options;
  /** S3 settings of the destination, when they differ (default: `s3`). */
  toS3?: S3Options;
  /**
   * Objects copied at once (default 4). Memory: a streamed copy holds one read buffer (1 MiB for
   * a directory, the socket's chunks for S3) and its upload's own buffer (S3: 256 KiB, the part
   * it fills and its parts in flight in the store's shared `uploadMemory`, 72 MiB by default;
   * a directory: 1 MiB); a server-side copy, one read-back buffer.
   */
  concurrency?: number;
  /**
   * Continue an interrupted replicate into the same destination (default false): objects already
   * there with the manifest's size and digest are kept, others copied again; a claim left by a
   * dead replicate is taken over. The destination must hold nothing the source does not name.
   */
  resume?: boolean;
  /** After the manifest is written, run `checkExport({ readData: true })` on the copy (default false). */
  verify?: boolean;
  /** Cancels the run (default: none): nothing more is started, no manifest is written. */
  signal?: AbortSignal;
  /** `object-copied` per object, `read-progress` at most twice a second. */
  onEvent?: (e: MaintenanceEvent) => void;
}

/** What {@link replicateExport} did. */
export interface ReplicateResult {
  /** Source and destination locations (no credentials). */
  from: string;
  to: string;
  manifestId: string;
  /** Objects the manifest names and their bytes. */
  objects: number;
  bytes: number;
  /** Objects copied server-side (no byte through the client) and streamed through it. */
  serverSide: number;
  streamed: number;
  /** Objects found at the destination already intact (`resume`) and not copied again. */
  skipped: number;
  /** True when the destination already held this export's replicated manifest (`resume`): nothing done. */
  alreadyDone: boolean;
  /** The manifest written at the destination. */
  manifest: Manifest;
  /** With `verify`: the destination's check. */
  check?: CheckResult;
  elapsedMs: number;
}

/**
 * Copy a finished export, then its manifest last, from `from` to `to`. Within one S3 service and
 * account objects are copied server-side (`CopyObject`, `UploadPartCopy` above 5 GiB) and then read
 * back once from the destination to check their digest; otherwise they are streamed GET → PUT and
 * hashed as they pass, before the upload completes. An object whose bytes do not match the source
 * manifest is refused (ChecksumMismatchError naming it, its copy removed, no manifest written).
 * The copy's manifest equals the source's plus `replicatedFrom`.
 *
 * @throws PrefixNotEmptyError when the destination is not empty (without `resume`);
 * PrefixClaimedError when another run holds it; ManifestMissingError / ManifestInvalidError for
 * the source; ChecksumMismatchError for a tampered object; ERR_ABORTED when cancelled.
 */
export async function replicateExport(opts: ReplicateOptions): Promise<ReplicateResult> {
  const t0 = Date.now();
  const src = typeof opts.from === 'string' ? openStore(opts.from, opts.fromS3 ?? opts.s3) : opts.from;
  let dst: ObjectStore | undefined;
  let claim: PrefixClaim | undefined;
  try {
    dst = typeof opts.to === 'string' ? openStore(opts.to, opts.toS3 ?? opts.s3) : opts.to;
    throwIfAborted(opts.signal);
    const m = await readManifest(src);
    const named = namedObjects(m, src.url);
    const res: ReplicateResult = {
      from: src.url, to: dst.url, manifestId: m.id, objects: named.length, bytes: named.reduce((s, o) => s + o.bytes, 0),
      serverSide: 0, streamed: 0, skipped: 0, alreadyDone: false, manifest: m, elapsedMs: 0,
    };
    await dst.check();
    const done = await finishedCopy(dst, m, opts.resume === true);
    if (done) {
      res.alreadyDone = true;
      res.skipped = named.length;
      res.manifest = done;
    } else {
      const present = await surveyDestination(dst, named, opts.resume === true);
      const held = await claimDestination(dst, opts.resume === true);
      claim = held;
      await copyAll(src, dst, named, present, res, opts);
      throwIfAborted(opts.signal);
      const copy: Manifest = { ...m, replicatedFrom: { location: src.url, at: new Date().toISOString(), manifestId: m.id } };
      // The commit point, as for an export: conditional where the store allows, only while claimed.
      await commitExclusive(held, MANIFEST_KEY, serializeManifest(copy));
      res.manifest = copy;
      await held.release();
    }
    if (opts.verify) {
      const check = await checkExport({ at: dst, readData: true, concurrency: opts.concurrency ?? DEFAULT_REPLICATE_CONCURRENCY, ...(opts.signal ? { signal: opts.signal } : {}) });
      res.check = check;
    }
    res.elapsedMs = Date.now() - t0;
    return res;
  } finally {
    // A clean failure gives the prefix back; --resume continues from the objects already there.
    await claim?.release();
    if (typeof opts.from === 'string') src.close();
    if (dst && typeof opts.to === 'string') dst.close();
  }
}

/**
 * The destination's manifest when it already holds this replicate's result (`resume` after the
 * commit point), undefined when it has none. Any other manifest: PrefixNotEmptyError.
 */
async function finishedCopy(dst: ObjectStore, m: Manifest, resume: boolean): Promise<Manifest | undefined> {
  const bytes = await dst.getBytes(MANIFEST_KEY);
  if (!bytes) return undefined;
  if (resume) {
    let there: Manifest | undefined;
    try {
      there = checkManifest(JSON.parse(bytes.toString('utf8')), dst.url);
    } catch (e) {
      if (!(e instanceof ManifestInvalidError || e instanceof SyntaxError)) throw e;
    }
    if (there?.id === m.id && there.replicatedFrom?.manifestId === m.id) return there;
  }
  throw new PrefixNotEmptyError(`${dst.url} already holds a finished export`, {
    key: MANIFEST_KEY,
    hint: 'replicate into an empty prefix; segferry never overwrites a finished export it did not write',
  });
}

/**
 * Sizes of the named objects already at the destination. Without `resume` the prefix must be
 * empty (a claim is judged by acquireClaim); with it, anything but the named objects, their
 * directory-store temporaries and the claim is refused: a resume continues one replicate only.
 */
async function surveyDestination(dst: ObjectStore, named: NamedObject[], resume: boolean): Promise<Map<string, number>> {
  const names = new Set(named.map((o) => o.key));
  const present = new Map<string, number>();
  for await (const o of dst.list('')) {
    if (o.key === CLAIM_KEY) continue;
    const base = o.key.includes(PARTIAL_SUFFIX) ? o.key.slice(0, o.key.indexOf(PARTIAL_SUFFIX)) : o.key;
    if (!resume) {
      throw new PrefixNotEmptyError(`${dst.url} is not empty (it holds ${o.key})`, {
        key: o.key, hint: 'replicate into an empty prefix, or add --resume to continue an interrupted replicate of the same export',
      });
    }
    if (!names.has(base)) {
      throw new PrefixNotEmptyError(`${dst.url} holds ${o.key}, which the source manifest does not name: not a replicate of this export to resume`, { key: o.key });
    }
    if (base === o.key) present.set(o.key, o.size);
  }
  return present;
}

/** Claim the destination; a resume takes over the claim a dead replicate left. */
async function claimDestination(dst: ObjectStore, resume: boolean): Promise<PrefixClaim> {
  let takeOver: string | undefined;
  if (resume) {
    const c = await readClaim(dst);
    if (c?.operation === 'replicate') takeOver = c.runId;
  }
  return acquireClaim(dst, { operation: 'replicate', ...(takeOver ? { takeOver } : {}) });
}

function mismatch(o: NamedObject, got: { hex: string; bytes: number }, where: string): ChecksumMismatchError {
  const d = recordedDigest(o)!; // namedObjects made sure there is one
  return new ChecksumMismatchError(
    `${o.key}: ${where} has ${got.bytes} bytes with ${describeDigest(d.algorithm, got.hex)}; the source manifest says ${o.bytes} bytes, ${d.hex}: the source object was changed after the export`,
    { key: o.key, hint: 'run segferry check --read-data on the source; replicate only an intact export' },
  );
}

async function copyAll(src: ObjectStore, dst: ObjectStore, named: NamedObject[], present: Map<string, number>, res: ReplicateResult, opts: ReplicateOptions): Promise<void> {
  const emit = opts.onEvent;
  const now = () => new Date().toISOString();
  let bytesDone = 0;
  let objectsDone = 0;
  let last = 0;
  const progress = (n: number) => {
    bytesDone += n;
    const t = Date.now();
    if (!emit || t - last < 500) return;
    last = t;
    emit({ type: 'read-progress', operation: 'replicate', at: now(), bytesDone, bytesTotal: res.bytes, objectsDone, objectsTotal: named.length });
  };
  const readBack = async (o: NamedObject, signal: AbortSignal) => digestStream(o, await dst.read(o.key, { signal }));
  await runPool(named, opts.concurrency ?? DEFAULT_REPLICATE_CONCURRENCY, async (o, signal) => {
    if (present.get(o.key) === o.bytes) {
      const got = await readBack(o, signal);
      if (digestMatches(o, got.hex) && got.bytes === o.bytes) {
        res.skipped++;
        objectsDone++;
        progress(o.bytes);
        emit?.({ type: 'object-copied', operation: 'replicate', at: now(), key: o.key, bytes: o.bytes, how: 'streamed', skipped: true });
        return;
      }
    }
    let how: 'server-side' | 'streamed';
    if (dst.copyFrom && (await dst.copyFrom(src, o.key, { size: o.bytes, signal }))) {
      // No byte passed through us: read the copy back once (S3's own checksums are per part or
      // CRC, not the manifest's whole-object digest; docs/replicate.md).
      const got = await readBack(o, signal);
      if (!digestMatches(o, got.hex) || got.bytes !== o.bytes) {
        await dst.delete([o.key]).catch(() => {});
        throw mismatch(o, got, `the server-side copy at ${dst.url}`);
      }
      progress(got.bytes);
      res.serverSide++;
      how = 'server-side';
    } else {
      await streamCopy(src, dst, o, signal, progress);
      res.streamed++;
      how = 'streamed';
    }
    objectsDone++;
    emit?.({ type: 'object-copied', operation: 'replicate', at: now(), key: o.key, bytes: o.bytes, how });
  }, opts.signal);
}

/** GET → PUT, hashing the bytes as they pass; the upload completes only when they match. */
async function streamCopy(src: ObjectStore, dst: ObjectStore, o: NamedObject, signal: AbortSignal, progress: (n: number) => void): Promise<void> {
  const body = await src.read(o.key, { signal });
  const w = dst.createWriter(o.key, { signal });
  try {
    const h = ObjectHasher.for(o);
    let bytes = 0;
    for await (const c of body as AsyncIterable<Buffer>) {
      h.update(c);
      bytes += c.length;
      // Never more than the manifest's size: a grown object is refused without storing it whole.
      if (bytes > o.bytes) throw mismatch(o, { hex: '(not computed: larger than recorded)', bytes }, src.url);
      await w.write(c);
      progress(c.length);
    }
    const got = { hex: h.digest(), bytes };
    if (!digestMatches(o, got.hex) || got.bytes !== o.bytes) throw mismatch(o, got, src.url);
    await w.finish();
  } catch (e) {
    (body as { destroy?: () => void }).destroy?.();
    await w.abort();
    throw e;
  }
}
