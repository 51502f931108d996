// segferry benchmarks: `npm run bench -- [--gb 1.5] [--reps 3] [--only export,import,rss] [--quick] [--profile]`.
// Self-contained: starts 3 data nodes, an fdw coordinator over them and s3rver on 127.0.0.1,
// generates the data on each node with SQL, then measures, alternating the contestants within
// every repetition. Prints a table, saves JSON under bench/results/, rewrites docs/benchmarks.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BenchServer, pgVersion, psqlEnv, stopAll } from './lib/cluster.js';
import { COLUMN_NAMES, TABLE, bytesPerRow, growNode, nodeSelectSQL, rowCount, setupCoordinator, tableDDL } from './lib/data.js';
import { cleanupTimeDir, measure, median, type Meters, type RunCost, type Spawned } from './lib/measure.js';
import { summarizeProfile, type ProfileEntry } from './lib/profile.js';
import { S3_BUCKET, S3_CREDENTIALS, startS3, type BenchS3 } from './lib/s3.js';
import { SECTIONS, runSection as runBenchSection, sectionsMarkdown, type SectionResult } from './sections.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GB = 1e9; // decimal GB and MB throughout, as throughput figures usually are
/** Part size of the second S3 export in the RSS section (the default is 8 MiB). */
const ALT_PART = '16MiB';

// ---------------------------------------------------------------- options
const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    gb: { type: 'string' },
    reps: { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean' },
    profile: { type: 'boolean' },
    docs: { type: 'boolean' },
    'no-docs': { type: 'boolean' },
    'no-build': { type: 'boolean' },
    'no-s3': { type: 'boolean' },
    keep: { type: 'boolean' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  process.stdout.write(`npm run bench -- [options]
  --gb N         table data in GB of COPY TEXT over 3 nodes (default 1.5; env SEGFERRY_BENCH_GB)
  --reps N       repetitions, contestants alternating within each (default 3; also passed to the sections)
  --only LIST    export, import, rss and the sections of bench/sections.ts (${SECTIONS.map((x) => x.name).join(', ')}); comma-separated, default all
  --quick        smoke run: 0.1 GB, 2 repetitions, docs/benchmarks.md left alone
  --profile      also run one TEXT export (and one import) under --cpu-prof and print the hottest functions
  --no-s3        skip the s3rver contestants
  --docs/--no-docs  force / skip rewriting docs/benchmarks.md (default: rewrite unless --quick)
  --no-build     do not run tsc first (dist/ must be current)
  --keep         keep .bench-data/ (servers are stopped either way)
  --render FILE  only rewrite docs/benchmarks.md from a saved results JSON (e.g. after editing bench/analysis.md)
`);
  process.exit(0);
}
const quick = flags.quick === true;
const gbTarget = Number(flags.gb ?? process.env.SEGFERRY_BENCH_GB ?? (quick ? 0.1 : 1.5));
const reps = Number(flags.reps ?? (quick ? 2 : 3));
const CORE = ['export', 'import', 'rss'];
const only = new Set((flags.only ?? [...CORE, ...SECTIONS.map((x) => x.name)].join(',')).split(',').map((s) => s.trim()));
const runCore = CORE.some((c) => only.has(c));
/** The extra sections, run after the core ones (each starts and stops its own servers). */
function runSections(): SectionResult[] {
  return SECTIONS.filter((x) => only.has(x.name)).map((x) => {
    log(`section ${x.name}: bench/${x.script}${quick ? ' --quick' : ''}`);
    return runBenchSection(x, quick, flags.reps !== undefined ? reps : undefined);
  });
}
const withS3 = flags['no-s3'] !== true;
const writeDocs = flags.docs === true || (!quick && flags['no-docs'] !== true);
if (!(gbTarget > 0) || !(reps >= 1)) throw new Error('--gb and --reps must be positive');

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---------------------------------------------------------------- results
interface Sample extends RunCost {
  rep: number;
  bytes: number;
  rows: number;
}
interface Stat { median: number; min: number; max: number }
interface Summary {
  id: string;
  label: string;
  section: string;
  samples: Sample[];
  mbps: Stat;
  rowsps: Stat;
  wallS: Stat;
  /** client CPU / wall: how many cores the client process kept busy */
  clientCores: Stat;
  clientCpuSPerGB: Stat;
  serverCpuSPerGB: Stat;
  s3CpuSPerGB: Stat;
  machineCores: Stat;
  peakRssMB: Stat;
}
function stat(xs: number[]): Stat {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}
function summarize(id: string, label: string, section: string, samples: Sample[]): Summary {
  const perGB = (f: (s: Sample) => number) => stat(samples.map((s) => f(s) / (s.bytes / GB)));
  return {
    id, label, section, samples,
    mbps: stat(samples.map((s) => s.bytes / 1e6 / s.wallS)),
    rowsps: stat(samples.map((s) => s.rows / s.wallS)),
    wallS: stat(samples.map((s) => s.wallS)),
    clientCores: stat(samples.map((s) => s.clientCpuS / s.wallS)),
    clientCpuSPerGB: perGB((s) => s.clientCpuS),
    serverCpuSPerGB: perGB((s) => s.serverCpuS),
    s3CpuSPerGB: perGB((s) => s.s3CpuS),
    machineCores: stat(samples.map((s) => s.machineCpuS / s.wallS)),
    peakRssMB: stat(samples.map((s) => s.clientMaxRssKB / 1024)),
  };
}

// ---------------------------------------------------------------- set-up
const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
const base = path.join(ROOT, '.bench-data', `run-${stamp}`);
const servers: BenchServer[] = [];
let s3: BenchS3 | undefined;
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await stopAll().catch(() => {});
  await s3?.stop();
  cleanupTimeDir();
  if (!flags.keep) rmSync(base, { recursive: true, force: true });
}
process.once('SIGINT', () => { void cleanup().finally(() => process.exit(130)); });

