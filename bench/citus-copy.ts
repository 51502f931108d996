// Citus → Citus copy benchmark: `npm run bench:citus-copy -- [--rows N] [--reps N] [--quick]`,
// also a section of `npm run bench` (bench/sections.ts). Two Citus clusters (a coordinator and 2
// workers each), one table with 8 shards of the same hash ranges on both ends. Contestants, in
// alternating order within each repetition, both with `truncate` and the same units (one per
// source shard): copy shard to shard (route auto) and copy through the destination coordinator
// (route coordinator). Prints rows/s (median), the client's CPU seconds and the servers' CPU
// seconds, split into the source cluster, the destination coordinator and the destination workers.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { copyTables } from '../lib/index.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../test/helpers/citus.js';
import type { PgServer } from '../test/helpers/pg.js';
import { TABLE, tableDDL, generateSQL } from './lib/data.js';
import { median, procCpu } from './lib/measure.js';

const { values: flags } = parseArgs({
  options: { rows: { type: 'string' }, reps: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean' } },
});
if (flags.help) {
  process.stdout.write('npm run bench:citus-copy -- [--rows N (default 1000000; --quick 50000)] [--reps N (default 3; --quick 2)] [--quick]\n');
  process.exit(0);
}
const quick = flags.quick === true;
const rows = Number(flags.rows ?? (quick ? 50_000 : 1_000_000));
const reps = Number(flags.reps ?? (quick ? 2 : 3));

/**
 * CPU seconds of a server's whole process tree so far: the postmaster, its reaped backends, and
 * its live children (Citus keeps connections between nodes open, so their backends live on).
 */
function treeCpuS(s: PgServer): number {
  const pid = s.pid;
  if (pid === undefined) return 0;
  let t = procCpu(pid, true);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid) t += procCpu(Number(d), true);
    } catch { /* gone meanwhile */ }
  }
  return t;
}

interface Cost { wallS: number; clientCpuS: number; srcCpuS: number; dstCoordCpuS: number; dstWorkersCpuS: number }

async function main(): Promise<void> {
  const missing = citusMissing();
  if (missing) {
    process.stdout.write(`citus-copy bench skipped: ${missing}\n`);
    return;
  }
  let a: CitusCluster | undefined;
  let b: CitusCluster | undefined;
  try {
    [a, b] = await Promise.all([startCitusCluster({ name: 'bcs' }), startCitusCluster({ name: 'bcd' })]);
    const dist = `SET citus.shard_count = 8; SELECT create_distributed_table('${TABLE}', 'id')`;
    await Promise.all([a.query(`${tableDDL(TABLE)}; ${dist}`), b.query(`${tableDDL(TABLE)}; ${dist}`)]);
    await a.query(`INSERT INTO ${TABLE} ${generateSQL(1, rows)}`);
    const src = a.coordinator.url();
    const dst = b.coordinator.url();
    const A = a;
    const B = b;
    const sum = (xs: PgServer[]) => xs.reduce((x, s) => x + treeCpuS(s), 0);
    const timed = async (f: () => Promise<unknown>): Promise<Cost> => {
      const c0 = process.cpuUsage();
      const s0 = [sum(A.servers), treeCpuS(B.coordinator), sum(B.workers)];
      const t = process.hrtime.bigint();
      await f();
      const wallS = Number(process.hrtime.bigint() - t) / 1e9;
      const c = process.cpuUsage(c0);
      return {
        wallS, clientCpuS: (c.user + c.system) / 1e6,
        srcCpuS: sum(A.servers) - s0[0]!, dstCoordCpuS: treeCpuS(B.coordinator) - s0[1]!, dstWorkersCpuS: sum(B.workers) - s0[2]!,
      };
    };
    const contestants: [string, () => Promise<unknown>][] = [
      ['shard to shard', async () => {
        const r = await copyTables({ source: src, target: dst, tables: [TABLE], truncate: true });
        if (r.plan.tables[0]!.route !== 'direct' || r.rows !== rows) throw new Error(`shard to shard: route ${r.plan.tables[0]!.route}, ${r.rows} rows`);
      }],
      ['through the coordinator', async () => {
        const r = await copyTables({ source: src, target: dst, tables: [TABLE], truncate: true, route: 'coordinator' });
        if (r.plan.tables[0]!.route !== 'coordinator' || r.rows !== rows) throw new Error(`coordinator: route ${r.plan.tables[0]!.route}, ${r.rows} rows`);
      }],
    ];
    // One untimed run each first: connections, catalog caches, the ledger tables.
    for (const [, f] of contestants) await f();
    const results = new Map<string, Cost[]>(contestants.map(([k]) => [k, []]));
    for (let r = 0; r < reps; r++) {
      for (let i = 0; i < contestants.length; i++) {
        const [k, f] = contestants[(i + r) % contestants.length]!;
        results.get(k)!.push(await timed(f));
        process.stderr.write(`citus-copy bench rep ${r + 1}/${reps}: ${k} done\n`);
      }
    }
    const f2 = (x: number) => x.toFixed(2);
    process.stdout.write(`citus-copy bench: ${rows} rows, Citus (coordinator + 2 workers) → Citus (coordinator + 2 workers), 8 shards of equal ranges, ${reps} repetition(s) in alternating order, medians; ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)} at the end\n`);
    process.stdout.write(`  ${'contestant'.padEnd(24)} ${'rows/s'.padStart(9)} ${'client CPU-s'.padStart(13)} ${'source CPU-s'.padStart(13)} ${'dst coord CPU-s'.padStart(16)} ${'dst workers CPU-s'.padStart(18)} ${'all CPU-s'.padStart(10)}\n`);
    const all = (c: Cost) => c.clientCpuS + c.srcCpuS + c.dstCoordCpuS + c.dstWorkersCpuS;
    for (const [k, v] of results) {
      const m = (g: (c: Cost) => number) => median(v.map(g));
      process.stdout.write(`  ${k.padEnd(24)} ${Math.round(m((c) => rows / c.wallS)).toString().padStart(9)} ${f2(m((c) => c.clientCpuS)).padStart(13)} ${f2(m((c) => c.srcCpuS)).padStart(13)} ${f2(m((c) => c.dstCoordCpuS)).padStart(16)} ${f2(m((c) => c.dstWorkersCpuS)).padStart(18)} ${f2(m(all)).padStart(10)}\n`);
    }
    const sd = results.get('shard to shard')!;
    const co = results.get('through the coordinator')!;
    process.stdout.write(`ratios, shard to shard / through the coordinator: rows/s ${f2(median(sd.map((c) => rows / c.wallS)) / median(co.map((c) => rows / c.wallS)))}, all CPU-s ${f2(median(sd.map(all)) / median(co.map(all)))}\n`);
  } finally {
    await Promise.allSettled([a?.destroy(), b?.destroy()]);
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
