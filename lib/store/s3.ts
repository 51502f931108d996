import type {
  DeleteObjectsCommandOutput,
  GetObjectCommandOutput,
  HeadObjectCommandOutput,
  ListMultipartUploadsCommandOutput,
  ListObjectsV2CommandOutput,
  S3Client,
  S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { BucketNotFoundError, ObjectMissingError, StorageError, registerSecret } from '../errors.js';
import { throwIfAborted } from '../util/pool.js';
import type { ByteRange, CopyOptions, ObjectInfo, ObjectStore, ObjectWriter } from './types.js';
import { PartPool, type PartPoolState } from './s3-pool.js';
import { PartWriter } from './s3-upload.js';

/**
 * How to reach an S3-compatible service. Every field is optional: by default the AWS SDK's
 * standard sources apply (AWS_* environment variables, shared config and credentials files,
 * instance roles), plus the ones listed here.
 */
export interface S3Options {
  /**
   * Endpoint URL for S3-compatible services (MinIO, Ceph RGW, Huawei OBS, s3rver).
   * Default: `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, else AWS itself.
   */
  endpoint?: string;
  /** Region. Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the SDK's profile, else `us-east-1`. */
  region?: string;
  /**
   * Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
   * Default: `SEGFERRY_S3_PATH_STYLE` ("true"/"false"); else true when an endpoint is set, false for AWS.
   */
  forcePathStyle?: boolean;
  /**
   * When the SDK computes and validates checksums. Default: the SDK's own
   * (`AWS_REQUEST_CHECKSUM_CALCULATION`, else `WHEN_SUPPORTED`). Some S3-compatible servers need
   * `WHEN_REQUIRED` (s3rver stores streamed bodies corrupted otherwise).
   */
  checksum?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** Explicit credentials. Default: the SDK's provider chain. Never logged. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Multipart part size in bytes (default 8 MiB, min 5 MiB). Every part-sized buffer of an
   * upload, the one being filled and its parts in flight, is one of the store's
   * {@link uploadMemory}; an upload holds only 256 KiB of its own.
   */
  partSize?: number;
  /** Parts uploaded at once per object (default 2), within what {@link uploadMemory} lends. */
  queueSize?: number;
  /**
   * Bytes of part buffers shared by all of the store's uploads, for the part each fills and
   * its parts in flight (rounded down to whole parts, at least one). Default
   * `3 × (queueSize + 1) × partSize` (72 MiB with the defaults: three uploads, one per node of a
   * 3-node export, each filling one part with `queueSize` more in flight). With more uploads at
   * once they wait for a buffer (backpressure on their writes), so the store's upload memory is
   * this plus 256 KiB per open upload, however many uploads (streams) there are (docs/memory.md).
   */
  uploadMemory?: number;
  /** Attempts per request, with the SDK's adaptive backoff (default 8). */
  maxAttempts?: number;
  /** Server-side encryption: `AES256` (SSE-S3) or `aws:kms` (SSE-KMS). Default: the bucket's. */
  serverSideEncryption?: 'AES256' | 'aws:kms';
  /** KMS key id for `aws:kms`. */
  kmsKeyId?: string;
  /**
   * Whether the service enforces `If-None-Match: *` on PutObject (used to claim a prefix and to
   * write the manifest only once). `'yes'`: AWS S3, MinIO, moto. `'unknown'`: segferry falls back
   * to a best-effort check (docs/s3-compatibility.md). Default: `SEGFERRY_S3_CONDITIONAL_WRITES`,
   * else `'yes'` for AWS itself (no endpoint set), else `'unknown'`.
   */
  conditionalWrites?: 'yes' | 'unknown';
  /** Called before each retry of a request (the library turns it into `retry` events). */
  onRetry?: (info: S3RetryInfo) => void;
}

/** A request being retried after a transient failure. */
export interface S3RetryInfo {
  operation: string;
  key?: string;
  /** Attempt about to be made (2 = first retry). */
  attempt: number;
  /** Why the previous attempt failed (error name and HTTP status), never credentials. */
  reason: string;
}

/**
 * Default multipart part size: 8 MiB. Three exporters' uploads then fit the default 72 MiB of
 * part buffers (docs/memory.md), and objects may reach 78 GiB.
 */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** S3's smallest part (all but the last); a smaller `partSize` is raised to it. */
const MIN_PART_SIZE = 5 * 1024 * 1024;
/** Default parts in flight per upload. */
export const DEFAULT_QUEUE_SIZE = 2;
/** The default {@link S3Options.uploadMemory}: this many uploads' part being filled and `queueSize` parts in flight. */
export const DEFAULT_UPLOAD_STREAMS = 3;

/** {@link S3Options.uploadMemory} once defaulted: `3 × (queueSize + 1) × partSize` (72 MiB with the defaults). Pure. */
export function uploadMemory(o: Pick<S3Options, 'partSize' | 'queueSize' | 'uploadMemory'> = {}): number {
  return o.uploadMemory ?? DEFAULT_UPLOAD_STREAMS * (Math.max(1, o.queueSize ?? DEFAULT_QUEUE_SIZE) + 1) * s3PartSize(o);
}

/** The part size in effect: {@link S3Options.partSize} or 8 MiB, at least 5 MiB. Pure. */
export function s3PartSize(o: Pick<S3Options, 'partSize'> = {}): number {
  return Math.max(o.partSize ?? DEFAULT_PART_SIZE, MIN_PART_SIZE);
}

function envBool(v: string | undefined): boolean | undefined {
  if (v === undefined || v === '') return undefined;
  return /^(1|true|yes|on)$/i.test(v);
}

type Sdk = typeof import('@aws-sdk/client-s3');
let sdkLoading: Promise<Sdk> | undefined;

/**
 * The AWS SDK, loaded on first use: it costs ≈ 0.25 CPU-s and ≈ 30 MB to load, which an
 * export to a directory (or a CLI `--help`) should not pay.
 */
function loadSdk(): Promise<Sdk> {
  sdkLoading ??= import('@aws-sdk/client-s3');
  return sdkLoading;
}

/** Build an S3 client from options and the environment. */
async function createS3Client(o: S3Options = {}): Promise<S3Client> {
  const { S3Client } = await loadSdk();
  const env = process.env;
  const endpoint = o.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const cfg: S3ClientConfig = {
    region: o.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: o.forcePathStyle ?? envBool(env.SEGFERRY_S3_PATH_STYLE) ?? endpoint !== undefined,
    maxAttempts: o.maxAttempts ?? 8,
    retryMode: 'adaptive',
  };
  if (endpoint) cfg.endpoint = endpoint;
  const cs = o.checksum ?? (env.SEGFERRY_S3_CHECKSUM as S3Options['checksum'] | undefined);
  if (cs) {
    cfg.requestChecksumCalculation = cs;
    cfg.responseChecksumValidation = cs;
  }
  if (o.credentials) {
    registerSecret(o.credentials.secretAccessKey);
    registerSecret(o.credentials.sessionToken);
    cfg.credentials = { ...o.credentials };
  }
  registerSecret(env.AWS_SECRET_ACCESS_KEY);
  registerSecret(env.AWS_SESSION_TOKEN);
  const client = new S3Client(cfg);
  const onRetry = o.onRetry;
  if (onRetry) {
    // Runs inside the SDK's retry loop (finalizeRequest, low priority): once per attempt.
    client.middlewareStack.add(
      (next, context) => {
        let attempt = 0;
        let last = '';
        return async (args) => {
          attempt++;
          if (attempt > 1) {
            const input = (args as { input?: { Key?: string } }).input;
            const info: S3RetryInfo = { operation: String(context.commandName ?? 'request'), attempt, reason: last };
            if (input?.Key) info.key = input.Key;
            try { onRetry(info); } catch { /* never break the request */ }
          }
          try {
            return await next(args);
          } catch (e) {
            last = errText(e);
            throw e;
          }
        };
      },
      { step: 'finalizeRequest', priority: 'low', name: 'segferryRetryReporter' },
    );
  }
  return client;
}

function isNotFound(e: unknown): boolean {
  const x = e as { name?: string; $metadata?: { httpStatusCode?: number }; Code?: string };
  return x?.name === 'NoSuchKey' || x?.name === 'NotFound' || x?.Code === 'NoSuchKey' || x?.$metadata?.httpStatusCode === 404;
}

function isNoSuchBucket(e: unknown): boolean {
  const x = e as { name?: string; Code?: string };
  return x?.name === 'NoSuchBucket' || x?.Code === 'NoSuchBucket';
}

/**
 * What the user can do about a storage failure the SDK reports, where the cause says: refused or
 * missing credentials (HTTP 401/403, the SDK's CredentialsProviderError), or no answer from the
 * endpoint (a socket error). Undefined otherwise.
 */
export function storageHint(e: unknown): string | undefined {
  const x = e as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = x?.$metadata?.httpStatusCode;
  // The SDK found no credentials at all (no AWS variables, profile or instance role).
  if (status === 401 || status === 403 || x?.name === 'CredentialsProviderError') {
    return 'check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), the region and the bucket policy';
  }
  const code = typeof x?.code === 'string' ? x.code : '';
  if (/^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET)$/.test(code)) {
    return 'check the S3 endpoint (--s3-endpoint, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL) and that it is reachable from here';
  }
  return undefined;
}

