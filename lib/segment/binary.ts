import { BinaryTuples, COPY_BINARY_HEADER, COPY_BINARY_TRAILER } from '../pg/copy-binary.js';
import type { RowChunk } from '../pg/copy-out.js';
import type { Compression } from '../format/compress.js';
import { CompressedSegmentWriter } from './compressed.js';
import { TextSegmentWriter } from './text.js';
import type { CopyRead, FormatSummary, SegmentWriter, SegmentWriterOptions, StoredSegment } from './types.js';

/**
 * The {@link SegmentWriter} of COPY BINARY objects: every object is a complete COPY BINARY
 * stream that loads alone (`COPY … FROM STDIN (FORMAT binary)`): the 19-byte header, whole
 * tuples, the 2-byte trailer. The COPY reader frames tuples already (one CopyData message per
 * row); the source stream's own header (inside its first message) and trailer (its last
 * message) are dropped, and the cutting is the TEXT writer's, with the header and trailer
 * counted against the cap. Memory: the TEXT writer's one write batch. With `compression`, the
 * cutting is {@link CompressedSegmentWriter}'s, header and trailer compressed as members/frames
 * of their own.
 */
export class BinarySegmentWriter implements SegmentWriter {
  readonly #w: TextSegmentWriter | CompressedSegmentWriter;
  readonly #tuples = new BinaryTuples();

  /** @param compression codec of the stored bytes (default: none). */
  constructor(o: SegmentWriterOptions, compression?: Compression) {
    const edges = { header: COPY_BINARY_HEADER, trailer: COPY_BINARY_TRAILER };
    this.#w = compression ? new CompressedSegmentWriter({ ...o, ...edges, compression }) : new TextSegmentWriter({ ...o, ...edges });
  }

  get stored(): readonly StoredSegment[] { return this.#w.stored; }
  get totalBytes(): number { return this.#w.totalBytes; }
  get totalRows(): number { return this.#w.totalRows; }
  get segment(): number { return this.#w.segment; }

  begin(read: CopyRead): Promise<void> {
    return this.#w.begin(read);
  }

  /** Pass the chunk's tuples on, without the stream's header and trailer. */
  async write(rc: RowChunk): Promise<void> {
    const r = this.#tuples.range(rc.data, rc.rowEnds);
    if (r.to <= r.from) return;
    const ends = new Uint32Array(r.to - r.from);
    for (let i = r.from; i < r.to; i++) ends[i - r.from] = (rc.rowEnds[i] as number) - r.start;
    await this.#w.write({ data: rc.data.subarray(r.start, r.end), rowEnds: ends });
  }

  cut(): Promise<void> { return this.#w.cut(); }
  finish(): Promise<readonly StoredSegment[]> { return this.#w.finish(); }
  abort(): Promise<void> { return this.#w.abort(); }
  summary(): FormatSummary { return {}; }
}
