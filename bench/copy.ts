// Copy benchmarks: `npm run bench:copy -- [--rows N] [--reps N] [--quick]`, also a section of
// `npm run bench` (bench/sections.ts). Two source nodes and two destination nodes (static
// topologies, node-direct), one table. Measures, in one run, contestants in a rotating order
// within each repetition: export alone (to a directory), import alone (from it), the import
// of BINARY objects, copy direct (TEXT and BINARY) and copy --via a directory. Prints rows/s
// (median), the CPU seconds of the client and of the servers, and the ratios the copy is judged by.
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { copyTables, exportTables, importTables } from '../lib/index.js';
import type { BenchServer } from './lib/cluster.js';
import { fillSources, runSection, sectionFlags, staticTopology, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { rows, reps } = sectionFlags({
  usage: 'npm run bench:copy -- [--rows N (default 2000000; --quick 50000)] [--reps N (default 3; --quick 1)] [--quick]',
  rows: { full: 2_000_000, quick: 50_000 },
  reps: { full: 3, quick: 1 },
});

const topo = staticTopology;

/** CPU seconds of a server so far: the postmaster's own and its reaped backends' (utime, stime, cutime, cstime). */
function serverCpuS(s: BenchServer): number {
  const f = readFileSync(`/proc/${s.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

interface Cost { wallS: number; clientCpuS: number; serverCpuS: number }

async function main(): Promise<void> {
  await withBenchServers(['src1', 'src2', 'dst1', 'dst2'], 'sf-bench-copy-', async (servers, dir) => {
    const src = servers.slice(0, 2);
    const dst = servers.slice(2);
    const total = await fillSources(src, rows);
    const s = topo(src);
    const d = topo(dst);
    const textDir = path.join(dir, 'text');
    const binDir = path.join(dir, 'binary');
    // The objects the imports read, written once, untimed.
    await exportTables({ topology: s, tables: [TABLE], to: textDir });
    await exportTables({ topology: s, tables: [TABLE], to: binDir, format: 'binary' });

    // Finished backends are reaped (and their CPU counted) before and after each contestant.
    const timed = async (f: () => Promise<unknown>): Promise<Cost> => {
      for (const x of servers) await x.quiesce();
      const c0 = process.cpuUsage();
      const s0 = servers.reduce((a, x) => a + serverCpuS(x), 0);
      const t = process.hrtime.bigint();
      await f();
      const wallS = Number(process.hrtime.bigint() - t) / 1e9;
      for (const x of servers) await x.quiesce();
      const c = process.cpuUsage(c0);
      return { wallS, clientCpuS: (c.user + c.system) / 1e6, serverCpuS: servers.reduce((a, x) => a + serverCpuS(x), 0) - s0 };
    };
    let via = 0;
    const contestants: [string, () => Promise<unknown>][] = [
      ['export TEXT to a directory', async () => { await rm(path.join(dir, 'e'), { recursive: true, force: true }); await exportTables({ topology: s, tables: [TABLE], to: path.join(dir, 'e') }); }],
      ['import TEXT objects', () => importTables({ from: textDir, topology: d, truncate: true })],
      ['import BINARY objects', () => importTables({ from: binDir, topology: d, truncate: true })],
      ['copy direct TEXT', () => copyTables({ sourceTopology: s, targetTopology: d, tables: [TABLE], truncate: true })],
      ['copy direct BINARY', () => copyTables({ sourceTopology: s, targetTopology: d, tables: [TABLE], truncate: true, format: 'binary' })],
      ['copy --via a directory', () => copyTables({ sourceTopology: s, targetTopology: d, tables: [TABLE], truncate: true, via: path.join(dir, `via-${via++}`) })],
    ];
    const results = new Map<string, Cost[]>(contestants.map(([k]) => [k, []]));
    for (let r = 0; r < reps; r++) {
      // Rotate the order, so that no contestant always runs first (cold) or after the same one.
      for (let i = 0; i < contestants.length; i++) {
        const [k, f] = contestants[(i + r) % contestants.length]!;
        results.get(k)!.push(await timed(f));
        process.stderr.write(`copy bench rep ${r + 1}/${reps}: ${k} done\n`);
      }
    }
    const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
    const rate = (k: string) => med(results.get(k)!.map((c) => total / c.wallS));
    const cpu = (k: string) => med(results.get(k)!.map((c) => c.clientCpuS + c.serverCpuS));
    process.stdout.write(`copy bench: ${total} rows, 2 → 2 nodes, ${reps} repetition(s) in rotating order, medians; ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)} at the end\n`);
    process.stdout.write(`  ${'contestant'.padEnd(26)} ${'rows/s'.padStart(10)} ${'client CPU-s'.padStart(13)} ${'server CPU-s'.padStart(13)}   runs (rows/s)\n`);
    for (const [k, v] of results) {
      const cl = med(v.map((c) => c.clientCpuS));
      const sv = med(v.map((c) => c.serverCpuS));
      process.stdout.write(`  ${k.padEnd(26)} ${Math.round(rate(k)).toString().padStart(10)} ${cl.toFixed(2).padStart(13)} ${sv.toFixed(2).padStart(13)}   ${v.map((c) => Math.round(total / c.wallS)).join(', ')}\n`);
    }
    const ex = rate('export TEXT to a directory');
    const im = rate('import TEXT objects');
    const cp = rate('copy direct TEXT');
    // Export then import, one after the other: what the copy replaces.
    const sequential = 1 / (1 / ex + 1 / im);
    const f2 = (x: number) => x.toFixed(2);
    process.stdout.write('ratios (rows/s):\n');
    process.stdout.write(`  copy direct TEXT / export alone          ${f2(cp / ex)}\n`);
    process.stdout.write(`  copy direct TEXT / import alone          ${f2(cp / im)}\n`);
    process.stdout.write(`  copy direct TEXT / export then import    ${f2(cp / sequential)}\n`);
    process.stdout.write(`  copy direct BINARY / copy direct TEXT    ${f2(rate('copy direct BINARY') / cp)}\n`);
    process.stdout.write(`  import BINARY / import TEXT objects      ${f2(rate('import BINARY objects') / im)}\n`);
    process.stdout.write(`  copy --via a directory / copy direct     ${f2(rate('copy --via a directory') / cp)}\n`);
    process.stdout.write(`  copy --via a directory / export then import ${f2(rate('copy --via a directory') / sequential)}\n`);
    // On a host where the servers and the client share the cores, a copy cannot beat the CPU it needs.
    process.stdout.write(`CPU (client + servers, CPU-s): copy direct TEXT ${f2(cpu('copy direct TEXT'))} against export ${f2(cpu('export TEXT to a directory'))} + import ${f2(cpu('import TEXT objects'))}; ` +
      `at ${os.availableParallelism()} cores that allows at most ${Math.round(total / (cpu('copy direct TEXT') / os.availableParallelism()))} rows/s\n`);
  });
}

runSection(main);
