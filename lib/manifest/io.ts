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

/** Structural check of a parsed manifest. */
export function checkManifest(m: unknown, where = 'manifest'): Manifest {
  const bad = (why: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${why}`, { key: MANIFEST_KEY });
  if (!m || typeof m !== 'object') throw bad('not an object');
  const o = m as Partial<Manifest>;
  if (o.kind !== 'segferry-manifest') throw bad('not a segferry manifest');
  if (o.version !== MANIFEST_VERSION) throw bad(`version ${String(o.version)} is not supported (this segferry reads version ${MANIFEST_VERSION})`);
  if (typeof o.id !== 'string' || !Array.isArray(o.tables) || !Array.isArray(o.objects) || !o.format || !o.sessionSettings) {
    throw bad('missing required fields');
  }
  for (const obj of o.objects) {
    if (typeof obj.key !== 'string' || typeof obj.sha256 !== 'string' || typeof obj.rows !== 'number' || typeof obj.bytes !== 'number') {
      throw bad('an object entry lacks key, sha256, rows or bytes');
    }
  }
  return o as Manifest;
}

/** Serialise a manifest (stable key order as built, two-space indent). */
export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}
