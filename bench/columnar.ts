// Columnar speed: `node --import tsx bench/columnar.ts [--rows N] [--reps N] [--nodes N] [--quick]`.
// In one run, on local servers (N source nodes and N destination nodes, static topologies,
// node-direct import): export TEXT vs each columnar format to a directory, and import of the
// objects each wrote, alternating the contestants within every repetition. Prints rows/s (wall),
// the CPU seconds per million rows of this process (the client: exporters or loaders) and of
// the servers, and each columnar format's ratios against TEXT next to the 0.8 goal of issue 16.
// Wall time needs a quiet machine; the CPU figures hold up better when others share the cores.
//
// To add a format: one entry in CONTESTANTS.
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExportOptions } from '../lib/index.js';
import { loadBuiltLibrary } from './lib/built.js';
import type { BenchServer } from './lib/cluster.js';
import { fillSources, runSection, sectionFlags, staticTopology, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';
import { procCpu } from './lib/measure.js';

const { rows: ROWS, reps: REPS, values: flags } = sectionFlags({
  usage: 'node --import tsx bench/columnar.ts [--rows N (default 2000000; --quick 40000)] [--reps N (default 3; --quick 1)] [--nodes N (default 2)] [--quick]',
  rows: { full: 2_000_000, quick: 40_000 },
  reps: { full: 3, quick: 1 },
  options: { nodes: { type: 'string' } },
});
const NODES = Number(flags.nodes ?? 2);
/** The goal of issue 16: columnar rows/s at least this share of TEXT's, export and import. */
const GOAL = 0.8;

/** One format under test; the first is the baseline the others are compared with. */
interface Contestant {
  id: string;
  label: string;
  format: ExportOptions['format'];
  /** Extra export options (e.g. threads). */
  exportOptions?: Partial<ExportOptions>;
  /** Import its objects too (default true). */
  importToo?: boolean;
}

const CONTESTANTS: Contestant[] = [
  { id: 'text', label: 'TEXT', format: 'text' },
  { id: 'arrow', label: 'Arrow', format: 'arrow' },
  { id: 'parquet', label: 'Parquet (zstd)', format: 'parquet' },
  // Worker threads (issue 16 asks whether they change the ratio on a 2-core host; `auto` leaves
  // them off with the servers on these 2 cores): export only.
  { id: 'arrow-threads', label: 'Arrow, threads on', format: 'arrow', exportOptions: { threads: true }, importToo: false },
  { id: 'parquet-threads', label: 'Parquet (zstd), threads on', format: 'parquet', exportOptions: { threads: true }, importToo: false },
];

interface Sample { wallS: number; clientCpuS: number; serverCpuS: number }

const topo = staticTopology;

/** CPU seconds of every server process so far (postmasters with their finished backends). */
const serverCpu = (servers: BenchServer[]) => servers.reduce((t, s) => t + procCpu(s.pid, true), 0);

/** Run `f` and measure wall time, this process's CPU and the servers' CPU. */
async function measure(servers: BenchServer[], f: () => Promise<unknown>): Promise<Sample> {
  await Promise.all(servers.map((s) => s.quiesce()));
  const s0 = serverCpu(servers);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await f();
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  // Backends' CPU is counted once they have exited and been reaped by their postmaster.
  await Promise.all(servers.map((s) => s.quiesce()));
  return { wallS, clientCpuS: (c.user + c.system) / 1e6, serverCpuS: serverCpu(servers) - s0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  // The built library, as users run it: exporter threads then boot without tsx (bench/lib/built.ts).
  const { exportTables, importTables } = await loadBuiltLibrary();
  const names = [...Array.from({ length: NODES }, (_, i) => `src${i + 1}`), ...Array.from({ length: NODES }, (_, i) => `dst${i + 1}`)];
  await withBenchServers(names, 'sf-bench-columnar-', async (servers, dir) => {
    const src = servers.slice(0, NODES);
    const dst = servers.slice(NODES);
    const total = await fillSources(src, ROWS, { freeze: true });
    const from = topo(src);
    const to = topo(dst);
    const exp: Record<string, Sample[]> = {};
    const imp: Record<string, Sample[]> = {};
    // Warm the caches and load every format's modules before anything is measured.
    for (const c of CONTESTANTS) {
      if (c.importToo === false) continue;
      const d = path.join(dir, `warm-${c.id}`);
      await exportTables({ topology: from, tables: [TABLE], to: d, format: c.format });
      await importTables({ from: d, topology: to, truncate: true });
      await rm(d, { recursive: true, force: true });
    }
    for (let r = 0; r < REPS; r++) {
      for (const c of CONTESTANTS) {
        const d = path.join(dir, `${c.id}-${r}`);
        process.stderr.write(`columnar: rep ${r + 1}/${REPS} ${c.label}\n`);
        (exp[c.id] ??= []).push(await measure(src, () => exportTables({ topology: from, tables: [TABLE], to: d, format: c.format, ...c.exportOptions })));
        if (c.importToo !== false) {
          (imp[c.id] ??= []).push(await measure(dst, async () => {
            const res = await importTables({ from: d, topology: to, truncate: true });
            const rows = res.rows;
            if (rows !== total) throw new Error(`${c.label}: imported ${rows} rows, expected ${total}`);
          }));
        }
        await rm(d, { recursive: true, force: true });
      }
    }

    const out: string[] = [];
    out.push(`columnar bench: ${total} rows of ${TABLE} (12 columns), ${NODES} → ${NODES} nodes, to a directory, ${REPS} repetition(s), median; node ${process.version}, ${os.availableParallelism()} cores`);
    /** Rows/s (wall) and CPU-s per million rows (client + servers) of one contestant's step. */
    interface Fig { rate: number; cpu: number }
    const row = (what: string, xs: Sample[]): Fig => {
      const rate = median(xs.map((x) => total / x.wallS));
      const per = (f: (x: Sample) => number) => median(xs.map((x) => (f(x) / total) * 1e6));
      const client = per((x) => x.clientCpuS);
      const srv = per((x) => x.serverCpuS);
      out.push(`  ${what.padEnd(26)} ${Math.round(rate).toString().padStart(9)} rows/s   client ${client.toFixed(2)} CPU-s/Mrow   servers ${srv.toFixed(2)} CPU-s/Mrow`);
      return { rate, cpu: per((x) => x.clientCpuS + x.serverCpuS) };
    };
    const base = CONTESTANTS[0]!;
    const figs: Record<string, { exp: Fig; imp?: Fig }> = {};
    for (const c of CONTESTANTS) figs[c.id] = { exp: row(`export ${c.label}`, exp[c.id]!) };
    for (const c of CONTESTANTS) if (imp[c.id]) figs[c.id]!.imp = row(`import ${c.label}`, imp[c.id]!);
    // Wall-time ratios hold on a quiet machine. The CPU ratio (the baseline's CPU per row over
    // the contestant's, client and servers together) is what the ratio tends to when every core
    // is busy, and holds up better when other processes share the machine.
    out.push(`  ratios against ${base.label}, rows/s (goal ≥ ${GOAL}); in brackets the CPU-bound ratio (${base.label} CPU per row / its CPU per row):`);
    for (const c of CONTESTANTS.slice(1)) {
      const f = figs[c.id]!;
      const b = figs[base.id]!;
      const verdict = (x: Fig, y: Fig) => `${(x.rate / y.rate).toFixed(2)} ${x.rate / y.rate >= GOAL ? 'meets' : 'misses'} the goal [${(y.cpu / x.cpu).toFixed(2)}]`;
      out.push(`    ${c.label.padEnd(22)} export ${verdict(f.exp, b.exp)}${f.imp !== undefined && b.imp !== undefined ? `; import ${verdict(f.imp, b.imp)}` : ''}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  });
}

runSection(main);
