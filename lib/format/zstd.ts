/**
 * Zstandard (RFC 8878) for segferry: one frame at a time, synchronous once loaded.
 *
 * Which implementation runs:
 * - Node's built-in `zlib` zstd (`zlib.zstdCompressSync`, Node ≥ 22.15 or ≥ 23.8), when the running
 *   Node has it;
 * - otherwise zstd compiled to WebAssembly, shipped inside npm packages (no install-time
 *   download), loaded on first use: `@foxglove/wasm-zstd` compresses (zstd 1.5.4 built with
 *   `emcc -O3`, ≈ 400 KB) and `@bokuweb/zstd-wasm` decodes (zstd 1.5.6 built with `-Oz`,
 *   ≈ 250 KB). The `-Oz` build compresses Parquet pages at about three quarters of the
 *   `-O3` one's speed (bench/zstd-pages.ts: 0.70 against 0.51 CPU-s per million bench rows),
 *   and compression is what export spends; decoding keeps the library whose rules below were
 *   written and tested against it.
 *
 * There is no third case: the WebAssembly packages are regular dependencies, so zstd works on every
 * Node segferry supports. Both write standard frames that `zstd -d` reads, and read each other's
 * ({@link zstdFromZlib} and {@link loadWasmZstd} let tests run each in turn). The WebAssembly build
 * has no streaming API, so decoding goes frame by frame ({@link ZstdFrameSplitter} finds frame
 * ends from the frame headers): a frame is decoded whole, and only frames that declare their
 * content size, at most {@link MAX_FRAME_CONTENT}, are accepted (bounded memory; segferry's own
 * frames hold at most 1 MiB and declare it). A frame that declares no size (`zstd` compressing a
 * pipe writes one frame so) decodes when it holds at most that much. Node's own zstd applies the
 * same bound.
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { DecompressError } from '../errors.js';

/** Largest decoded frame accepted (32 MiB): the memory bound of decoding one frame. */
export const MAX_FRAME_CONTENT = 32 * 1024 * 1024;

/** Default compression level (zstd's own default). */
export const ZSTD_DEFAULT_LEVEL = 3;

/** A loaded zstd implementation. */
export interface ZstdCodec {
  /** `node-zlib` (Node's built-in zstd) or `wasm` (@foxglove/wasm-zstd compresses, @bokuweb/zstd-wasm decodes). */
  readonly backend: 'node-zlib' | 'wasm';
  /**
   * Compress `data` into one complete frame that records its content size.
   * @param level zstd level, default {@link ZSTD_DEFAULT_LEVEL}.
   */
  compress(data: Uint8Array, level?: number): Buffer;
  /**
   * {@link compress} of `data` (parts: their concatenation, which is not built) without a new
   * buffer where it can: the frame may be a view of memory the codec reuses (the WebAssembly
   * heap), valid only until the codec's next call. For callers that copy the frame at once
   * (the Parquet encoder's row group output): no allocation per call.
   */
  compressView(data: Uint8Array | readonly Uint8Array[], level?: number): Uint8Array;
  /**
   * Decode exactly one frame (as {@link ZstdFrameSplitter} returns them) of at most `maxContent`
   * bytes (default {@link MAX_FRAME_CONTENT}).
   * @throws DecompressError when the frame is corrupt or larger than that.
   */
  decompressFrame(frame: Uint8Array, maxContent?: number): Buffer;
}

interface NodeZstd {
  zstdCompressSync(b: Uint8Array, o?: object): Buffer;
  zstdDecompressSync(b: Uint8Array, o?: object): Buffer;
  constants: Record<string, number>;
}

/** True when the running Node has zstd in zlib (Node ≥ 22.15 / 23.8). */
export function hasNodeZstd(): boolean {
  return zstdFromZlib() !== undefined;
}

let loading: Promise<ZstdCodec> | undefined;

/** The zstd implementation of this process (see the module comment), loaded once. */
export function loadZstd(): Promise<ZstdCodec> {
  loading ??= Promise.resolve(zstdFromZlib() ?? loadWasmZstd());
  return loading;
}

