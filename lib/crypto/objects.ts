import { InternalError, InvalidOptionError } from '../errors.js';
import { digestFields, ObjectHasher, type ObjectChecksum } from '../manifest/digest.js';
import type { RowChunk } from '../pg/copy-out.js';
import type { CopyRead, FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from '../segment/types.js';
import type { ObjectStore, ObjectWriter } from '../store/types.js';
import { maxPlaintext, ObjectDecryptor, ObjectEncryptor, storedSize } from './envelope.js';

// Encryption as the last transform before the store. A format's segment writer (with any
// compression of its own) writes its bytes to an ObjectWriter; here that writer encrypts them,
// so the two compose without knowing of each other. What the manifest records (size,
// digest) is of the stored ciphertext, so check --read-data and replicate need no key.

/** The plain data key of an export and its chunk size: what encrypting or decrypting an object needs. */
export interface ObjectCipher {
  dataKey: Buffer;
  chunkSize: number;
}

/** An ObjectWriter that encrypts into another, counting and hashing the stored bytes. */
export class EncryptingWriter implements ObjectWriter {
  readonly #inner: ObjectWriter;
  readonly #enc: ObjectEncryptor;
  readonly #hash: ObjectHasher;
  /** Stored (ciphertext) bytes written so far. */
  bytes = 0;
  /** Hex digest of the stored bytes under {@link algorithm}, set once {@link finish} has written the last chunk. */
  digest: string | undefined;

  /** `key`: the object's key (bound into its encryption); `checksum`: the digest's algorithm (default: `defaultObjectChecksum()`). */
  constructor(cipher: ObjectCipher, key: string, inner: ObjectWriter, checksum?: ObjectChecksum) {
    this.#inner = inner;
    this.#hash = new ObjectHasher(checksum);
    this.#enc = new ObjectEncryptor(cipher.dataKey, key, cipher.chunkSize);
  }

  async #put(b: Buffer): Promise<void> {
    if (b.length === 0) return;
    this.#hash.update(b);
    this.bytes += b.length;
    await this.#inner.write(b);
  }

  /** Encrypt and write; holds back at most one chunk of plaintext. */
  write(chunk: Buffer): Promise<void> {
    return this.#put(this.#enc.push(chunk));
  }

  /** Algorithm of {@link digest}. */
  get algorithm(): ObjectChecksum {
    return this.#hash.algorithm;
  }

  /** Write the final chunk, then complete the object. */
  async finish(): Promise<void> {
    await this.#put(this.#enc.end());
    this.digest = this.#hash.digest();
    await this.#inner.finish();
  }

  abort(): Promise<void> {
    return this.#inner.abort();
  }
}

/** A view of `store` whose writers encrypt; everything else is the store's own. */
function encryptingStore(store: ObjectStore, cipher: ObjectCipher, opened: Map<string, EncryptingWriter>, checksum: ObjectChecksum | undefined): ObjectStore {
  return {
    url: store.url,
    check: () => store.check(),
    createWriter: (key, opts) => {
      const w = new EncryptingWriter(cipher, key, store.createWriter(key, opts), checksum);
      opened.set(key, w);
      return w;
    },
    read: (key, opts) => store.read(key, opts),
    putBytes: (key, body) => store.putBytes(key, body),
    getBytes: (key) => store.getBytes(key),
    head: (key) => store.head(key),
    list: (prefix) => store.list(prefix),
    delete: (keys) => store.delete(keys),
    close: () => store.close(),
  };
}

/**
 * A {@link SegmentWriter} storing another writer's objects encrypted. The inner writer is
 * given the cap less the encryption overhead (`maxPlaintext`): the stored size of n bytes is
 * exactly 28 + n + 16 × ⌈n / chunkSize⌉ (at least one chunk), increasing in n, so whatever the
 * inner writer keeps within its cap is within the real cap once stored, and rows are still
 * cut only where it cuts them. Stored objects report the ciphertext's size and digest.
 */
