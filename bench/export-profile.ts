// Where a real export's client CPU goes, by part: `node --import tsx bench/export-profile.ts
// [--rows N (default 500000)] [--nodes N (default 2)] [--format parquet|arrow|text]
// [--compression zstd|snappy|none] [--reps N] [--no-profile] [--no-checksums] [--quick]`. A
// diagnostic run by hand, not a section.
//
// Starts N local servers, fills the bench table, exports it once untimed (warm caches, modules
// loaded), then exports it again to a directory with the V8 sampling profiler on (this process
// is the client: every exporter runs on its event loop) and prints the client's CPU-s per
// million rows split by part, from the profile's self time: COPY receive (pg, sockets,
// streams), column build (lib/format/arrow/columns.ts: Arrow columns, or Parquet's PLAIN
// layout), Parquet encode, compression (zstd
// WebAssembly, snappy), the object digest (SHA-256 or CRC-32) and row hash, store writes, garbage collection, the rest.
// The profiler's own cost is left out: its sampling thread (v8:ProfEvntProc, read from
// /proc on Linux; 0.1-0.25 CPU-s/Mrow) and Profiler.stop building the profile (the native
// `dispatch` under `node:inspector`'s `post`, 0.1-0.15 CPU-s/Mrow), both printed apart.
// `--no-checksums`: exports without row checksums (the row hash's share of a real export).
// `--top N`: also the N functions of most self time, with their part.
// `--no-profile`: no profiler (it costs CPU of its own), only the client CPU of each of `--reps`
// exports (default 1), with its system part and the minor page faults per million rows (fresh
// memory the kernel maps); with `--base DIR` (another build's lib/ or dist/ inside this checkout, its
// format/zstd re-exporting this one's: see bench/columnar-profile.ts) also that build's,
// alternating, on the same servers (then also each build's medians and the median of the paired
// differences, this − base, per repetition). With `--no-profile`, each line also gives the full (major)
// garbage collections per export and their pause milliseconds (perf_hooks gc entries): run it
// under `node --max-semi-space-size=N` to see what V8's young generation size does.
// `--heap N`: instead of the CPU profile, a sampling heap profile of the second export (every
// allocation, collected ones included) and the N allocation sites of most bytes, in MB per
// million rows: what feeds the garbage collector.
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { constants as perf, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exportTables, type ExportOptions } from '../lib/index.js';
import type { ParquetCompression } from '../lib/format/parquet/codecs.js';
import { fillSources, staticTopology, withBenchServers } from './lib/common.js';
import { TABLE } from './lib/data.js';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string' }, nodes: { type: 'string' }, format: { type: 'string' }, compression: { type: 'string' }, quick: { type: 'boolean' },
    reps: { type: 'string' }, 'no-profile': { type: 'boolean' }, base: { type: 'string' }, top: { type: 'string' }, heap: { type: 'string' }, 'no-checksums': { type: 'boolean' },
  },
});
const ROWS = Number(flags.rows ?? (flags.quick ? 40_000 : 500_000));
const NODES = Number(flags.nodes ?? 2);
const FORMAT = (flags.format ?? 'parquet') as ExportOptions['format'];
const COMPRESSION = flags.compression as ParquetCompression | undefined;

