import { gunzipSync } from 'node:zlib';
import { FormatError, InvalidOptionError } from '../../errors.js';
import { snappyCompress, snappyDecompress } from './snappy.js';
// The process's one zstd (Node's own or the WebAssembly build, lib/format/zstd.ts): a second
// instance of the WebAssembly package initialised beside it corrupted its heap.
import { loadZstd } from '../zstd.js';

/** Compression of Parquet pages. `zstd` is the default. */
export type ParquetCompression = 'zstd' | 'snappy' | 'none';

/** Parquet's CompressionCodec enum (parquet.thrift). */
export const CODEC = { UNCOMPRESSED: 0, SNAPPY: 1, GZIP: 2, LZO: 3, BROTLI: 4, LZ4: 5, ZSTD: 6, LZ4_RAW: 7 } as const;

/** A page codec: the Parquet enum value and a synchronous compressor. */
export interface PageCodec {
  id: number;
  compress(u8: Uint8Array): Uint8Array;
  /**
   * {@link compress} of the parts' concatenation (not built), possibly a view of memory the
   * codec reuses, valid only until its next call (zstd's WebAssembly heap): for a caller that
   * copies it at once.
   */
  compressView?(parts: readonly Uint8Array[]): Uint8Array;
}

/**
 * zstd level of pages: 1, not the reference's default 3 (arrow-rs, DuckDB). Measured on the
 * bench table (bench/columnar-profile.ts --format parquet, 300k rows): level 1 writes 7% more
 * bytes (15.3 MB against 14.3 MB) and costs 0.4–0.5 client CPU-s per million rows less,
 * 10–15% of the whole export's CPU (both builds alternating in one run); export speed is the
 * goal (issue 16).
 */
const ZSTD_LEVEL = 1;

/** Pages stored as they are (`none`, and the chunks of a column compression does not shrink). */
export const UNCOMPRESSED: PageCodec = { id: CODEC.UNCOMPRESSED, compress: (u8) => u8 };

/** Check a compression name (CLI and options). */
export function parseParquetCompression(s: string): ParquetCompression {
  if (s === 'zstd' || s === 'snappy' || s === 'none') return s;
  throw new InvalidOptionError(`unknown Parquet compression ${s}: use zstd, snappy or none`);
}

/** The codec of a compression name; zstd loads its WebAssembly module on first use. */
export async function pageCodec(c: ParquetCompression = 'zstd'): Promise<PageCodec> {
  switch (parseParquetCompression(c)) {
    case 'none': return UNCOMPRESSED;
    case 'snappy': return { id: CODEC.SNAPPY, compress: snappyCompress };
    case 'zstd': {
      const z = await loadZstd();
      return { id: CODEC.ZSTD, compress: (u8) => z.compress(u8, ZSTD_LEVEL), compressView: (parts) => z.compressView(parts, ZSTD_LEVEL) };
    }
  }
}

/** A decompressor for a page of `codec` that must inflate to `size` bytes (codecs other writers use included). */
export async function pageDecompressor(codec: number): Promise<(u8: Uint8Array, size: number) => Uint8Array> {
  const checked = (f: (u8: Uint8Array, size: number) => Uint8Array) => (u8: Uint8Array, size: number): Uint8Array => {
    let out: Uint8Array;
    try {
      out = f(u8, size);
    } catch (e) {
      throw new FormatError(`a Parquet page does not decompress: ${(e as Error).message}`, { cause: e });
    }
    if (out.length !== size) throw new FormatError(`a Parquet page decompresses to ${out.length} bytes, its header says ${size}`);
    return out;
  };
  switch (codec) {
    case CODEC.UNCOMPRESSED: return checked((u8) => u8);
    case CODEC.SNAPPY: return checked((u8, size) => snappyDecompress(u8, size));
    case CODEC.GZIP: return checked((u8, size) => gunzipSync(u8, { maxOutputLength: Math.max(1, size) }));
    case CODEC.ZSTD: {
      const z = await loadZstd();
      return checked((u8, size) => z.decompressFrame(u8, Math.max(size, 1)));
    }
    default: throw new FormatError(`Parquet compression codec ${codec} is not supported (zstd, snappy, gzip and none are)`);
  }
}
