import { PrefixNotEmptyError, UnfinishedExportError } from '../errors.js';
import { CHECKPOINT_KEY, MANIFEST_KEY } from '../manifest/keys.js';
import { claimedError } from '../store/claim.js';
import type { ObjectStore } from '../store/types.js';
import { surveyPrefix } from './ownership.js';

/**
 * Refuse a prefix that already holds an export, unless `overwrite`: then delete the old
 * manifest first (so the old export is invalid from that moment on), then its segments.
 * Only objects directly under the prefix that its manifest or checkpoint names are deleted
 * (lib/export/ownership.ts); look-alikes (nested exports, other jobs' segments) are returned,
 * untouched. `dryCheck` (default false): only refuse, delete nothing.
 */
export async function prepareDestination(store: ObjectStore, overwrite: boolean, dryCheck = false): Promise<string[]> {
  const survey = await surveyPrefix(store);
  // Before planning: a run holding the prefix is reported as such, not as an unfinished export.
  if (dryCheck && survey.claim) throw claimedError(store, survey.claim);
  const leftAlone = survey.leftAlone.map((o) => o.key);
  const existing = [...survey.ours.map((o) => o.key), ...leftAlone.filter((k) => !k.includes('/'))];
  if (existing.length === 0) return leftAlone;
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
  if (dryCheck) return leftAlone;
  const ours = survey.ours.map((o) => o.key);
  if (ours.includes(MANIFEST_KEY)) await store.delete([MANIFEST_KEY]);
  await store.delete(ours.filter((k) => k !== MANIFEST_KEY));
  return leftAlone;
}
