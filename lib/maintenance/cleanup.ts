import { MANIFEST_KEY, isSegferryKey } from '../manifest/keys.js';
import { readManifest } from '../manifest/io.js';
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
}

/** What {@link cleanup} found (and removed with `yes`). */
export interface CleanupResult {
  location: string;
  /** True when a manifest exists: leftovers are objects it does not list. */
  hasManifest: boolean;
  /** Objects under the prefix that no manifest references. */
  objects: { key: string; size: number }[];
  /** Multipart uploads left open under the prefix (where the store can list them). */
  uploads: { key: string; uploadId: string; initiated?: string }[];
  /** Set when the store cannot list multipart uploads (e.g. s3rver answers 501). */
  uploadsUnsupported?: string;
  /** True when `yes` was given and everything listed was removed. */
  removed: boolean;
}

/**
 * Find leftovers of failed or abandoned runs under a prefix: objects no manifest references
 * (everything segferry wrote, when there is no manifest) and open multipart uploads. With
 * `yes`, remove them. Objects other than segferry's own keys are never touched.
 */
export async function cleanup(opts: CleanupOptions): Promise<CleanupResult> {
  const store = typeof opts.location === 'string' ? openStore(opts.location, opts.s3) : opts.location;
  try {
    await store.check();
    const head = await store.head(MANIFEST_KEY);
    const referenced = new Set<string>([MANIFEST_KEY]);
    if (head) for (const o of (await readManifest(store)).objects) referenced.add(o.key);
    const objects: { key: string; size: number }[] = [];
    for await (const o of store.list('')) {
      if (referenced.has(o.key)) continue;
      if (isSegferryKey(o.key)) objects.push(o);
    }
    const res: CleanupResult = { location: store.url, hasManifest: head !== undefined, objects, uploads: [], removed: false };
    if (store.listUploads) {
      try {
        res.uploads = await store.listUploads();
      } catch (e) {
        res.uploadsUnsupported = (e as Error).message;
      }
    }
    if (opts.yes) {
      await store.delete(objects.map((o) => o.key));
      for (const u of res.uploads) await store.abortUpload!(u.key, u.uploadId);
      res.removed = true;
    }
    return res;
  } finally {
    if (typeof opts.location === 'string') store.close();
  }
}
