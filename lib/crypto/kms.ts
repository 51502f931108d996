import type { KMSClient, KMSClientConfig } from '@aws-sdk/client-kms';
import { EncryptionKeyError, registerSecret } from '../errors.js';
import type { S3Options } from '../store/s3.js';
import { CLIENT_ENCRYPTION_ALGORITHM, DEFAULT_CHUNK_SIZE, type ClientEncryption } from './envelope.js';
import type { KeySource } from './keys.js';

// AWS KMS as the wrapping key: GenerateDataKey (AES_256) on export, Decrypt on import. KMS
// wraps the data key itself, so the manifest records its CiphertextBlob and key id; the
// encryption context binds the blob to segferry's format (Decrypt fails without it).

type KmsSdk = typeof import('@aws-sdk/client-kms');
let sdkLoading: Promise<KmsSdk> | undefined;

/** The KMS SDK, loaded on first use (as the S3 one): exports without KMS never pay for it. */
function loadSdk(): Promise<KmsSdk> {
  sdkLoading ??= import('@aws-sdk/client-kms');
  return sdkLoading;
}

/** Encryption context of every data key segferry asks KMS for (authenticated by KMS, not secret). */
const CONTEXT = { 'segferry-data-key': CLIENT_ENCRYPTION_ALGORITHM };

async function client(o: S3Options): Promise<KMSClient> {
  const { KMSClient } = await loadSdk();
  const env = process.env;
  const cfg: KMSClientConfig = { region: o.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1', maxAttempts: o.maxAttempts ?? 8, retryMode: 'adaptive' };
  // The S3 options' endpoint serves KMS too (moto_server, LocalStack); else the SDK's own
  // (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, or AWS).
  if (o.endpoint) cfg.endpoint = o.endpoint;
  if (o.credentials) {
    registerSecret(o.credentials.secretAccessKey);
    registerSecret(o.credentials.sessionToken);
    cfg.credentials = { ...o.credentials };
  }
  registerSecret(env.AWS_SECRET_ACCESS_KEY);
  registerSecret(env.AWS_SESSION_TOKEN);
  return new KMSClient(cfg);
}

/** Why a KMS call failed, without anything secret: the error's name, status and message. */
function why(e: unknown): string {
  const x = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  return `${x.name ?? 'Error'}${x.$metadata?.httpStatusCode ? ` (HTTP ${x.$metadata.httpStatusCode})` : ''}: ${String(x.message ?? e).slice(0, 200)}`;
}

/**
 * A key source over an AWS KMS key. `keyId` (id, ARN or alias) is required to make data keys;
 * to unwrap, the manifest's key id is used, and a given `keyId` must be the same key (KMS checks).
 */
export function kmsKeySource(keyId: string | undefined, o: S3Options): KeySource {
  let c: Promise<KMSClient> | undefined;
  const kms = () => (c ??= client(o));
  return {
    async newDataKey(chunkSize = DEFAULT_CHUNK_SIZE): Promise<{ dataKey: Buffer; manifest: ClientEncryption }> {
      if (keyId === undefined) throw new EncryptionKeyError('an encrypted export needs the KMS key to use: --encrypt kms:KEY-ID');
      const { GenerateDataKeyCommand } = await loadSdk();
      let r;
      try {
        r = await (await kms()).send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: CONTEXT }));
      } catch (e) {
        throw new EncryptionKeyError(`KMS GenerateDataKey with key ${keyId} failed: ${why(e)}`, { cause: e });
      }
      if (!r.Plaintext || r.Plaintext.length !== 32 || !r.CiphertextBlob) throw new EncryptionKeyError(`KMS GenerateDataKey with key ${keyId} returned no 256-bit data key`);
      return {
        dataKey: Buffer.from(r.Plaintext),
        manifest: { algorithm: CLIENT_ENCRYPTION_ALGORITHM, keySource: 'kms', wrappedKey: Buffer.from(r.CiphertextBlob).toString('base64'), keyId: r.KeyId ?? keyId, chunkSize },
      };
    },
    async unwrap(enc: ClientEncryption): Promise<Buffer> {
      if (enc.algorithm !== CLIENT_ENCRYPTION_ALGORITHM) throw new EncryptionKeyError(`unknown client-side encryption ${JSON.stringify(String(enc.algorithm).slice(0, 64))}`);
      if (enc.keySource !== 'kms') throw new EncryptionKeyError(`the export's data key is wrapped by a key file (key id ${enc.keyId}), not by KMS: pass --encrypt key-file:PATH`);
      const { DecryptCommand } = await loadSdk();
      let r;
      try {
        r = await (await kms()).send(new DecryptCommand({ CiphertextBlob: Buffer.from(enc.wrappedKey, 'base64'), KeyId: keyId ?? enc.keyId, EncryptionContext: CONTEXT }));
      } catch (e) {
        throw new EncryptionKeyError(`KMS cannot unwrap the export's data key (key ${enc.keyId}): ${why(e)}`, { cause: e });
      }
      if (!r.Plaintext || r.Plaintext.length !== 32) throw new EncryptionKeyError(`KMS Decrypt (key ${enc.keyId}) returned no 256-bit data key`);
      return Buffer.from(r.Plaintext);
    },
  };
}
