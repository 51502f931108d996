import { createHash, type Hash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { InvalidOptionError } from '../errors.js';

// The digest of an object's stored bytes, as a manifest entry records it (docs/manifest.md,
// "Object checksums"): exactly one of `crc32` (8 hex digits) or `sha256` (64 hex digits).
// Every reader and writer of that digest goes through here, so no caller switches on the
// algorithm itself.

/** Algorithm of an object's digest: CRC-32 (accidental corruption) or SHA-256 (cryptographic). */
export type ObjectChecksum = 'crc32' | 'sha256';

/** The algorithms, in the order the CLI lists them. */
export const OBJECT_CHECKSUMS: readonly ObjectChecksum[] = ['crc32', 'sha256'];

/**
 * The digest fields of an entry: a manifest's object entry has exactly one (checked by
 * lib/manifest/io.ts); an object known without a manifest (a bare import) has none.
 */
export interface ObjectDigest {
  /** CRC-32/ISO-HDLC (zlib's, S3's ChecksumCRC32) of the stored bytes: 8 lower-case hex digits. */
  crc32?: string;
  /** SHA-256 of the stored bytes: 64 lower-case hex digits. */
  sha256?: string;
}

/** Hex digits of each algorithm's digest. */
const HEX_LENGTH: Record<ObjectChecksum, number> = { crc32: 8, sha256: 64 };

/** Name of each algorithm in messages. */
const LABEL: Record<ObjectChecksum, string> = { crc32: 'CRC-32', sha256: 'SHA-256' };

// zlib.crc32 exists from Node 20.15 / 22.2 on (package.json allows any Node 20).
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** Is CRC-32 available in this Node (`zlib.crc32`: Node ≥ 20.15 or ≥ 22.2)? */
function crc32Available(): boolean {
  return typeof zlibCrc32 === 'function';
}

/** The default object checksum: `crc32` where `zlib.crc32` exists, else `sha256`. */
export function defaultObjectChecksum(): ObjectChecksum {
  return crc32Available() ? 'crc32' : 'sha256';
}

/** Is `v` an algorithm name? */
export function isObjectChecksum(v: unknown): v is ObjectChecksum {
  return v === 'crc32' || v === 'sha256';
}

/**
 * An object checksum option, checked: `crc32` or `sha256`; undefined gives
 * {@link defaultObjectChecksum}. `crc32` where zlib.crc32 is missing is ERR_INVALID_OPTION.
 */
export function parseObjectChecksum(v: unknown): ObjectChecksum {
  if (v === undefined) return defaultObjectChecksum();
  if (!isObjectChecksum(v)) throw new InvalidOptionError(`unknown object checksum ${JSON.stringify(v)}: use crc32 or sha256`);
  return checkAvailable(v); // crc32 without zlib.crc32 fails here, before any COPY
}

/** `algorithm`, if this Node computes it; crc32 without zlib.crc32 is ERR_INVALID_OPTION. */
function checkAvailable(algorithm: ObjectChecksum): ObjectChecksum {
  if (algorithm === 'crc32' && !crc32Available()) {
    throw new InvalidOptionError(`CRC-32 object checksums need zlib.crc32 (Node ≥ 20.15 or ≥ 22.2); this is Node ${process.versions.node}`, { hint: 'use --object-checksum sha256' });
  }
  return algorithm;
}

/** `CRC-32` or `SHA-256`, for messages. */
export function checksumLabel(algorithm: ObjectChecksum): string {
  return LABEL[algorithm];
}

/** Is `hex` a well-formed digest of `algorithm` (its number of hex digits, either case)? */
function wellFormedDigest(algorithm: ObjectChecksum, hex: unknown): hex is string {
  return typeof hex === 'string' && hex.length === HEX_LENGTH[algorithm] && /^[0-9a-f]+$/i.test(hex);
}

/**
 * Why the untrusted entry `e` (named `at` in messages, e.g. `objects[3]`) has wrong digest
 * fields, or undefined when it has exactly one of `crc32` (8 hex digits) or `sha256` (64).
 */
export function digestProblem(e: Record<string, unknown>, at: string): string | undefined {
  const present = OBJECT_CHECKSUMS.filter((a) => e[a] !== undefined);
  if (present.length === 0) return `${at} has no digest: it needs crc32 or sha256`;
  if (present.length > 1) return `${at} has both crc32 and sha256: it must have exactly one`;
  const a = present[0]!;
  return wellFormedDigest(a, e[a]) ? undefined : `${at}.${a} must be ${HEX_LENGTH[a]} hexadecimal digits`;
}

/** The algorithm and value an entry records, or undefined when it records none. */
export function recordedDigest(e: ObjectDigest): { algorithm: ObjectChecksum; hex: string } | undefined {
  if (e.crc32 !== undefined) return { algorithm: 'crc32', hex: e.crc32.toLowerCase() };
  if (e.sha256 !== undefined) return { algorithm: 'sha256', hex: e.sha256.toLowerCase() };
  return undefined;
}

/** The algorithm an entry records; `sha256` when it records none (what bare imports compute). */
function digestAlgorithm(e: ObjectDigest): ObjectChecksum {
  return recordedDigest(e)?.algorithm ?? 'sha256';
}

/** The digest fields recording `hex` under `algorithm`: `{ crc32 }` or `{ sha256 }`. */
export function digestFields(algorithm: ObjectChecksum, hex: string): ObjectDigest {
  return algorithm === 'crc32' ? { crc32: hex } : { sha256: hex };
}

/** Copy of an entry's digest fields alone (the one it records, or none). */
export function pickDigest(e: ObjectDigest): ObjectDigest {
  const d = recordedDigest(e);
  return d ? digestFields(d.algorithm, d.hex) : {};
}

/** `CRC-32 0a1b2c3d`: a digest for messages. */
export function describeDigest(algorithm: ObjectChecksum, hex: string): string {
  return `${LABEL[algorithm]} ${hex}`;
}

/**
 * A ledger's record of a digest (the `sha256` text column of segferry.loads, kept for old
 * ledgers): the SHA-256 hex alone, as before; other algorithms with their name, `crc32:<hex>`.
 */
export function ledgerDigest(algorithm: ObjectChecksum, hex: string): string {
  return algorithm === 'sha256' ? hex : `${algorithm}:${hex}`;
}

/** Incremental digest of stored bytes under one algorithm. */
export class ObjectHasher {
  readonly algorithm: ObjectChecksum;
  readonly #hash: Hash | undefined;
  #crc = 0;

  /** `algorithm`: default {@link defaultObjectChecksum}. */
  constructor(algorithm: ObjectChecksum = defaultObjectChecksum()) {
    this.algorithm = checkAvailable(algorithm);
    if (algorithm === 'sha256') this.#hash = createHash('sha256');
  }

  /** The hasher for what entry `e` records (SHA-256 when it records none). */
  static for(e: ObjectDigest): ObjectHasher {
    return new ObjectHasher(digestAlgorithm(e));
  }

  /** Add bytes. */
  update(b: Uint8Array): this {
    if (this.#hash) this.#hash.update(b);
    else this.#crc = zlibCrc32!(b, this.#crc);
    return this;
  }

  /** The digest, lower-case hex (call once). */
  digest(): string {
    return this.#hash ? this.#hash.digest('hex') : this.#crc.toString(16).padStart(8, '0');
  }
}

/**
 * Digest and size of a stream read to its end, under the algorithm entry `e` records (SHA-256
 * when none). `onBytes` is called with each piece's size. Memory: one piece at a time.
 */
export async function digestStream(e: ObjectDigest, body: AsyncIterable<Uint8Array>, onBytes?: (n: number) => void): Promise<{ algorithm: ObjectChecksum; hex: string; bytes: number }> {
  const h = ObjectHasher.for(e);
  let bytes = 0;
  for await (const c of body) {
    h.update(c);
    bytes += c.length;
    onBytes?.(c.length);
  }
  return { algorithm: h.algorithm, hex: h.digest(), bytes };
}

/** Does entry `e` record a digest equal to `hex` (its own algorithm; false when it records none)? */
export function digestMatches(e: ObjectDigest, hex: string): boolean {
  return recordedDigest(e)?.hex === hex.toLowerCase();
}
