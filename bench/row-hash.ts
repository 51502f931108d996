/**
 * Cost of the export's row checksum (lib/format/row-hash.ts) on the client, in CPU seconds
 * per GB of COPY rows, on one thread:
 *
 *   node --import tsx bench/row-hash.ts [--gb N (default 0.5)] [--runs N (default 7)]
 *     [--base MODULE] [--quick]
 *
 * Rows are synthetic text lines, in ~64 KiB chunks as copyOut yields them, with three
 * row-length mixes: the benchmark table's (~310 bytes per row, ~3.2 M rows per GB), short
 * rows (~60 bytes: per-row cost dominates) and long rows (~4 KiB). "hot" reuses 2 MiB of
 * chunks, as in the exporter where copyOut has just written each chunk (it is in cache);
 * "cold" streams 256 MiB of distinct chunks from memory. Each figure is the median of `--runs`
 * runs of `--gb` GB. `--base MODULE`: another build's row-hash module (for example main's
 * `dist/format/row-hash.js`) measured in the same process, the two alternated run by run (ABBA),
 * so load on the machine falls on both; its sums must equal this one's, or the script fails.
 * This build's two engines are measured each time: `js` (RowHasher's default) and `wasm` (its
 * WebAssembly loop, lib/format/row-hash.wat); ratios are to `js`'s median.
 * `--quick`: 0.02 GB, 3 runs, 16 MiB cold set (checks that the script runs).
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { RowHasher } from '../lib/format/row-hash.js';
import type { RowChunk } from '../lib/pg/copy-out.js';

const { values: flags } = parseArgs({ options: { gb: { type: 'string' }, runs: { type: 'string' }, base: { type: 'string' }, quick: { type: 'boolean' } } });
const GB = Number(flags.gb ?? (flags.quick ? 0.02 : 0.5));
const RUNS = Number(flags.runs ?? (flags.quick ? 3 : 7));
const COLD = (flags.quick ? 16 : 256) * 1024 * 1024;
const CHUNK = 64 * 1024;

type Hasher = { update(rc: RowChunk): void; result(): { sum: string } };
/** This build's WebAssembly engine (`RowHasher`'s `engine: 'wasm'`). */
class WasmRowHasher extends RowHasher {
  constructor() {
    super(false, 'wasm');
  }
}
const builds: [string, new () => Hasher][] = [['js', RowHasher], ['wasm', WasmRowHasher]];
if (flags.base) {
  const base = (await import(pathToFileURL(path.resolve(flags.base)).href)) as { RowHasher: new () => Hasher };
  builds.push(['base', base.RowHasher]);
}

function chunks(total: number, minLen: number, maxLen: number): RowChunk[] {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const out: RowChunk[] = [];
  let buf = Buffer.alloc(CHUNK + maxLen);
  let w = 0;
  let ends: number[] = [];
  let n = 0;
  while (n < total) {
    const len = minLen + Math.floor(rnd() * (maxLen - minLen + 1));
    if (w + len > CHUNK && ends.length > 0) {
      out.push({ data: buf.subarray(0, w), rowEnds: Uint32Array.from(ends) });
      buf = Buffer.alloc(CHUNK + maxLen);
      w = 0;
      ends = [];
    }
    for (let i = 0; i < len - 1; i++) buf[w + i] = 32 + Math.floor(rnd() * 95);
    buf[w + len - 1] = 0x0a;
    w += len;
    ends.push(w);
    n += len;
  }
  if (ends.length > 0) out.push({ data: buf.subarray(0, w), rowEnds: Uint32Array.from(ends) });
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function measure(label: string, set: RowChunk[]): void {
  const setBytes = set.reduce((a, c) => a + c.data.length, 0);
  const setRows = set.reduce((a, c) => a + c.rowEnds.length, 0);
  const reps = Math.max(1, Math.round((GB * 1e9) / setBytes));
  const cpu = builds.map(() => [] as number[]);
  const sums = builds.map(() => '');
  for (let run = 0; run < RUNS; run++) {
    const order = run % 2 === 0 ? [...builds.keys()] : [...builds.keys()].reverse();
    for (const k of order) {
      const h = new builds[k]![1]();
      const c0 = process.cpuUsage();
      for (let r = 0; r < reps; r++) for (const c of set) h.update(c);
      const c1 = process.cpuUsage(c0);
      cpu[k]!.push((c1.user + c1.system) / 1e6);
      sums[k] = h.result().sum;
    }
  }
  if (sums.some((s) => s !== sums[0])) throw new Error(`${label}: the builds' sums differ: ${sums.join(' ')}`);
  const gb = (setBytes * reps) / 1e9;
  const line = builds.map(([name], k) => {
    const s = median(cpu[k]!);
    return `${name} ${(s / gb).toFixed(3)} CPU-s/GB ${(gb / s * 1000).toFixed(0).padStart(5)} MB/s ${(s / (setRows * reps) * 1e9).toFixed(0).padStart(4)} ns/row`;
  });
  const ratio = builds.slice(1).map(([name], k) => `  ${name}/js ${(median(cpu[k + 1]!) / median(cpu[0]!)).toFixed(3)}`).join('');
  process.stdout.write(`${label.padEnd(30)} ${(setRows / setBytes).toFixed(4).slice(1)} rows/B  ${line.join('  |  ')}${ratio}  (sum ${sums[0]!.slice(0, 6)}…)\n`);
}

process.stdout.write(`row hash: ${RUNS} runs of ${GB} GB each, medians, ${builds.map(([n]) => n).join(', ')} alternated${flags.base ? ` (base: ${flags.base})` : ''}\n`);
for (const [name, min, max] of [['bench table (20–600 B)', 20, 600], ['short rows (20–100 B)', 20, 100], ['long rows (2–6 KiB)', 2048, 6144]] as const) {
  measure(`${name}, hot`, chunks(2 * 1024 * 1024, min, max));
}
measure('bench table (20–600 B), cold', chunks(COLD, 20, 600));
