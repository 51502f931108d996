// gzip and zstd codecs (lib/format/compress.ts, lib/format/zstd.ts) against the standard tools.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { blockCompressor, decompressChunks, parseCompression, type Compression } from '../../lib/format/compress.js';
import { hasNodeZstd, loadZstd, parseFrameHeader, ZstdFrameSplitter } from '../../lib/format/zstd.js';
import { codeOf, codeOfAsync } from './error-code.js';

const dir = mkdtempSync(join(tmpdir(), 'segferry-compress-'));

async function decode(codec: Compression, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of decompressChunks(codec, chunks, { key: 'k' })) out.push(c);
  return Buffer.concat(out);
}

/** Split a buffer into pieces of `n` bytes (stream chunks that end anywhere). */
const pieces = (b: Buffer, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

const sample = (n: number, tag: string) => Buffer.from(Array.from({ length: n }, (_, i) => `${tag}\t${i}\t${(i * 7919) % 1000}\n`).join(''));

describe('zstd', () => {
  it('uses Node zlib when it has zstd, else the WebAssembly build', async () => {
    expect((await loadZstd()).backend).toBe(hasNodeZstd() ? 'node-zlib' : 'wasm');
  });

  it('concatenated frames decompress with zstd -dc, and back through the frame splitter in any chunking', async () => {
    const c = await blockCompressor('zstd');
    const a = sample(20000, 'a');
    const b = sample(10, 'b');
    const stored = Buffer.concat([await c.compress(a), await c.compress(b)]);
    const f = join(dir, 'two.zst');
    writeFileSync(f, stored);
    expect(execFileSync('/usr/bin/zstd', ['-dc', f], { maxBuffer: 1 << 26 }).equals(Buffer.concat([a, b]))).toBe(true);
    for (const n of [3, 4096, stored.length]) expect((await decode('zstd', pieces(stored, n))).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('frames of segferry record their content size; frames zstd wrote from a pipe (no size) decode too', async () => {
    const c = await blockCompressor('zstd');
    const frame = await c.compress(sample(100, 'x'));
    expect(parseFrameHeader(frame, 0)?.contentSize).toBe(sample(100, 'x').length);
    const piped = execFileSync('sh', ['-c', 'seq 1 50000 | /usr/bin/zstd -q -c; seq 1 3 | /usr/bin/zstd -q -c']);
    expect(parseFrameHeader(piped, 0)?.contentSize).toBeUndefined();
    expect((await decode('zstd', pieces(piped, 1000))).toString()).toBe(execFileSync('sh', ['-c', 'seq 1 50000; seq 1 3']).toString());
  });

  it('skippable frames are skipped', async () => {
    const c = await blockCompressor('zstd');
    const skip = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    const stored = Buffer.concat([skip, await c.compress(Buffer.from('row\n'))]);
    expect((await decode('zstd', pieces(stored, 2))).toString()).toBe('row\n');
  });

  it('corrupt, truncated or foreign bytes are ERR_DECOMPRESS naming the object', async () => {
    const c = await blockCompressor('zstd');
    const good = await c.compress(sample(5000, 'c'));
    const flipped = Buffer.from(good);
    for (let i = 20; i < flipped.length; i += 97) flipped[i]! ^= 0x5a;
    expect(await codeOfAsync(() => decode('zstd', [flipped]))).toBe('ERR_DECOMPRESS');
    expect(await codeOfAsync(() => decode('zstd', [good.subarray(0, good.length - 3)]))).toBe('ERR_DECOMPRESS');
    expect(await codeOfAsync(() => decode('zstd', [Buffer.from('plain text\n')]))).toBe('ERR_DECOMPRESS');
    await expect(decode('zstd', [good.subarray(0, 10)])).rejects.toThrow(/object k /);
  });

  it('a frame declaring more than the one-frame bound is refused before decoding', async () => {
    // Frame header: magic, FHD = 4-byte content size + single segment, 64 MiB; one empty raw last block.
    const f = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 4, 1, 0, 0]);
    expect(parseFrameHeader(f, 0)?.contentSize).toBe(64 * 1024 * 1024);
    expect(new ZstdFrameSplitter().push(f)).toHaveLength(1);
    const z = await loadZstd();
    expect(codeOf(() => z.decompressFrame(f))).toBe('ERR_DECOMPRESS');
    expect(await codeOfAsync(() => decode('zstd', [f]))).toBe('ERR_DECOMPRESS');
  });
});

describe('gzip', () => {
  it('concatenated members decompress with gzip -dc and through decompressChunks', async () => {
    const c = await blockCompressor('gzip');
    const a = sample(20000, 'a');
    const b = sample(3, 'b');
    const stored = Buffer.concat([await c.compress(a), await c.compress(b)]);
    const f = join(dir, 'two.gz');
    writeFileSync(f, stored);
    expect(execFileSync('/usr/bin/gzip', ['-dc', f], { maxBuffer: 1 << 26 }).equals(Buffer.concat([a, b]))).toBe(true);
    for (const n of [3, 999, stored.length]) expect((await decode('gzip', pieces(stored, n))).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('corrupt or truncated members are ERR_DECOMPRESS', async () => {
    const good = gzipSync(sample(5000, 'g'));
    const flipped = Buffer.from(good);
    flipped[40]! ^= 0xff;
    expect(await codeOfAsync(() => decode('gzip', [flipped]))).toBe('ERR_DECOMPRESS');
    expect(await codeOfAsync(() => decode('gzip', [good.subarray(0, good.length - 9)]))).toBe('ERR_DECOMPRESS');
  });

  it('a failing source keeps its own error', async () => {
    async function* failing() { yield gzipSync(Buffer.from('x')).subarray(0, 5); throw new Error('network gone'); }
    await expect((async () => { for await (const _ of decompressChunks('gzip', failing())) void _; })()).rejects.toThrow('network gone');
  });
});

describe('compress option', () => {
  it('accepts gzip, zstd and none only', () => {
    expect(parseCompression('none')).toBeUndefined();
    expect(parseCompression(undefined)).toBeUndefined();
    expect(parseCompression('zstd')).toBe('zstd');
    expect(codeOf(() => parseCompression('lz4'))).toBe('ERR_INVALID_OPTION');
  });
});