function errText(e: unknown): string {
  const x = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = x?.$metadata?.httpStatusCode ? ` (HTTP ${x.$metadata.httpStatusCode})` : '';
  return `${x?.name ?? 'Error'}: ${x?.message ?? String(e)}${status}`;
}

/**
 * The part of an AWS SDK v3 `S3Client` that {@link S3Store} relies on, declared here (as kysely
 * declares the part of pg's Pool it needs) so that segferry's public types do not carry the
 * SDK's. An `S3Client` from `@aws-sdk/client-s3` satisfies it; the store hands it to the SDK's
 * commands (the multipart upload too), so it must be a real one.
 */
export interface S3ClientLike {
  /** Send one command; `abortSignal` cancels the request. */
  send(command: unknown, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  /** Close the client's sockets. */
  destroy(): void;
}

/** A bucket prefix as a store. */
export class S3Store implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #opts: S3Options;
  readonly #ownsClient: boolean;
  #client: S3Client | undefined;
  #ready: Promise<{ sdk: Sdk; client: S3Client }> | undefined;
  #closed = false;
  #pool: PartPool | undefined;

  /**
   * `prefix` is normalised to end with `/` unless empty. `opts` default to `{}` (the SDK's
   * standard sources). Pass `client` (an `S3Client`) to share one; it is then not closed by
   * {@link close}. Default: a client made from `opts` on first use, closed by {@link close}.
   */
  constructor(bucket: string, prefix: string, opts: S3Options = {}, client?: S3ClientLike) {
    this.bucket = bucket;
    this.prefix = prefix.replace(/^\/+/, '').replace(/\/*$/, prefix.replace(/^\/+/, '') ? '/' : '');
    this.url = `s3://${bucket}/${this.prefix}`;
    this.#opts = opts;
    this.#client = client as S3Client | undefined;
    this.#ownsClient = client === undefined;
  }

  /** The SDK and the client, created on first use. */
  #c(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.#ready ??= (async () => {
      const sdk = await loadSdk();
      this.#client ??= await createS3Client(this.#opts);
      // Closed while the client was being made: do not leave its sockets open.
      if (this.#closed && this.#ownsClient) this.#client.destroy();
      return { sdk, client: this.#client };
    })();
    return this.#ready;
  }

  /** Send a command built from the lazily loaded SDK. */
  async #send<T>(make: (sdk: Sdk) => unknown, opts?: { abortSignal?: AbortSignal }): Promise<T> {
    const { sdk, client } = await this.#c();
    return (await client.send(make(sdk) as never, opts)) as T;
  }

