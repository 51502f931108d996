// Object checksum cost (issues 16/17): `node --import tsx bench/object-checksum.ts [--rows N] [--reps N] [--quick]`.
// 1. The digests alone: 256 MiB hashed in 1 MiB pieces by lib/manifest/digest.ts's ObjectHasher,
//    CRC-32 and SHA-256 alternated, this process's CPU seconds per GB.
// 2. TEXT exports of one table on one server to a directory, `objectChecksum` 'crc32' and
//    'sha256' alternated in one run (which goes first alternates too), threads off: this
//    process's CPU seconds (process.cpuUsage: the client's share; the server's is the same for
//    both) per GB stored, medians, and the difference per GB (what the digest costs in an export).
// Wall time is noisy on a shared machine: compare the CPU seconds.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { exportTables } from '../lib/index.js';
import { ObjectHasher, type ObjectChecksum } from '../lib/manifest/digest.js';
import { fillSources, runSection, sectionFlags, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { rows, reps } = sectionFlags({
  usage: 'node --import tsx bench/object-checksum.ts [--rows N (default 1000000; --quick 400000)] [--reps N (default 5; --quick 3)] [--quick]',
  rows: { full: 1_000_000, quick: 400_000 },
  reps: { full: 5, quick: 3 },
});

const ALGORITHMS: ObjectChecksum[] = ['crc32', 'sha256'];
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const cpuS = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

/** CPU seconds per GB of each digest alone, alternated, `reps` times each. */
function digestsAlone(): Record<ObjectChecksum, number[]> {
  const piece = randomBytes(1 << 20);
  const pieces = 256;
  const out: Record<ObjectChecksum, number[]> = { crc32: [], sha256: [] };
  for (let r = 0; r < reps; r++) {
    for (const a of r % 2 === 0 ? ALGORITHMS : [...ALGORITHMS].reverse()) {
      const c0 = process.cpuUsage();
      const h = new ObjectHasher(a);
      for (let i = 0; i < pieces; i++) h.update(piece);
      h.digest();
      out[a].push(cpuS(process.cpuUsage(c0)) / ((pieces * piece.length) / 1e9));
    }
  }
  return out;
}

async function main(): Promise<void> {
  const alone = digestsAlone();
  process.stdout.write(`object-checksum bench: the digests alone, 256 MiB in 1 MiB pieces, ${reps} alternating run(s) each, medians\n`);
  for (const a of ALGORITHMS) {
    process.stdout.write(`  ${a.padEnd(7)} ${median(alone[a]).toFixed(3)} CPU-s/GB  (${(1 / median(alone[a])).toFixed(2)} GB/s; runs: ${alone[a].map((x) => x.toFixed(3)).join(', ')})\n`);
  }
  await withBenchServers(['objsum-src'], 'sf-bench-objsum-', async (servers, dir) => {
    const src = servers[0]!;
    await fillSources([src], rows);
    const res: Record<ObjectChecksum, { cpu: number[]; rate: number[]; bytes: number }> = { crc32: { cpu: [], rate: [], bytes: 0 }, sha256: { cpu: [], rate: [], bytes: 0 } };
    // One warm-up of each (module loading, the server's cache), not counted.
    for (const a of ALGORITHMS) await exportTables({ source: src.url(), tables: [TABLE], to: path.join(dir, `warm-${a}`), threads: false, objectChecksum: a });
    for (let r = 0; r < reps; r++) {
      for (const a of r % 2 === 0 ? ALGORITHMS : [...ALGORITHMS].reverse()) {
        const to = path.join(dir, `${a}-${r}`);
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const out = await exportTables({ source: src.url(), tables: [TABLE], to, threads: false, objectChecksum: a });
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        const bytes = out.manifest.objects.reduce((x, o) => x + o.bytes, 0);
        if (!out.manifest.objects.every((o) => o[a] !== undefined)) throw new Error(`the manifest does not record ${a}`);
        res[a].cpu.push(cpuS(process.cpuUsage(c0)) / (bytes / 1e9));
        res[a].rate.push(rows / s);
        res[a].bytes = bytes;
        await rm(to, { recursive: true, force: true });
      }
    }
    process.stdout.write(`TEXT export, ${rows} rows (${(res.crc32.bytes / 1e6).toFixed(0)} MB stored), one node, to a directory, threads off, ${reps} alternating run(s) each, medians\n`);
    for (const a of ALGORITHMS) {
      const v = res[a];
      process.stdout.write(`  ${a.padEnd(7)} client ${median(v.cpu).toFixed(3)} CPU-s/GB  ${Math.round(median(v.rate)).toString().padStart(9)} rows/s  (CPU-s/GB runs: ${v.cpu.map((x) => x.toFixed(3)).join(', ')})\n`);
    }
    const saved = median(res.sha256.cpu) - median(res.crc32.cpu);
    process.stdout.write(`  sha256 - crc32: ${saved.toFixed(3)} client CPU-s/GB (${((saved / median(res.sha256.cpu)) * 100).toFixed(0)}% of the sha256 export's client CPU); crc32 / sha256 client CPU ${(median(res.crc32.cpu) / median(res.sha256.cpu)).toFixed(2)}\n`);
  });
}

runSection(main);
