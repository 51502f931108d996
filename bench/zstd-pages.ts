// Where Parquet export's zstd time goes: `node --import tsx bench/zstd-pages.ts [--rows N (default
// 500000; --quick 40000)] [--reps N (default 5; --quick 1)] [--levels 1,-1,...] [--quick]`.
// A diagnostic run by hand, not a section.
//
// Exports the bench table (2 nodes, Parquet, zstd) to a directory, reads every page body back
// (the bytes the writer handed to zstd) and prints: the pages' size distribution per column;
// CPU-s per million rows over exactly those pages of @bokuweb/zstd-wasm (`emcc -Oz`, the page
// compressor before) with its one-call wrapper (malloc, copy in, ZSTD_compress with a new
// context, copy out, free) and with one reused context and heap region (ZSTD_compress_usingDict
// on a kept ZSTD_CCtx), so the per-call part shows, against lib/format/zstd.ts's WebAssembly
// compressor (@foxglove/wasm-zstd, `-O3`), at each of `--levels` (and per column at level 1:
// stored / raw bytes and CPU, what the writer's per-column codec choice weighs); the cost of one call on a
// tiny page; and, when the `zstd` CLI is on PATH, the
// native library's speed at the same levels on the same pages (`zstd -b`). Contestants
// alternate within every repetition; figures are medians of process CPU time.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { exportTables, type ExportOptions } from '../lib/index.js';
import { readParquetFooter } from '../lib/format/parquet/import.js';
import { decodeChunk } from '../lib/format/parquet/reader.js';
import { pageDecompressor } from '../lib/format/parquet/codecs.js';
import { loadWasmZstd } from '../lib/format/zstd.js';
import { fillSources, sectionFlags, staticTopology, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { rows: ROWS, reps: REPS, values: flags } = sectionFlags({
  usage: 'node --import tsx bench/zstd-pages.ts [--rows N (default 500000; --quick 40000)] [--reps N (default 5; --quick 1)] [--levels 1,-1,... (default 1)] [--quick]',
  rows: { full: 500_000, quick: 40_000 },
  reps: { full: 5, quick: 1 },
  options: { levels: { type: 'string' } },
});
const LEVELS = String(flags.levels ?? '1').split(',').map(Number);

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const cpuOf = (f: () => void): number => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
};

/** Every page body of every Parquet object under `dir`, with its column's name. */
async function pagesOf(dir: string): Promise<{ column: string; body: Uint8Array }[]> {
  const out: { column: string; body: Uint8Array }[] = [];
  const files: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) if (e.isFile() && e.name.includes('_segment.')) files.push(path.join(e.parentPath, e.name));
  for (const f of files.sort()) {
    const buf = await readFile(f);
    const meta = await readParquetFooter({ size: buf.length, range: async (a, b) => buf.subarray(a, b) });
    for (const g of meta.groups) {
      for (const [i, c] of g.chunks.entries()) {
        const inner = await pageDecompressor(c.codec);
        const leaf = meta.leaves[i]!;
        decodeChunk(leaf, c, buf, 0, (u8, size) => {
          const body = inner(u8, size);
          out.push({ column: leaf.name, body: body.slice() });
          return body;
        });
      }
    }
  }
  return out;
}

/** @bokuweb/zstd-wasm's module, the decoder of lib/format/zstd.ts (the same instance: a second one corrupts the first's heap). */
interface Emscripten {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(p: number): void;
  _ZSTD_compressBound(n: number): number;
  _ZSTD_isError(n: number): number;
  _ZSTD_createCCtx(): number;
  _ZSTD_compress_usingDict(cctx: number, dst: number, cap: number, src: number, n: number, dict: number, dictN: number, level: number): number;
}

/** One kept context and heap region, grown to the largest page: the per-call costs removed. */
function reusedContext(m: Emscripten): (u8: Uint8Array, level: number) => Uint8Array {
  const cctx = m._ZSTD_createCCtx();
  let region = 0;
  let cap = 0;
  return (u8, level) => {
    const bound = m._ZSTD_compressBound(u8.length);
    if (u8.length + bound > cap) {
      if (region) m._free(region);
      cap = u8.length + bound;
      region = m._malloc(cap);
    }
    m.HEAPU8.set(u8, region);
    const n = m._ZSTD_compress_usingDict(cctx, region + u8.length, bound, region, u8.length, 0, 0, level);
    if (m._ZSTD_isError(n)) throw new Error(`ZSTD_compress_usingDict failed: ${n}`);
    return m.HEAPU8.slice(region + u8.length, region + u8.length + n);
  };
}