/**
 * The zstd of a zlib module (default: Node's own), or undefined when it has none (Node before
 * 22.15 / 23.8). {@link loadZstd} takes it when there is one; tests call it to run each
 * implementation in turn.
 */
export function zstdFromZlib(zlibModule: object = zlib): ZstdCodec | undefined {
  const z = zlibModule as Partial<NodeZstd>;
  if (typeof z.zstdCompressSync !== 'function' || typeof z.zstdDecompressSync !== 'function' || !z.constants) return undefined;
  return nodeCodec(z as NodeZstd);
}

let wasmLoading: Promise<ZstdCodec> | undefined;

/**
 * The WebAssembly zstd (`@foxglove/wasm-zstd` compresses, `@bokuweb/zstd-wasm` decodes), loaded
 * once per process (a second instance of the decoder's module was seen to corrupt the first
 * one's heap). {@link loadZstd} takes it where Node's zlib
 * has no zstd; tests call it to run each implementation in turn.
 */
export function loadWasmZstd(): Promise<ZstdCodec> {
  wasmLoading ??= wasmCodec();
  return wasmLoading;
}

function nodeCodec(z: NodeZstd): ZstdCodec {
  const c = z.constants;
  return {
    backend: 'node-zlib',
    compress(data, level = ZSTD_DEFAULT_LEVEL) {
      // pledgedSrcSize makes the frame header carry the content size, as the WebAssembly build does.
      return z.zstdCompressSync(data, { pledgedSrcSize: data.length, params: { [c.ZSTD_c_compressionLevel!]: level } });
    },
    compressView(data, level) {
      return this.compress(data instanceof Uint8Array ? data : Buffer.concat(data), level);
    },
    decompressFrame(frame, maxContent = MAX_FRAME_CONTENT) {
      const h = checkedHeader(frame, maxContent);
      if (!h) return Buffer.alloc(0);
      // Node's zstd returns what it decoded so far, without an error, for a frame cut short
      // (Node 22.23: an empty buffer): check that the frame is whole first.
      const whole = new ZstdFrameSplitter(frame.length + 1).push(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
      if (whole.length !== 1 || whole[0]!.length !== frame.length) throw new DecompressError('zstd frame is truncated, or followed by other bytes');
      let out: Buffer;
      try {
        out = z.zstdDecompressSync(frame, { maxOutputLength: maxContent });
      } catch (e) {
        throw new DecompressError(`zstd frame cannot be decoded: ${(e as Error).message}`, { cause: e });
      }
      return checkedOutput(out, h);
    },
  };
}

interface WasmZstd {
  init(): Promise<void>;
  decompress(b: Uint8Array, o?: { defaultHeapSize?: number }): Uint8Array;
}

/**
 * The Emscripten module of `@foxglove/wasm-zstd` (its factory, dist/wasm-zstd.js; the package's
 * index.js wraps the same calls with a malloc, two copies and a new Buffer per call).
 * `_compress` is ZSTD_compress (a new context per call: measured free on pages of 0.1 MB up),
 * returning -1 on error.
 */
interface WasmCompressor {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(p: number): void;
  _compressBound(n: number): number;
  _compress(dst: number, cap: number, src: number, n: number, level: number): number;
}

/**
 * One-shot compression into one heap region kept and grown to the largest input and its bound
 * (the heap never shrinks anyway): returns a view of the frame in the heap, valid until the
 * next call.
 */
function heapCompressor(m: WasmCompressor): (data: Uint8Array | readonly Uint8Array[], level: number) => Uint8Array {
  let region = 0;
  let cap = 0;
  return (data, level) => {
    const parts = data instanceof Uint8Array ? [data] : data;
    let len = 0;
    for (const p of parts) len += p.length;
    const bound = m._compressBound(len);
    if (len + bound > cap) {
      if (region) m._free(region);
      cap = len + bound;
      region = m._malloc(cap);
      if (!region) {
        cap = 0;
        throw new RangeError(`zstd: no WebAssembly memory for ${len + bound} bytes`);
      }
    }
    // HEAPU8 is read after malloc: growing the memory replaces it.
    const heap = m.HEAPU8;
    let at = region;
    for (const p of parts) {
      heap.set(p, at);
      at += p.length;
    }
    const n = m._compress(region + len, bound, region, len, level);
    if (n < 0) throw new Error('zstd compression failed');
    return m.HEAPU8.subarray(region + len, region + len + n);
  };
}

async function wasmCodec(): Promise<ZstdCodec> {
  const req = createRequire(import.meta.url);
  // The package's CommonJS build (its ESM build has extensionless imports Node cannot resolve).
  const m = req('@bokuweb/zstd-wasm') as WasmZstd;
  // Instantiates its module on require: one per process (thread), like the decoder's.
  const factory = req('@foxglove/wasm-zstd/dist/wasm-zstd.js') as () => Promise<WasmCompressor>;
  const [, c] = await Promise.all([m.init(), factory()]);
  const view = heapCompressor(c);
  return {
    backend: 'wasm',
    compress(data, level = ZSTD_DEFAULT_LEVEL) {
      // A copy the caller owns; an empty input makes a 9-byte frame.
      return Buffer.from(view(data, level));
    },
    compressView(data, level = ZSTD_DEFAULT_LEVEL) {
      return view(data, level);
    },
    decompressFrame(frame, maxContent = MAX_FRAME_CONTENT) {
      const h = checkedHeader(frame, maxContent);
      if (!h) return Buffer.alloc(0);
      let out: Uint8Array;
      try {
        // The library sizes its output from the header's content size (checked above), or, when
        // the frame declares none (`zstd` reading a pipe), gives it maxContent bytes.
        out = m.decompress(frame, { defaultHeapSize: maxContent });
      } catch (e) {
        throw new DecompressError(`zstd frame cannot be decoded: ${(e as Error).message}` + (h.contentSize === undefined ? ` (it declares no content size: it may be larger than the ${maxContent}-byte bound)` : ''), {
          cause: e,
          ...(h.contentSize === undefined ? { hint: `segferry decodes zstd frames of at most ${maxContent} bytes each, on every Node: recompress the data in smaller pieces (concatenated frames are fine)` } : {}),
        });
      }
      return checkedOutput(out, h);
    },
  };
}

/** The header of a frame about to be decoded, within `maxContent`; undefined for a skippable frame (no content). */
function checkedHeader(frame: Uint8Array, maxContent: number): FrameHeader | undefined {
  const h = parseFrameHeader(frame, 0);
  if (!h) throw new DecompressError('not a zstd frame');
  if (h.skippable) return undefined;
  if (h.contentSize !== undefined && h.contentSize > maxContent) throw tooLarge(h.contentSize, maxContent);
  return h;
}

/** A decoded frame, as long as its header says when it says. */
function checkedOutput(out: Uint8Array, h: FrameHeader): Buffer {
  if (h.contentSize !== undefined && out.byteLength !== h.contentSize) throw new DecompressError(`zstd frame decoded to ${out.byteLength} bytes, its header says ${h.contentSize}`);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

function tooLarge(size: number, max: number): DecompressError {
  return new DecompressError(`zstd frame of ${size} bytes exceeds the ${max}-byte limit of one decoded frame`);
}

const MAGIC = 0xfd2fb528;
/** Block_Maximum_Size (RFC 8878 §3.1.1.2.4): 128 KiB. */
const MAX_BLOCK = 128 * 1024;

/** What a frame header says (RFC 8878 §3.1.1.1). */
export interface FrameHeader {
  /** A skippable frame (magic 0x184D2A5?): `headerBytes` + `skipBytes` long, no content. */
  skippable: boolean;
  /** Bytes of magic number and frame header. */
  headerBytes: number;
  /** Skippable frames: bytes of user data after the header. */
  skipBytes?: number;
  /** Declared content size, when the header has one. */
  contentSize?: number;
  /** A 4-byte content checksum follows the last block. */
  checksum: boolean;
}

/**
 * Parse the frame header at `at`; undefined while `buf` is too short to hold it.
 * @throws DecompressError when the bytes are not a zstd frame header.
 */
export function parseFrameHeader(buf: Uint8Array, at: number): FrameHeader | undefined {
  if (buf.length - at < 4) return undefined;
  const magic = (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
  if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
    if (buf.length - at < 8) return undefined;
    const n = (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24)) >>> 0;
    return { skippable: true, headerBytes: 8, skipBytes: n, checksum: false };
  }
  if (magic !== MAGIC) throw new DecompressError('not a zstd stream (bad frame magic number)');
  if (buf.length - at < 5) return undefined;
  const fhd = buf[at + 4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if (fhd & 0x08) throw new DecompressError('zstd frame header has its reserved bit set');
  const did = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag]!;
  const headerBytes = 5 + (single ? 0 : 1) + did + fcsBytes;
  if (buf.length - at < headerBytes) return undefined;
  const h: FrameHeader = { skippable: false, headerBytes, checksum: ((fhd >> 2) & 1) === 1 };
  if (fcsBytes > 0) {
    const p = at + headerBytes - fcsBytes;
    let v = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) v = v * 256 + buf[p + i]!;
    h.contentSize = fcsBytes === 2 ? v + 256 : v;
  }
  return h;
}

