import { isOwnedKey, surveyPrefix } from '../export/ownership.js';
import { MANIFEST_KEY, isRejectsKey } from '../manifest/keys.js';
import { CLAIM_KEY, type Claim } from '../store/claim.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';

/** Options of {@link cleanup}. */
export interface CleanupOptions {
  /** The export location: `s3://bucket/prefix`, a directory or `file://` URL. */
  location: string | ObjectStore;
  s3?: S3Options;
  /** Delete what is found (default false: only list). */
  yes?: boolean;
  /**
   * With `yes`: also delete the prefix's claim (`segferry-claim.json`) left by a dead run
   * (default false). Only when you know that run is gone: while a claim exists, `yes` deletes
   * nothing, because the run holding it may still be writing.
   */
  removeClaim?: boolean;
  /**
   * With `yes`: also delete the rejects objects imports with a reject limit wrote next to this
   * export (default false: they are results, listed in `rejects`, not leftovers).
   */
  removeRejects?: boolean;
}

/** What {@link cleanup} found (and removed with `yes`). */
export interface CleanupResult {
  location: string;
  /** True when a manifest exists: leftovers are objects it does not list. */
  hasManifest: boolean;
  /** Objects directly under the prefix that its manifest or checkpoint names but no manifest references. */
  objects: { key: string; size: number }[];
  /**
   * Rejects objects of imports of this export (`segferry-rejects.<node>.<object>.jsonl`, rows a
   * destination refused under a reject limit): kept unless `removeRejects`.
   */
  rejects: { key: string; size: number }[];
  /** Multipart uploads left open for this export's keys (where the store can list them). */
  uploads: { key: string; uploadId: string; initiated?: string }[];
  /** Set when the store cannot list multipart uploads (e.g. s3rver answers 501). */
  uploadsUnsupported?: string;
  /**
   * Objects that look like segferry's but are not provably this export's (nested exports,
   * other jobs' segments, no manifest or checkpoint naming them): never deleted.
   */
  leftAlone: { key: string; size: number }[];
  /** The prefix's claim, if one exists: a run holds (or held, if it died) the prefix. */
  claim?: Claim;
  /** True when `yes` was given and everything listed was removed. */
  removed: boolean;
}

/**
 * Find leftovers of failed or abandoned runs under a prefix: objects directly under it that
 * its manifest or checkpoint names but no manifest references, and open multipart uploads
 * under it. With `yes`, remove them (not while a claim exists, unless `removeClaim`: see there).
 * Objects that are not provably this export's are listed in `leftAlone` and never touched.
 */
export async function cleanup(opts: CleanupOptions): Promise<CleanupResult> {
  const store = typeof opts.location === 'string' ? openStore(opts.location, opts.s3) : opts.location;
  try {
    await store.check();
    const survey = await surveyPrefix(store);
    const referenced = new Set<string>([MANIFEST_KEY]);
    for (const o of survey.manifest?.objects ?? []) referenced.add(o.key);
    const objects = survey.ours.filter((o) => !referenced.has(o.key) && !isRejectsKey(o.key));
    const rejects = survey.ours.filter((o) => isRejectsKey(o.key));
    const res: CleanupResult = { location: store.url, hasManifest: survey.manifest !== undefined, objects, rejects, uploads: [], leftAlone: survey.leftAlone, removed: false };
    if (survey.claim) res.claim = survey.claim;
    if (store.listUploads) {
      try {
        // Uploads of nested exports or other jobs are not ours either.
        for (const u of await store.listUploads()) {
          if (isOwnedKey(u.key, survey.stems)) res.uploads.push(u);
          else res.leftAlone.push({ key: `${u.key} (open upload ${u.uploadId})`, size: 0 });
        }
      } catch (e) {
        res.uploadsUnsupported = (e as Error).message;
      }
    }
    if (opts.yes && (!survey.claim || opts.removeClaim)) {
      await store.delete([...objects, ...(opts.removeRejects ? rejects : [])].map((o) => o.key));
      for (const u of res.uploads) await store.abortUpload!(u.key, u.uploadId);
      // Last, so that a run still holding the prefix never finds its claim gone while its objects stay.
      if (survey.claim) await store.delete([CLAIM_KEY]);
      res.removed = true;
    }
    return res;
  } finally {
    if (typeof opts.location === 'string') store.close();
  }
}
