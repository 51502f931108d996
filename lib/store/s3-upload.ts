// One object streamed to S3 in parts, on the SDK v3 client's own multipart commands.
// Replaces @aws-sdk/lib-storage's Upload, which keeps the caller's chunks until a part is full,
// then concatenates them into a new part buffer: every byte copied once more, one part-sized
// allocation per part (freed only by full GCs), and no chunk can be handed back to the COPY
// reader early. Here a writer fills one buffer of its own; the parts in flight are in buffers
// of the store's pool (lib/store/s3-pool.ts), shared by all its uploads, so the store's upload
// memory does not grow with the number of uploads at once. A chunk is copied into the current
// buffer and released as soon as write() resolves.
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import { StorageError } from '../errors.js';
import { throwIfAborted } from '../util/pool.js';
import type { PartPool } from './s3-pool.js';
import type { ObjectWriter } from './types.js';

/** S3 allows at most 10,000 parts per multipart upload. */
const MAX_PARTS = 10_000;
/** Size of an upload's first buffer; it grows 4× at a time up to a part (at most ≈ 5 MiB copied once). */
const FIRST_BUFFER = 256 * 1024;

/** What {@link PartWriter} needs of its store. */
export interface PartWriterOptions {
  /** The SDK module and client, resolved once loaded (the SDK loads lazily). */
  ready: Promise<{ sdk: typeof import('@aws-sdk/client-s3'); client: S3Client }>;
  bucket: string;
  /** The full key in the bucket (the store's prefix included). */
  key: string;
  /** Server-side encryption fields for PutObject and CreateMultipartUpload (default none). */
  sse: { ServerSideEncryption?: 'AES256' | 'aws:kms'; SSEKMSKeyId?: string };
  /** Bytes per part, at least 5 MiB (S3's minimum for every part but the last). */
  partSize: number;
  /** Parts uploaded at once, at least 1 (and at most what the pool lends). */
  queueSize: number;
  /** The store's part buffers, of `partSize` bytes each, shared by its uploads. */
  pool: PartPool;
  /** Cancels the upload (default: none): see `ObjectStore.createWriter`. */
  signal?: AbortSignal | undefined;
  /** Turns an SDK error into the store's typed error (StorageError, BucketNotFoundError). */
  wrap: (e: unknown) => Error;
  /** Deletes the object (abort(): in case a single PutObject or the Complete already went through). */
  remove: () => Promise<void>;
}

/**
 * A streaming multipart upload holding one buffer of its own (≤ `partSize`), the one being
 * filled, and up to `queueSize` parts in flight in buffers lent by the store's pool: to send a
 * full buffer it borrows a pool buffer to fill next (waiting while the pool has none: that is
 * backpressure on write(), never an error), and the sent buffer goes back to the pool once its
 * request settles, whatever the outcome. The last part is sent from the writer's own buffer. The
 * first buffer starts small and grows with the object; an object under one part goes in a
 * single PutObject and never touches the pool.
 * On any failure, and on abort, in-flight requests are cut, and once every one has settled the
 * multipart upload is aborted (AbortMultipartUpload), so no part is left behind where the
 * service implements it.
 */
export class PartWriter implements ObjectWriter {
  readonly #o: PartWriterOptions;
  /** Cuts in-flight requests on failure or abort. */
  readonly #cut = new AbortController();
  #cur: Buffer | undefined;
  #fill = 0;
  #next = 1;
  readonly #inflight = new Set<Promise<void>>();
  readonly #parts: CompletedPart[] = [];
  #uploadId: Promise<string> | undefined;
  #failure: { e: unknown } | undefined;
  #cleanup: Promise<void> | undefined;
  readonly #onAbort = () => this.#fail(this.#o.signal?.reason);

