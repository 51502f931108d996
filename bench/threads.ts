// Exporter worker threads (issues 16 and 17): `node --import tsx bench/threads.ts [--rows N] [--reps N] [--quick]`.
// 1. What one exporter thread costs to start, in CPU seconds of this process: from the built
//    dist/ (what users run) and from the TypeScript sources through tsx (what tests pay), for a
//    TEXT, an Arrow and a Parquet exporter (each loads its format's modules), the boot paths
//    and formats alternated. Each thread is started, given one node whose port refuses the
//    connection (so it loads its format and fails at once), and terminated.
// 2. Export of 2 nodes to a directory with `--threads off` and `on` for TEXT, Arrow and Parquet
//    (zstd), alternated within each repetition, each a `segferry export` process (the built
//    CLI, cold, as users run it): rows/s and client (the process, every thread) and server
//    CPU-s per million rows. The `auto` rule
//    (lib/export/threads.ts autoThreads) is set from these figures.
import os from 'node:os';
import path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { fillSources, runSection, sectionFlags, staticTopology, withBenchServers } from './lib/common.js';
import { freePort, type BenchServer } from './lib/cluster.js';
import { loadBuiltLibrary, loadBuiltModule } from './lib/built.js';
import { TABLE } from './lib/data.js';
import { cleanupTimeDir, procCpu, timed } from './lib/measure.js';
import type * as Threads from '../lib/export/threads.js';
import type { ExportPlan } from '../lib/export/plan.js';
import type { NodeWork } from '../lib/export/units.js';

const { rows: ROWS, reps: REPS, quick } = sectionFlags({
  usage: 'node --import tsx bench/threads.ts [--rows N (default 1000000; --quick 40000)] [--reps N (default 3; --quick 1)] [--quick]',
  rows: { full: 1_000_000, quick: 40_000 },
  reps: { full: 3, quick: 1 },
});
const NODES = 2;
const SEGFERRY = path.join(path.dirname(fileURLToPath(import.meta.url)), '../bin/segferry.js');
const FORMATS = ['text', 'arrow', 'parquet'] as const;
type Kind = (typeof FORMATS)[number];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuS = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

/** CPU-s of this process to start one exporter thread of `kind`, have it fail at connect, and end it. */
async function startupCpu(threads: typeof Threads, kind: Kind, port: number, dir: string): Promise<number> {
  const plan = { format: { kind }, filter: null, sessionSettings: {}, segmentSize: 1 << 20, checksums: true } as unknown as ExportPlan;
  const work = { node: { name: 'dn1', endpoint: { host: '127.0.0.1', port, database: 'bench', user: 'bench' } }, units: [] } as unknown as NodeWork;
  const c0 = process.cpuUsage();
  const pool = new threads.ExporterThreads({ plan, location: dir, size: 1, emit: () => {} });
  try {
    await pool.run(work, new AbortController().signal, async () => {});
    throw new Error('an exporter thread reached a port nobody listens on');
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_CONNECT') throw e;
  } finally {
    await pool.close();
  }
  return cpuS(process.cpuUsage(c0));
}

interface Sample { wallS: number; clientCpuS: number; serverCpuS: number }