export class EncryptedSegmentWriter implements SegmentWriter {
  readonly #inner: SegmentWriter;
  readonly #cipher: ObjectCipher;
  readonly #opened = new Map<string, EncryptingWriter>();
  readonly stored: StoredSegment[] = [];
  #innerClosed = 0;
  #storedClosed = 0;

  /** `make` builds the format's writer from the options it is given (the cap lowered, the store encrypting). */
  constructor(make: (o: SegmentWriterOptions) => SegmentWriter, o: SegmentWriterOptions, cipher: ObjectCipher) {
    const cap = maxPlaintext(o.cap, cipher.chunkSize);
    if (cap <= 0) throw new InvalidOptionError(`segment size ${o.cap} is too small for an encrypted object (header and tag alone take ${storedSize(0, cipher.chunkSize)} bytes)`);
    this.#cipher = cipher;
    this.#inner = make({
      ...o,
      cap,
      store: encryptingStore(o.store, cipher, this.#opened, o.checksum),
      onStored: (s) => {
        const w = this.#opened.get(s.key);
        this.#opened.delete(s.key);
        if (!w || w.digest === undefined || w.bytes !== storedSize(s.bytes, cipher.chunkSize)) {
          throw new InternalError(`encrypted object ${s.key}: ${w?.bytes ?? 'no'} bytes stored for ${s.bytes} written`);
        }
        // The inner writer hashed the plaintext under the same algorithm: its field is replaced.
        const e: StoredSegment = { ...s, bytes: w.bytes, ...digestFields(w.algorithm, w.digest) };
        this.#innerClosed += s.bytes;
        this.#storedClosed += w.bytes;
        this.stored.push(e);
        o.onStored?.(e);
      },
    });
  }

  /** Stored bytes over all objects so far, the open one counted as it will be stored. */
  get totalBytes(): number {
    const open = this.#inner.totalBytes - this.#innerClosed;
    return this.#storedClosed + (open > 0 ? storedSize(open, this.#cipher.chunkSize) : 0);
  }

  get totalRows(): number {
    return this.#inner.totalRows;
  }

  get segment(): number {
    return this.#inner.segment;
  }

  begin(read: CopyRead): Promise<void> {
    return this.#inner.begin(read);
  }

  write(rc: RowChunk): Promise<void> {
    return this.#inner.write(rc);
  }

  cut(): Promise<void> {
    return this.#inner.cut();
  }

  async finish(): Promise<readonly StoredSegment[]> {
    await this.#inner.finish();
    return this.stored;
  }

  abort(): Promise<void> {
    return this.#inner.abort();
  }

  summary(): FormatSummary {
    return this.#inner.summary();
  }
}

/**
 * Decrypt a stored object as it streams: yields plaintext chunk by chunk, each only after its
 * tag is checked; throws DecryptionError (damaged, truncated, renamed, replaced) at the chunk
 * that fails. `onStored` sees every stored byte (to hash what the manifest describes).
 * Memory: one stored chunk, plus the piece being read.
 */
export async function* decryptObject(source: AsyncIterable<Buffer>, cipher: ObjectCipher, key: string, onStored?: (b: Buffer) => void): AsyncGenerator<Buffer> {
  const d = new ObjectDecryptor(cipher.dataKey, key, cipher.chunkSize);
  for await (const c of source) {
    onStored?.(c);
    const p = d.push(c);
    if (p.length > 0) yield p;
  }
  const last = d.end();
  if (last.length > 0) yield last;
}

/**
 * The first piece of plaintext of an object, read before anything downstream opens (a COPY):
 * a wrong key or a damaged first chunk fails here. Returns an iterable of the whole plaintext.
 */
export async function firstChunkChecked(plain: AsyncGenerator<Buffer>): Promise<AsyncIterable<Buffer>> {
  const first = await plain.next();
  return (async function* () {
    if (first.done) return;
    yield first.value;
    yield* plain;
  })();
}
