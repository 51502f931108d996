import { createHash, type Hash } from 'node:crypto';
import { InvalidOptionError, RowTooLargeError } from '../errors.js';
import type { RowChunk } from '../pg/copy-out.js';
import type { ObjectWriter } from '../store/types.js';
import type { CopyRead, FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from './types.js';

export type { StoredSegment } from './types.js';

/** Options of {@link TextSegmentWriter}. */
export interface TextSegmentWriterOptions extends SegmentWriterOptions {
  /** Bytes each object starts with (a csv header line), counted against the cap. Default: none. */
  header?: Buffer;
  /** Bytes each object ends with (the COPY BINARY trailer), counted against the cap. Default: none. */
  trailer?: Buffer;
}

/**
 * Bytes gathered before one store write. The COPY reader hands out 1 MiB blocks, which pass
 * through alone; smaller pieces (at object boundaries, or from another reader) are joined.
 * A write per 8–64 KiB socket read once meant a thread-pool round trip and a syscall per read
 * (directory store), and on a busy machine their system time varied from 0.3 to 1.5 s per 0.3 GB.
 */
export const WRITE_BATCH = 1024 * 1024;

/**
 * The {@link SegmentWriter} of TEXT and CSV COPY output: cuts a stream of whole-row chunks into objects of at most `cap` bytes, never splitting a
 * row: when the next row would cross the cap the object is closed and the row starts the next
 * one. Objects are opened lazily, so no empty object is ever written. Chunks smaller than
 * {@link WRITE_BATCH} are joined into writes of that size (one copy; memory: one batch per
 * writer); the SHA-256 is computed on each write.
 */
export class TextSegmentWriter implements SegmentWriter {
  readonly #o: TextSegmentWriterOptions;
  readonly #headerLen: number;
  readonly #trailerLen: number;
  #writer: ObjectWriter | undefined;
  #hash: Hash | undefined;
  #bytes = 0;
  #rows = 0;
  #next = 0;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #sources: string[] = [];
  /** Label of the current read's rows (see CopyRead.source). */
  #source: string | undefined;
  readonly stored: StoredSegment[] = [];
  /** Totals over all objects so far, including the open one. */
  totalBytes = 0;
  totalRows = 0;

  constructor(o: TextSegmentWriterOptions) {
    if (!(o.cap > 0)) throw new InvalidOptionError('segment size must be positive');
    this.#o = o;
    this.#headerLen = o.header?.length ?? 0;
    this.#trailerLen = o.trailer?.length ?? 0;
  }

  /** Number of the segment being written (or to be written next). */
  get segment(): number {
    return this.#writer ? this.#next - 1 : this.#next;
  }

  /** Whether a written chunk may be reused: when the store's writes release theirs (rows left to gather are copied). */
  get releasesChunks(): boolean {
    return this.#o.store.releasesWrites === true;
  }

  /** Start a read: a change of source label stores the open object first. Columns are not needed. */
  async begin(read: CopyRead): Promise<void> {
    if (read.source !== undefined && this.#source !== undefined && read.source !== this.#source) await this.cut();
    this.#source = read.source;
  }

  async write(rc: RowChunk): Promise<void> {
    const { data, rowEnds } = rc;
    const last = rowEnds.length - 1;
    let start = 0;
    let ri = 0;
    while (ri <= last) {
      const room = (this.#writer ? this.#o.cap - this.#bytes : this.#o.cap - this.#headerLen) - this.#trailerLen;
      let j: number;
      if ((rowEnds[last] as number) - start <= room) {
        j = last;
      } else {
        // Largest j >= ri with rowEnds[j] - start <= room (binary search), or ri - 1 if none.
        let lo = ri;
        let hi = last;
        j = ri - 1;
        while (lo <= hi) {
          const mid = (lo + hi) >>> 1;
          if ((rowEnds[mid] as number) - start <= room) { j = mid; lo = mid + 1; } else hi = mid - 1;
        }
      }
      if (j < ri) {
        if (this.#writer) {
          await this.#close();
          continue;
        }
        const rowBytes = (rowEnds[ri] as number) - start;
        throw new RowTooLargeError(
          `a row of table ${this.#o.table} on node ${this.#o.node} is ${rowBytes} bytes, larger than the segment size ${this.#o.cap}` +
            (this.#headerLen + this.#trailerLen ? ` minus the ${this.#headerLen + this.#trailerLen} bytes of header and trailer` : ''),
          rowBytes,
          { table: this.#o.table, node: this.#o.node, hint: 'raise the segment size above the largest row' },
        );
      }
      if (!this.#writer) await this.#open();
      const end = rowEnds[j] as number;
      const slice = data.subarray(start, end);
      this.#bytes += slice.length;
      this.#rows += j - ri + 1;
      if (this.#source !== undefined && !this.#sources.includes(this.#source)) this.#sources.push(this.#source);
      this.totalBytes += slice.length;
      this.totalRows += j - ri + 1;
      this.#pending.push(slice);
      this.#pendingLen += slice.length;
      if (this.#pendingLen >= WRITE_BATCH) await this.#flush();
      start = end;
      ri = j + 1;
    }
    // Rows gathered for a later write must not point into a chunk the caller may reuse.
    if (this.releasesChunks && this.#pending.some((b) => b.buffer === data.buffer)) this.#pending = [Buffer.concat(this.#pending, this.#pendingLen)];
  }

  async #open(): Promise<void> {
    const key = this.#o.keyOf(this.#next++);
    this.#writer = this.#o.store.createWriter(key, this.#o.signal ? { signal: this.#o.signal } : {});
    this.#hash = createHash('sha256');
    this.#bytes = 0;
    this.#rows = 0;
    this.#sources = [];
    if (this.#o.header) {
      this.#bytes = this.#headerLen;
      this.totalBytes += this.#headerLen;
      this.#pending.push(this.#o.header);
      this.#pendingLen += this.#headerLen;
    }
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

  async #close(): Promise<void> {
    if (this.#o.trailer) {
      this.#bytes += this.#trailerLen;
      this.totalBytes += this.#trailerLen;
      this.#pending.push(this.#o.trailer);
      this.#pendingLen += this.#trailerLen;
    }
    await this.#flush();
    const w = this.#writer!;
    const seg: StoredSegment = {
      key: this.#o.keyOf(this.#next - 1),
      segment: this.#next - 1,
      bytes: this.#bytes,
      rows: this.#rows,
      sha256: this.#hash!.digest('hex'),
    };
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

  /** Store the open object, if any, so the next row starts a new one. */
  async cut(): Promise<void> {
    if (this.#writer) await this.#close();
  }

  /** Store the open object, if any. */
  async finish(): Promise<StoredSegment[]> {
    if (this.#writer) await this.#close();
    return this.stored;
  }

  /** Abort the open object (already stored ones stay). Never throws. */
  async abort(): Promise<void> {
    const w = this.#writer;
    this.#writer = undefined;
    this.#pending = [];
    this.#pendingLen = 0;
    if (w) await w.abort();
  }

  /** TEXT and CSV add nothing to the manifest beyond the objects. */
  summary(): FormatSummary {
    return {};
  }
}
