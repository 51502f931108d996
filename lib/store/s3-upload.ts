// One object streamed to S3 in parts, on the SDK v3 client's own multipart commands.
// Replaces @aws-sdk/lib-storage's Upload, which keeps the caller's chunks until a part is full,
// then concatenates them into a new part buffer: every byte copied once more, one part-sized
// allocation per part (freed only by full GCs), and no chunk can be handed back to the COPY
// reader early. Here every part-sized buffer, the one being filled and the parts in flight, is
// lent by the store's pool (lib/store/s3-pool.ts), shared by all its uploads, so the store's
// upload memory does not grow with the number of uploads at once; a writer keeps only a small
// buffer of its own. A chunk is copied into the current buffer and released as soon as
// write() resolves.
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import { StorageError } from '../errors.js';
import { throwIfAborted } from '../util/pool.js';
import type { PartPool } from './s3-pool.js';
import type { ObjectWriter } from './types.js';

/** S3 allows at most 10,000 parts per multipart upload. */
const MAX_PARTS = 10_000;
/**
 * An upload's own buffer: an object (or a last part) under this size never borrows from the
 * pool; past it, the bytes move into a pool buffer (256 KiB copied once per part, ≈ 3% of 8 MiB).
 */
export const OWN_BUFFER = 256 * 1024;

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
  /** The store's part buffers, of `partSize` bytes each, shared by its uploads (being filled and in flight). */
  pool: PartPool;
  /** Cancels the upload (default: none): see `ObjectStore.createWriter`. */
  signal?: AbortSignal | undefined;
  /** Turns an SDK error into the store's typed error (StorageError, BucketNotFoundError). */
  wrap: (e: unknown) => Error;
  /** Deletes the object (abort(): in case a single PutObject or the Complete already went through). */
  remove: () => Promise<void>;
}

/**
 * A streaming multipart upload. It fills its own small buffer ({@link OWN_BUFFER}) first; past
 * that it borrows a part buffer from the store's pool, moves the bytes there and fills it (waiting
 * while the pool has none: backpressure on write(), never an error). A full part buffer is sent
 * (at most `queueSize` parts in flight) and goes back to the pool once its request settles,
 * whatever the outcome; the bytes after it start again in the own buffer. So everything
 * part-sized that the upload holds, filled or in flight, counts against the pool's budget, and a
 * waiting upload holds no pool buffer: every lent buffer is either being filled by a running
 * upload or in a request that settles by itself, so the uploads sharing a pool cannot wait on
 * each other forever. An object under the own buffer's size goes in a single PutObject and never
 * touches the pool.
 * On any failure, and on abort, in-flight requests are cut, and once every one has settled the
 * multipart upload is aborted (AbortMultipartUpload), so no part is left behind where the
 * service implements it.
 */
export class PartWriter implements ObjectWriter {
  readonly #o: PartWriterOptions;
  /** Cuts in-flight requests on failure or abort. */
  readonly #cut = new AbortController();
  /** The buffer being filled: #own, or a pool buffer (#lent). */
  #cur: Buffer | undefined;
  #fill = 0;
  #own: Buffer | undefined;
  /** #cur is lent by the pool (it goes back when sent and settled, or when the upload ends). */
  #lent = false;
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
    for (let off = 0; off < chunk.length;) {
      if (this.#cur !== undefined && this.#fill === this.#cur.length) {
        if (this.#lent) await this.#dispatch(false);
        else await this.#borrow();
      }
      if (this.#cur === undefined) {
        this.#own ??= Buffer.allocUnsafe(Math.min(OWN_BUFFER, this.#o.partSize));
        this.#cur = this.#own;
        this.#fill = 0;
      }
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
        // Up to one part (or empty): one request, from the own or the lent buffer (#drop gives that back).
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

  /**
   * The own buffer is full: borrow a part buffer from the pool (waiting, holding none, while the
   * pool has none; cut by failure or abort) and move the bytes there.
   */
  async #borrow(): Promise<void> {
    let b: Buffer;
    try {
      b = await this.#o.pool.acquire(this.#cut.signal); // rejects only once the upload failed or was aborted (#cut)
    } catch (e) {
      this.#fail(e);
      await this.#check();
      throw e;
    }
    if (this.#failure) {
      this.#o.pool.release(b);
      await this.#check();
    }
    this.#cur!.copy(b, 0, 0, this.#fill);
    this.#cur = b;
    this.#lent = true;
  }

  /**
   * Sends the current buffer as the next part, first waiting while queueSize parts are in
   * flight. A lent buffer goes back to the pool once its request settles; the next bytes start
   * in the own buffer (the last part may be sent from it).
   */
  async #dispatch(last: boolean): Promise<void> {
    while (this.#inflight.size >= this.#o.queueSize) await Promise.race(this.#inflight);
    await this.#check();
    if (this.#next > MAX_PARTS) {
      this.#fail(new StorageError(`object ${this.#o.key} needs more than ${MAX_PARTS} parts of ${this.#o.partSize} bytes`, { key: this.#o.key, hint: 'raise --s3-part-size' }));
      await this.#check();
    }
    const n = this.#next++;
    const buf = this.#cur!;
    const len = this.#fill;
    const lent = this.#lent;
    this.#cur = undefined;
    this.#lent = false;
    this.#fill = 0;
    const p: Promise<void> = this.#sendPart(buf, len, n).catch((e: unknown) => this.#fail(e)).finally(() => {
      if (lent) this.#o.pool.release(buf);
      this.#inflight.delete(p);
    });
    this.#inflight.add(p);
    if (last) this.#own = undefined; // nothing follows the last part
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

  /** Let go of the buffer being filled, back to the pool if lent (sent ones go back as their requests settle). */
  #drop(): void {
    if (this.#lent && this.#cur) this.#o.pool.release(this.#cur);
    this.#cur = undefined;
    this.#lent = false;
    this.#own = undefined;
  }

  #unlisten(): void {
    this.#o.signal?.removeEventListener('abort', this.#onAbort);
  }
}
