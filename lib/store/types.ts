import type { Readable } from 'node:stream';

/** An object under a store's root prefix. */
export interface ObjectInfo {
  /** Key relative to the store's root prefix. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Entity tag as the store reports it (S3: the ETag, quotes included); absent where there is none (directories). */
  etag?: string;
  /** Last modification time, ISO 8601 (S3: LastModified; directories: the file's mtime), when known. */
  lastModified?: string;
}

/**
 * A streaming upload of one object. Bytes become visible under the key only when
 * {@link ObjectWriter.finish} resolves; {@link ObjectWriter.abort} leaves nothing behind
 * (as far as the store allows: see docs/s3-compatibility.md).
 */
export interface ObjectWriter {
  /** Resolves when the chunk is accepted; waits while the upload's buffers are full. */
  write(chunk: Buffer): Promise<void>;
  /** Complete the object. */
  finish(): Promise<void>;
  /** Drop the object and any uploaded parts. Never throws. */
  abort(): Promise<void>;
}

/**
 * Where segments and manifests go: an S3-compatible bucket prefix or a local directory.
 * Keys are relative to the root given when the store was opened.
 */
/** A byte range of an object: [start, end), end > start. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectStore {
  /** Display form of the root, never with credentials: `s3://bucket/prefix` or `file:///dir`. */
  readonly url: string;
  /** Check that the bucket or directory is usable (throws BucketNotFoundError / StorageError). */
  check(): Promise<void>;
  /**
   * True when every {@link ObjectWriter} of this store is done with a chunk's bytes once its
   * `write()` resolves, so the caller may reuse the buffer (the exporter then recycles its COPY
   * blocks: lib/pg/copy-out.ts). The directory and S3 stores do (S3 copies each chunk into a
   * part buffer: lib/store/s3-upload.ts). Default false: a store that says nothing
   * may keep the caller's chunks, which then get fresh buffers.
   */
  readonly releasesWrites?: boolean;
  /**
   * Start a streaming upload. `signal` (default: none) cancels it: a write blocked on the
   * store is cut short and rejects with the signal's reason, and the upload is dropped as by
   * {@link ObjectWriter.abort} (which the caller still calls).
   */
  createWriter(key: string, opts?: { signal?: AbortSignal }): ObjectWriter;
  /**
   * Stream an object (throws ObjectMissingError). `range`: only bytes [start, end) (Parquet
   * footers); default: the whole object.
   */
  read(key: string, opts?: { signal?: AbortSignal; range?: ByteRange }): Promise<Readable>;
  /** Store a small object in one request (manifests, checkpoints). */
  putBytes(key: string, body: Buffer | string): Promise<void>;
  /** Read a small object whole, or undefined when it does not exist. */
  getBytes(key: string): Promise<Buffer | undefined>;
  /** Size of an object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix` (default: all under the root). */
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /** Delete objects; missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /**
   * Remove the root itself when it is empty and this store created it (a directory store:
   * the folder `check()` found missing). Never throws; stores without folders omit it.
   */
  removeRootIfEmpty?(): Promise<void>;
  /** Release clients and sockets. */
  close(): void;
  /** Open multipart uploads under the root (S3 only; throws where the store cannot list them). */
  listUploads?(): Promise<{ key: string; uploadId: string; initiated?: string }[]>;
  /** Abort one multipart upload (S3 only). */
  abortUpload?(key: string, uploadId: string): Promise<void>;
  /**
   * Whether {@link ObjectStore.createExclusive} is enforced by the store: `'yes'` (a directory,
   * AWS S3, MinIO, moto) or `'unknown'` (the server may ignore `If-None-Match`, as s3rver does).
   * Missing means `'unknown'`.
   */
  readonly conditionalWrites?: 'yes' | 'unknown';
  /**
   * Store a small object only if no object exists under the key (S3 `If-None-Match: *`,
   * a directory's `O_EXCL`). Resolves true when this call created it, false when the key existed.
   * Where {@link ObjectStore.conditionalWrites} is `'unknown'` a true may be wrong.
   */
  createExclusive?(key: string, body: Buffer | string): Promise<boolean>;
  /**
   * Server-side copy of the object `key` of `src` to the same key in this store, when both are
   * buckets of one service reached with the same credentials (S3 `CopyObject`; `UploadPartCopy`
   * above `opts.multipartAbove`): no byte passes through the client. Resolves false, having done
   * nothing, when this store cannot copy from `src` (another endpoint or account, a directory):
   * the caller then streams. Missing: never server-side.
   */
  copyFrom?(src: ObjectStore, key: string, opts: CopyOptions): Promise<boolean>;
}

/** Options of {@link ObjectStore.copyFrom}. */
export interface CopyOptions {
  /** The object's size in bytes (from the manifest): decides between one request and parts. */
  size: number;
  /** Cancels the copy (default: none); a multipart copy is then aborted. */
  signal?: AbortSignal;
  /** Copy in parts (`UploadPartCopy`) above this many bytes (default 5 GiB, CopyObject's limit). */
  multipartAbove?: number;
  /** Part size of a multipart copy (default: 512 MiB, more when 10,000 parts would not do; at least 5 MiB). */
  partSize?: number;
}
