// What the shrinking page ranges of a `--streams` export cost (issue 17): `node --import tsx
// bench/range-cost.ts -- [--rows N] [--reps N] [--quick]`. A diagnostic beside
// bench/streams-timeline.ts (not a section of `npm run bench`): one table on one server,
// exportTables in this process with 2 streams to a directory, alternating floors (minRangePages):
// one range per stream (the cut before the queue), the default and a lower one. Prints per floor
// the ranges, the client CPU seconds of this process (process.cpuUsage) and the server's
// (postmaster's reaped children), medians with min–max: CPU seconds, not wall time, say what
// the ranges cost on a shared machine. With `--base DIR` (another checkout, dist/ built) each
// floor runs with both builds, alternating, so a change is measured against it in one run.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportTables } from '../lib/index.js';
import { pathToFileURL } from 'node:url';
import { MIN_RANGE_PAGES } from '../lib/export/streams.js';
import { BenchServer, stopAll } from './lib/cluster.js';
import { TABLE, growNode, warmTable } from './lib/data.js';
import { runSection, sectionFlags } from './lib/common.js';
import { median, procCpu } from './lib/measure.js';

const { rows, reps, values } = sectionFlags({
  usage: 'node --import tsx bench/range-cost.ts [--rows N (default 400000; --quick 100000)] [--reps N (default 6; --quick 2)] [--base DIR: a second segferry checkout, dist/ built, alternated with this one] [--quick]',
  options: { base: { type: 'string' } },
  rows: { full: 400_000, quick: 100_000 },
  reps: { full: 6, quick: 2 },
});
const log = (s: string) => process.stderr.write(`[range-cost] ${s}\n`);

async function main(): Promise<void> {
  const server = await BenchServer.start('range-cost');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sf-bench-range-cost-'));
  try {
    await growNode(server, 0, rows);
    warmTable(server);
    type Export = typeof exportTables;
    const builds: { name: string; run: Export }[] = [{ name: '', run: exportTables }];
    if (typeof values.base === 'string') {
      const mod = (await import(pathToFileURL(path.join(path.resolve(values.base), 'dist/index.js')).href)) as { exportTables: Export };
      builds[0]!.name = 'this: ';
      builds.push({ name: 'base: ', run: mod.exportTables });
    }
    const floors = [{ name: 'one range per stream', pages: 1 << 30 }, { name: `default (${MIN_RANGE_PAGES} pages)`, pages: MIN_RANGE_PAGES }, { name: `${MIN_RANGE_PAGES / 4} pages`, pages: MIN_RANGE_PAGES / 4 }];
    const out = new Map<string, { client: number[]; server: number[]; wall: number[]; ranges: number; objects: number }>();
    for (let i = 0; i < reps; i++) {
      for (let k = 0; k < floors.length * builds.length; k++) {
        const f0 = floors[(Math.floor(k / builds.length) + i) % floors.length]!;
        const b = builds[(k + i) % builds.length]!;
        const f = { ...f0, name: b.name + f0.name };
        const to = path.join(dir, 'out');
        rmSync(to, { recursive: true, force: true });
        await server.quiesce();
        const s0 = procCpu(server.pid, true);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const r = await b.run({ source: server.url(), tables: [TABLE], to, streams: 2, minRangePages: f.pages });
        const wall = performance.now() - t0;
        const c = process.cpuUsage(c0);
        await server.quiesce();
        const o = out.get(f.name) ?? { client: [], server: [], wall: [], ranges: r.plan.tables[0]!.streams![0]!.ranges?.length ?? 1, objects: r.manifest.objects.length };
        o.client.push((c.user + c.system) / 1e6);
        o.server.push(procCpu(server.pid, true) - s0);
        o.wall.push(wall / 1000);
        out.set(f.name, o);
        log(`rep ${i + 1}: ${f.name}: ${(wall / 1000).toFixed(2)} s`);
      }
    }
    const f2 = (xs: number[]) => `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)})`;
    const lines = [`range cost: ${rows} rows, one server, --streams 2 to a directory, ${reps} repetition(s), load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; medians (min–max)`];
    lines.push(`  ${'floor'.padEnd(builds.length > 1 ? 30 : 24)} ranges objects  client CPU-s            server CPU-s            wall s`);
    for (const [name, o] of [...out].sort((a, b) => (a[0] < b[0] ? -1 : 1))) lines.push(`  ${name.padEnd(builds.length > 1 ? 30 : 24)} ${String(o.ranges).padStart(6)} ${String(o.objects).padStart(7)}  ${f2(o.client).padEnd(23)} ${f2(o.server).padEnd(23)} ${f2(o.wall)}`);
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await stopAll();
  }
}

runSection(main);