interface Node { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface HeapNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: HeapNode[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

/** The part a sampled frame's self time belongs to (first rule that matches). */
const PARTS: [string, RegExp][] = [
  ['zstd / snappy', /^wasm|zstd|snappy|codecs\.ts|compress\.js/],
  ['Parquet encode', /format\/parquet\//],
  ['column build (columns.ts)', /format\/arrow\/(columns|decimal|pgtext)\.ts/],
  ['Arrow IPC', /format\/arrow\/ipc\.ts|apache-arrow/],
  // Hash.update, zlib's crc32 and fs's writeBuffer are native (no url): their names alone.
  ['object digest (SHA-256, CRC-32), row hash', /crypto|row-hash\.ts|hash\.ts|digest\.ts|^update$|^crc32$/],
  ['store writes', /store\/|node:fs|fs\/promises|node:internal\/fs|^writeBuffers?$/],
  ['COPY receive', /pg\/|pg-protocol|node_modules\/pg|copy-streams|node:net|stream_base|node:internal\/streams|node:stream/],
  ['segment writer', /segment\/|columnar-writer\.ts|export\//],
  ['garbage collection', /^\(garbage collector\)/],
];

/** Self seconds by part, by function (`name url` → [part, seconds]), and of the profiler's own Profiler.stop. */
function split(p: Profile): { parts: Map<string, number>; fns: Map<string, [string, number]>; stop: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** Is node `id` (or a caller) inspector's `post`, i.e. this script stopping the profiler? */
  const inInspector = (id: number | undefined): boolean => {
    for (; id !== undefined; id = parent.get(id)) if (byId.get(id)!.callFrame.url === 'node:inspector') return true;
    return false;
  };
  /**
   * A WebAssembly frame's part, from the JavaScript that called it: the row hash's module
   * (lib/format/row-hash.wat, called from row-hash.ts) or zstd's. Without this the row hash's
   * WebAssembly counted as zstd.
   */
  const wasmPart = (id: number | undefined): string => {
    for (; id !== undefined; id = parent.get(id)) {
      const url = byId.get(id)!.callFrame.url;
      if (url.startsWith('wasm') || url === '') continue;
      if (/row-hash/.test(url)) return PARTS.find(([k]) => k.includes('row hash'))![0];
      break;
    }
    return PARTS[0]![0];
  };
  const parts = new Map<string, number>();
  const fns = new Map<string, [string, number]>();
  let stop = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const cf = byId.get(p.samples[i]!)!.callFrame;
    if (cf.functionName === '(idle)' || cf.functionName === '(program)') continue;
    if (inInspector(p.samples[i])) {
      stop += (p.timeDeltas[i] ?? 0) / 1e6;
      continue;
    }
    const part = cf.url.startsWith('wasm') ? wasmPart(p.samples[i]!) : PARTS.find(([, re]) => re.test(cf.url) || re.test(cf.functionName))?.[0] ?? 'other (event loop, Node internals)';
    const dt = (p.timeDeltas[i] ?? 0) / 1e6;
    parts.set(part, (parts.get(part) ?? 0) + dt);
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(lib|node_modules)\//, '$1/')}`;
    fns.set(key, [part, (fns.get(key)?.[1] ?? 0) + dt]);
  }
  return { parts, fns, stop };
}

/** CPU seconds so far of this process's V8 profiler thread (0 where /proc is not there). */
function profilerThreadCpu(): number {
  try {
    let t = 0;
    for (const task of readdirSync('/proc/self/task')) {
      const st = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
      if (!st.includes('(v8:ProfEvntProc)')) continue;
      // Fields after the command: utime and stime are the 12th and 13th, in clock ticks (100 Hz on Linux).
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      t += (Number(f[11]) + Number(f[12])) / 100;
    }
    return t;
  } catch {
    return 0;
  }
}

await withBenchServers(Array.from({ length: NODES }, (_, i) => `src${i + 1}`), 'sf-bench-exprof-', async (servers, dir) => {
  const total = await fillSources(servers, ROWS, { freeze: true });
  const topology = staticTopology(servers);
  const opts = {
    topology, tables: [TABLE], format: COMPRESSION ? { kind: FORMAT, compression: COMPRESSION } : FORMAT, ...(flags['no-checksums'] ? { checksums: false } : {}),
  } as ExportOptions;
  await exportTables({ ...opts, to: path.join(dir, 'warm') } as ExportOptions);
  await rm(path.join(dir, 'warm'), { recursive: true, force: true });
  if (flags['no-profile']) {
    const builds: [string, typeof exportTables][] = [['this', exportTables]];
    if (flags.base) {
      const base = (await import(`${flags.base}/index.js`)) as { exportTables: typeof exportTables };
      await base.exportTables({ ...opts, to: path.join(dir, 'warm') } as ExportOptions);
      await rm(path.join(dir, 'warm'), { recursive: true, force: true });
      builds.push(['base', base.exportTables]);
    }
    const xs = builds.map(() => [] as string[]);
    /** Per build, per repetition: client CPU-s, its system part (per million rows) and minor faults per million rows. */
    const nums = builds.map(() => [] as [number, number, number][]);
    const gcs = builds.map(() => [] as string[]);
    const seen: PerformanceEntry[] = [];
    const obs = new PerformanceObserver((l) => { seen.push(...l.getEntries()); });
    obs.observe({ entryTypes: ['gc'] });
    const majors = async (t0: number, t1: number): Promise<string> => {
      await new Promise((r) => setImmediate(r)); // entries arrive asynchronously
      const m = seen.filter((e) => e.startTime >= t0 && e.startTime < t1 && (e as unknown as { detail: { kind: number } }).detail.kind === perf.NODE_PERFORMANCE_GC_MAJOR);
      return `${m.length}/${Math.round(m.reduce((a, e) => a + e.duration, 0))}`;
    };
    for (let r = 0; r < Number(flags.reps ?? 1); r++) {
      // ABBA order: neither build always runs first (after the other's garbage).
      const order = r % 2 === 0 ? [...builds.keys()] : [...builds.keys()].reverse();
      for (const k of order) {
        const exp = builds[k]![1];
        const c0 = process.cpuUsage();
        const f0 = process.resourceUsage().minorPageFault;
        const t0 = performance.now();
        await exp({ ...opts, to: path.join(dir, `run${r}`) } as ExportOptions);
        const c = process.cpuUsage(c0);
        const faults = (process.resourceUsage().minorPageFault - f0) / (total / 1e6);
        nums[k]!.push([(c.user + c.system) / total, c.system / total, faults]);
        xs[k]!.push(`${((c.user + c.system) / total).toFixed(2)} (sys ${(c.system / total).toFixed(2)}, ${Math.round(faults / 1000)}k faults)`);
        gcs[k]!.push(await majors(t0, performance.now()));
        await rm(path.join(dir, `run${r}`), { recursive: true, force: true });
      }
    }
    const med = (v: number[]) => { const a = [...v].sort((x, y) => x - y); const m = a.length >> 1; return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2; };
    for (const [k, [name]] of builds.entries()) {
      const n = nums[k]!;
      console.log(`medians [${name}]: client ${med(n.map((x) => x[0])).toFixed(2)} CPU-s/Mrow, system ${med(n.map((x) => x[1])).toFixed(2)}, ${Math.round(med(n.map((x) => x[2])) / 1000)}k minor faults/Mrow`);
    }
    if (builds.length === 2) {
      // The repetitions alternate ABBA: pair each of this build's exports with the base's of the same repetition.
      const d = nums[0]!.map((x, r) => x[0] - nums[1]![r]![0]);
      const ds = nums[0]!.map((x, r) => x[1] - nums[1]![r]![1]);
      console.log(`paired (this − base): client ${med(d).toFixed(3)} CPU-s/Mrow (lower in ${d.filter((x) => x < 0).length} of ${d.length}), system ${med(ds).toFixed(3)}`);
    }
    for (const [k, [name]] of builds.entries()) {
      console.log(`export [${name}]: ${total} rows, ${NODES} nodes, ${FORMAT}${COMPRESSION ? ` ${COMPRESSION}` : ''}; client CPU-s/Mrow: ${xs[k]!.join(' ')}; full GCs/ms: ${gcs[k]!.join(' ')}`);
    }
    obs.disconnect();
    return;
  }
  const s = new Session();
  s.connect();
  if (flags.heap) {
    await s.post('HeapProfiler.enable');
    await s.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
    await exportTables({ ...opts, to: path.join(dir, 'run') } as ExportOptions);
    const { profile } = await s.post('HeapProfiler.stopSampling') as unknown as { profile: { head: HeapNode } };
    s.disconnect();
    const sites = new Map<string, number>();
    const walk = (n: HeapNode): void => {
      const key = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(lib|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
      sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
      n.children.forEach(walk);
    };
    walk(profile.head);
    const m = total / 1e6;
    const all = [...sites.values()].reduce((a, b) => a + b, 0);
    console.log(`export heap profile: ${total} rows, ${NODES} nodes, ${FORMAT}; JS heap allocated ${(all / 1e6 / m).toFixed(1)} MB per million rows (sampled)`);
    for (const [k, v] of [...sites.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(flags.heap))) console.log(`  ${(v / 1e6 / m).toFixed(2).padStart(7)}  ${k}`);
    return;
  }
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 200 });
  await s.post('Profiler.start');
  const p0 = profilerThreadCpu();
  const c0 = process.cpuUsage();
  await exportTables({ ...opts, to: path.join(dir, 'run') } as ExportOptions);
  const c = process.cpuUsage(c0);
  const prof = profilerThreadCpu() - p0;
  const { profile } = await s.post('Profiler.stop') as unknown as { profile: Profile };
  s.disconnect();
  const cpu = (c.user + c.system) / 1e6 - prof;
  const { parts, fns, stop } = split(profile);
  const sampled = [...parts.values()].reduce((a, b) => a + b, 0);
  const m = total / 1e6;
  console.log(`export profile: ${total} rows of ${TABLE}, ${NODES} nodes, ${FORMAT}${COMPRESSION ? ` ${COMPRESSION}` : ''}${flags['no-checksums'] ? ', no checksums' : ''}; ` +
    `client ${(cpu / m).toFixed(2)} CPU-s/Mrow (process.cpuUsage, all threads but the profiler's; user ${(c.user / 1e6 / m).toFixed(2)}, system ${(c.system / 1e6 / m).toFixed(2)}), ` +
    `${(sampled / m).toFixed(2)} sampled on the main thread; left out: the profiler thread ${(prof / m).toFixed(2)}, Profiler.stop ${(stop / m).toFixed(2)}`);
  for (const [k, v] of [...parts.entries()].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(36)} ${(v / m).toFixed(2)} CPU-s/Mrow  ${(100 * v / sampled).toFixed(1)}%`);
  const top = [...fns.entries()].sort((a, b) => b[1][1] - a[1][1]).slice(0, Number(flags.top ?? 0));
  for (const [k, [part, v]] of top) console.log(`    ${(v / m).toFixed(3)}  ${k}  [${part}]`);
});
