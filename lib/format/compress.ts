/**
 * Compression of stored objects (`--compress gzip|zstd`): the block codecs the segment writer
 * uses, and the streaming decoder every reader of objects uses (import, copy `--via`).
 *
 * A compressed object is a sequence of complete gzip members (RFC 1952) or zstd frames
 * (RFC 8878): concatenated members/frames are one valid stream for `gzip -dc` and `zstd -dc`, so
 * an object decompresses alone, and the writer can cut objects between blocks without ever
 * holding more than one block. gzip comes from Node's zlib; zstd from lib/format/zstd.ts.
 */
import { once } from 'node:events';
import { promisify } from 'node:util';
import { DecompressError, InvalidOptionError } from '../errors.js';

// zlib and lib/format/zstd.ts load with the first compressed object, not with every export
// that only parses `--compress` (start-up CPU, issue 17).
const zlibModule = async () => (await import('node:zlib')).default;
const zstdModule = () => import('./zstd.js');

/** Codecs of stored objects. */
export type Compression = 'gzip' | 'zstd';

/** The `--compress` option: a codec, or `none` (the default). */
export type CompressionOption = Compression | 'none';

/** File-name extension of each codec (`--extension`). */
export const COMPRESSION_EXTENSION: Readonly<Record<Compression, string>> = Object.freeze({ gzip: '.gz', zstd: '.zst' });

/** Check a `compress` option; returns the codec, or undefined for none. */
export function parseCompression(v: unknown): Compression | undefined {
  if (v === undefined || v === 'none') return undefined;
  if (v === 'gzip' || v === 'zstd') return v;
  throw new InvalidOptionError(`unknown compression ${JSON.stringify(v)}: use gzip, zstd or none`);
}

/** gzip level (zlib's default, as `gzip` uses). */
export const GZIP_LEVEL = 6;

/** Compresses one block into one complete member (gzip) or frame (zstd). */
export interface BlockCompressor {
  readonly codec: Compression;
  compress(data: Buffer): Promise<Buffer>;
}

/** The block compressor of a codec (zstd: loads its implementation on first use). */
export async function blockCompressor(codec: Compression): Promise<BlockCompressor> {
  if (codec === 'gzip') {
    // zlib's thread pool: the event loop keeps reading the other exporters' sockets meanwhile.
    const gzipAsync = promisify((await zlibModule()).gzip);
    return { codec, compress: (data) => gzipAsync(data, { level: GZIP_LEVEL }) };
  }
  if (codec !== 'zstd') throw new InvalidOptionError(`unknown compression ${JSON.stringify(codec)}: use gzip, zstd or none`); // e.g. from a hand-edited plan file
  const z = await (await zstdModule()).loadZstd();
  return { codec, compress: async (data) => z.compress(data) };
}

/** Options of {@link decompressChunks}. */
export interface DecompressOptions {
  /** Object key, named in errors. */
  key?: string;
}

/**
 * Decode a compressed object's bytes as they stream from storage: the import-side reader of
 * compressed objects (import and copy `--via` pipe an object's chunks through it). Accepts any
 * number of concatenated gzip members or zstd frames, as the standard tools do.
 *
 * Memory: gzip, zlib's stream buffers (≈ 64 KiB plus one chunk); zstd, one frame's compressed
 * bytes and its decoded bytes (segferry writes frames of at most 1 MiB; frames of other writers up
 * to 32 MiB, lib/format/zstd.ts).
 *
 * @throws DecompressError (ERR_DECOMPRESS) naming the key, when the bytes are not a valid stream
 *   of the codec or stop inside a member or frame.
 */
export async function* decompressChunks(codec: Compression, source: AsyncIterable<Buffer> | Iterable<Buffer>, opts: DecompressOptions = {}): AsyncGenerator<Buffer> {
  const what = opts.key !== undefined ? `object ${opts.key}` : 'the object';
  const wrap = (e: unknown): unknown => {
    if (e instanceof DecompressError) return new DecompressError(`${what} is not a valid ${codec} stream: ${e.message}`, { ...(opts.key !== undefined ? { key: opts.key } : {}), cause: e, ...(e.hint ? { hint: e.hint } : {}) });
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('Z_')) return new DecompressError(`${what} is not a valid ${codec} stream: ${(e as Error).message}`, { ...(opts.key !== undefined ? { key: opts.key } : {}), cause: e });
    return e;
  };
  if (codec === 'zstd') {
    const { loadZstd, ZstdFrameSplitter } = await zstdModule();
    const z = await loadZstd();
    const split = new ZstdFrameSplitter();
    try {
      for await (const c of source) {
        for (const f of split.push(c)) {
          const out = z.decompressFrame(f);
          if (out.length > 0) yield out;
        }
      }
      split.end();
    } catch (e) {
      throw wrap(e);
    }
    return;
  }
  const gz = (await zlibModule()).createGunzip();
  let feedErr: unknown;
  // Fed with backpressure; an error of the source ends the decoder with that error.
  const feed = (async () => {
    try {
      for await (const c of source) {
        if (gz.destroyed) return;
        if (!gz.write(c)) await once(gz, 'drain');
      }
      gz.end();
    } catch (e) {
      feedErr = e;
      gz.destroy(e as Error);
    }
  })();
  try {
    for await (const out of gz) yield out as Buffer;
  } catch (e) {
    throw feedErr !== undefined && e === feedErr ? e : wrap(e);
  } finally {
    gz.destroy();
    await feed;
  }
  if (feedErr !== undefined) throw feedErr;
}
