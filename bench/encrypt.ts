// Client-side encryption cost: `npm run bench:encrypt -- [--rows N] [--reps N] [--quick]`.
// One source server, one table; in one run, exports to a directory alternate between plain and
// `encrypt: { keyFile }` (which goes first alternates too). Prints rows/s and this process's CPU
// seconds (process.cpuUsage: the client's share; the server's is the same for both) per variant,
// medians, and encrypted / plain ratios. Wall time is noisy on a shared machine: prefer the CPU.
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportTables, type ExportOptions } from '../lib/index.js';
import { fillSources, runSection, sectionFlags, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { rows, reps } = sectionFlags({
  usage: 'npm run bench:encrypt -- [--rows N (default 1000000; --quick 100000)] [--reps N (default 5; --quick 2)] [--quick]',
  rows: { full: 1_000_000, quick: 100_000 },
  reps: { full: 5, quick: 2 },
});

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  await withBenchServers(['encrypt-src'], 'sf-bench-encrypt-', async (servers, dir) => {
    const src = servers[0]!;
    await fillSources([src], rows);
    const keyFile = path.join(dir, 'key');
    await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    const variants: Record<'plain' | 'encrypted', Partial<ExportOptions>> = { plain: {}, encrypted: { encrypt: { keyFile } } };
    const res: Record<string, { rate: number[]; cpu: number[]; bytes: number }> = { plain: { rate: [], cpu: [], bytes: 0 }, encrypted: { rate: [], cpu: [], bytes: 0 } };
    // One warm-up of each (module loading, the server's cache), not counted.
    for (const [k, v] of Object.entries(variants)) await exportTables({ source: src.url(), tables: [TABLE], to: path.join(dir, `warm-${k}`), threads: false, ...v });
    for (let r = 0; r < reps; r++) {
      const order = (r % 2 === 0 ? ['plain', 'encrypted'] : ['encrypted', 'plain']) as ('plain' | 'encrypted')[];
      for (const k of order) {
        const to = path.join(dir, `${k}-${r}`);
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const out = await exportTables({ source: src.url(), tables: [TABLE], to, threads: false, ...variants[k] });
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        const c = process.cpuUsage(c0);
        res[k]!.rate.push(rows / s);
        res[k]!.cpu.push((c.user + c.system) / 1e6);
        res[k]!.bytes = out.manifest.objects.reduce((a, o) => a + o.bytes, 0);
        await rm(to, { recursive: true, force: true });
      }
    }
    const p = res.plain!;
    const e = res.encrypted!;
    process.stdout.write(`encrypt bench: ${rows} rows, one node, to a directory, ${reps} alternating run(s) each, medians\n`);
    for (const [k, v] of Object.entries(res)) {
      process.stdout.write(`  ${k.padEnd(10)} ${Math.round(median(v.rate)).toString().padStart(9)} rows/s  client CPU ${median(v.cpu).toFixed(2)} s  stored ${(v.bytes / 1e6).toFixed(1)} MB  (rows/s runs: ${v.rate.map((x) => Math.round(x)).join(', ')})\n`);
    }
    process.stdout.write(`  encrypted / plain: rows/s ${(median(e.rate) / median(p.rate)).toFixed(2)}, client CPU ${(median(e.cpu) / median(p.cpu)).toFixed(2)}, stored bytes ${(e.bytes / p.bytes).toFixed(4)}\n`);
  });
}

runSection(main);