/** `zstd -b` at `level` (`--fast=N` for negative ones) over the page files: compression MB/s, or undefined without the CLI. */
function nativeSpeed(files: string[], level: number): number | undefined {
  const r = spawnSync('zstd', [...(level < 0 ? [`--fast=${-level}`, '-b'] : [`-b${level}`]), '-i3', ...files], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  const all = [...(r.stdout + r.stderr).matchAll(/\(x[\d.]+\),\s*([\d.]+) MB\/s/g)];
  return all.length ? Number(all[all.length - 1]![1]) : undefined;
}

await withBenchServers(['src1', 'src2'], 'sf-bench-zpages-', async (servers, dir) => {
  const total = await fillSources(servers, ROWS, { freeze: true });
  const opts = { topology: staticTopology(servers), tables: [TABLE], format: { kind: 'parquet', compression: 'zstd' }, to: path.join(dir, 'out') } as ExportOptions;
  await exportTables(opts);
  const pages = await pagesOf(path.join(dir, 'out'));
  const bytes = pages.reduce((a, p) => a + p.body.length, 0);
  const mrow = total / 1e6;
  console.log(`zstd pages: ${total} rows of ${TABLE}, 2 nodes, Parquet zstd; ${pages.length} pages, ${(bytes / 1e6).toFixed(1)} MB handed to zstd (${(bytes / total).toFixed(0)} bytes per row, ${(pages.length / mrow).toFixed(0)} calls per million rows); node ${process.version}`);
  const byCol = new Map<string, number[]>();
  for (const p of pages) byCol.set(p.column, [...(byCol.get(p.column) ?? []), p.body.length]);
  const w = await loadWasmZstd();
  // Each column's zstd gain (stored / raw page bytes at level 1): what the writer's per-column
  // codec choice (lib/format/parquet/encode.ts, ChunkCodecs) decides on.
  const stored = new Map<string, number>();
  const spent = new Map<string, number[]>();
  for (const p of pages) w.compress(p.body, 1); // warm: WebAssembly tiers up
  for (let r = 0; r < REPS; r++) {
    for (const p of pages) {
      let n = 0;
      const s = cpuOf(() => { n = w.compress(p.body, 1).length; });
      if (r === 0) stored.set(p.column, (stored.get(p.column) ?? 0) + n);
      const t = spent.get(p.column) ?? Array<number>(REPS).fill(0);
      t[r]! += s;
      spent.set(p.column, t);
    }
  }
  console.log('  page sizes per column (bytes: min / median / max, share of all bytes, zstd-1 stored / raw, zstd-1 CPU-s per million rows):');
  for (const [c, v] of byCol) {
    const raw = v.reduce((a, b) => a + b, 0);
    console.log(`    ${c.padEnd(8)} ${String(Math.min(...v)).padStart(9)} / ${String(median(v)).padStart(9)} / ${String(Math.max(...v)).padStart(9)}  ${(100 * raw / bytes).toFixed(1)}%  ${(stored.get(c)! / raw).toFixed(3)}  ${(median(spent.get(c)!) / (total / 1e6)).toFixed(3)}`);
  }

  const req = createRequire(import.meta.url);
  const pkg = req.resolve('@bokuweb/zstd-wasm');
  const simple = (req(pkg) as { compress(u8: Uint8Array, level: number): Uint8Array }).compress;
  const m = (req(path.join(path.dirname(pkg), 'module.js')) as { Module: Emscripten }).Module;
  const contestants: [string, (u8: Uint8Array, level: number) => Uint8Array][] = [
    ['@bokuweb/zstd-wasm (-Oz), one call per page (new context, malloc, copies)', simple],
    ['@bokuweb/zstd-wasm (-Oz), one reused context and heap region', reusedContext(m)],
    ['lib/format/zstd.ts WebAssembly compressor (@foxglove/wasm-zstd, -O3)', (u8, level) => w.compress(u8, level)],
  ];
  for (const level of LEVELS) {
    const cpu = contestants.map(() => [] as number[]);
    const out = contestants.map(() => 0);
    for (const [, f] of contestants) for (const p of pages) f(p.body, level); // warm: WebAssembly tiers up
    for (let r = 0; r < REPS; r++) {
      const order = r % 2 === 0 ? [...contestants.keys()] : [...contestants.keys()].reverse();
      for (const k of order) {
        let n = 0;
        cpu[k]!.push(cpuOf(() => { for (const p of pages) n += contestants[k]![1](p.body, level).length; }));
        out[k] = n;
      }
    }
    console.log(`  level ${level}, CPU-s per million rows (median of ${REPS}; MB/s of page bytes; stored bytes):`);
    for (const [k, [name]] of contestants.entries()) {
      const s = median(cpu[k]!);
      console.log(`    ${name.padEnd(72)} ${(s / mrow).toFixed(3)}  ${(bytes / 1e6 / s).toFixed(0).padStart(5)} MB/s  ${(out[k]! / 1e6).toFixed(2)} MB (x${(bytes / out[k]!).toFixed(2)})`);
    }
  }
  // The per-call cost alone: one tiny page compressed many times.
  const tiny = pages.reduce((a, p) => (p.body.length < a.body.length ? p : a)).body;
  for (const [name, f] of contestants.slice(0, 2)) {
    const n = 20_000;
    const s = cpuOf(() => { for (let i = 0; i < n; i++) f(tiny, 1); });
    console.log(`  one call on a ${tiny.length}-byte page, ${name}: ${(s / n * 1e6).toFixed(1)} µs (× ${(pages.length / mrow).toFixed(0)} calls = ${(s / n * pages.length / mrow).toFixed(4)} CPU-s/Mrow)`);
  }
  const pdir = await mkdtemp(path.join(os.tmpdir(), 'sf-zpages-'));
  try {
    const files = await Promise.all(pages.map(async (p, i) => {
      const f = path.join(pdir, String(i).padStart(5, '0'));
      await writeFile(f, p.body);
      return f;
    }));
    for (const level of LEVELS) {
      const mbs = nativeSpeed(files, level);
      console.log(mbs === undefined ? `  native zstd CLI at level ${level}: not on PATH or failed, skipped` : `  native zstd CLI (zstd ${level < 0 ? `--fast=${-level} -b` : `-b${level}`}, same pages): ${mbs.toFixed(0)} MB/s = ${(bytes / 1e6 / mbs / mrow).toFixed(3)} CPU-s per million rows`);
    }
  } finally {
    await rm(pdir, { recursive: true, force: true });
  }
});
