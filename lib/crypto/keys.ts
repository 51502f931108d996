import { EncryptionKeyError, InvalidOptionError } from '../errors.js';
import type { S3Options } from '../store/s3.js';
import { DEFAULT_CHUNK_SIZE, newDataKey, readKeyFile, unwrapDataKey, type ClientEncryption } from './envelope.js';

// Where data keys come from: a local key file or AWS KMS. Export asks for a fresh data key
// (plain and wrapped); import unwraps the one the manifest records. The plain data key lives
// in memory only, for the run.

/**
 * Client-side encryption (issue 18, docs/encryption.md): `{ keyFile }`, a local 256-bit key
 * (32 raw bytes, 64 hex digits or 44 base64 characters), or `{ kms }`, an AWS KMS key id, ARN
 * or alias (export: required; import and verify: `true` takes the key id from the manifest).
 */
export type EncryptOption = { keyFile: string } | { kms: string | true };

/** A data key in memory, and how the manifest records it. */
export interface DataKey {
  dataKey: Buffer;
  manifest: ClientEncryption;
}

/** Gives fresh data keys and unwraps recorded ones. */
export interface KeySource {
  /** A fresh 256-bit data key and its wrapped form (export). */
  newDataKey(chunkSize?: number): Promise<DataKey>;
  /** The plain data key a manifest (or checkpoint) records; EncryptionKeyError when this key source cannot open it. */
  unwrap(enc: ClientEncryption): Promise<Buffer>;
}

/**
 * Parse the CLI's `--encrypt` value: `key-file:PATH`, `kms:KEY-ID` or `kms` (import and
 * verify: the key id recorded in the manifest).
 */
export function parseEncryptOption(v: string): EncryptOption {
  if (v.startsWith('key-file:') && v.length > 'key-file:'.length) return { keyFile: v.slice('key-file:'.length) };
  if (v === 'kms') return { kms: true };
  if (v.startsWith('kms:') && v.length > 'kms:'.length) return { kms: v.slice('kms:'.length) };
  throw new InvalidOptionError(`--encrypt takes key-file:PATH, kms:KEY-ID or kms (got ${JSON.stringify(v.slice(0, 80))})`);
}

/** Check the shape of a library `encrypt` option (it comes from callers' code, maybe from JSON). */
export function checkEncryptOption(o: unknown): EncryptOption {
  const x = o as Record<string, unknown> | null;
  if (typeof x === 'object' && x !== null && typeof x.keyFile === 'string' && x.keyFile !== '' && !('kms' in x)) return { keyFile: x.keyFile };
  if (typeof x === 'object' && x !== null && (x.kms === true || (typeof x.kms === 'string' && x.kms !== '')) && !('keyFile' in x)) return { kms: x.kms as string | true };
  throw new InvalidOptionError('encrypt must be { keyFile: PATH } or { kms: KEY-ID } (import and verify also { kms: true })');
}

/** A key source over a local key file (read now: a missing or malformed file fails at once). */
export function keyFileSource(path: string): KeySource {
  const key = readKeyFile(path);
  return {
    newDataKey: async (chunkSize = DEFAULT_CHUNK_SIZE) => newDataKey(key, chunkSize),
    unwrap: async (enc) => unwrapDataKey(enc, key),
  };
}

/**
 * The key source of an `encrypt` option. KMS is reached on the S3 options' endpoint, region
 * and credentials (moto_server answers both), its SDK loaded on first use.
 */
export async function openKeySource(o: EncryptOption, s3?: S3Options): Promise<KeySource> {
  const e = checkEncryptOption(o);
  if ('keyFile' in e) return keyFileSource(e.keyFile);
  const { kmsKeySource } = await import('./kms.js');
  return kmsKeySource(e.kms === true ? undefined : e.kms, s3 ?? {});
}

/**
 * Unwrap an export's data key, or say why not: the export is encrypted and no key was given
 * (EncryptionKeyError), or a key was given for an export that is not encrypted (InvalidOptionError).
 * Undefined when neither.
 */
export async function unwrapFor(enc: ClientEncryption | undefined, o: EncryptOption | undefined, s3: S3Options | undefined, where: string): Promise<Buffer | undefined> {
  if (!enc) {
    if (o) throw new InvalidOptionError(`the export at ${where} is not encrypted: leave out --encrypt`);
    return undefined;
  }
  if (!o) {
    throw new EncryptionKeyError(`the export at ${where} is encrypted (${enc.keySource === 'kms' ? `KMS key ${enc.keyId}` : `key id ${enc.keyId}`}): pass --encrypt ${enc.keySource === 'kms' ? 'kms' : 'key-file:PATH'}`);
  }
  const src = await openKeySource(o, s3);
  return src.unwrap(enc);
}
