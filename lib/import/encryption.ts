import { unwrapFor, type EncryptOption } from '../crypto/keys.js';
import type { ObjectCipher } from '../crypto/objects.js';
import { InvalidOptionError, ManifestMissingError } from '../errors.js';
import { readManifest } from '../manifest/io.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';

/**
 * The reading side of client-side encryption, for import, verify and `copy --via`: read the
 * export's manifest under `store` and unwrap its data key with `encrypt`, before anything
 * else is read or loaded. Undefined for an export that is not encrypted (and no key given).
 * Throws EncryptionKeyError when the export is encrypted and no key, or the wrong key, is
 * given; InvalidOptionError when a key is given for an export that is not encrypted, or for
 * bare objects. Undefined too when there is no manifest (the caller's reading of the source
 * reports that). Pass the result to `decryptObject` (lib/crypto/objects.ts) per object.
 */
export async function readExportKey(store: ObjectStore, encrypt: EncryptOption | undefined, s3?: S3Options, bare = false): Promise<ObjectCipher | undefined> {
  if (bare) {
    if (encrypt) throw new InvalidOptionError('objects without a manifest (--bare) are not encrypted by segferry: leave out --encrypt');
    return undefined;
  }
  // No manifest: the caller's own reading of the source says so, with its hints.
  const m = await readManifest(store).catch((e: unknown) => {
    if (e instanceof ManifestMissingError) return undefined;
    throw e;
  });
  if (!m) return undefined;
  const dataKey = await unwrapFor(m.clientEncryption, encrypt, s3, store.url);
  return dataKey ? { dataKey, chunkSize: m.clientEncryption!.chunkSize } : undefined;
}
