// LZ4 frames (lib/format/lz4.ts) against the reference `lz4` CLI both ways, and its checks of
// untrusted input.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { lz4CompressFrame, lz4Decompress, xxh32 } from '../../lib/format/lz4.js';
import { codeOf } from './error-code.js';

const LZ4 = '/usr/bin/lz4';
const cliDecompress = (b: Uint8Array): Buffer => execFileSync(LZ4, ['-dc'], { input: b, maxBuffer: 1 << 28 });
const cliCompress = (b: Uint8Array, flags: string[] = []): Buffer => execFileSync(LZ4, ['-c', ...flags], { input: b, maxBuffer: 1 << 28 });

/** Deterministic pseudo-random bytes (xorshift), so a failure can be replayed. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Rows like a column of text: many repeats at varied distances, some far beyond 64 KiB. */
function rows(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => `${i}\tcustomer#${(i * 7919) % 5000}\t${(i % 97) * 1.25}\tfuriously regular deposits ${i % 13}\n`).join(''));
}

const INPUTS: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['12 bytes (no room for a match)', Buffer.from('abababababab')],
  ['13 bytes', Buffer.from('abababababab!')],
  ['random 100 kB', noise(100_000, 7)],
  ['text rows 3 MB', rows(40_000)],
  ['one byte repeated 9 MB (three blocks, long lengths)', Buffer.alloc(9_000_000, 0x61)],
  ['random then repeated', Buffer.concat([noise(70_000, 3), Buffer.alloc(70_000), noise(70_000, 3)])],
];

describe('LZ4 frames', () => {
  it('xxh32 gives the reference values', () => {
    expect(xxh32(Buffer.alloc(0))).toBe(0x02cc5d05);
    expect(xxh32(Buffer.from('abc'))).toBe(0x32d153ff);
    // Every length path (16-byte stripes, 4-byte words, single bytes) against the CLI's own
    // checksum: lz4 -dc rejects a frame whose content checksum we computed wrong.
    for (const n of [0, 3, 4, 15, 16, 17, 31, 33, 100]) {
      const data = noise(n, n + 1);
      const f = Buffer.from(lz4CompressFrame(data));
      // Our frames carry no content checksum: add one (FLG bit 2, new header checksum) by hand.
      const end = f.length;
      f[4] = f[4]! | 0x04;
      f[14] = (xxh32(f, 0, 4, 14) >>> 8) & 0xff;
      const sum = Buffer.alloc(4);
      sum.writeUInt32LE(xxh32(data), 0);
      expect(cliDecompress(Buffer.concat([f.subarray(0, end), sum])).equals(data)).toBe(true);
    }
  });

  it.each(INPUTS)('round trip, and lz4 -dc reads our frame: %s', (_name, data) => {
    const f = lz4CompressFrame(data);
    expect(lz4Decompress(f).equals(data)).toBe(true);
    expect(cliDecompress(f).equals(data)).toBe(true);
  });

  it('compresses repetitive data and stores incompressible blocks raw', () => {
    expect(lz4CompressFrame(rows(40_000)).length).toBeLessThan(rows(40_000).length / 3);
    const r = noise(100_000, 9);
    // Header 15 bytes, one raw block (4-byte size with its high bit set), end mark.
    const f = lz4CompressFrame(r);
    expect(f.length).toBe(15 + 4 + r.length + 4);
    expect(f.readUInt32LE(15)).toBe((0x80000000 | r.length) >>> 0);
  });

  it.each([
    ['defaults (4 MiB blocks, content checksum)', []],
    ['linked 64 KiB blocks with block checksums', ['-BD', '-B4', '-BX']],
    ['content size, no content checksum, level 9', ['--content-size', '--no-frame-crc', '-9']],
  ])('reads frames lz4 writes: %s', (_name, flags) => {
    for (const data of [rows(40_000), Buffer.alloc(300_000, 1), noise(5000, 1), Buffer.alloc(0)]) {
      expect(lz4Decompress(cliCompress(data, flags as string[])).equals(data)).toBe(true);
    }
  });

  it('reads concatenated frames and skips skippable frames', () => {
    const a = rows(1000);
    const b = Buffer.from('second frame\n');
    const skippable = Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    const stream = Buffer.concat([cliCompress(a), skippable, lz4CompressFrame(b)]);
    expect(lz4Decompress(stream).equals(Buffer.concat([a, b]))).toBe(true);
    expect(cliDecompress(stream).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('refuses corrupt, truncated and oversized input with ERR_DECOMPRESS', () => {
    const data = rows(2000);
    const good = lz4CompressFrame(data);
    const withSums = cliCompress(data, ['-BX']);
    const edit = (b: Buffer, at: number, v: number) => { const c = Buffer.from(b); c[at] = v; return c; };
    const bad: [string, Uint8Array, number?][] = [
      ['not lz4', Buffer.from('plain text, not a frame')],
      ['too short', Buffer.from([4, 0x22])],
      ['header checksum', edit(good, 14, good[14]! ^ 1)],
      ['version bits', edit(good, 4, good[4]! ^ 0x80)],
      ['truncated', good.subarray(0, good.length - 10)],
      ['no end mark', good.subarray(0, good.length - 4)],
      ['declared size over the bound', good, data.length - 1],
      ['block checksum', edit(withSums, withSums.length - 10, withSums[withSums.length - 10]! ^ 0xff)],
      ['content checksum', edit(withSums, withSums.length - 1, withSums[withSums.length - 1]! ^ 1)],
      ['dictionary id', (() => { const c = edit(good, 4, good[4]! | 1); c[14] = (xxh32(c, 0, 4, 14) >>> 8) & 0xff; return c; })()],
    ];
    for (const [name, input, max] of bad) expect([name, codeOf(() => lz4Decompress(input, max))]).toEqual([name, 'ERR_DECOMPRESS']);
  });

  it('never writes outside the declared content, nor past the bound without one', () => {
    // A frame (no content size) whose only block is one literal, a match of 998 bytes at offset
    // 1, then five literals (the block format's end rule).
    const header = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0]);
    header[6] = (xxh32(header, 0, 4, 6) >>> 8) & 0xff;
    const block = Buffer.from([0x1f, 0x61, 1, 0, 255, 255, 255, 214, 0x50, ...Buffer.from('bbbbb')]);
    const size = Buffer.alloc(4);
    size.writeUInt32LE(block.length, 0);
    const frame = Buffer.concat([header, size, block, Buffer.alloc(4)]);
    const want = Buffer.concat([Buffer.alloc(999, 0x61), Buffer.from('bbbbb')]);
    expect(lz4Decompress(frame).equals(want)).toBe(true);
    expect(cliDecompress(frame).equals(want)).toBe(true);
    expect(codeOf(() => lz4Decompress(frame, 1003))).toBe('ERR_DECOMPRESS');
    // Offset pointing before the start of the data.
    const far = Buffer.from(frame);
    far[header.length + 4 + 2] = 2;
    expect(codeOf(() => lz4Decompress(far))).toBe('ERR_DECOMPRESS');
  });
});
