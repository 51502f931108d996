// The two zstd implementations of lib/format/zstd.ts, each forced in turn: Node's built-in zlib
// zstd (Node ≥ 22.15 / 23.8; skipped with a message on older Node) and the WebAssembly build
// (@foxglove/wasm-zstd compresses, @bokuweb/zstd-wasm decodes).
// Frames of one decode with the other and with the zstd CLI, and both hold the same bounds.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadWasmZstd, parseFrameHeader, zstdFromZlib, type ZstdCodec } from '../../lib/format/zstd.js';
import { codeOf } from './error-code.js';

const builtIn = zstdFromZlib(zlib);
const NO_BUILT_IN = `Node ${process.version} has no zlib.zstdCompressSync (it came in Node 22.15 / 23.8): the built-in zstd half of this file is skipped; the WebAssembly half runs`;
if (!builtIn) console.warn(NO_BUILT_IN);

const rows = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => `${i}\tcustomer ${(i * 7919) % 1000}\tsome text ${i % 37}\n`).join(''));

/** Both implementations, or only the WebAssembly one where Node has none. */
async function codecs(): Promise<ZstdCodec[]> {
  return [await loadWasmZstd(), ...(builtIn ? [builtIn] : [])];
}

describe('zstd implementations', () => {
  it('zstdFromZlib finds none in a zlib without zstd, and the WebAssembly build is one instance', async () => {
    expect(zstdFromZlib({ constants: {} })).toBeUndefined();
    expect(await loadWasmZstd()).toBe(await loadWasmZstd());
    expect((await loadWasmZstd()).backend).toBe('wasm');
  });

  it('the WebAssembly build: frames record their content size, zstd -dc reads them, and it decodes the CLI\'s frames', async () => {
    const w = await loadWasmZstd();
    const data = rows(20_000);
    const f = w.compress(data);
    expect(parseFrameHeader(f, 0)?.contentSize).toBe(data.length);
    expect(execFileSync('/usr/bin/zstd', ['-dc'], { input: f }).equals(data)).toBe(true);
    expect(w.decompressFrame(execFileSync('/usr/bin/zstd', ['-q', '-c'], { input: data })).equals(data)).toBe(true);
  });

  it('the WebAssembly compressor (@foxglove/wasm-zstd) writes frames its decoder (@bokuweb/zstd-wasm) and zstd -d read, at fast, default and high levels, empty input and a multi-block page', async () => {
    const w = await loadWasmZstd();
    const inputs = [Buffer.alloc(0), Buffer.from('x'), rows(2000), Buffer.concat([rows(30_000), randomBytes(300_000)])];
    for (const level of [-5, -1, 1, 3, 19]) {
      // Level 19 takes seconds on a megabyte: small inputs only.
      for (const data of level === 19 ? inputs.slice(0, 3) : inputs) {
        const f = w.compress(data, level);
        expect([level, data.length, parseFrameHeader(f, 0)?.contentSize]).toEqual([level, data.length, data.length]);
        expect(w.decompressFrame(f).equals(data)).toBe(true);
        expect(execFileSync('/usr/bin/zstd', ['-dc'], { input: f, maxBuffer: 64 << 20 }).equals(data)).toBe(true);
      }
    }
    // Levels do what they say: faster levels store more.
    const some = rows(5000);
    expect(w.compress(some, -5).length).toBeGreaterThan(w.compress(some, 1).length);
    expect(w.compress(some, 1).length).toBeGreaterThan(w.compress(some, 19).length);
  });

  it.skipIf(!builtIn)('Node\'s built-in zstd and the WebAssembly build read each other\'s frames', async () => {
    const [w, n] = await codecs();
    const data = rows(20_000);
    for (const [from, to] of [[w!, n!], [n!, w!]]) {
      const f = from.compress(data, 5);
      expect(parseFrameHeader(f, 0)?.contentSize).toBe(data.length);
      expect(to.decompressFrame(f).equals(data)).toBe(true);
      expect(execFileSync('/usr/bin/zstd', ['-dc'], { input: f }).equals(data)).toBe(true);
    }
    expect(n!.backend).toBe('node-zlib');
  });

  it.skipIf(!builtIn)('Node\'s built-in zstd decodes a frame without a content size (zstd reading a pipe)', () => {
    const data = rows(5000);
    const piped = execFileSync('sh', ['-c', '/usr/bin/zstd -q -c'], { input: data });
    expect(parseFrameHeader(piped, 0)?.contentSize).toBeUndefined();
    expect(builtIn!.decompressFrame(piped).equals(data)).toBe(true);
  });

  it('every implementation refuses a frame over the bound, a corrupt and a truncated frame with ERR_DECOMPRESS', async () => {
    const data = rows(5000);
    for (const c of await codecs()) {
      const f = c.compress(data);
      expect([c.backend, codeOf(() => c.decompressFrame(f, data.length - 1))]).toEqual([c.backend, 'ERR_DECOMPRESS']);
      const bad = Buffer.from(f);
      for (let i = 20; i < bad.length; i += 97) bad[i]! ^= 0x5a;
      expect([c.backend, codeOf(() => c.decompressFrame(bad))]).toEqual([c.backend, 'ERR_DECOMPRESS']);
      expect([c.backend, codeOf(() => c.decompressFrame(f.subarray(0, f.length - 3)))]).toEqual([c.backend, 'ERR_DECOMPRESS']);
    }
  });
});