/**
 * Cuts a zstd stream (one or more concatenated frames, as `zstd -d` reads them) into whole frames
 * by reading frame and block headers, without decoding. Memory: the bytes of one frame, which
 * must be at most `maxFrame` bytes (default: {@link MAX_FRAME_CONTENT} plus the worst-case
 * overhead of its blocks).
 */
export class ZstdFrameSplitter {
  #buf: Buffer = Buffer.alloc(0);
  /** Scan position inside #buf (the current frame starts at 0). */
  #pos = 0;
  #header: FrameHeader | undefined;
  #lastSeen = false;
  readonly #maxFrame: number;

  constructor(maxFrame = MAX_FRAME_CONTENT + (MAX_FRAME_CONTENT / MAX_BLOCK + 1) * 3 + 64) {
    this.#maxFrame = maxFrame;
  }

  /** Add bytes; returns the frames they complete (skippable frames are dropped). */
  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const end = this.#frameEnd();
      if (end === undefined) break;
      const frame = this.#buf.subarray(0, end);
      if (!this.#header!.skippable) out.push(frame);
      this.#buf = this.#buf.subarray(end);
      this.#pos = 0;
      this.#header = undefined;
      this.#lastSeen = false;
    }
    if (this.#buf.length > this.#maxFrame) throw new DecompressError(`zstd frame longer than ${this.#maxFrame} bytes`);
    return out;
  }

