/**
 * Client-side encryption of stored objects (issue 18; format in docs/encryption.md).
 *
 * Envelope: a fresh 256-bit data key per export, wrapped (AES-256-GCM) by the user's key; the
 * manifest carries the wrapped key and the algorithm, never the plain key. Each object is
 * encrypted on its own, in fixed-size chunks, so memory stays bounded and a damaged chunk is
 * found before any of its bytes are used (a STREAM-style construction):
 *
 *   object  = header ‖ chunk₀ ‖ … ‖ chunkₙ            (n ≥ 0: an empty object has one, empty, final chunk)
 *   header  = "SFE1" ‖ u8 version=1 ‖ u8 0 ‖ u16 0 ‖ u32 chunkSize ‖ salt[16]      (28 bytes)
 *   chunkᵢ  = AES-256-GCM(objectKey, nonceᵢ, plaintextᵢ, aad=header) ‖ tag[16]
 *   objectKey = HKDF-SHA256(dataKey, salt, "segferry object v1\0" ‖ key)
 *   nonceᵢ  = 0[7] ‖ u32 i ‖ u8 (1 on the last chunk, else 0)
 *
 * Every chunk but the last holds exactly chunkSize plaintext bytes. The object key is bound
 * into the per-object key (an object renamed to another key fails), the final flag into the
 * last nonce (a truncated object fails), the header into every chunk's AAD. The random salt
 * gives every written object its own key, so a rewrite of the same key (a resumed export) never
 * reuses a (key, nonce) pair.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DecryptionError, EncryptionKeyError } from '../errors.js';
import { CLIENT_ENCRYPTION_ALGORITHM } from './algorithm.js';

export { CLIENT_ENCRYPTION_ALGORITHM } from './algorithm.js';
/** Default plaintext bytes per chunk: 64 KiB (16 bytes of tag each: 0.025 % overhead). */
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
const MAGIC = Buffer.from('SFE1', 'latin1');
/** Bytes of an object's header. */
export const HEADER_BYTES = 28;
const TAG = 16;
const WRAP_AAD = Buffer.from('segferry data key v1', 'latin1');

/** What the manifest records about client-side encryption (never the plain key). */
export interface ClientEncryption {
  algorithm: typeof CLIENT_ENCRYPTION_ALGORITHM;
  /** Where the wrapping key comes from: a local key file, or AWS KMS (`GenerateDataKey`). */
  keySource: 'key-file' | 'kms';
  /**
   * `key-file`: base64 of nonce[12] ‖ AES-256-GCM(wrapping key, data key) ‖ tag[16].
   * `kms`: base64 of the `CiphertextBlob` KMS returned (only KMS `Decrypt` opens it).
   */
  wrappedKey: string;
  /**
   * `key-file`: first 16 hex digits of SHA-256("segferry key id" ‖ wrapping key): tells a wrong
   * key at once. `kms`: the KMS key's id (its ARN, as KMS reported it).
   */
  keyId: string;
  /** Plaintext bytes per chunk. */
  chunkSize: number;
}

/**
 * Read a 256-bit key file: 32 raw bytes, or 64 hex digits, or 44 base64 characters (a trailing
 * newline allowed). Throws EncryptionKeyError (never showing the key) otherwise.
 */
