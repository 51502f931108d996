/** Object digests computed here, independently of lib/manifest/digest.ts, to check what a manifest records. */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

/** CRC-32 of `b` as a manifest records it: zlib's crc32, 8 lower-case hex digits. */
export function crc32Hex(b: Uint8Array | string): string {
  return crc32(b).toString(16).padStart(8, '0');
}

/** SHA-256 of `b`, lower-case hex. */
export function sha256Hex(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * The entry's recorded digest and the digest of `body` under the entry's algorithm, as
 * `[recorded, computed]` (an entry with no digest, or with both, gives a pair that differs).
 */
export function recordedAndComputed(o: { crc32?: string; sha256?: string }, body: Uint8Array): [string | undefined, string] {
  if (o.crc32 !== undefined && o.sha256 !== undefined) return ['both crc32 and sha256', 'exactly one'];
  if (o.crc32 !== undefined) return [o.crc32, crc32Hex(body)];
  return [o.sha256, sha256Hex(body)];
}