  /** Call at the end of the stream. @throws DecompressError when it stops inside a frame. */
  end(): void {
    if (this.#buf.length > 0) throw new DecompressError('zstd stream ends inside a frame (truncated)');
  }

  /** End offset of the frame at the start of #buf, or undefined while incomplete. */
  #frameEnd(): number | undefined {
    if (!this.#header) {
      const h = parseFrameHeader(this.#buf, 0);
      if (!h) return undefined;
      this.#header = h;
      this.#pos = h.headerBytes;
    }
    const h = this.#header;
    if (h.skippable) {
      const end = h.headerBytes + h.skipBytes!;
      if (end > this.#maxFrame) throw new DecompressError(`zstd skippable frame longer than ${this.#maxFrame} bytes`);
      return this.#buf.length >= end ? end : undefined;
    }
    while (!this.#lastSeen) {
      if (this.#buf.length - this.#pos < 3) return undefined;
      const b = this.#buf;
      const bh = b[this.#pos]! | (b[this.#pos + 1]! << 8) | (b[this.#pos + 2]! << 16);
      const type = (bh >> 1) & 3;
      const size = bh >>> 3;
      if (type === 3) throw new DecompressError('zstd block of reserved type');
      if (size > MAX_BLOCK) throw new DecompressError(`zstd block of ${size} bytes exceeds the 128 KiB maximum`);
      const content = type === 1 ? 1 : size;
      if (this.#buf.length - this.#pos < 3 + content) return undefined;
      this.#pos += 3 + content;
      this.#lastSeen = (bh & 1) === 1;
    }
    const end = this.#pos + (h.checksum ? 4 : 0);
    return this.#buf.length >= end ? end : undefined;
  }
}
