import { ManifestInvalidError } from '../errors.js';
import { digestProblem, pickDigest, type ObjectDigest } from './digest.js';
import { MANIFEST_KEY, type Manifest } from './types.js';

/** One object a manifest names, with what it must hold: its size and its one digest (lower-case hex, `crc32` or `sha256`). */
export interface NamedObject extends ObjectDigest {
  /** Key relative to the export's prefix (one path segment). */
  key: string;
  bytes: number;
  /** Manifest field it was found in: `objects`, or another list such as `ddl`. */
  field: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Every object a manifest names: its `objects`, then every entry of another top-level field that
 * is shaped like one (`{ key, bytes, sha256 }` or `{ key, bytes, crc32 }`, as a list or alone,
 * e.g. a `ddl` list that newer exports may add). Checks what `checkManifest` leaves to the
 * field's owner: a key that is one path segment, bytes a whole number, exactly one digest
 * (crc32 8 or sha256 64 hex digits), no key named twice.
 *
 * @throws ManifestInvalidError naming the bad entry.
 */
export function namedObjects(m: Manifest, where = 'manifest'): NamedObject[] {
  const out: NamedObject[] = [];
  const seen = new Set<string>();
  const add = (e: Record<string, unknown>, at: string, field: string) => {
    const { key, bytes } = e;
    const fail = (what: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${what}`, { key: MANIFEST_KEY });
    const bad = (why: string) => fail(`${at}.${why}`);
    if (typeof key !== 'string' || key === '' || key === '.' || key === '..' || key === MANIFEST_KEY || /[/\\\x00-\x1f\x7f]/.test(key)) {
      throw bad('key must be one path segment other than the manifest');
    }
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) throw bad('bytes must be a whole number ≥ 0');
    const digest = digestProblem(e, at);
    if (digest !== undefined) throw fail(digest);
    if (seen.has(key)) throw bad(`key ${JSON.stringify(key)} is named twice`);
    seen.add(key);
    out.push({ key, bytes, ...pickDigest(e as ObjectDigest), field });
  };
  const looksNamed = (e: unknown): e is Record<string, unknown> => isObj(e) && 'key' in e && ('sha256' in e || 'crc32' in e) && 'bytes' in e;
  (m.objects ?? []).forEach((o, i) => add(o as unknown as Record<string, unknown>, `objects[${i}]`, 'objects'));
  for (const [field, v] of Object.entries(m as unknown as Record<string, unknown>)) {
    if (field === 'objects' || field === 'tables') continue;
    if (Array.isArray(v)) v.forEach((e, i) => { if (looksNamed(e)) add(e, `${field}[${i}]`, field); });
    else if (looksNamed(v)) add(v, field, field);
  }
  return out;
}