  constructor(o: PartWriterOptions) {
    this.#o = o;
    if (o.signal?.aborted) this.#fail(o.signal.reason);
    else o.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Copies the chunk into part buffers; resolves once it is copied (the caller may reuse it). */
  async write(chunk: Buffer): Promise<void> {
    await this.#check();
    const size = this.#o.partSize;
    for (let off = 0; off < chunk.length;) {
      if (this.#cur !== undefined && this.#fill === this.#cur.length) {
        if (this.#cur.length < size) this.#grow();
        else await this.#dispatch(false);
      }
      // Only the first buffer is new: #dispatch hands over a pool buffer for the next part.
      this.#cur ??= Buffer.allocUnsafe(Math.min(FIRST_BUFFER, size));
      const n = chunk.copy(this.#cur, this.#fill, off);
      this.#fill += n;
      off += n;
    }
  }

  async finish(): Promise<void> {
    this.#unlisten();
    await this.#check();
    const { sdk, client } = await this.#o.ready;
    const { bucket: Bucket, key: Key } = this.#o;
    try {
      if (this.#next === 1) {
        // Under one part (or empty): one request.
        const body = this.#cur?.subarray(0, this.#fill) ?? Buffer.alloc(0);
        await client.send(new sdk.PutObjectCommand({ Bucket, Key, Body: body, ContentLength: body.length, ...this.#o.sse }), { abortSignal: this.#cut.signal });
      } else {
        // The last part: written lazily, so it holds at least one byte.
        await this.#dispatch(true);
        while (this.#inflight.size > 0) await Promise.race(this.#inflight);
        if (this.#failure) throw this.#failure.e;
        const Parts = [...this.#parts].sort((a, b) => a.PartNumber! - b.PartNumber!);
        const UploadId = await this.#uploadId!;
        await client.send(new sdk.CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }), { abortSignal: this.#cut.signal });
      }
    } catch (e) {
      this.#fail(e);
      await this.#check();
    } finally {
      this.#drop();
    }
  }

  async abort(): Promise<void> {
    this.#unlisten();
    this.#fail(Object.assign(new Error('upload aborted'), { name: 'AbortError' }));
    await this.#cleanup;
    await this.#o.remove().catch(() => {});
  }

  /** Rejects with the caller's abort reason, or the typed failure once the upload is cleaned up. */
  async #check(): Promise<void> {
    if (this.#failure === undefined) return;
    await this.#cleanup;
    throwIfAborted(this.#o.signal);
    throw this.#o.wrap(this.#failure.e);
  }

  /** The first buffer is full but smaller than a part: move its bytes to one 4× larger. */
  #grow(): void {
    const g = Buffer.allocUnsafe(Math.min(this.#cur!.length * 4, this.#o.partSize));
    this.#cur!.copy(g, 0, 0, this.#fill);
    this.#cur = g;
  }

  /**
   * Sends the current buffer as the next part, first waiting while queueSize parts are in
   * flight, then (but for the last part) for a pool buffer to fill next, which the sent one
   * replaces in the pool once its request settles.
   */
  async #dispatch(last: boolean): Promise<void> {
    while (this.#inflight.size >= this.#o.queueSize) await Promise.race(this.#inflight);
    await this.#check();
    if (this.#next > MAX_PARTS) {
      this.#fail(new StorageError(`object ${this.#o.key} needs more than ${MAX_PARTS} parts of ${this.#o.partSize} bytes`, { key: this.#o.key, hint: 'raise --s3-part-size' }));
      await this.#check();
    }
    let next: Buffer | undefined;
    if (!last) {
      // Rejects only when the upload fails or is aborted meanwhile (#cut).
      next = await this.#o.pool.acquire(this.#cut.signal).catch(() => undefined);
      if (this.#failure) {
        if (next) this.#o.pool.release(next);
        await this.#check();
      }
    }
    const n = this.#next++;
    const buf = this.#cur!;
    const len = this.#fill;
    this.#cur = next;
    this.#fill = 0;
    const p: Promise<void> = this.#sendPart(buf, len, n).catch((e: unknown) => this.#fail(e)).finally(() => {
      if (!last) this.#o.pool.release(buf);
      this.#inflight.delete(p);
    });
    this.#inflight.add(p);
  }

  async #sendPart(buf: Buffer, len: number, PartNumber: number): Promise<void> {
    const UploadId = await (this.#uploadId ??= this.#create());
    if (this.#failure) return;
    const { sdk, client } = await this.#o.ready;
    const r = await client.send(new sdk.UploadPartCommand({
      Bucket: this.#o.bucket, Key: this.#o.key, UploadId, PartNumber, Body: buf.subarray(0, len), ContentLength: len,
    }), { abortSignal: this.#cut.signal });
    if (!r.ETag) throw new Error(`part ${PartNumber} has no ETag in the UploadPart response`);
    // The part checksums the SDK computed (WHEN_SUPPORTED), as CompleteMultipartUpload wants them.
    const part: CompletedPart = { PartNumber, ETag: r.ETag };
    if (r.ChecksumCRC32) part.ChecksumCRC32 = r.ChecksumCRC32;
    if (r.ChecksumCRC32C) part.ChecksumCRC32C = r.ChecksumCRC32C;
    if (r.ChecksumSHA1) part.ChecksumSHA1 = r.ChecksumSHA1;
    if (r.ChecksumSHA256) part.ChecksumSHA256 = r.ChecksumSHA256;
    this.#parts.push(part);
  }

  /**
   * CreateMultipartUpload, declaring CRC32 part checksums when the client computes them (as
   * lib-storage did). Not cut by abort: its upload id is needed to abort the upload.
   */
  async #create(): Promise<string> {
    const { sdk, client } = await this.#o.ready;
    const calc = await client.config.requestChecksumCalculation();
    const r = await client.send(new sdk.CreateMultipartUploadCommand({
      Bucket: this.#o.bucket, Key: this.#o.key, ...this.#o.sse, ...(calc === 'WHEN_SUPPORTED' ? { ChecksumAlgorithm: 'CRC32' as const } : {}),
    }));
    if (!r.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
    return r.UploadId;
  }

  /** Records the first failure, cuts in-flight requests and starts the clean-up. */
  #fail(e: unknown): void {
    if (this.#failure) return;
    this.#failure = { e };
    this.#cut.abort();
    this.#cleanup = this.#abortUpload();
  }

  /** Once every part request has settled, abort the multipart upload, if one was started. */
  async #abortUpload(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.race(this.#inflight);
    this.#drop();
    const id = await this.#uploadId?.catch(() => undefined);
    if (id === undefined) return;
    const { sdk, client } = await this.#o.ready;
    // Stores without AbortMultipartUpload (s3rver) keep the parts; `cleanup` lists what they keep.
    await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.#o.bucket, Key: this.#o.key, UploadId: id })).catch(() => {});
  }

  /** Let go of the buffer being filled (pool buffers go back as their requests settle). */
  #drop(): void {
    this.#cur = undefined;
  }

  #unlisten(): void {
    this.#o.signal?.removeEventListener('abort', this.#onAbort);
  }
}