  #k(key: string): string {
    return this.prefix + key;
  }

  #wrap(e: unknown, what: string, key?: string): Error {
    if (isNoSuchBucket(e)) {
      return new BucketNotFoundError(`bucket ${this.bucket} does not exist`, { cause: e, hint: 'create the bucket or check its name and region' });
    }
    const ctx: { cause: unknown; key?: string; hint?: string } = { cause: e };
    if (key !== undefined) ctx.key = key;
    const hint = storageHint(e);
    if (hint !== undefined) ctx.hint = hint;
    return new StorageError(`${what} ${this.url}${key ?? ''} failed: ${errText(e)}`, ctx);
  }

  #sse(): { ServerSideEncryption?: 'AES256' | 'aws:kms'; SSEKMSKeyId?: string } {
    const o: { ServerSideEncryption?: 'AES256' | 'aws:kms'; SSEKMSKeyId?: string } = {};
    if (this.#opts.serverSideEncryption) o.ServerSideEncryption = this.#opts.serverSideEncryption;
    if (this.#opts.kmsKeyId) o.SSEKMSKeyId = this.#opts.kmsKeyId;
    return o;
  }

  async check(): Promise<void> {
    try {
      await this.#send((sdk) => new sdk.HeadBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (isNoSuchBucket(e) || isNotFound(e) || status === 404) {
        throw new BucketNotFoundError(`bucket ${this.bucket} does not exist`, { cause: e, hint: 'create the bucket or check its name and region' });
      }
      if (status === 403) {
        throw new StorageError(`access to bucket ${this.bucket} denied (HTTP 403)`, { cause: e, hint: storageHint(e)! });
      }
      throw this.#wrap(e, 'checking');
    }
  }

  /** A write resolves once its chunk is copied into a part buffer (lib/store/s3-upload.ts). */
  readonly releasesWrites = true;

  /**
   * The uploads' shared part buffers: how many the store may lend, are lent (parts being filled or in flight),
   * are free, and how many uploads wait for one. All zero but `parts` before the first part.
   */
  get uploadBuffers(): PartPoolState {
    return this.#partPool().state;
  }

  #partPool(): PartPool {
    this.#pool ??= new PartPool(uploadMemory(this.#opts), s3PartSize(this.#opts));
    return this.#pool;
  }

  createWriter(key: string, opts: { signal?: AbortSignal } = {}): ObjectWriter {
    return new PartWriter({
      ready: this.#c(),
      bucket: this.bucket,
      key: this.#k(key),
      sse: this.#sse(),
      partSize: s3PartSize(this.#opts),
      queueSize: Math.max(1, this.#opts.queueSize ?? DEFAULT_QUEUE_SIZE),
      pool: this.#partPool(),
      signal: opts.signal,
      wrap: (e) => this.#wrap(e, 'uploading', key),
      remove: () => this.delete([key]),
    });
  }

  async read(key: string, opts: { signal?: AbortSignal; range?: ByteRange } = {}): Promise<Readable> {
    try {
      const o: { abortSignal?: AbortSignal } = {};
      if (opts.signal) o.abortSignal = opts.signal;
      // Only `bytes=a-b` ranges: s3rver answers `bytes=-N` with the first bytes (FACTS.md).
      const range = opts.range ? { Range: `bytes=${opts.range.start}-${opts.range.end - 1}` } : {};
      const r = await this.#send<GetObjectCommandOutput>((sdk) => new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.#k(key), ...range }), o);
      return r.Body as Readable;
    } catch (e) {
      if (isNotFound(e) && !isNoSuchBucket(e)) throw new ObjectMissingError(`object ${key} not found in ${this.url}`, { key, cause: e });
      throw this.#wrap(e, 'reading', key);
    }
  }

  async putBytes(key: string, body: Buffer | string): Promise<void> {
    try {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      await this.#send((sdk) => new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.#k(key), Body: buf, ContentLength: buf.length, ...this.#sse() }));
    } catch (e) {
      throw this.#wrap(e, 'writing', key);
    }
  }

  /** See {@link S3Options.conditionalWrites}. */
  get conditionalWrites(): 'yes' | 'unknown' {
    const env = process.env;
    const v = this.#opts.conditionalWrites ?? env.SEGFERRY_S3_CONDITIONAL_WRITES;
    if (v === 'yes' || v === 'unknown') return v;
    return (this.#opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL) ? 'unknown' : 'yes';
  }

  async createExclusive(key: string, body: Buffer | string): Promise<boolean> {
    try {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      await this.#send((sdk) => new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.#k(key), Body: buf, ContentLength: buf.length, IfNoneMatch: '*', ...this.#sse() }));
      return true;
    } catch (e) {
      // 412 PreconditionFailed: the key exists. 409 ConditionalRequestConflict: another
      // conditional write to the key is under way (AWS); either way someone else holds it.
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const name = (e as { name?: string }).name;
      if (status === 412 || status === 409 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict') return false;
      throw this.#wrap(e, 'writing', key);
    }
  }

  async getBytes(key: string): Promise<Buffer | undefined> {
    let r;
    try {
      r = await this.#send<GetObjectCommandOutput>((sdk) => new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.#k(key) }));
    } catch (e) {
      if (isNotFound(e) && !isNoSuchBucket(e)) return undefined;
      throw this.#wrap(e, 'reading', key);
    }
    const bytes = await r.Body!.transformToByteArray();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const r = await this.#send<HeadObjectCommandOutput>((sdk) => new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.#k(key) }));
      const info: ObjectInfo = { key, size: Number(r.ContentLength ?? 0) };
      if (r.ETag) info.etag = r.ETag;
      if (r.LastModified) info.lastModified = r.LastModified.toISOString();
      return info;
    } catch (e) {
      if (isNotFound(e) && !isNoSuchBucket(e)) return undefined;
      throw this.#wrap(e, 'checking', key);
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      let r;
      try {
        r = await this.#send<ListObjectsV2CommandOutput>((sdk) => new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.#k(prefix), ContinuationToken: token }));
      } catch (e) {
        throw this.#wrap(e, 'listing');
      }
      for (const c of r.Contents ?? []) {
        if (c.Key === undefined) continue;
        const info: ObjectInfo = { key: c.Key.slice(this.prefix.length), size: Number(c.Size ?? 0) };
        if (c.ETag) info.etag = c.ETag;
        if (c.LastModified) info.lastModified = c.LastModified.toISOString();
        yield info;
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const r = await this.#send<DeleteObjectsCommandOutput>((sdk) => new sdk.DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((k) => ({ Key: this.#k(k) })), Quiet: true },
        }));
        if (r.Errors && r.Errors.length > 0) {
          const e = r.Errors[0]!;
          throw new StorageError(`deleting ${e.Key} failed: ${e.Code} ${e.Message}`, { key: String(e.Key) });
        }
      } catch (e) {
        if (e instanceof StorageError) throw e;
        throw this.#wrap(e, 'deleting');
      }
    }
  }

  async listUploads(): Promise<{ key: string; uploadId: string; initiated?: string }[]> {
    const out: { key: string; uploadId: string; initiated?: string }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      let r;
      try {
        r = await this.#send<ListMultipartUploadsCommandOutput>((sdk) => new sdk.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
      } catch (e) {
        throw this.#wrap(e, 'listing multipart uploads in');
      }
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        const x: { key: string; uploadId: string; initiated?: string } = { key: u.Key.slice(this.prefix.length), uploadId: u.UploadId };
        if (u.Initiated) x.initiated = u.Initiated.toISOString();
        out.push(x);
      }
      if (!r.IsTruncated) return out;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.#send((sdk) => new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.#k(key), UploadId: uploadId }));
    } catch (e) {
      throw this.#wrap(e, 'aborting upload', key);
    }
  }

  /**
   * The service this store reaches and as whom: endpoint and access key id (never the secret).
   * Two stores with the same identity can copy server-side between their buckets.
   */
  #identity(): string {
    const env = process.env;
    const endpoint = this.#opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL ?? 'aws';
    return JSON.stringify([endpoint.replace(/\/+$/, ''), this.#opts.credentials?.accessKeyId ?? env.AWS_ACCESS_KEY_ID ?? env.AWS_PROFILE ?? '']);
  }

  async copyFrom(src: ObjectStore, key: string, opts: CopyOptions): Promise<boolean> {
    if (!(src instanceof S3Store) || src.#identity() !== this.#identity()) return false;
    // s3rver accepts CopySource only URL-encoded this way (docs/s3-compatibility.md); AWS too.
    const source = encodeURI(`${src.bucket}/${src.#k(key)}`);
    const so: { abortSignal?: AbortSignal } = opts.signal ? { abortSignal: opts.signal } : {};
    const dst = { Bucket: this.bucket, Key: this.#k(key) };
    if (opts.size <= (opts.multipartAbove ?? 5 * 1024 ** 3)) {
      try {
        await this.#send((sdk) => new sdk.CopyObjectCommand({ ...dst, CopySource: source, ...this.#sse() }), so);
      } catch (e) {
        throwIfAborted(opts.signal);
        if (isNotFound(e) && !isNoSuchBucket(e)) throw new ObjectMissingError(`object ${key} not found in ${src.url}`, { key, cause: e });
        throw this.#wrap(e, 'copying to', key);
      }
      return true;
    }
    const part = Math.max(opts.partSize ?? 512 * 1024 ** 2, Math.ceil(opts.size / 10_000), 5 * 1024 ** 2);
    let uploadId: string | undefined;
    try {
      const c = await this.#send<{ UploadId?: string }>((sdk) => new sdk.CreateMultipartUploadCommand({ ...dst, ...this.#sse() }), so);
      uploadId = c.UploadId;
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, n = 1; start < opts.size; start += part, n++) {
        const end = Math.min(start + part, opts.size) - 1;
        const r = await this.#send<{ CopyPartResult?: { ETag?: string } }>((sdk) => new sdk.UploadPartCopyCommand({
          ...dst, UploadId: uploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${start}-${end}`,
        }), so);
        parts.push({ ETag: r.CopyPartResult?.ETag ?? '', PartNumber: n });
      }
      await this.#send((sdk) => new sdk.CompleteMultipartUploadCommand({ ...dst, UploadId: uploadId, MultipartUpload: { Parts: parts } }), so);
      return true;
    } catch (e) {
      if (uploadId) await this.abortUpload(key, uploadId).catch(() => {});
      throwIfAborted(opts.signal);
      if (isNotFound(e) && !isNoSuchBucket(e)) throw new ObjectMissingError(`object ${key} not found in ${src.url}`, { key, cause: e });
      throw this.#wrap(e, 'copying to', key);
    }
  }

  close(): void {
    this.#closed = true;
    this.#pool?.clear();
    if (this.#ownsClient) this.#client?.destroy();
  }
}
