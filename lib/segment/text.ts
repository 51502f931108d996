import { RowTooLargeError } from '../errors.js';
import type { RowChunk } from '../pg/copy-out.js';
import { ObjectsWriterBase, SegmentObjects, lastRowThatFits } from './objects.js';
import type { FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from './types.js';

export type { StoredSegment } from './types.js';

/** Options of {@link TextSegmentWriter}. */
export interface TextSegmentWriterOptions extends SegmentWriterOptions {
  /** Bytes each object starts with (a csv header line), counted against the cap. Default: none. */
  header?: Buffer;
  /** Bytes each object ends with (the COPY BINARY trailer), counted against the cap. Default: none. */
  trailer?: Buffer;
}

export { WRITE_BATCH } from './objects.js';

/**
 * The {@link SegmentWriter} of TEXT and CSV COPY output: cuts a stream of whole-row chunks into objects of at most `cap` bytes, never splitting a
 * row: when the next row would cross the cap the object is closed and the row starts the next
 * one. Objects are opened lazily, so no empty object is ever written. Chunks smaller than
 * {@link WRITE_BATCH} are joined into writes of that size (one copy; memory: one batch per
 * writer); the SHA-256 is computed on each write.
 */
export class TextSegmentWriter extends ObjectsWriterBase implements SegmentWriter {
  readonly #o: TextSegmentWriterOptions;
  readonly #headerLen: number;
  readonly #trailerLen: number;
  /** Totals over all objects so far, including the open one. */
  totalRows = 0;

  constructor(o: TextSegmentWriterOptions) {
    super(new SegmentObjects(o));
    this.#o = o;
    this.#headerLen = o.header?.length ?? 0;
    this.#trailerLen = o.trailer?.length ?? 0;
  }

  /** Whether a written chunk may be reused: when the store's writes release theirs (rows left to gather are copied). */
  get releasesChunks(): boolean {
    return this.#o.store.releasesWrites === true;
  }

  async write(rc: RowChunk): Promise<void> {
    const { data, rowEnds } = rc;
    const objs = this.objects;
    const last = rowEnds.length - 1;
    let start = 0;
    let ri = 0;
    while (ri <= last) {
      const j = lastRowThatFits(rowEnds, ri, last, start, objs.room(this.#headerLen, this.#trailerLen));
      if (j < ri) {
        if (objs.isOpen) {
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
      if (!objs.isOpen) objs.open(this.#o.header);
      const end = rowEnds[j] as number;
      objs.push(data.subarray(start, end));
      objs.addRows(j - ri + 1);
      this.totalRows += j - ri + 1;
      await objs.flushIfFull();
      start = end;
      ri = j + 1;
    }
    // Rows gathered for a later write must not point into a chunk the caller may reuse.
    if (this.releasesChunks) objs.detach(data);
  }

  async #close(): Promise<void> {
    await this.objects.close(this.#o.trailer);
  }

  /** Store the open object, if any, so the next row starts a new one. */
  async cut(): Promise<void> {
    if (this.objects.isOpen) await this.#close();
  }

  /** Store the open object, if any. */
  async finish(): Promise<StoredSegment[]> {
    await this.cut();
    return this.objects.stored;
  }

  /** Abort the open object (already stored ones stay). Never throws. */
  async abort(): Promise<void> {
    await this.objects.abort();
  }

  /** TEXT and CSV add nothing to the manifest beyond the objects. */
  summary(): FormatSummary {
    return {};
  }
}