/**
 * Whether `--format arrow` really writes Arrow: a build that only knows the name may still
 * write TEXT, so export one row and look for the IPC magic (file "ARROW1", or a stream's
 * 0xFFFFFFFF continuation marker).
 */
function arrowAvailable(topo: string, dir: string): boolean {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/segferry.js'), 'export', '--topology', topo, '--table', 'bench_probe',
    '--format', 'arrow', '--no-checksums', '--to', dir, '-q'], { encoding: 'utf8' });
  try {
    if (r.status !== 0) return false;
    const seg = readdirSync(dir).find((f) => /_segment\.\d+/.test(f) && !f.endsWith('.json'));
    if (!seg) return false;
    const head = readFileSync(path.join(dir, seg)).subarray(0, 6);
    return head.toString('latin1') === 'ARROW1' || head.readUInt32LE(0) === 0xffffffff;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const disk = spawnSync('df', ['-h', '--output=source,fstype,size', ROOT], { encoding: 'utf8' }).stdout.trim().split('\n').pop() ?? '';
  return {
    nproc: cpus().length,
    cpu: model.trim(),
    memoryGB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    postgres: pgVersion(),
    disk: disk.replace(/\s+/g, ' '),
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const load0 = loadavg();
  if (!flags['no-build']) {
    log('building dist/ (tsc)');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('tsc failed');
  }
  mkdirSync(base, { recursive: true });
  log(`work dir ${base}; target ${gbTarget} GB, ${reps} repetitions, sections: ${[...only].join(',')}`);

  log('starting 3 data nodes and an fdw coordinator');
  servers.push(...(await Promise.all(['dn1', 'dn2', 'dn3', 'coord'].map((name) => BenchServer.start(name)))));
  const nodes = servers.slice(0, 3);
  const coord = servers[3]!;
  for (const n of nodes) {
    await n.query(tableDDL(TABLE));
    await n.query('CREATE DATABASE bench_import', 'postgres');
    await n.query(tableDDL(TABLE), 'bench_import');
    await n.query(`CREATE TABLE bench_probe AS SELECT 1 AS id, 'x'::text AS t`);
  }
  await setupCoordinator(coord, nodes);
  if (withS3) {
    log('starting s3rver');
    s3 = await startS3(base);
  }
  const topo = path.join(base, 'nodes.json');
  writeFileSync(topo, JSON.stringify({ nodes: nodes.map((n) => ({ name: n.name, url: n.url() })) }));
  const topoImport = path.join(base, 'nodes-import.json');
  writeFileSync(topoImport, JSON.stringify({ nodes: nodes.map((n) => ({ name: n.name, url: n.url('bench_import') })) }));

  const importHelp = spawnSync(process.execPath, [path.join(ROOT, 'bin/segferry.js'), 'import', '--help'], { encoding: 'utf8' });
  const haveImport = importHelp.status === 0;
  const haveArrow = arrowAvailable(topo, path.join(base, 'arrow-probe'));
  log(`segferry import: ${haveImport ? 'available' : 'not available'}; arrow format: ${haveArrow ? 'available' : 'not available'}`);

  const meters: Meters = {
    serverPids: () => servers.map((s) => s.pid),
    s3Pid: () => s3?.pid,
    quiesce: async () => {
      for (const s of servers) await s.quiesce();
      await new Promise((r) => setTimeout(r, 100));
    },
  };
  const bpr = await bytesPerRow(nodes[0]!);
  log(`~${bpr.toFixed(0)} bytes per row in COPY TEXT`);

  let rowsTotal = 0;
  let mainRows = 0;
  let textBytes = 0;
  const grow = async (gb: number) => {
    const perNode = Math.round((gb * GB) / bpr / 3);
    log(`generating ${gb} GB: ${perNode} rows per node`);
    const g0 = Date.now();
    await Promise.all(nodes.map((n, i) => growNode(n, i, perNode)));
    rowsTotal = 0;
    for (const n of nodes) rowsTotal += await rowCount(n);
    const sizes = await Promise.all(nodes.map((n) => n.query<{ b: string }>(`SELECT pg_table_size('${TABLE}') AS b`)));
    log(`generated in ${((Date.now() - g0) / 1000).toFixed(0)} s: ${rowsTotal} rows, ${(sizes.reduce((a, r) => a + Number(r[0]!.b), 0) / GB).toFixed(2)} GB on disk`);
    textBytes = 0; // measured again by the next TEXT export
  };

  // ---------------------------------------------------------------- contestants
  const out = path.join(base, 'out');
  mkdirSync(out, { recursive: true });
  const segferry = path.join(ROOT, 'bin/segferry.js');
  const s3Env = { ...process.env, AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' };
  let seq = 0;
  const manifestBytes = (dir: string) => {
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { objects: { bytes: number; node: string; segment: number; key: string }[] };
    return m.objects.reduce((a, o) => a + o.bytes, 0);
  };
  const settle = () => { spawnSync('sync'); };

  /** segferry export as a child process; returns the cost and the bytes it wrote. */
  async function segExport(o: { format: string; dest: 'dir' | 's3'; checksums: boolean; nodeArgs?: string[]; keepDir?: string; extraArgs?: string[] }): Promise<{ cost: RunCost; bytes: number }> {
    const n = seq++;
    const args = [...(o.nodeArgs ?? []), segferry, 'export', '--topology', topo, '--table', TABLE, '--format', o.format, '-q', ...(o.extraArgs ?? [])];
    if (!o.checksums) args.push('--no-checksums');
    let dir: string | undefined;
    if (o.dest === 'dir') {
      dir = o.keepDir ?? path.join(out, `x${n}`);
      rmSync(dir, { recursive: true, force: true });
      args.push('--to', dir);
    } else {
      args.push('--to', `s3://${S3_BUCKET}/x${n}`, '--s3-endpoint', s3!.endpoint, '--s3-path-style', '--s3-checksum', 'WHEN_REQUIRED');
    }
    const cost = await measure([{ cmd: process.execPath, args, env: s3Env }], meters);
    let bytes: number;
    if (dir) {
      bytes = manifestBytes(dir);
      if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
    } else {
      const mf = path.join(s3!.dir, S3_BUCKET, `x${n}`, 'manifest.json._S3rver_object');
      bytes = existsSync(mf) ? (JSON.parse(readFileSync(mf, 'utf8')) as { objects: { bytes: number }[] }).objects.reduce((a, x) => a + x.bytes, 0) : textBytes;
      s3!.removePrefix(`x${n}`);
    }
    settle();
    return { cost, bytes };
  }

  const copyOpts = (fmt: string) => `(FORMAT ${fmt}, ENCODING 'UTF8')`;
  const csvBytes = { v: 0 };
  type Run = () => Promise<{ cost: RunCost; bytes: number }>;
  const exportContestants: { id: string; label: string; run: Run }[] = [
    {
      id: 'limit-text', label: 'limit: psql COPY TO STDOUT, 3 nodes at once, TEXT → /dev/null',
      run: async () => ({ cost: await measure(nodes.map((s) => ({ cmd: 'psql', env: psqlEnv(), args: [...s.psqlArgs(), '-c', `COPY (${nodeSelectSQL()}) TO STDOUT ${copyOpts('text')}`] })), meters), bytes: textBytes }),
    },
    {
      id: 'seg-text-dir', label: 'segferry export TEXT → directory (--no-checksums)',
      run: async () => { const r = await segExport({ format: 'text', dest: 'dir', checksums: false }); textBytes = r.bytes; return r; },
    },
    {
      id: 'limit-csv', label: 'limit: psql COPY TO STDOUT, 3 nodes at once, CSV → /dev/null',
      run: async () => ({ cost: await measure(nodes.map((s) => ({ cmd: 'psql', env: psqlEnv(), args: [...s.psqlArgs(), '-c', `COPY (${nodeSelectSQL()}) TO STDOUT ${copyOpts('csv')}`] })), meters), bytes: csvBytes.v }),
    },
    {
      id: 'seg-csv-dir', label: 'segferry export CSV → directory (--no-checksums)',
      run: async () => { const r = await segExport({ format: 'csv', dest: 'dir', checksums: false }); csvBytes.v = r.bytes; return r; },
    },
    { id: 'seg-text-dir-chk', label: 'segferry export TEXT → directory, with checksums (default)', run: () => segExport({ format: 'text', dest: 'dir', checksums: true }) },
  ];
  if (haveArrow) exportContestants.push({ id: 'seg-arrow-dir', label: 'segferry export Arrow → directory (--no-checksums)', run: () => segExport({ format: 'arrow', dest: 'dir', checksums: false }) });
  // Worker threads (--threads on): on this 2-core machine the servers need the other core, so
  // these show the cost of the threads; `auto` leaves them off here (2 cores, servers on this
  // host; lib/export/threads.ts autoThreads).
  exportContestants.push({ id: 'seg-text-dir-threads', label: 'segferry export TEXT → directory (--no-checksums, --threads on)', run: () => segExport({ format: 'text', dest: 'dir', checksums: false, extraArgs: ['--threads', 'on'] }) });
  if (haveArrow) exportContestants.push({ id: 'seg-arrow-dir-threads', label: 'segferry export Arrow → directory (--no-checksums, --threads on)', run: () => segExport({ format: 'arrow', dest: 'dir', checksums: false, extraArgs: ['--threads', 'on'] }) });
  if (withS3) {
    exportContestants.push(
      { id: 'seg-text-s3', label: 'segferry export TEXT → s3rver (--no-checksums)', run: () => segExport({ format: 'text', dest: 's3', checksums: false }) },
      {
        id: 'naive-s3', label: 'naive: one COPY through the coordinator → one object (lib-storage) on s3rver',
        run: async () => {
          const key = `naive${seq++}`;
          const cost = await measure([{ cmd: process.execPath, args: [path.join(ROOT, 'bench/naive.mjs'), coord.url(), `SELECT * FROM ${TABLE}`, 's3', s3!.endpoint, S3_BUCKET, key] }], meters);
          s3!.removePrefix(key + '._S3rver_object');
          for (const f of readdirSync(path.join(s3!.dir, S3_BUCKET))) if (f.startsWith(key)) rmSync(path.join(s3!.dir, S3_BUCKET, f), { recursive: true, force: true });
          settle();
          return { cost, bytes: textBytes };
        },
      },
    );
  }
  exportContestants.push({
    id: 'naive-file', label: 'naive: one COPY through the coordinator → one local file',
    run: async () => {
      const f = path.join(out, `naive${seq++}.txt`);
      const cost = await measure([{ cmd: process.execPath, args: [path.join(ROOT, 'bench/naive.mjs'), coord.url(), `SELECT * FROM ${TABLE}`, 'file', f] }], meters);
      const bytes = statSync(f).size;
      rmSync(f, { force: true });
      settle();
      return { cost, bytes };
    },
  });

  const summaries: Summary[] = [];
  const rssPoints: { gb: number; rows: number; bytes: number; dirRssMB: number; dirWallS: number; s3RssMB?: number; s3WallS?: number; s3Part8RssMB?: number; s3AltRssMB?: number; s3AltPart?: string }[] = [];
  let profile: Profile | undefined;
  let importProfile: Profile | undefined;
  const profileRun = async (what: string, run: (nodeArgs: string[]) => Promise<RunCost>): Promise<Profile> => {
    const pdir = path.join(base, 'profile-' + what);
    rmSync(pdir, { recursive: true, force: true });
    mkdirSync(pdir, { recursive: true });
    const cost = await run(['--cpu-prof', `--cpu-prof-dir=${pdir}`]);
    const p = { ...summarizeProfile(pdir), wallS: cost.wallS, cpuS: cost.clientCpuS };
    log(`profile of ${what}: ${cost.wallS.toFixed(2)} s wall, ${cost.clientCpuS.toFixed(2)} CPU-s`);
    for (const e of p.entries.slice(0, 20)) log(`  ${e.selfMs.toFixed(0).padStart(7)} ms ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.fn}  ${e.where}`);
    return p;
  };

  async function runSection(section: string, cs: { id: string; label: string; run: Run }[]): Promise<void> {
    const samples = new Map<string, Sample[]>(cs.map((c) => [c.id, []]));
    for (let rep = 1; rep <= reps; rep++) {
      for (const c of cs) {
        const { cost, bytes } = await c.run();
        const s: Sample = { ...cost, rep, bytes, rows: rowsTotal };
        samples.get(c.id)!.push(s);
        log(`${section} rep ${rep}/${reps} ${c.id.padEnd(18)} ${cost.wallS.toFixed(2).padStart(7)} s  ${(bytes / 1e6 / cost.wallS).toFixed(1).padStart(6)} MB/s  client ${(cost.clientCpuS / cost.wallS).toFixed(2)} cores, ${(cost.clientMaxRssKB / 1024).toFixed(0)} MB  server ${(cost.serverCpuS / cost.wallS).toFixed(2)} cores  machine ${(cost.machineCpuS / cost.wallS).toFixed(2)} cores`);
      }
    }
    // The limits ran before the first segferry run had measured the byte counts: fill them in.
    for (const c of cs) {
      const ss = samples.get(c.id)!;
      for (const s of ss) if (s.bytes === 0) s.bytes = c.id === 'limit-csv' ? csvBytes.v : textBytes;
      summaries.push(summarize(c.id, c.label, section, ss));
    }
  }

  const sizes = only.has('rss') ? [gbTarget / 3, gbTarget, gbTarget * 2] : [gbTarget];
  for (const gb of sizes) {
    await grow(gb);
    if (gb === gbTarget) mainRows = rowsTotal;
    if (gb === gbTarget && only.has('export')) {
      await runSection('export', exportContestants);
    }
    if (gb === gbTarget && only.has('import')) {
      if (!haveImport) {
        log('import: skipped: import not available');
      } else {
        await runImport();
      }
    }
    if (gb === gbTarget && flags.profile) {
      profile = await profileRun('export', async (nodeArgs) => (await segExport({ format: 'text', dest: 'dir', checksums: false, nodeArgs })).cost);
    }
    if (only.has('rss')) {
      const d = await segExport({ format: 'text', dest: 'dir', checksums: true });
      const p: (typeof rssPoints)[number] = { gb, rows: rowsTotal, bytes: d.bytes, dirRssMB: d.cost.clientMaxRssKB / 1024, dirWallS: d.cost.wallS };
      if (withS3) {
        const x = await segExport({ format: 'text', dest: 's3', checksums: true });
        p.s3RssMB = x.cost.clientMaxRssKB / 1024;
        p.s3WallS = x.cost.wallS;
        // The S3 bound is one part per upload plus the store's shared uploadMemory (a multiple of partSize): show the lever.
        const y = await segExport({ format: 'text', dest: 's3', checksums: true, extraArgs: ['--s3-part-size', ALT_PART] });
        p.s3AltRssMB = y.cost.clientMaxRssKB / 1024;
        p.s3AltPart = ALT_PART;
      }
      rssPoints.push(p);
      log(`rss at ${gb.toFixed(2)} GB: directory ${p.dirRssMB.toFixed(0)} MB${p.s3RssMB !== undefined ? `, s3 ${p.s3RssMB.toFixed(0)} MB, s3 with ${p.s3AltPart} parts ${p.s3AltRssMB?.toFixed(0)} MB` : ''}`);
    }
  }

  async function runImport(): Promise<void> {
    log('import: preparing the TEXT export to load');
    const src = path.join(base, 'import-src');
    await segExport({ format: 'text', dest: 'dir', checksums: true, keepDir: src });
    const m = JSON.parse(readFileSync(path.join(src, 'manifest.json'), 'utf8')) as { objects: { bytes: number; node: string; segment: number; key: string }[] };
    const bytes = m.objects.reduce((a, o) => a + o.bytes, 0);
    const truncate = async () => {
      for (const n of nodes) await n.query(`TRUNCATE ${TABLE}`, 'bench_import');
      for (const n of nodes) await n.query('CHECKPOINT', 'bench_import');
      settle();
    };
    const loaded = async (what: string) => {
      let rows = 0;
      for (const n of nodes) rows += Number((await n.query<{ c: string }>(`SELECT count(*) AS c FROM ${TABLE}`, 'bench_import'))[0]!.c);
      if (rows !== rowsTotal) throw new Error(`${what} loaded ${rows} rows, expected ${rowsTotal}`);
    };
    const help = importHelp.stdout;
    // Each object goes to the node it came from, like the psql baseline; the tables are emptied
    // (untimed) before every run, so --force tells the ledger to load the objects again.
    const importArgs = [segferry, 'import', '--from', src, '--topology', topoImport, '-q'];
    if (help.includes('--route')) importArgs.push('--route', 'direct');
    if (help.includes('--force')) importArgs.push('--force');
    await runSection('import', [
      {
        id: 'limit-import', label: 'limit: psql \\copy FROM file, 3 nodes at once (same segment files)',
        run: async () => {
          await truncate();
          const procs: Spawned[] = nodes.map((s) => ({
            cmd: 'psql',
            env: psqlEnv(),
            args: [...s.psqlArgs('bench_import'), ...m.objects.filter((o) => o.node === s.name).sort((a, b) => a.segment - b.segment)
              .flatMap((o) => ['-c', `\\copy ${TABLE} (${COLUMN_NAMES.join(', ')}) FROM '${path.join(src, o.key)}'`])],
          }));
          const cost = await measure(procs, meters);
          await loaded('psql \\copy');
          return { cost, bytes };
        },
      },
      {
        id: 'seg-import', label: 'segferry import from the directory',
        run: async () => {
          await truncate();
          const cost = await measure([{ cmd: process.execPath, args: importArgs }], meters);
          await loaded('segferry import');
          return { cost, bytes };
        },
      },
    ]);
    if (flags.profile) {
      importProfile = await profileRun('import', async (nodeArgs) => {
        await truncate();
        const cost = await measure([{ cmd: process.execPath, args: [...nodeArgs, ...importArgs] }], meters);
        await loaded('segferry import');
        return cost;
      });
    }
  }

  await cleanup();
  const sections = runSections();
  const load1 = loadavg();
  const report = buildReport({ sections, machine: machineInfo(), reps, when: new Date().toISOString(), gbTarget, summaries, rssPoints, profile, importProfile, haveImport, haveArrow, load0, load1, elapsedS: (Date.now() - t0) / 1000, rowsTotal: mainRows, bpr });
  process.stdout.write('\n' + report.text + '\n');
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  const json = JSON.stringify(report.json, null, 2) + '\n';
  const jf = path.join(ROOT, 'bench/results', `${stamp}${quick ? '-quick' : ''}.json`);
  writeFileSync(jf, json);
  log(`saved ${path.relative(ROOT, jf)}`);
  if (writeDocs) {
    writeFileSync(path.join(ROOT, 'bench/results/latest.json'), json);
    mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
    writeFileSync(path.join(ROOT, 'docs/benchmarks.md'), report.markdown);
    log('wrote docs/benchmarks.md and bench/results/latest.json');
  }
}

// ---------------------------------------------------------------- report
interface Target { what: string; target: string; value: number | undefined; met: boolean | undefined; detail: string }

type Machine = ReturnType<typeof machineInfo>;
type Profile = { totalMs: number; entries: ProfileEntry[]; wallS: number; cpuS: number };

function buildReport(r: {
  sections?: SectionResult[];
  machine: Machine;
  reps: number;
  when: string;
  gbTarget: number;
  summaries: Summary[];
  rssPoints: { gb: number; rows: number; bytes: number; dirRssMB: number; dirWallS: number; s3RssMB?: number; s3WallS?: number; s3Part8RssMB?: number; s3AltRssMB?: number; s3AltPart?: string }[];
  profile: Profile | undefined;
  importProfile?: Profile | undefined;
  haveImport: boolean;
  haveArrow: boolean;
  load0: number[];
  load1: number[];
  elapsedS: number;
  rowsTotal: number;
  bpr: number;
}) {
  const by = (id: string) => r.summaries.find((s) => s.id === id);
  const ratio = (a: string, b: string) => {
    const x = by(a), y = by(b);
    return x && y ? x.rowsps.median / y.rowsps.median : undefined;
  };
  /** The second S3 export of an RSS point (files before 8 MiB became the default hold an 8 MiB one). */
  const alt = (p: (typeof r.rssPoints)[number]) =>
    p.s3AltRssMB !== undefined ? { part: p.s3AltPart ?? ALT_PART, mb: p.s3AltRssMB } : p.s3Part8RssMB !== undefined ? { part: '8MiB', mb: p.s3Part8RssMB } : undefined;
  const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2));
  // On a machine whose cores are all busy, throughput ∝ 1 / (all CPU spent per GB): this ratio
  // of CPU per row predicts the wall-clock ratio and is far less sensitive to other load.
  const cpuRatio = (a: string, b: string) => {
    const x = by(a), y = by(b);
    if (!x || !y) return undefined;
    const perRow = (q: Summary) => median(q.samples.map((s) => (s.clientCpuS + s.serverCpuS + s.s3CpuS) / s.rows));
    return perRow(y) / perRow(x);
  };
  const targets: Target[] = [];
  const add = (what: string, target: string, value: number | undefined, ok: (v: number) => boolean, detail: string, skipped?: string) => {
    targets.push({ what, target, value, met: value === undefined ? undefined : ok(value), detail: value === undefined ? (skipped ?? 'not measured') : detail });
  };
  const cpuNote = (a: string, b: string) => `CPU-bound model (CPU per row of ${b} / of ${a}): ${f2(cpuRatio(a, b))}`;
  add('export TEXT → directory / psql limit (rows/s)', '≥ 0.85', ratio('seg-text-dir', 'limit-text'), (v) => v >= 0.85, `both without checksums; ${cpuNote('seg-text-dir', 'limit-text')}`);
  add('export CSV → directory / psql TEXT limit (rows/s)', '≥ 0.80', ratio('seg-csv-dir', 'limit-text'), (v) => v >= 0.8, `vs the CSV limit: ${f2(ratio('seg-csv-dir', 'limit-csv'))}; ${cpuNote('seg-csv-dir', 'limit-text')}`);
  add('import / psql \\copy (rows/s)', '≥ 0.85', ratio('seg-import', 'limit-import'), (v) => v >= 0.85, `same segment files; ${cpuNote('seg-import', 'limit-import')}`, r.haveImport ? undefined : 'skipped: import not available');
  add('Arrow export / TEXT export (rows/s)', '≥ 0.60', ratio('seg-arrow-dir', 'seg-text-dir'), (v) => v >= 0.6, `both to a directory; ${cpuNote('seg-arrow-dir', 'seg-text-dir')}`, r.haveArrow ? undefined : 'skipped: arrow format not available');
  const rssMax = r.rssPoints.length ? Math.max(...r.rssPoints.flatMap((p) => [p.dirRssMB, p.s3RssMB ?? 0])) : undefined;
  add('peak RSS of segferry as the table grows (MB)', '< 300, flat', rssMax, (v) => v < 300,
    r.rssPoints.map((p) => `${p.gb.toFixed(2)} GB: dir ${p.dirRssMB.toFixed(0)}${p.s3RssMB !== undefined ? ` / s3 ${p.s3RssMB.toFixed(0)}` : ''}${alt(p) ? ` / s3 ${alt(p)!.part} parts ${alt(p)!.mb.toFixed(0)}` : ''}`).join('; '));
  const td = by('seg-text-dir');
  add('segferry cores used at the limit (TEXT → directory)', '≤ 0.5 ("well under one core")', td?.clientCores.median, (v) => v <= 0.5,
    td ? `${td.clientCpuSPerGB.median.toFixed(2)} CPU-s per GB (startup included): one core carries ≈ ${(1000 / td.clientCpuSPerGB.median).toFixed(0)} MB/s of export; the servers used ${td.serverCpuSPerGB.median.toFixed(2)} CPU-s per GB, psql ${by('limit-text')?.clientCpuSPerGB.median.toFixed(2) ?? '–'}` : '');

  const info = {
    'checksums cost (TEXT → dir with / without, rows/s)': ratio('seg-text-dir-chk', 'seg-text-dir'),
    'segferry → s3rver / naive → s3rver (rows/s)': ratio('seg-text-s3', 'naive-s3'),
    'segferry → directory / naive → one file (rows/s)': ratio('seg-text-dir', 'naive-file'),
    'CSV limit / TEXT limit (rows/s)': ratio('limit-csv', 'limit-text'),
    'worker threads on / off, TEXT → dir (rows/s; 2 cores: the servers need the second one)': ratio('seg-text-dir-threads', 'seg-text-dir'),
    'worker threads on / off, Arrow → dir (rows/s)': ratio('seg-arrow-dir-threads', 'seg-arrow-dir'),
  };

  const mm = (s: Stat, d = 1) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
  const header = ['contestant', 'MB/s', 'k rows/s', 'wall s', 'client cores', 'client CPU-s/GB', 'server CPU-s/GB', 's3rver CPU-s/GB', 'machine cores', 'client peak RSS MB'];
  const rows = r.summaries.map((s) => [
    s.label, mm(s.mbps), mm({ median: s.rowsps.median / 1e3, min: s.rowsps.min / 1e3, max: s.rowsps.max / 1e3 }, 0), mm(s.wallS, 2),
    s.clientCores.median.toFixed(2), s.clientCpuSPerGB.median.toFixed(2), s.serverCpuSPerGB.median.toFixed(2),
    s.s3CpuSPerGB.median > 0.05 ? s.s3CpuSPerGB.median.toFixed(2) : '–', s.machineCores.median.toFixed(2), s.peakRssMB.median.toFixed(0),
  ]);
  const mdTable = (h: string[], rs: string[][]) => [`| ${h.join(' | ')} |`, `|${h.map(() => '---').join('|')}|`, ...rs.map((x) => `| ${x.join(' | ')} |`)].join('\n');
  const machine = r.machine;
  const reps = r.reps;
  const sizeGB = (r.summaries[0]?.samples[0]?.bytes ?? 0) / GB;
  const targetRows = targets.map((t) => [t.what, t.target, t.value === undefined ? '–' : t.value.toFixed(2), t.met === undefined ? t.detail : t.met ? 'met' : 'missed', t.met === undefined ? '' : t.detail]);
  const infoRows = Object.entries(info).map(([k, v]) => [k, f2(v)]);
  const rssRows = r.rssPoints.map((p) => [p.gb.toFixed(2), String(p.rows), (p.bytes / GB).toFixed(2), p.dirRssMB.toFixed(0), p.dirWallS.toFixed(1), p.s3RssMB?.toFixed(0) ?? '–', p.s3WallS?.toFixed(1) ?? '–', alt(p)?.mb.toFixed(0) ?? '–']);
  const altPart = r.rssPoints.map(alt).find((x) => x)?.part ?? ALT_PART;
  const rssHeader = ['target GB', 'rows', 'TEXT GB', 'peak RSS → dir MB', 'wall s', `peak RSS → s3rver MB (default part size${r.rssPoints.some((p) => p.s3Part8RssMB !== undefined) ? ', 16 MiB then' : ''})`, 'wall s', `peak RSS → s3rver MB, --s3-part-size ${altPart}`];
  const loadNote = `load average ${r.load0.map((x) => x.toFixed(2)).join(' ')} at the start, ${r.load1.map((x) => x.toFixed(2)).join(' ')} at the end`;
  const profSection = (title: string, what: string, p: Profile | undefined) => p ? `\n## ${title}\n\n\`node --cpu-prof\` of ${what}: ${p.wallS.toFixed(1)} s wall, ${p.cpuS.toFixed(1)} CPU-s; self time of the hottest functions on the main thread (share of its busy time; on a loaded machine, time spent preempted counts too).\n\n${mdTable(['self ms', 'share', 'function', 'where'], p.entries.slice(0, 15).map((e) => [`${e.selfMs.toFixed(0)}`, `${(e.share * 100).toFixed(1)}%`, '`' + e.fn + '`', e.where]))}\n` : '';

  const text = [
    `segferry benchmarks: ${sizeGB.toFixed(2)} GB of COPY TEXT, ${r.rowsTotal} rows over 3 nodes, ${reps} repetitions (median (min–max))`,
    `machine: ${machine.nproc} cores ${machine.cpu}, ${machine.memoryGB} GB, ${machine.postgres}, Node ${machine.node}; ${loadNote}`,
    '',
    ...[header, ...rows].map((x) => x.join(' | ')),
    '',
    'targets:',
    ...targetRows.map((x) => `  ${x[0]}: ${x[2]} (target ${x[1]}) ${x[3]} ${x[4]}`),
    'other ratios:',
    ...infoRows.map((x) => `  ${x[0]}: ${x[1]}`),
    ...(rssRows.length ? ['peak RSS:', ...[rssHeader, ...rssRows].map((x) => '  ' + x.join(' | '))] : []),
  ].join('\n');

  const analysisFile = path.join(ROOT, 'bench/analysis.md');
  const analysis = existsSync(analysisFile) ? readFileSync(analysisFile, 'utf8').trim() : '';
  const markdown = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts) on ${r.when.slice(0, 16).replace('T', ' ')} UTC; the raw figures are in
