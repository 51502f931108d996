// Compressed objects: `npm run bench:compress -- [--rows N] [--reps N] [--quick]`.
// One source node to a directory, one table, in one run with the contestants alternated
// (round-robin per repetition): TEXT uncompressed against TEXT gzip and zstd, COPY BINARY zstd,
// and Arrow with no, zstd and lz4 bodies. Per contestant: export rows/s (wall), client CPU-s
// (process.cpuUsage: exporters on this thread), bytes stored and their ratio to uncompressed
// TEXT, and the import of the same objects into a second node (rows/s).
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { exportTables, importTables } from '../lib/index.js';
import type { ExportOptions } from '../lib/export/export.js';
import type { BenchServer } from './lib/cluster.js';
import { fillSources, runSection, sectionFlags, staticTopology, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { rows, reps } = sectionFlags({
  usage: 'npm run bench:compress -- [--rows N (default 2000000; --quick 50000)] [--reps N (default 3; --quick 1)] [--quick]',
  rows: { full: 2_000_000, quick: 50_000 },
  reps: { full: 3, quick: 1 },
});

type Contestant = { name: string; opts: Partial<ExportOptions> };
const CONTESTANTS: Contestant[] = [
  { name: 'TEXT', opts: {} },
  { name: 'TEXT gzip', opts: { compress: 'gzip' } },
  { name: 'TEXT zstd', opts: { compress: 'zstd' } },
  { name: 'BINARY zstd', opts: { format: 'binary', compress: 'zstd' } },
  { name: 'Arrow', opts: { format: 'arrow' } },
  { name: 'Arrow zstd bodies', opts: { format: 'arrow', arrowCompression: 'zstd' } },
  { name: 'Arrow lz4 bodies', opts: { format: 'arrow', arrowCompression: 'lz4' } },
];

const topo = (s: BenchServer) => staticTopology([s]);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  await withBenchServers(['src1', 'dst1'], 'sf-bench-compress-', async ([src, dst], dir) => {
    await fillSources([src!], rows);
    const res = new Map<string, { exp: number[]; cpu: number[]; imp: number[]; bytes: number }>();
    for (let r = 0; r < reps; r++) {
      // Round-robin, starting one further each repetition, so no contestant always goes first.
      for (let k = 0; k < CONTESTANTS.length; k++) {
        const c = CONTESTANTS[(k + r) % CONTESTANTS.length]!;
        const to = path.join(dir, `${c.name.replace(/\W+/g, '-')}-${r}`);
        process.stderr.write(`compress bench: ${c.name}, repetition ${r + 1}/${reps}\n`);
        const cpu0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const e = await exportTables({ topology: topo(src!), tables: [TABLE], to, threads: false, ...c.opts } as ExportOptions);
        const wall = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        const t1 = process.hrtime.bigint();
        await importTables({ from: to, topology: topo(dst!), truncate: true });
        const iwall = Number(process.hrtime.bigint() - t1) / 1e9;
        const x = res.get(c.name) ?? { exp: [], cpu: [], imp: [], bytes: 0 };
        x.exp.push(e.manifest.tables[0]!.rows / wall);
        x.cpu.push((cpu.user + cpu.system) / 1e6);
        x.imp.push(e.manifest.tables[0]!.rows / iwall);
        x.bytes = e.manifest.objects.reduce((a, o) => a + o.bytes, 0);
        res.set(c.name, x);
        await rm(to, { recursive: true, force: true });
      }
    }
    const base = res.get('TEXT')!;
    process.stdout.write(`compress bench: ${rows} rows, 1 node to a directory, ${reps} repetition(s) alternated, medians\n`);
    process.stdout.write(`  ${'contestant'.padEnd(18)} ${'export rows/s'.padStart(13)} ${'vs TEXT'.padStart(8)} ${'client CPU-s'.padStart(12)} ${'bytes stored'.padStart(13)} ${'vs TEXT'.padStart(8)} ${'import rows/s'.padStart(13)}\n`);
    for (const c of CONTESTANTS) {
      const x = res.get(c.name)!;
      process.stdout.write(`  ${c.name.padEnd(18)} ${Math.round(median(x.exp)).toString().padStart(13)} ${(median(x.exp) / median(base.exp)).toFixed(2).padStart(7)}x ${median(x.cpu).toFixed(2).padStart(12)} ${x.bytes.toString().padStart(13)} ${(x.bytes / base.bytes).toFixed(3).padStart(7)}x ${Math.round(median(x.imp)).toString().padStart(13)}\n`);
    }
  });
}

runSection(main);
