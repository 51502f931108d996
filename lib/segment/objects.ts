import { InvalidOptionError } from '../errors.js';
import type { Compression } from '../format/compress.js';
import { digestFields, ObjectHasher } from '../manifest/digest.js';
import type { ObjectWriter } from '../store/types.js';
import type { CopyRead, SegmentWriterOptions, StoredSegment } from './types.js';

// What the row-cutting segment writers (TEXT/CSV in ./text.ts, compressed in ./compressed.ts)
// share: which rows of a chunk fit, and the objects they fill one after another.

/**
 * Bytes gathered before one store write. The COPY reader hands out 1 MiB blocks, which pass
 * through alone; smaller pieces (at object boundaries, or from another reader) are joined.
 * A write per 8–64 KiB socket read once meant a thread-pool round trip and a syscall per read
 * (directory store), and on a busy machine their system time varied from 0.3 to 1.5 s per 0.3 GB.
 */
export const WRITE_BATCH = 1024 * 1024;

/**
 * The last row index j in [ri, last] whose end is within `room` bytes of `start`
 * (`rowEnds[j] - start <= room`), or ri - 1 when not even row ri fits. Binary search.
 */
export function lastRowThatFits(rowEnds: Uint32Array, ri: number, last: number, start: number, room: number): number {
  if ((rowEnds[last] as number) - start <= room) return last;
  let lo = ri;
  let hi = last;
  let j = ri - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if ((rowEnds[mid] as number) - start <= room) { j = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return j;
}

/**
 * The objects of one segment writer, filled one after another: opening one lazily, gathering
 * its bytes into writes of {@link WRITE_BATCH} (one copy when pieces are joined; memory: one
 * batch), the digest of its stored bytes (CRC-32 or SHA-256: `o.checksum`), its header and trailer, and storing it. Sizes are of
 * stored bytes. Rows, the cap and what the bytes are stay with the writer.
 */
export class SegmentObjects {
  readonly #o: SegmentWriterOptions;
  readonly #compression: Compression | undefined;
  #writer: ObjectWriter | undefined;
  #hash: ObjectHasher | undefined;
  #next = 0;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #sources: string[] = [];
  /** Stored bytes of the open object, header included. */
  bytes = 0;
  /** Rows of the open object. */
  rows = 0;
  /** Label of the rows being placed (see CopyRead.source). */
  source: string | undefined;
  readonly stored: StoredSegment[] = [];
  /** Stored bytes over all objects so far, including the open one. */
  totalBytes = 0;

  /** `compression`: recorded on each stored object (default: none). */
  constructor(o: SegmentWriterOptions, compression?: Compression) {
    if (!(o.cap > 0)) throw new InvalidOptionError('segment size must be positive');
    this.#o = o;
    this.#compression = compression;
  }

  /** Is an object open? */
  get isOpen(): boolean {
    return this.#writer !== undefined;
  }

  /** Number of the segment being written (or to be written next). */
  get segment(): number {
    return this.#writer ? this.#next - 1 : this.#next;
  }

  /** Bytes left under the cap for rows: in the open object, or in a new one after its header; the trailer is kept free. */
  room(headerLen: number, trailerLen: number): number {
    return (this.#writer ? this.#o.cap - this.bytes : this.#o.cap - headerLen) - trailerLen;
  }

  /** A read labelled `source` follows one labelled otherwise: the open object must be stored first. */
  changesSource(source: string | undefined): boolean {
    return source !== undefined && this.source !== undefined && source !== this.source;
  }

  /** Open the next object, starting with `header` (default: none). */
  open(header?: Buffer): void {
    const key = this.#o.keyOf(this.#next++);
    this.#writer = this.#o.store.createWriter(key, this.#o.signal ? { signal: this.#o.signal } : {});
    this.#hash = new ObjectHasher(this.#o.checksum);
    this.bytes = 0;
    this.rows = 0;
    this.#sources = [];
    if (header && header.length > 0) this.push(header);
  }

  /** Add stored bytes to the open object (written with the next batch). */
  push(b: Buffer): void {
    this.#pending.push(b);
    this.#pendingLen += b.length;
    this.bytes += b.length;
    this.totalBytes += b.length;
  }

  /** Count `rows` rows placed in the open object, labelled with the current source. */
  addRows(rows: number): void {
    this.rows += rows;
    if (this.source !== undefined && !this.#sources.includes(this.source)) this.#sources.push(this.source);
  }

  /** Write what has been gathered once it makes a batch. */
  async flushIfFull(): Promise<void> {
    if (this.#pendingLen >= WRITE_BATCH) await this.#flush();
  }

  /** Bytes gathered for a later write must not point into `data` (a chunk its owner will reuse): copy them. */
  detach(data: Buffer): void {
    if (this.#pending.some((b) => b.buffer === data.buffer)) this.#pending = [Buffer.concat(this.#pending, this.#pendingLen)];
  }

  /** Hash and write what has been gathered. */
  async #flush(): Promise<void> {
    if (this.#pendingLen === 0) return;
    const buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingLen);
    this.#pending = [];
    this.#pendingLen = 0;
    this.#hash!.update(buf);
    await this.#writer!.write(buf);
  }

  /** End the open object with `trailer` (default: none) and store it. */
  async close(trailer?: Buffer): Promise<void> {
    if (trailer && trailer.length > 0) this.push(trailer);
    await this.#flush();
    const w = this.#writer!;
    const seg: StoredSegment = {
      key: this.#o.keyOf(this.#next - 1),
      segment: this.#next - 1,
      bytes: this.bytes,
      rows: this.rows,
      ...digestFields(this.#hash!.algorithm, this.#hash!.digest()),
    };
    if (this.#compression) seg.compression = this.#compression;
    if (this.#sources.length > 0) seg.sources = this.#sources;
    this.#writer = undefined;
    this.#hash = undefined;
    try {
      await w.finish();
    } catch (e) {
      await w.abort();
      throw e;
    }
    this.stored.push(seg);
    this.#o.onStored?.(seg);
  }

  /** Abort the open object (already stored ones stay). Never throws. */
  async abort(): Promise<void> {
    const w = this.#writer;
    this.#writer = undefined;
    this.#pending = [];
    this.#pendingLen = 0;
    if (w) await w.abort();
  }
}

/** Base of the segment writers that fill {@link SegmentObjects}: what they report of their objects, and the start of a read. */
export abstract class ObjectsWriterBase {
  protected readonly objects: SegmentObjects;

  constructor(objects: SegmentObjects) {
    this.objects = objects;
  }

  /** Objects stored so far. */
  get stored(): StoredSegment[] {
    return this.objects.stored;
  }

  /** Stored bytes over all objects so far, including the open one. */
  get totalBytes(): number {
    return this.objects.totalBytes;
  }

  /** Number of the segment being written (or to be written next). */
  get segment(): number {
    return this.objects.segment;
  }

  /** Store the open object, if any, so the next row starts a new one. */
  abstract cut(): Promise<void>;

  /** Start a read: a change of source label stores the open object first. Columns are not needed. */
  async begin(read: CopyRead): Promise<void> {
    if (this.objects.changesSource(read.source)) await this.cut();
    this.objects.source = read.source;
  }
}
