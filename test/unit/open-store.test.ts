import { describe, expect, it } from 'vitest';
import { openStore } from '../../lib/store/open.js';
import { DirectoryStore } from '../../lib/store/dir.js';
import { InvalidOptionError, StorageError } from '../../lib/errors.js';
import { storageHint } from '../../lib/store/s3.js';
import { createServer, type AddressInfo } from 'node:net';

describe('openStore: file URLs', () => {
  it('file://relative is a usage error naming the fix, not an internal error', () => {
    let err: unknown;
    try { openStore('file://relative/dir'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).hint).toMatch(/file:\/\/\/absolute/);
    expect(() => openStore('file://')).toThrow(InvalidOptionError);
  });
  it('file:///absolute and file://localhost/absolute open a directory', () => {
    expect(openStore('file:///tmp/sf-x')).toBeInstanceOf(DirectoryStore);
    expect(openStore('file://localhost/tmp/sf-x')).toBeInstanceOf(DirectoryStore);
  });
});

describe('S3 storage errors carry a hint where the cause is clear', () => {
  it('no answer from the endpoint (a closed port): ERR_STORAGE with a hint naming the endpoint settings', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const store = openStore('s3://bucket/prefix', {
      endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', maxAttempts: 1,
      credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'not-a-real-secret-key' },
    });
    let err: unknown;
    try { await store.getBytes('manifest.json'); } catch (e) { err = e; } finally { store.close(); }
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('ERR_STORAGE');
    expect((err as StorageError).hint).toMatch(/--s3-endpoint/);
    expect(JSON.stringify((err as StorageError).toJSON())).not.toContain('not-a-real-secret-key');
  });

  it('refused credentials (HTTP 403) and socket errors get their hints; others none', () => {
    expect(storageHint({ name: 'InvalidAccessKeyId', $metadata: { httpStatusCode: 403 } })).toMatch(/credentials/);
    expect(storageHint(Object.assign(new Error('getaddrinfo ENOTFOUND s3.nowhere'), { code: 'ENOTFOUND' }))).toMatch(/endpoint/);
    expect(storageHint({ name: 'InternalError', $metadata: { httpStatusCode: 500 } })).toBeUndefined();
  });

  it('no credentials anywhere (the SDK\'s CredentialsProviderError, from a real client): the credentials hint', async () => {
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/config';
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const store = openStore('s3://bucket/prefix', { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', maxAttempts: 1 });
    let err: unknown;
    try { await store.getBytes('manifest.json'); } catch (e) { err = e; } finally {
      store.close();
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(/CredentialsProviderError/);
    expect((err as StorageError).hint).toMatch(/AWS_ACCESS_KEY_ID/);
  });
});
