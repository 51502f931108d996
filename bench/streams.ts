// Streams inside a node: `npm run bench:streams -- [--rows N] [--reps N] [--quick]`.
// One table on one server. In the same run, alternating (the order rotates every repetition and
// reverses every other one; each run starts after `sync`, from an untimed warm-up export on):
// `psql -c "\copy (SELECT <columns> FROM t) TO file"` (one COPY, one server core), two such psql
// processes at once copying a half of the table each (the ceiling of two sessions on this machine,
// each half read the cheaper way: see psql2 below), against
// `segferry export --streams auto` (and 1, 2, 4) to a directory, both whole processes.
// Prints rows/s, MB/s, the ratio to psql and the CPU seconds of client and server per run.
// Ratios, not times, carry over between machines; compare CPU seconds when the machine is busy.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchServer, psqlEnv, stopAll } from './lib/cluster.js';
import { TABLE, growNode, nodeSelectSQL, rowCount, warmTable } from './lib/data.js';
import { runSection, sectionFlags } from './lib/common.js';
import { ctidRangeSQL } from '../lib/pg/sql.js';
import { chooseScan } from '../lib/export/streams.js';
import { cleanupTimeDir, measure, median, type RunCost } from './lib/measure.js';

const { rows, reps, values } = sectionFlags({
  usage: 'npm run bench:streams -- [--rows N (default 1500000, ≈ 570 MB on disk; --quick 400000, ≈ 150 MB: auto gives 1 stream, under 512 MiB)] [--reps N (default 3; --quick 1)] [--object-checksum crc32|sha256 (default: segferry\'s)] [--quick]',
  options: { 'object-checksum': { type: 'string' } },
  rows: { full: 1_500_000, quick: 400_000 },
  reps: { full: 3, quick: 1 },
});
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (s: string) => process.stderr.write(`[streams] ${s}\n`);

if (spawnSync('psql', ['--version']).status !== 0) {
  process.stdout.write('streams bench skipped: psql not found on PATH\n');
  process.exit(0);
}

interface Sample extends RunCost {
  bytes: number;
  streams: string;
}