\`bench/results/latest.json\`. Do not edit the figures by hand: run the benchmark again. The analysis at the
end comes from \`bench/analysis.md\`.

## How it was run

- ${sizeGB.toFixed(2)} GB of table data (COPY TEXT bytes, decimal GB), ${r.rowsTotal} rows, ~${r.bpr.toFixed(0)} bytes per row, in
  one table spread over 3 data nodes (PostgreSQL servers on this machine), generated with SQL: bigint, int,
  numeric, float8 with NULLs, boolean, timestamptz, date, text with tabs, newlines, CRs, backslashes, quotes,
  commas and UTF-8, text[], jsonb, uuid.
- ${reps} repetitions; within each, every contestant runs once, in the order of the table; figures are
  median (min–max). Every client runs as its own process under \`/usr/bin/time\`; server CPU is read from the
  postmasters' reaped-children CPU, s3rver's from /proc.
- Servers: fsync, full_page_writes and autovacuum off, wal_level minimal, shared_buffers 256MB; the tables
  are VACUUM FREEZEd after loading, so reads never write. s3rver 3.7.1 with \`WHEN_REQUIRED\` checksums for
  segferry and the naive script alike.
- "client cores" is the client's CPU time / wall time; "machine cores" is the busy time of the whole machine
  (other users of the machine included) / wall time.
- "The limit" is psql running \`COPY (SELECT <the same columns>) TO STDOUT\` on all three nodes at once into
  /dev/null; the import limit is psql \`\\copy … FROM\` on all three nodes at once with the same files.

## Machine

| | |
|---|---|
| cores (nproc) | ${machine.nproc} |
| CPU | ${machine.cpu} |
| memory | ${machine.memoryGB} GB |
| disk | ${machine.disk} |
| kernel | ${machine.kernel} |
| PostgreSQL | ${machine.postgres} |
| Node | ${machine.node} |
| load | ${loadNote} |
| run time | ${r.elapsedS ? `${(r.elapsedS / 60).toFixed(1)} min` : "–"} |

## Figures

${mdTable(header, rows)}

## Targets

${mdTable(['ratio', 'target', 'measured', 'verdict', 'detail'], targetRows)}

## Other ratios

${mdTable(['ratio', 'measured'], infoRows)}
${rssRows.length ? `\n## Peak RSS as the table grows\n\nOne TEXT export with checksums (the default) at each size, to a directory and to s3rver (default part size, and another part size to show the lever).\n\n${mdTable(rssHeader, rssRows)}\n` : ''}${profSection('Where the CPU of one TEXT export goes', 'one TEXT export to a directory without checksums', r.profile)}${profSection('Where the CPU of one import goes', 'one import of the TEXT export', r.importProfile)}
${sectionsMarkdown(r.sections ?? [])}${analysis ? '\n' + analysis + '\n' : ''}`;

  return {
    text,
    markdown,
    json: {
      when: r.when, machine, load: { start: r.load0, end: r.load1 }, elapsedS: r.elapsedS, gbTarget: r.gbTarget, reps, rows: r.rowsTotal, bytesPerRow: r.bpr,
      features: { import: r.haveImport, arrow: r.haveArrow }, sections: r.sections ?? [], summaries: r.summaries, targets, info, rss: r.rssPoints, profile: r.profile, importProfile: r.importProfile,
    } satisfies SavedResults & Record<string, unknown>,
  };
}

/** What a results JSON holds (enough to render the docs again). */
interface SavedResults {
  when: string;
  machine: Machine;
  load: { start: number[]; end: number[] };
  /** Absent in files written before it was recorded. */
  elapsedS?: number;
  gbTarget: number;
  reps: number;
  rows: number;
  bytesPerRow: number;
  features?: { import: boolean; arrow: boolean };
  summaries: Summary[];
  rss: Parameters<typeof buildReport>[0]['rssPoints'];
  profile: Parameters<typeof buildReport>[0]['profile'];
  importProfile?: Profile;
  /** Absent in files written before the sections existed. */
  sections?: SectionResult[];
}

function render(file: string): void {
  const j = JSON.parse(readFileSync(file, 'utf8')) as SavedResults;
  const report = buildReport({
    sections: j.sections, machine: j.machine, reps: j.reps, when: j.when, gbTarget: j.gbTarget, summaries: j.summaries, rssPoints: j.rss, profile: j.profile, importProfile: j.importProfile,
    haveImport: j.features?.import ?? j.summaries.some((x) => x.id === 'seg-import'),
    haveArrow: j.features?.arrow ?? j.summaries.some((x) => x.id === 'seg-arrow-dir'),
    load0: j.load.start, load1: j.load.end, elapsedS: j.elapsedS ?? 0, rowsTotal: j.rows, bpr: j.bytesPerRow,
  });
  process.stdout.write(report.text + '\n');
  mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
  writeFileSync(path.join(ROOT, 'docs/benchmarks.md'), report.markdown);
  log(`wrote docs/benchmarks.md from ${path.relative(ROOT, file)}`);
}

if (flags.render) {
  render(flags.render);
} else if (!runCore) {
  const failed = runSections().filter((r) => r.exitCode !== 0);
  if (failed.length) process.exitCode = 1;
} else main().then(
  () => cleanup(),
  async (e) => {
    log(`failed: ${(e as Error).stack ?? e}`);
    await cleanup();
    process.exitCode = 1;
  },
);
