/**
 * Arrow IPC body compression (`--arrow-compression zstd|lz4`): the codecs apache-arrow's writer
 * and reader look up in its `compressionRegistry`, backed by lib/format/zstd.ts and
 * lib/format/lz4.ts (LZ4_FRAME: each body buffer one LZ4 frame, as Message.fbs says).
 *
 * apache-arrow JS ≤ 21 writes the *compressed* length into the 8-byte prefix of each compressed
 * body buffer, where the Arrow format (Message.fbs, BodyCompressionMethod.BUFFER) wants the
 * *uncompressed* length; its own reader ignores the prefix, but pyarrow, arrow-rs and others size
 * their output from it and reject such files (fixed upstream in apache/arrow-js#470). Until the
 * dependency carries that fix, {@link registerArrowCodecs} wraps the writer's buffer compression
 * and rewrites each prefix with the buffer's uncompressed length (a no-op once the writer does
 * it right), so the files open in any Arrow reader.
 */
import { compressionRegistry, CompressionType, RecordBatchWriter } from 'apache-arrow';
import { DecompressError } from '../errors.js';
import { lz4CompressFrame, lz4Decompress } from './lz4.js';
import { loadZstd, ZstdFrameSplitter } from './zstd.js';

/** Largest decoded Arrow body buffer accepted (256 MiB): segferry's batches are ≤ 4 MiB of rows. */
export const MAX_ARROW_BUFFER = 256 * 1024 * 1024;

let registered: Promise<void> | undefined;

/**
 * Register zstd and LZ4 frames in apache-arrow's `compressionRegistry` (writing and reading ZSTD
 * and LZ4_FRAME bodies) and make the writer's length prefixes follow the Arrow format.
 * Idempotent; call before encoding or decoding compressed Arrow IPC.
 */
export function registerArrowCodecs(): Promise<void> {
  registered ??= (async () => {
    const z = await loadZstd();
    compressionRegistry.set(CompressionType.ZSTD, {
      encode: (data) => z.compress(data),
      decode: (data) => {
        // A body buffer is one zstd frame as Arrow writers make it; accept several, as zstd does.
        const split = new ZstdFrameSplitter();
        const out = split.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength)).map((f) => z.decompressFrame(f, MAX_ARROW_BUFFER));
        split.end();
        if (out.length === 0) throw new DecompressError('Arrow body buffer holds no zstd frame');
        return out.length === 1 ? out[0]! : Buffer.concat(out);
      },
    });
    compressionRegistry.set(CompressionType.LZ4_FRAME, {
      encode: (data) => lz4CompressFrame(data),
      decode: (data) => lz4Decompress(data, MAX_ARROW_BUFFER),
    });
    fixLengthPrefixes();
  })();
  return registered;
}

interface Compressing {
  _compressBodyBuffers(buffers: ArrayBufferView[]): { byteLength: number; bufferRegions: unknown[]; buffers: Uint8Array[] };
}

/** Wrap RecordBatchWriter's buffer compression so each prefix holds the uncompressed length. */
function fixLengthPrefixes(): void {
  const proto = RecordBatchWriter.prototype as unknown as Compressing & { segferryPrefixFix?: true };
  if (proto.segferryPrefixFix || typeof proto._compressBodyBuffers !== 'function') return;
  const original = proto._compressBodyBuffers;
  proto._compressBodyBuffers = function (this: unknown, buffers: ArrayBufferView[]) {
    const out = original.call(this, buffers);
    // One (prefix, bytes) pair per input buffer; an empty buffer has an empty prefix.
    buffers.forEach((b, i) => {
      const p = out.buffers[2 * i];
      if (!p || p.byteLength !== 8) return;
      const v = new DataView(p.buffer, p.byteOffset, 8);
      if (v.getBigInt64(0, true) !== -1n) v.setBigInt64(0, BigInt(b.byteLength), true);
    });
    return out;
  };
  proto.segferryPrefixFix = true;
}
