// Parquet benchmarks: `node --import tsx bench/parquet.ts [--rows N] [--reps N] [--quick]`.
// One source node and one destination node, the bench table (bench/lib/data.ts). Measures, in
// one run and alternating the contestants each repetition: export rows/s and client CPU per
// million rows for TEXT, Arrow and Parquet (zstd, snappy, none) to a directory; bytes written
// per format and codec; import rows/s of TEXT, Arrow and Parquet objects; and loading the same
// Parquet objects through COPY BINARY against COPY TEXT. Prints the columnar/TEXT ratios.
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { exportTables, importTables } from '../lib/index.js';
import { arrowCopyFromSQL } from '../lib/format/arrow/api.js';
import { openParquetObject } from '../lib/format/parquet/import.js';
import type { BenchServer } from './lib/cluster.js';
import { fillSources, runSection, sectionFlags, staticTopology, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { rows, reps } = sectionFlags({
  usage: 'node --import tsx bench/parquet.ts [--rows N (default 1000000; --quick 30000)] [--reps N (default 3; --quick 1)] [--quick]',
  rows: { full: 1_000_000, quick: 30_000 },
  reps: { full: 3, quick: 1 },
});

const topo = (s: BenchServer) => staticTopology([s]);

/** Wall seconds and client CPU seconds (this process: user + system) of one call. */
async function measured(f: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c = process.cpuUsage();
  const t = process.hrtime.bigint();
  await f();
  const d = process.cpuUsage(c);
  return { wall: Number(process.hrtime.bigint() - t) / 1e9, cpu: (d.user + d.system) / 1e6 };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  await withBenchServers(['pq-src', 'pq-dst'], 'sf-bench-parquet-', async (servers, dir) => {
    const [src, dst] = servers as [BenchServer, BenchServer];
    await fillSources([src], rows);
    const s = topo(src);
    const d = topo(dst);
    const exp: Record<string, { rps: number[]; cpu: number[]; bytes: number }> = {};
    const imp: Record<string, { rps: number[]; cpu: number[] }> = {};
    const formats = [
      ['TEXT', { kind: 'text' }],
      ['Arrow', { kind: 'arrow' }],
      ['Parquet zstd', { kind: 'parquet', compression: 'zstd' }],
      ['Parquet snappy', { kind: 'parquet', compression: 'snappy' }],
      ['Parquet none', { kind: 'parquet', compression: 'none' }],
    ] as const;
    for (let r = 0; r < reps; r++) {
      // Alternate the order each repetition so that no contestant always runs first.
      const order = r % 2 === 0 ? formats : [...formats].reverse();
      for (const [name, format] of order) {
        const to = path.join(dir, `${name.replace(/ /g, '-')}-${r}`);
        process.stderr.write(`parquet bench: export ${name} (rep ${r + 1}/${reps})\n`);
        let bytes = 0;
        const m = await measured(async () => {
          const res = await exportTables({ topology: s, tables: [TABLE], to, format: format as never, threads: false });
          bytes = res.manifest.objects.reduce((a, o) => a + o.bytes, 0);
        });
        const e = (exp[name] ??= { rps: [], cpu: [], bytes });
        e.rps.push(rows / m.wall);
        e.cpu.push(m.cpu / rows * 1e6);
        if (name === 'TEXT' || name === 'Arrow' || name === 'Parquet zstd') {
          process.stderr.write(`parquet bench: import ${name} (rep ${r + 1}/${reps})\n`);
          const mi = await measured(() => importTables({ from: to, topology: d, truncate: true }));
          const i = (imp[name] ??= { rps: [], cpu: [] });
          i.rps.push(rows / mi.wall);
          i.cpu.push(mi.cpu / rows * 1e6);
        }
        if (name === 'Parquet zstd') {
          // The same objects loaded through COPY BINARY and through COPY TEXT (alternated).
          const objs = (await readdir(to)).filter((k) => k.includes('_segment.'));
          const c = new pg.Client(dst.url());
          await c.connect();
          try {
            const load = async (fmt: 'binary' | 'text') => {
              await c.query(`TRUNCATE ${TABLE}`);
              for (const k of objs) {
                const p = path.join(to, k);
                const size = (await stat(p)).size;
                const range = async (start: number, end: number) => {
                  const parts: Buffer[] = [];
                  for await (const b of createReadStream(p, { start, end: end - 1 })) parts.push(b as Buffer);
                  return Buffer.concat(parts);
                };
                const o = await openParquetObject({ size, range, stream: () => createReadStream(p, { highWaterMark: 1 << 20 }) }, { format: fmt });
                await pipeline(Readable.from(o.chunks()), c.query(copyFrom(arrowCopyFromSQL(TABLE, { columns: o.columns, copyOptions: o.copyOptions }))));
              }
            };
            for (const fmt of (r % 2 === 0 ? ['binary', 'text'] : ['text', 'binary']) as ('binary' | 'text')[]) {
              process.stderr.write(`parquet bench: load Parquet objects through COPY ${fmt} (rep ${r + 1}/${reps})\n`);
              const ml = await measured(() => load(fmt));
              const i = (imp[`Parquet zstd via COPY ${fmt.toUpperCase()}`] ??= { rps: [], cpu: [] });
              i.rps.push(rows / ml.wall);
              i.cpu.push(ml.cpu / rows * 1e6);
            }
          } finally {
            await c.end();
          }
        }
        await rm(to, { recursive: true, force: true });
      }
    }
    const w = (x: number) => Math.round(x).toString().padStart(9);
    process.stdout.write(`parquet bench: ${rows} rows of the bench table, 1 node → directory → 1 node, ${reps} repetition(s), medians; CPU = this process's user+system\n`);
    process.stdout.write('  export              rows/s   client CPU-s per M rows   bytes written\n');
    for (const [k, v] of Object.entries(exp)) {
      process.stdout.write(`  ${k.padEnd(16)} ${w(median(v.rps))}   ${median(v.cpu).toFixed(2).padStart(10)}                ${String(v.bytes).padStart(12)}\n`);
    }
    process.stdout.write('  import              rows/s   client CPU-s per M rows\n');
    for (const [k, v] of Object.entries(imp)) {
      process.stdout.write(`  ${k.padEnd(16)} ${w(median(v.rps))}   ${median(v.cpu).toFixed(2).padStart(10)}\n`);
    }
    const ratio = (a: number[] | undefined, b: number[] | undefined) => (a && b ? (median(a) / median(b)).toFixed(2) : 'n/a');
    process.stdout.write(`  ratios (rows/s against TEXT): export Arrow ${ratio(exp.Arrow?.rps, exp.TEXT?.rps)}, export Parquet zstd ${ratio(exp['Parquet zstd']?.rps, exp.TEXT?.rps)}, ` +
      `import Arrow ${ratio(imp.Arrow?.rps, imp.TEXT?.rps)}, import Parquet zstd ${ratio(imp['Parquet zstd']?.rps, imp.TEXT?.rps)}\n`);
  });
}

runSection(main);
