import { PrefixNotEmptyError, UnfinishedExportError } from '../errors.js';
import { CHECKPOINT_KEY, MANIFEST_KEY, isSegferryKey } from '../manifest/keys.js';
import type { ObjectStore } from '../store/types.js';

/**
 * Refuse a prefix that already holds an export, unless `overwrite`: then delete the old
 * manifest first (so the old export is invalid from that moment on), then its segments.
 * `dryCheck` (default false): only refuse, delete nothing.
 */
export async function prepareDestination(store: ObjectStore, overwrite: boolean, dryCheck = false): Promise<void> {
  const existing: string[] = [];
  for await (const o of store.list('')) if (isSegferryKey(o.key)) existing.push(o.key);
  if (existing.length === 0) return;
  if (!overwrite) {
    const hasManifest = existing.includes(MANIFEST_KEY);
    const Err = hasManifest ? PrefixNotEmptyError : existing.includes(CHECKPOINT_KEY) ? UnfinishedExportError : PrefixNotEmptyError;
    throw new Err(
      hasManifest
        ? `${store.url} already holds an export (${MANIFEST_KEY} and ${existing.length - 1} other objects)`
        : `${store.url} holds ${existing.length} objects of an unfinished export (no manifest)`,
      { hint: hasManifest ? 'choose an empty prefix, or pass overwrite (--overwrite) to replace what is there' : 'continue it with resume (--resume), or pass overwrite (--overwrite) to start again' },
    );
  }
  if (dryCheck) return;
  if (existing.includes(MANIFEST_KEY)) await store.delete([MANIFEST_KEY]);
  await store.delete(existing.filter((k) => k !== MANIFEST_KEY));
}
