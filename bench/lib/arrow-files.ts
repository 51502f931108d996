// COPY BINARY rows → Arrow record batches → IPC files, in memory, as the Arrow segment writer
// does it: the conversion the Arrow benches (bench/arrow.ts, bench/columnar-profile.ts) time.
import type { BatchBuilder } from '../../lib/format/arrow/columns.js';
import type { IpcFileEncoder } from '../../lib/format/arrow/ipc.js';
import type { RowChunk } from '../../lib/pg/copy-out.js';

/**
 * Feed every row of `chunks` to `b`, encode each full batch, and cut an IPC file every 8
 * batches. `encoder` is called once, at the first batch (the builder's schema exists by then).
 * With `copyBatches` (default false) each encoded batch is copied at once, as the segment writer
 * does when the builder reuses its buffers. Returns the files, the rows, and the bytes of the
 * encoded batches (headers and footers not counted).
 */
export function arrowIpcFiles(b: BatchBuilder, encoder: () => IpcFileEncoder, chunks: RowChunk[], opts: { copyBatches?: boolean } = {}): { files: Buffer[]; rows: number; bytes: number } {
  let enc: IpcFileEncoder | undefined;
  let bytes = 0;
  let rows = 0;
  const files: Buffer[] = [];
  let parts: Uint8Array[] = [];
  let blocks: { offset: number; metaDataLength: number; bodyLength: number }[] = [];
  let pos = 0;
  const close = () => {
    if (!enc || parts.length === 0) return;
    parts.push(...enc.footer(blocks).chunks);
    files.push(Buffer.concat(parts));
    parts = [];
    blocks = [];
  };
  const emit = () => {
    const built = b.take();
    if (!built) return;
    enc ??= encoder();
    if (parts.length === 0) { parts.push(...enc.header.chunks); pos = enc.header.bytes; }
    const e = enc.batch(built.batch);
    blocks.push({ offset: pos, metaDataLength: e.metaDataLength, bodyLength: e.bodyLength });
    if (opts.copyBatches) parts.push(Buffer.concat(e.chunks, e.bytes));
    else parts.push(...e.chunks);
    pos += e.bytes;
    bytes += e.bytes;
    rows += built.rows;
    if (blocks.length === 8) close();
  };
  for (const rc of chunks) {
    let i = 0;
    while (i < rc.rowEnds.length) {
      i = b.feed(rc.data, rc.rowEnds, i);
      if (b.full) emit();
    }
  }
  emit();
  close();
  return { files, rows, bytes };
}