async function main(): Promise<void> {
  const server = await BenchServer.start('streams');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sf-bench-streams-'));
  try {
    await growNode(server, 0, rows);
    const total = await rowCount(server);
    const onDisk = Number((await server.query<{ b: string }>(`SELECT pg_relation_size('${TABLE}') AS b`))[0]!.b);
    log(`${total} rows, ${(onDisk / 1e6).toFixed(0)} MB on disk`);
    warmTable(server);
    const meters = { serverPids: () => [server.pid], s3Pid: () => undefined, quiesce: () => server.quiesce() };
    const file = path.join(dir, 'psql.txt');
    const psql = async (): Promise<Sample> => {
      rmSync(file, { force: true });
      const cost = await measure([{ cmd: 'psql', env: psqlEnv(), args: [...server.psqlArgs(), '-c', `\\copy (${nodeSelectSQL()}) TO '${file}'`] }], meters);
      const bytes = statSync(file).size;
      rmSync(file, { force: true });
      return { ...cost, bytes, streams: '1' };
    };
    // How many streams the plan gives: `segferry plan` (JSON), run before the timed runs, not between them.
    const planned = (streams: string): string => {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/segferry.js'), 'plan', '--source', server.url(), '--table', TABLE, '--to', path.join(dir, 'plan'), '--streams', streams], { encoding: 'utf8' });
      const p = JSON.parse(r.stdout) as { tables: { streams?: { streams: number }[] }[] };
      return String(p.tables[0]?.streams?.[0]?.streams ?? '?');
    };
    const exportArgs = (streams: string, to: string) => [path.join(ROOT, 'bin/segferry.js'), 'export', '--source', server.url(), '--table', TABLE, '--to', to, '--streams', streams, '-q', ...(values['object-checksum'] ? ['--object-checksum', String(values['object-checksum'])] : [])];
    const segferry = (streams: string) => async (): Promise<Sample> => {
      const to = path.join(dir, `seg-${streams}`);
      rmSync(to, { recursive: true, force: true });
      const cost = await measure([{ cmd: process.execPath, args: exportArgs(streams, to) }], meters);
      const m = JSON.parse(readFileSync(path.join(to, 'manifest.json'), 'utf8')) as { objects: { bytes: number; rows: number }[] };
      const got = m.objects.reduce((a, o) => a + o.rows, 0);
      if (got !== total) throw new Error(`segferry --streams ${streams} stored ${got} rows, expected ${total}`);
      rmSync(to, { recursive: true, force: true });
      return { ...cost, bytes: m.objects.reduce((a, o) => a + o.bytes, 0), streams: plannedStreams.get(streams)! };
    };
    // The machine's own ceiling for two sessions splitting the table: two psql processes at
    // once, each copying one half to a file of its own, read the way segferry's own rule
    // (chooseScan, docs/streams.md) reads 2 streams: a table larger than shared_buffers as
    // sequential scans with the ctid condition as a filter, a smaller one as TID range scans.
    const pages = Math.max(2, Math.ceil(onDisk / 8192));
    const nBuffers = Number((await server.query<{ n: string }>(`SELECT setting AS n FROM pg_settings WHERE name = 'shared_buffers'`))[0]!.n);
    const seqHalves = chooseScan(pages, 2, nBuffers) === 'seq-filter';
    const halves = [ctidRangeSQL(0, Math.floor(pages / 2)), ctidRangeSQL(Math.floor(pages / 2), null)];
    const psql2 = async (): Promise<Sample> => {
      const files = halves.map((_, i) => path.join(dir, `psql-half${i}.txt`));
      for (const f of files) rmSync(f, { force: true });
      const cost = await measure(halves.map((h, i) => ({ cmd: 'psql', env: psqlEnv(), args: [...server.psqlArgs(), ...(seqHalves ? ['-c', 'SET enable_tidscan = off', '-c', 'SET max_parallel_workers_per_gather = 0'] : []), '-c', `\\copy (${nodeSelectSQL()} WHERE ${h}) TO '${files[i]}'`] })), meters);
      const bytes = files.reduce((a, f) => a + statSync(f).size, 0);
      for (const f of files) rmSync(f, { force: true });
      return { ...cost, bytes, streams: '2' };
    };
    const contestants: { id: string; label: string; run: () => Promise<Sample> }[] = [
      { id: 'psql', label: 'psql \\copy (SELECT …) TO file', run: psql },
      { id: 'psql2', label: '2 × psql, a half each, at once', run: psql2 },
      { id: 'auto', label: 'segferry export --streams auto', run: segferry('auto') },
      { id: '1', label: 'segferry export --streams 1', run: segferry('1') },
      { id: '2', label: 'segferry export --streams 2', run: segferry('2') },
      { id: '4', label: 'segferry export --streams 4', run: segferry('4') },
    ];
    const samples = new Map<string, Sample[]>(contestants.map((c) => [c.id, []]));
    const plannedStreams = new Map(contestants.filter((c) => !c.id.startsWith('psql')).map((c) => [c.id, planned(c.id)]));
    // Untimed: one export first, so the first timed segferry run does not also pay for a cold
    // page cache of the program's files (it always was auto's, rep 1).
    const warm = path.join(dir, 'warm');
    spawnSync(process.execPath, exportArgs('auto', warm), { stdio: 'ignore' });
    rmSync(warm, { recursive: true, force: true });
    for (let r = 0; r < reps; r++) {
      // Rotate the order, and reverse it every other repetition: a plain rotation keeps the
      // cyclic neighbours, so auto always ran right after psql and 2 after 1.
      const rotated = contestants.map((_, i) => contestants[(i + r) % contestants.length]!);
      const order = r % 2 === 1 ? rotated.reverse() : rotated;
      for (const c of order) {
        // Every run starts from the same state: the previous run's output deleted and written
        // back (`sync`, untimed), so no run pays for another's writeback; then `measure` waits
        // for the server's backends of the previous run to be gone.
        spawnSync('sync');
        const s = await c.run();
        log(`rep ${r + 1}: ${c.label}: ${s.wallS.toFixed(2)} s, client ${s.clientCpuS.toFixed(2)} CPU-s, server ${s.serverCpuS.toFixed(2)} CPU-s`);
        samples.get(c.id)!.push(s);
      }
    }
    const rate = (id: string) => median(samples.get(id)!.map((s) => total / s.wallS));
    const base = rate('psql');
    const out: string[] = [];
    out.push(`streams bench: one table on one server, ${total} rows, ${(onDisk / 1e6).toFixed(0)} MB on disk, ${os.availableParallelism()} cores, ${reps} repetition(s), medians`);
    out.push(`  ${'contestant'.padEnd(34)} ${'streams'.padStart(7)} ${'rows/s'.padStart(10)} ${'MB/s'.padStart(6)} ${'× psql'.padStart(7)} ${'client CPU-s'.padStart(13)} ${'server CPU-s'.padStart(13)}`);
    for (const c of contestants) {
      const ss = samples.get(c.id)!;
      const rs = rate(c.id);
      const mbs = median(ss.map((s) => s.bytes / s.wallS / 1e6));
      out.push(`  ${c.label.padEnd(34)} ${ss[0]!.streams.padStart(7)} ${Math.round(rs).toString().padStart(10)} ${mbs.toFixed(0).padStart(6)} ${(rs / base).toFixed(2).padStart(7)} ${median(ss.map((s) => s.clientCpuS)).toFixed(2).padStart(13)} ${median(ss.map((s) => s.serverCpuS)).toFixed(2).padStart(13)}`);
    }
    // Spreads: each run's rate against the median psql rate, and its CPU seconds, min–max.
    const mm = (xs: number[], d: number) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
    out.push(`  spreads (min–max over the repetitions): ${contestants.map((c) => { const ss = samples.get(c.id)!; return `${c.id} ${mm(ss.map((s) => total / s.wallS / base), 2)}× (client ${mm(ss.map((s) => s.clientCpuS), 2)}, server ${mm(ss.map((s) => s.serverCpuS), 2)})`; }).join('; ')}`);
    // What the CPU seconds allow on an idle machine of `cores` cores: psql is one server backend
    // (its client runs beside it); segferry's k streams use k backends and one client thread.
    const idle = (id: string, cores: number) => {
      const ss = samples.get(id)!;
      const srv = median(ss.map((s) => s.serverCpuS));
      const cli = median(ss.map((s) => s.clientCpuS));
      const k = Number(ss[0]!.streams) || 1;
      return Math.max(srv / Math.min(k, cores), (srv + cli) / cores, cli);
    };
    out.push(`  from CPU seconds, on an idle machine (wall ≥ max(server/min(streams, cores), (server+client)/cores, client)):`);
    for (const cores of [2, 4, 8]) {
      out.push(`    ${cores} cores: ${contestants.filter((c) => !c.id.startsWith('psql')).map((c) => `${c.id} ${(idle('psql', cores) / idle(c.id, cores)).toFixed(2)}×`).join(', ')}`);
    }
    const best = Math.max(...contestants.filter((c) => !c.id.startsWith('psql')).map((c) => rate(c.id)));
    out.push(`  goal: --streams auto ≥ 1.6× psql on 2 cores; auto gives ${(rate('auto') / base).toFixed(2)}×, the best stream count ${(best / base).toFixed(2)}×`);
    out.push(`  this machine's ceiling for two sessions (2 × psql, a half each, at once, ${seqHalves ? 'filtered sequential scans' : 'TID range scans'}): ${(rate('psql2') / base).toFixed(2)}× psql; auto reaches ${(rate('auto') / rate('psql2')).toFixed(2)} of it`);
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    cleanupTimeDir();
    await stopAll();
  }
}

runSection(main);
