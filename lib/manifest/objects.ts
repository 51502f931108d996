import { ManifestInvalidError } from '../errors.js';
import { MANIFEST_KEY, type Manifest } from './types.js';

/** One object a manifest names, with what it must hold. */
export interface NamedObject {
  /** Key relative to the export's prefix (one path segment). */
  key: string;
  bytes: number;
  /** Lower-case hex SHA-256. */
  sha256: string;
  /** Manifest field it was found in: `objects`, or another list such as `ddl`. */
  field: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Every object a manifest names: its `objects`, then every entry of another top-level field that
 * is shaped like one (`{ key, bytes, sha256 }`, as a list or alone, e.g. a `ddl` list that newer
 * exports may add). Checks what `checkManifest` leaves to the field's owner: a key that is one
 * path segment, bytes a whole number, sha256 64 hex digits, no key named twice.
 *
 * @throws ManifestInvalidError naming the bad entry.
 */
export function namedObjects(m: Manifest, where = 'manifest'): NamedObject[] {
  const out: NamedObject[] = [];
  const seen = new Set<string>();
  const add = (e: Record<string, unknown>, at: string, field: string) => {
    const { key, bytes, sha256 } = e;
    const bad = (why: string) => new ManifestInvalidError(`${where}${MANIFEST_KEY}: ${at}.${why}`, { key: MANIFEST_KEY });
    if (typeof key !== 'string' || key === '' || key === '.' || key === '..' || key === MANIFEST_KEY || /[/\\\x00-\x1f\x7f]/.test(key)) {
      throw bad('key must be one path segment other than the manifest');
    }
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) throw bad('bytes must be a whole number ≥ 0');
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(sha256)) throw bad('sha256 must be 64 hex digits');
    if (seen.has(key)) throw bad(`key ${JSON.stringify(key)} is named twice`);
    seen.add(key);
    out.push({ key, bytes, sha256: sha256.toLowerCase(), field });
  };
  const looksNamed = (e: unknown): e is Record<string, unknown> => isObj(e) && 'key' in e && 'sha256' in e && 'bytes' in e;
  (m.objects ?? []).forEach((o, i) => add(o as unknown as Record<string, unknown>, `objects[${i}]`, 'objects'));
  for (const [field, v] of Object.entries(m as unknown as Record<string, unknown>)) {
    if (field === 'objects' || field === 'tables') continue;
    if (Array.isArray(v)) v.forEach((e, i) => { if (looksNamed(e)) add(e, `${field}[${i}]`, field); });
    else if (looksNamed(v)) add(v, field, field);
  }
  return out;
}