async function main(): Promise<void> {
  await loadBuiltLibrary(); // builds dist/ when stale: bin/segferry.js runs it
  const paths: Record<string, typeof Threads> = {
    dist: await loadBuiltModule<typeof Threads>('export/threads.js'),
    'tsx (sources)': await import('../lib/export/threads.js'),
  };
  const out: string[] = [];
  await withBenchServers(['src1', 'src2'], 'sf-bench-threads-', async (servers: BenchServer[], dir) => {
    // 1. Start-up: a warm-up start of each, then alternate.
    const port = await freePort();
    const starts = quick ? 2 : 5;
    const up: Record<string, number[]> = {};
    for (const t of Object.values(paths)) for (const k of FORMATS) await startupCpu(t, k, port, dir);
    for (let i = 0; i < starts; i++) {
      for (const k of FORMATS) for (const [p, t] of Object.entries(paths)) (up[`${p} ${k}`] ??= []).push(await startupCpu(t, k, port, dir));
    }
    out.push(`threads bench: node ${process.version}, ${os.availableParallelism()} cores`);
    out.push(`  start-up of one exporter thread (CPU-s of this process, median of ${starts}; loads its format, fails at connect, ends):`);
    for (const k of FORMATS) out.push(`    ${k.padEnd(8)} ${Object.keys(paths).map((p) => `${p} ${median(up[`${p} ${k}`]!).toFixed(3)}`).join('   ')}`);

    // 2. Exports with threads off and on: each a `segferry export` process, as users run it
    // (a fresh process starts cold, its main thread as much as its threads).
    const src = servers.slice(0, NODES);
    const total = await fillSources(src, ROWS, { freeze: true });
    const topo = path.join(dir, 'nodes.json');
    writeFileSync(topo, JSON.stringify(staticTopology(src)));
    const serverCpu = () => src.reduce((t, s) => t + procCpu(s.pid, true), 0);
    const run = async (format: Kind, threads: boolean, d: string): Promise<Sample> => {
      await Promise.all(src.map((s) => s.quiesce()));
      const s0 = serverCpu();
      const c = await timed({ cmd: process.execPath, args: [SEGFERRY, 'export', '--topology', topo, '--table', TABLE, '--format', format, '--threads', threads ? 'on' : 'off', '-q', '--to', d] });
      await Promise.all(src.map((s) => s.quiesce()));
      const m = JSON.parse(readFileSync(path.join(d, 'manifest.json'), 'utf8')) as { tables: { rows: number }[] };
      const rows = m.tables.reduce((a, t) => a + t.rows, 0);
      if (rows !== total) throw new Error(`${format}: exported ${rows} rows, expected ${total}`);
      await rm(d, { recursive: true, force: true });
      return { wallS: c.wallS, clientCpuS: c.userS + c.sysS, serverCpuS: serverCpu() - s0 };
    };
    const samples: Record<string, Sample[]> = {};
    for (const f of FORMATS) await run(f, false, path.join(dir, `warm-${f}`));
    for (let r = 0; r < REPS; r++) {
      for (const f of FORMATS) {
        // Alternate which goes first, so neither always follows the other.
        const order = r % 2 === 0 ? [false, true] : [true, false];
        for (const on of order) {
          process.stderr.write(`threads: rep ${r + 1}/${REPS} ${f} threads ${on ? 'on' : 'off'}\n`);
          (samples[`${f} ${on}`] ??= []).push(await run(f, on, path.join(dir, `${f}-${on}-${r}`)));
        }
      }
    }
    out.push(`  segferry export (bin/segferry.js, one process each) of ${total} rows of ${TABLE}, ${NODES} nodes → a directory, --threads off / on, ${REPS} repetition(s), median; client CPU includes the process start:`);
    for (const f of FORMATS) {
      const fig = (on: boolean) => {
        const xs = samples[`${f} ${on}`]!;
        return {
          rate: median(xs.map((x) => total / x.wallS)),
          client: median(xs.map((x) => (x.clientCpuS / total) * 1e6)),
          server: median(xs.map((x) => (x.serverCpuS / total) * 1e6)),
          cores: median(xs.map((x) => x.clientCpuS / x.wallS)),
        };
      };
      const off = fig(false);
      const on = fig(true);
      for (const [what, x] of [['off', off], ['on', on]] as const) {
        out.push(`    ${f.padEnd(8)} threads ${what.padEnd(3)} ${Math.round(x.rate).toString().padStart(8)} rows/s   client ${x.client.toFixed(2)} CPU-s/Mrow (${x.cores.toFixed(2)} cores)   servers ${x.server.toFixed(2)} CPU-s/Mrow`);
      }
      out.push(`    ${f.padEnd(8)} on / off: rows/s ${(on.rate / off.rate).toFixed(2)}×, client CPU ${(on.client / off.client).toFixed(2)}×`);
    }
  }).finally(cleanupTimeDir);
  process.stdout.write(`${out.join('\n')}\n`);
}

runSection(main);
