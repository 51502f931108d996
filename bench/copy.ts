// Copy benchmarks: `npm run bench:copy -- [--rows N] [--reps N] [--quick]`.
// Two source nodes and two destination nodes (static topologies, node-direct), one table.
// Measures, in one run: export alone (to a directory), import alone (from it), copy direct
// (TEXT and BINARY), and the import of BINARY objects against TEXT objects. Rows/s, wall time.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { copyTables, exportTables, importTables, type StaticTopology } from '../lib/index.js';
import { BenchServer, stopAll } from './lib/cluster.js';
import { TABLE, tableDDL, generateSQL, ID_SPAN } from './lib/data.js';

const { values: flags } = parseArgs({
  options: { rows: { type: 'string' }, reps: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean' } },
});
if (flags.help) {
  process.stdout.write('npm run bench:copy -- [--rows N (default 2000000; --quick 50000)] [--reps N (default 3; --quick 1)] [--quick]\n');
  process.exit(0);
}
const quick = flags.quick === true;
const rows = Number(flags.rows ?? (quick ? 50_000 : 2_000_000));
const reps = Number(flags.reps ?? (quick ? 1 : 3));

function topo(servers: BenchServer[]): StaticTopology {
  return { nodes: servers.map((s, i) => ({ name: `dn${i + 1}`, url: s.url() })), replicated: [] };
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function main(): Promise<void> {
  const servers = await Promise.all(['src1', 'src2', 'dst1', 'dst2'].map((n) => BenchServer.start(n)));
  const src = servers.slice(0, 2);
  const dst = servers.slice(2);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sf-bench-copy-'));
  try {
    await Promise.all(servers.map((s) => s.query(tableDDL(TABLE))));
    const per = Math.ceil(rows / src.length);
    await Promise.all(src.map((s, i) => s.query(`INSERT INTO ${TABLE} ${generateSQL(i * ID_SPAN + 1, i * ID_SPAN + per)}; ANALYZE ${TABLE}`)));
    const total = per * src.length;
    const s = topo(src);
    const d = topo(dst);
    const results: Record<string, number[]> = {};
    const add = (k: string, sec: number) => { (results[k] ??= []).push(total / sec); };
    for (let r = 0; r < reps; r++) {
      const textDir = path.join(dir, `text-${r}`);
      const binDir = path.join(dir, `binary-${r}`);
      add('export TEXT to a directory', await timed(() => exportTables({ topology: s, tables: [TABLE], to: textDir })));
      add('import TEXT objects', await timed(() => importTables({ from: textDir, topology: d, truncate: true })));
      await exportTables({ topology: s, tables: [TABLE], to: binDir, format: 'binary' });
      add('import BINARY objects', await timed(() => importTables({ from: binDir, topology: d, truncate: true })));
      add('copy direct TEXT', await timed(() => copyTables({ sourceTopology: s, targetTopology: d, tables: [TABLE], truncate: true })));
      add('copy direct BINARY', await timed(() => copyTables({ sourceTopology: s, targetTopology: d, tables: [TABLE], truncate: true, format: 'binary' })));
      await rm(textDir, { recursive: true, force: true });
      await rm(binDir, { recursive: true, force: true });
    }
    process.stdout.write(`copy bench: ${total} rows, 2 → 2 nodes, ${reps} repetition(s), median rows/s\n`);
    for (const [k, v] of Object.entries(results)) {
      const m = [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
      process.stdout.write(`  ${k.padEnd(28)} ${Math.round(m).toString().padStart(10)} rows/s   (runs: ${v.map((x) => Math.round(x)).join(', ')})\n`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await stopAll();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
