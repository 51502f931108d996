// What the server spends per stream (issue 17): `node --import tsx bench/streams-server.ts -- [--rows N] [--reps N] [--quick]`.
// A diagnostic beside bench/streams.ts (not a section of `npm run bench`): one table on one
// server, every contestant one whole run of processes, alternating, and the server's CPU seconds
// of each (the postmaster's reaped children, bench/lib/cluster.ts quiesce()). It separates what
// could make segferry's streams dearer on the server than one psql COPY of the same rows:
//   psql            one `\copy (SELECT <columns> FROM t) TO /dev/null`
//   psql-settings   the same inside segferry's transaction (REPEATABLE READ READ ONLY) and
//                   session settings (lib/pg/conn.ts SESSION_SETTINGS)
//   psql-ctid       the same SELECT restricted to one ctid range covering the table (a TID
//                   range scan instead of a sequential scan)
//   psql-halves-2   two psql processes at once, one ctid half each (two backends on two cores)
//   psql-halves-1   both halves one after the other in one session
//   psql-seqhalves-2/-1  the same halves read by a sequential scan with the ctid condition as a
//                   filter (`SET enable_tidscan = off`); -2ns: also synchronize_seqscans off
//   psql-seq-skipall a sequential scan whose ctid filter matches no row: what reading and
//                   skipping every page costs (the planner may give it parallel workers)
//   segferry-1/-2/-4 segferry export --streams 1 / 2 / 4 to a directory; segferry-empty: an empty table
//   segferry-2-tid/-seq, segferry-4-tid/-seq  the same with --stream-scan tid-range / seq-filter
//   base-2/-4       --streams 2 / 4 by another build (`--base DIR`: its bin/segferry.js and dist/,
//                   e.g. main's, alternated with this one's in the same run)
// `--only a,b`: only those contestants. `--cold`: the OS's page cache dropped before every run
// (root). The bench servers' shared_buffers: SF_BENCH_SHARED_BUFFERS (bench/lib/cluster.ts;
// default 256MB).
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SESSION_SETTINGS } from '../lib/pg/conn.js';
import { ctidRangeSQL } from '../lib/pg/sql.js';
import { psqlEnv } from './lib/cluster.js';
import { TABLE, growNode, nodeSelectSQL, rowCount, warmTable } from './lib/data.js';
import { runSection, sectionFlags, withBenchServers } from './lib/common.js';
import { cleanupTimeDir, measure, median, type Spawned } from './lib/measure.js';

const { rows, reps, values } = sectionFlags({
  usage: 'node --import tsx bench/streams-server.ts [--rows N (default 1000000; --quick 200000)] [--reps N (default 5; --quick 1)] [--quick] [--only id,id,…] [--base DIR] [--cold]',
  options: { only: { type: 'string' }, base: { type: 'string' }, cold: { type: 'boolean' } },
  rows: { full: 1_000_000, quick: 200_000 },
  reps: { full: 5, quick: 1 },
});
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (s: string) => process.stderr.write(`[streams-server] ${s}\n`);

function dropCaches(): void {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  } catch (e) {
    throw new Error(`--cold needs to write /proc/sys/vm/drop_caches (root): ${(e as Error).message}`);
  }
}

