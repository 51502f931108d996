// COPY BINARY rows → Arrow record batches → IPC files, in memory, as the Arrow segment writer
// does it: the conversion the Arrow benches (bench/arrow.ts, bench/columnar-profile.ts) time.
import type { BatchBuilder } from '../../lib/format/arrow/columns.js';
import type { IpcFileEncoder } from '../../lib/format/arrow/ipc.js';
import type { RowChunk } from '../../lib/pg/copy-out.js';

/**
 * Feed every row of `chunks` to `b`, encode each full batch, and cut an IPC file every 8
 * batches. `encoder` is called once, at the first batch (the builder's schema exists by then).
 * With `copyBatches` (default false) each encoded batch is copied at once, as the segment writer
 * does when the builder reuses its buffers: straight into its file's bytes (one copy per batch,
 * as the writer makes into its assembly buffer). With `copyBatches` and `keep: false` the files
 * are not kept (none returned): each is copied into one buffer reused for the next, as an export
 * to a directory hands its bytes on and reuses its buffers. Returns the files, the rows, and the
 * bytes of the encoded batches (headers and footers not counted).
 */
export function arrowIpcFiles(b: BatchBuilder, encoder: () => IpcFileEncoder, chunks: RowChunk[], opts: { copyBatches?: boolean; keep?: boolean } = {}): { files: Buffer[]; rows: number; bytes: number } {
  const keep = opts.keep ?? true;
  let enc: IpcFileEncoder | undefined;
  let bytes = 0;
  let rows = 0;
  const files: Buffer[] = [];
  let parts: Uint8Array[] = [];
  let blocks: { offset: number; metaDataLength: number; bodyLength: number }[] = [];
  let pos = 0;
  // copyBatches: the open file's bytes, sized like the previous file (doubling if it outgrows that).
  let file = Buffer.alloc(0);
  const append = (chunks: Uint8Array[]) => {
    for (const c of chunks) {
      if (!opts.copyBatches) parts.push(c);
      else {
        if (pos + c.byteLength > file.length) {
          const g = Buffer.allocUnsafe(Math.max(2 * file.length, pos + c.byteLength));
          g.set(file.subarray(0, pos));
          file = g;
        }
        file.set(c, pos);
      }
      pos += c.byteLength;
    }
  };
  const close = () => {
    if (!enc || blocks.length === 0) return;
    append(enc.footer(blocks).chunks);
    if (!opts.copyBatches) files.push(Buffer.concat(parts));
    else if (keep) {
      files.push(file.subarray(0, pos));
      file = Buffer.allocUnsafe(pos + (pos >> 4));
    }
    parts = [];
    blocks = [];
    pos = 0;
  };
  const emit = () => {
    const built = b.take();
    if (!built) return;
    enc ??= encoder();
    if (blocks.length === 0) append(enc.header.chunks);
    const e = enc.batch(built.batch);
    blocks.push({ offset: pos, metaDataLength: e.metaDataLength, bodyLength: e.bodyLength });
    append(e.chunks);
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