export function readKeyFile(path: string): Buffer {
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch (e) {
    throw new EncryptionKeyError(`cannot read key file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e });
  }
  if (b.length === 32) return b;
  const t = b.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(t)) return Buffer.from(t, 'base64');
  throw new EncryptionKeyError(`key file ${path} does not hold a 256-bit key (32 raw bytes, 64 hex digits or 44 base64 characters)`, {
    hint: 'create one with: head -c 32 /dev/urandom > key && chmod 600 key',
  });
}

/** The key id of a wrapping key (a fingerprint; it reveals nothing usable about the key). */
export function keyIdOf(wrappingKey: Buffer): string {
  return createHash('sha256').update('segferry key id').update(wrappingKey).digest('hex').slice(0, 16);
}

/** A fresh data key for one export, and its manifest entry. */
export function newDataKey(wrappingKey: Buffer, chunkSize = DEFAULT_CHUNK_SIZE): { dataKey: Buffer; manifest: ClientEncryption } {
  checkKey(wrappingKey);
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1024 || chunkSize > 64 * 1024 * 1024) throw new EncryptionKeyError('chunk size must be from 1 KiB to 64 MiB');
  const dataKey = randomBytes(32);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', wrappingKey, nonce);
  c.setAAD(WRAP_AAD);
  const ct = Buffer.concat([c.update(dataKey), c.final()]);
  const wrappedKey = Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64');
  return { dataKey, manifest: { algorithm: CLIENT_ENCRYPTION_ALGORITHM, keySource: 'key-file', wrappedKey, keyId: keyIdOf(wrappingKey), chunkSize } };
}

/**
 * Unwrap the data key recorded in a manifest. A wrong key fails here, before any object is
 * read: EncryptionKeyError naming the expected key id.
 */
export function unwrapDataKey(enc: ClientEncryption, wrappingKey: Buffer): Buffer {
  checkKey(wrappingKey);
  if (enc.algorithm !== CLIENT_ENCRYPTION_ALGORITHM) throw new EncryptionKeyError(`unknown client-side encryption ${JSON.stringify(String(enc.algorithm).slice(0, 64))}`);
  if (enc.keySource !== 'key-file') throw new EncryptionKeyError(`the export's data key is wrapped by ${enc.keySource === 'kms' ? `KMS key ${enc.keyId}: pass --encrypt kms` : 'an unknown key source'}, not by a key file`);
  if (keyIdOf(wrappingKey) !== enc.keyId) {
    throw new EncryptionKeyError(`wrong key: the export was encrypted with key id ${enc.keyId}, the key given has id ${keyIdOf(wrappingKey)}`);
  }
  const w = Buffer.from(enc.wrappedKey, 'base64');
  if (w.length !== 12 + 32 + TAG) throw new EncryptionKeyError('the manifest\'s wrapped key has the wrong length');
  try {
    const d = createDecipheriv('aes-256-gcm', wrappingKey, w.subarray(0, 12));
    d.setAAD(WRAP_AAD);
    d.setAuthTag(w.subarray(12 + 32));
    return Buffer.concat([d.update(w.subarray(12, 12 + 32)), d.final()]);
  } catch (e) {
    throw new EncryptionKeyError('the data key cannot be unwrapped with this key (wrong key, or the manifest was altered)', { cause: e });
  }
}

function checkKey(k: Buffer): void {
  if (k.length !== 32) throw new EncryptionKeyError('an encryption key must be 32 bytes (256 bits)');
}

function objectKey(dataKey: Buffer, salt: Buffer, key: string): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, salt, Buffer.concat([Buffer.from('segferry object v1\0'), Buffer.from(key, 'utf8')]), 32));
}