async function main(): Promise<void> {
  await withBenchServers(['streams-server'], 'sf-bench-streams-server-', async (servers, dir) => {
    const server = servers[0]!;
    await growNode(server, 0, rows);
    warmTable(server);
    await server.query(`CREATE TABLE IF NOT EXISTS empty_t (LIKE ${TABLE})`);
    const total = await rowCount(server);
    const pages = Number((await server.query<{ p: string }>(`SELECT pg_relation_size('${TABLE}') / 8192 AS p`))[0]!.p);
    const half = Math.floor(pages / 2);
    const meters = { serverPids: () => [server.pid], s3Pid: () => undefined, quiesce: () => server.quiesce() };
    const sel = nodeSelectSQL();
    const toNull = (where?: string) => `\\copy (${sel}${where ? ` WHERE ${where}` : ''}) TO '/dev/null'`;
    const psql = (...cmds: string[]): Spawned => ({ cmd: 'psql', env: psqlEnv(), args: [...server.psqlArgs(), ...cmds.flatMap((c) => ['-c', c])] });
    const settings = `SELECT ${Object.entries(SESSION_SETTINGS).map(([k, v]) => `set_config('${k}', '${v}', false)`).join(', ')}`;
    let n = 0;
    const segferry = (table: string, streams: string, extra: string[] = [], root = ROOT): Spawned => ({
      cmd: process.execPath,
      args: [path.join(root, 'bin/segferry.js'), 'export', '--source', server.url(), '--table', table, '--to', path.join(dir, `out${n++}`), '--streams', streams, '-q', ...extra],
    });
    const base = values.base === undefined ? undefined : path.resolve(String(values.base));
    const contestants: [string, () => Spawned[]][] = [
      ['psql', () => [psql(toNull())]],
      ['psql-settings', () => [psql('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', settings, toNull(), 'COMMIT')]],
      ['psql-ctid', () => [psql(toNull(ctidRangeSQL(0, null)))]],
      ['psql-halves-2', () => [psql(toNull(ctidRangeSQL(0, half))), psql(toNull(ctidRangeSQL(half, null)))]],
      ['psql-halves-1', () => [psql(toNull(ctidRangeSQL(0, half)), toNull(ctidRangeSQL(half, null)))]],
      ['psql-seqhalves-2', () => [psql('SET enable_tidscan = off', toNull(ctidRangeSQL(0, half))), psql('SET enable_tidscan = off', toNull(ctidRangeSQL(half, null)))]],
      ['psql-seqhalves-2ns', () => [psql('SET enable_tidscan = off', 'SET synchronize_seqscans = off', toNull(ctidRangeSQL(0, half))), psql('SET enable_tidscan = off', 'SET synchronize_seqscans = off', toNull(ctidRangeSQL(half, null)))]],
      ['psql-seqhalves-1', () => [psql('SET enable_tidscan = off', toNull(ctidRangeSQL(0, half)), toNull(ctidRangeSQL(half, null)))]],
      ['segferry-1', () => [segferry(TABLE, '1')]],
      ['segferry-2', () => [segferry(TABLE, '2')]],
      ['segferry-4', () => [segferry(TABLE, '4')]],
      ['segferry-2-tid', () => [segferry(TABLE, '2', ['--stream-scan', 'tid-range'])]],
      ['segferry-2-seq', () => [segferry(TABLE, '2', ['--stream-scan', 'seq-filter'])]],
      ['segferry-4-tid', () => [segferry(TABLE, '4', ['--stream-scan', 'tid-range'])]],
      ['segferry-4-seq', () => [segferry(TABLE, '4', ['--stream-scan', 'seq-filter'])]],
      ...(base ? ([['base-2', () => [segferry(TABLE, '2', [], base)]], ['base-4', () => [segferry(TABLE, '4', [], base)]]] as [string, () => Spawned[]][]) : []),
      ['psql-seq-skipall', () => [psql('SET enable_tidscan = off', toNull(ctidRangeSQL(pages + 10, null)))]],
      ['segferry-empty', () => [segferry('empty_t', '1')]],
    ];
    if (values.only) {
      const keep = new Set(String(values.only).split(','));
      for (let i = contestants.length - 1; i >= 0; i--) if (!keep.has(contestants[i]![0])) contestants.splice(i, 1);
    }
    const got = new Map<string, { srv: number; cli: number; wall: number }[]>(contestants.map(([id]) => [id, []]));
    for (let r = 0; r < reps; r++) {
      for (let i = 0; i < contestants.length; i++) {
        const [id, procs] = contestants[(i + r) % contestants.length]!;
        // --cold: the OS's page cache dropped before every run (root only), so the table is read
        // from the disk (what the server's own pool still holds stays: give it a small
        // shared_buffers with SF_BENCH_SHARED_BUFFERS).
        if (values.cold) dropCaches();
        const c = await measure(procs(), meters);
        rmSync(dir, { recursive: true, force: true });
        got.get(id)!.push({ srv: c.serverCpuS, cli: c.clientCpuS, wall: c.wallS });
        log(`rep ${r + 1}: ${id}: wall ${c.wallS.toFixed(2)} s, server ${c.serverCpuS.toFixed(2)} CPU-s, client ${c.clientCpuS.toFixed(2)} CPU-s (load ${os.loadavg()[0]!.toFixed(1)})`);
      }
    }
    const out = [`streams-server: one table on one server, ${total} rows, ${pages} pages, ${reps} repetition(s), medians [min–max]`];
    out.push(`  ${'contestant'.padEnd(16)} ${'wall s'.padStart(7)} ${'server CPU-s'.padStart(20)} ${'client CPU-s'.padStart(13)}`);
    const psqlSrv = got.has('psql') ? median(got.get('psql')!.map((s) => s.srv)) : NaN;
    for (const [id] of contestants) {
      const srv = got.get(id)!.map((s) => s.srv);
      const range = `${Math.min(...srv).toFixed(2)}–${Math.max(...srv).toFixed(2)}`;
      out.push(`  ${id.padEnd(16)} ${median(got.get(id)!.map((s) => s.wall)).toFixed(2).padStart(7)} ${`${median(srv).toFixed(2)} [${range}]`.padStart(20)} ${median(got.get(id)!.map((s) => s.cli)).toFixed(2).padStart(13)}${id === 'psql' || id === 'segferry-empty' ? '' : `  (${(median(srv) / psqlSrv).toFixed(2)}× psql's server CPU)`}`);
    }
    process.stdout.write(out.join('\n') + '\n');
  }).finally(cleanupTimeDir);
}

runSection(main);
