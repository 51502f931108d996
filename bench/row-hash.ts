/**
 * Cost of the export's row checksum (lib/format/row-hash.ts) on the client, in CPU seconds
 * per GB of COPY rows, on one thread:
 *
 *   node --import tsx bench/row-hash.ts        (BENCH_GB=1 by default)
 *
 * Rows are synthetic text lines, in ~64 KiB chunks as copyOut yields them, with three
 * row-length mixes: the benchmark table's (~310 bytes per row, ~3.2 M rows per GB), short
 * rows (~60 bytes: per-row cost dominates) and long rows (~4 KiB). "hot" reuses 2 MiB of
 * chunks, as in the exporter where copyOut has just written each chunk (it is in cache);
 * "cold" streams 256 MiB of distinct chunks from memory. Prints the best of five runs.
 */
import { RowHasher } from '../lib/format/row-hash.js';
import type { RowChunk } from '../lib/pg/copy-out.js';

const GB = Number(process.env.BENCH_GB ?? 1);
const CHUNK = 64 * 1024;

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

function measure(label: string, set: RowChunk[], target: number): void {
  const setBytes = set.reduce((a, c) => a + c.data.length, 0);
  const setRows = set.reduce((a, c) => a + c.rowEnds.length, 0);
  const reps = Math.max(1, Math.round(target / setBytes));
  let best = Infinity;
  let sum = '';
  for (let run = 0; run < 5; run++) {
    const h = new RowHasher();
    const c0 = process.cpuUsage();
    for (let r = 0; r < reps; r++) for (const c of set) h.update(c);
    const c1 = process.cpuUsage(c0);
    best = Math.min(best, (c1.user + c1.system) / 1e6);
    sum = h.result().sum;
  }
  const gb = (setBytes * reps) / 1e9;
  const rowsPerGB = setRows / setBytes * 1e9;
  process.stdout.write(
    `${label.padEnd(34)} ${(best / gb).toFixed(3)} CPU-s/GB  ${(gb / best * 1000).toFixed(0).padStart(5)} MB/s  ` +
      `${(rowsPerGB / 1e6).toFixed(2)} M rows/GB  ${(best / (setRows * reps) * 1e9).toFixed(0)} ns/row  (sum ${sum.slice(0, 6)}…)\n`,
  );
}

const target = GB * 1e9;
for (const [name, min, max] of [['bench table (20–600 B)', 20, 600], ['short rows (20–100 B)', 20, 100], ['long rows (2–6 KiB)', 2048, 6144]] as const) {
  measure(`${name}, hot`, chunks(2 * 1024 * 1024, min, max), target);
}
measure('bench table (20–600 B), cold', chunks(256 * 1024 * 1024, 20, 600), target);