function nonce(i: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(i, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** Stored size of an object of `plain` bytes. */
export function storedSize(plain: number, chunkSize = DEFAULT_CHUNK_SIZE): number {
  const chunks = Math.max(1, Math.ceil(plain / chunkSize));
  return HEADER_BYTES + plain + chunks * TAG;
}

/**
 * The most plaintext bytes whose stored size stays ≤ `cap`: what a segment writer may put in one
 * object so that the cap holds on the stored bytes. 0 when even an empty object does not fit.
 */
export function maxPlaintext(cap: number, chunkSize = DEFAULT_CHUNK_SIZE): number {
  const room = cap - HEADER_BYTES;
  if (room < TAG) return 0;
  const full = Math.floor(room / (chunkSize + TAG));
  const rest = room - full * (chunkSize + TAG);
  return full * chunkSize + Math.max(0, rest - TAG);
}

/**
 * Encrypt a small object whole (the DDL objects): the same format as {@link ObjectEncryptor}
 * writes, so the stored bytes are what the manifest's size and SHA-256 describe.
 */
export function sealObject(dataKey: Buffer, key: string, body: Buffer, chunkSize = DEFAULT_CHUNK_SIZE): Buffer {
  const e = new ObjectEncryptor(dataKey, key, chunkSize);
  return Buffer.concat([e.push(body), e.end()]);
}

/** Decrypt a small object whole (throws DecryptionError as {@link ObjectDecryptor} does). */
export function unsealObject(dataKey: Buffer, key: string, stored: Buffer, chunkSize = DEFAULT_CHUNK_SIZE): Buffer {
  const d = new ObjectDecryptor(dataKey, key, chunkSize);
  return Buffer.concat([d.push(stored), d.end()]);
}

/**
 * Encrypts one object as a stream: `push` returns the stored bytes of every chunk completed so
 * far, `end` the rest. Holds at most one chunk of plaintext.
 */
export class ObjectEncryptor {
  readonly #key: Buffer;
  readonly #header: Buffer;
  readonly #chunk: number;
  #buf: Buffer[] = [];
  #len = 0;
  #i = 0;
  #started = false;
  #ended = false;

  /** `key`: the object's key in the store (bound into its encryption). */
  constructor(dataKey: Buffer, key: string, chunkSize = DEFAULT_CHUNK_SIZE) {
    const salt = randomBytes(16);
    this.#header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(this.#header, 0);
    this.#header[4] = 1;
    this.#header.writeUInt32BE(chunkSize, 8);
    salt.copy(this.#header, 12);
    this.#key = objectKey(dataKey, salt, key);
    this.#chunk = chunkSize;
  }

  /** Seal one chunk into `dst` at `at` (one copy of the ciphertext); returns the bytes written. */
  #sealInto(p: Buffer, last: boolean, dst: Buffer, at: number): number {
    const c = createCipheriv('aes-256-gcm', this.#key, nonce(this.#i++, last));
    c.setAAD(this.#header);
    let n = c.update(p).copy(dst, at);
    n += c.final().copy(dst, at + n);
    return n + c.getAuthTag().copy(dst, at + n);
  }

  #seal(p: Buffer, last: boolean): Buffer {
    const out = Buffer.allocUnsafe(p.length + TAG);
    this.#sealInto(p, last, out, 0);
    return out;
  }

  #head(out: Buffer[]): void {
    if (!this.#started) {
      this.#started = true;
      out.push(this.#header);
    }
  }

  /** Add plaintext; returns the stored bytes ready so far (possibly none). */
  push(data: Buffer): Buffer {
    if (this.#ended) throw new Error('ObjectEncryptor: push after end');
    const head = !this.#started;
    this.#started = true;
    // A full chunk is sealed only once a byte after it has arrived: only then is it known not
    // to be the last. Until then it is held (at most one chunk).
    if (this.#len + data.length <= this.#chunk) {
      this.#buf.push(data);
      this.#len += data.length;
      return head ? this.#header : Buffer.alloc(0);
    }
    const need = this.#len > 0 ? this.#chunk - this.#len : 0;
    const fromData = Math.floor((data.length - need - 1) / this.#chunk); // full chunks of data after the held one, one byte left at least
    const sealed = (this.#len > 0 ? 1 : 0) + fromData;
    const out = Buffer.allocUnsafe((head ? HEADER_BYTES : 0) + sealed * (this.#chunk + TAG));
    let at = 0;
    if (head) at += this.#header.copy(out, 0);
    let off = 0;
    if (this.#len > 0) {
      at += this.#sealInto(Buffer.concat([...this.#buf, data.subarray(0, need)], this.#chunk), false, out, at);
      off = need;
    }
    for (let k = 0; k < fromData; k++, off += this.#chunk) at += this.#sealInto(data.subarray(off, off + this.#chunk), false, out, at);
    // A copy, so the rest does not pin the whole input.
    this.#buf = [Buffer.from(data.subarray(off))];
    this.#len = data.length - off;
    return out;
  }

  /** Finish: the last chunk (flagged final). */
  end(): Buffer {
    if (this.#ended) throw new Error('ObjectEncryptor: end twice');
    this.#ended = true;
    const out: Buffer[] = [];
    this.#head(out);
    out.push(this.#seal(Buffer.concat(this.#buf), true));
    this.#buf = [];
    return Buffer.concat(out);
  }
}

function decryptFail(name: string, why: string, cause?: unknown): DecryptionError {
  return new DecryptionError(`${name}: ${why}`, { key: name, ...(cause ? { cause } : {}), hint: 'the object was damaged, truncated or replaced; run segferry check --read-data' });
}

/** An object's header checked, and the object's own key derived from it (readers). */
interface OpenedHeader {
  header: Buffer;
  key: Buffer;
  chunk: number;
}

function readHeader(h: Buffer, dataKey: Buffer, name: string, expectChunk: number): OpenedHeader {
  if (h.length < HEADER_BYTES || !h.subarray(0, 4).equals(MAGIC) || h[4] !== 1) throw decryptFail(name, 'not an object encrypted by segferry (bad header)');
  const chunk = h.readUInt32BE(8);
  if (chunk !== expectChunk) throw decryptFail(name, `chunk size ${chunk} differs from the manifest's ${expectChunk}`);
  const header = Buffer.from(h.subarray(0, HEADER_BYTES));
  return { header, key: objectKey(dataKey, header.subarray(12, 28), name), chunk };
}

/** Open stored chunk `i` (ciphertext ‖ tag); DecryptionError when its tag fails. */
function openChunk(h: OpenedHeader, name: string, i: number, last: boolean, c: Buffer): Buffer {
  try {
    const d = createDecipheriv('aes-256-gcm', h.key, nonce(i, last));
    d.setAAD(h.header);
    d.setAuthTag(c.subarray(c.length - TAG));
    return Buffer.concat([d.update(c.subarray(0, c.length - TAG)), d.final()]);
  } catch (e) {
    throw decryptFail(name, `chunk ${i} fails authentication`, e);
  }
}

/**
 * Decrypts one object as a stream. Plaintext is released only chunk by chunk, each after its
 * tag checked; `end` throws DecryptionError when the object is truncated, extended, renamed or
 * altered anywhere. Holds at most one stored chunk.
 */
export class ObjectDecryptor {
  readonly #dataKey: Buffer;
  readonly #name: string;
  readonly #expectChunk: number;
  #h: OpenedHeader | undefined;
  #buf: Buffer[] = [];
  #i = 0;
  #done = false;

  /** `key`: the object's key in the store; `chunkSize`: the manifest's. */
  constructor(dataKey: Buffer, key: string, chunkSize = DEFAULT_CHUNK_SIZE) {
    this.#dataKey = dataKey;
    this.#name = key;
    this.#expectChunk = chunkSize;
  }

  #open(c: Buffer, last: boolean): Buffer {
    if (this.#done) throw decryptFail(this.#name, 'data after the final chunk');
    const p = openChunk(this.#h!, this.#name, this.#i++, last, c);
    if (last) this.#done = true;
    return p;
  }

  /** Add stored bytes; returns the plaintext of every chunk verified so far. */
  push(data: Buffer): Buffer {
    this.#buf.push(data);
    let all = Buffer.concat(this.#buf);
    if (!this.#h) {
      if (all.length < HEADER_BYTES) {
        this.#buf = [all];
        return Buffer.alloc(0);
      }
      this.#h = readHeader(all, this.#dataKey, this.#name, this.#expectChunk);
      all = all.subarray(HEADER_BYTES);
    }
    const out: Buffer[] = [];
    const full = this.#h.chunk + TAG;
    // A full stored chunk is opened as non-final only once a byte after it has arrived.
    let off = 0;
    for (; all.length - off > full; off += full) out.push(this.#open(all.subarray(off, off + full), false));
    this.#buf = [Buffer.from(all.subarray(off))];
    return Buffer.concat(out);
  }

  /** The last chunk's plaintext; throws DecryptionError when the object does not end properly. */
  end(): Buffer {
    if (!this.#h) throw decryptFail(this.#name, 'shorter than its header');
    const rest = Buffer.concat(this.#buf);
    if (rest.length < TAG) throw decryptFail(this.#name, 'truncated (no final chunk)');
    return this.#open(rest, true);
  }
}

/**
 * Plaintext bytes of a stored object of `stored` bytes: the inverse of {@link storedSize}.
 * Undefined when no plaintext gives that size (the object was truncated or extended).
 */
export function plainSize(stored: number, chunkSize = DEFAULT_CHUNK_SIZE): number | undefined {
  const room = stored - HEADER_BYTES;
  if (!Number.isSafeInteger(stored) || room < TAG) return undefined;
  const full = Math.floor(room / (chunkSize + TAG));
  const rest = room - full * (chunkSize + TAG);
  // rest 0: the last chunk is full; else the last, short chunk holds rest − TAG bytes.
  if (rest === 0) return full * chunkSize;
  return rest >= TAG ? full * chunkSize + rest - TAG : undefined;
}

/**
 * Random access to an encrypted object (a Parquet footer, read by ranges): chunk i is stored
 * at 28 + i × (chunkSize + 16) and authenticates alone, so a plaintext range is read by
 * fetching and opening only the chunks covering it. The object's stored size (the manifest's)
 * fixes the number of chunks and so which one is final: a truncated or extended object fails
 * its last chunk. Memory per range: its stored chunks and their plaintext (the range plus at
 * most two chunks, twice).
 */
export class RangedDecryptor {
  readonly #h: OpenedHeader;
  readonly #name: string;
  readonly #stored: number;
  readonly #chunks: number;
  readonly #read: (start: number, end: number) => Promise<Uint8Array>;
  /** Plaintext bytes of the object. */
  readonly size: number;

  private constructor(h: OpenedHeader, name: string, stored: number, size: number, read: (start: number, end: number) => Promise<Uint8Array>) {
    this.#h = h;
    this.#name = name;
    this.#stored = stored;
    this.size = size;
    this.#chunks = Math.max(1, Math.ceil(size / h.chunk));
    this.#read = read;
  }

  /**
   * Read and check the header of object `key` of `stored` bytes; `read(start, end)` returns
   * stored bytes [start, end). DecryptionError when the size or the header is not that of an
   * object encrypted with this chunk size.
   */
  static async open(dataKey: Buffer, key: string, stored: number, read: (start: number, end: number) => Promise<Uint8Array>, chunkSize = DEFAULT_CHUNK_SIZE): Promise<RangedDecryptor> {
    const size = plainSize(stored, chunkSize);
    if (size === undefined) throw decryptFail(key, `${stored} bytes is not the size of an encrypted object (truncated or extended)`);
    const h = readHeader(Buffer.from(await read(0, HEADER_BYTES)), dataKey, key, chunkSize);
    return new RangedDecryptor(h, key, stored, size, read);
  }

  /** Plaintext bytes [start, end), each covering chunk's tag checked first. */
  async range(start: number, end: number): Promise<Buffer> {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= this.size)) {
      throw decryptFail(this.#name, `bytes ${start}-${end} are outside its ${this.size} bytes of plaintext`);
    }
    if (start === end) return Buffer.alloc(0);
    const c = this.#h.chunk;
    const full = c + TAG;
    const i0 = Math.floor(start / c);
    const i1 = Math.floor((end - 1) / c);
    const s = HEADER_BYTES + i0 * full;
    const e = Math.min(this.#stored, HEADER_BYTES + (i1 + 1) * full);
    const b = Buffer.from(await this.#read(s, e));
    if (b.length !== e - s) throw decryptFail(this.#name, `reading bytes ${s}-${e} returned ${b.length} bytes`);
    const out: Buffer[] = [];
    for (let i = i0; i <= i1; i++) out.push(openChunk(this.#h, this.#name, i, i === this.#chunks - 1, b.subarray((i - i0) * full, Math.min(b.length, (i - i0 + 1) * full))));
    const all = Buffer.concat(out);
    return all.subarray(start - i0 * c, end - i0 * c);
  }
}
