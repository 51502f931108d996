// The benchmark sections that `npm run bench` runs after its core export/import/rss sections.
// Each is a standalone script (also runnable alone, e.g. `npm run bench:copy`) that starts its
// own servers, accepts `--quick`, prints its figures as plain text on stdout (progress on
// stderr) and exits 0, printing one line saying why when a prerequisite is missing.
// To add a section: write bench/<name>.ts following that contract and add one entry here.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface BenchSection {
  /** Name used by `--only`. */
  name: string;
  /** Script file under bench/. */
  script: string;
  /** One sentence for docs/benchmarks.md: what the section measures. */
  what: string;
  /** The script takes `--reps N` (default true), passed on from `npm run bench -- --reps N`. */
  reps?: boolean;
}

export const SECTIONS: BenchSection[] = [
  { name: 'copy', script: 'copy.ts', what: 'Cluster-to-cluster copy (static 2 → 2 nodes, node-direct, TEXT and BINARY, and --via a directory) against export alone and import alone in the same run, as ratios with CPU seconds, and the import of COPY BINARY objects against TEXT objects.' },
  { name: 'streams', script: 'streams.ts', what: 'One table on one server: segferry export --streams auto (and 1, 2, 4) to a directory against one psql \\copy (SELECT …) TO file of the same table, and against two psql processes copying a half each at once (the ceiling of two sessions on this machine), alternating in the same run; rows/s, MB/s, the ratio and client/server CPU seconds.' },
  { name: 'parquet', script: 'parquet.ts', what: 'Parquet export and import against TEXT and Arrow in the same run (rows/s, client CPU per million rows, bytes written per format and codec), and loading Parquet objects through COPY BINARY against COPY TEXT.' },
  { name: 'compress', script: 'compress.ts', what: 'Compressed objects (--compress gzip|zstd, --arrow-compression zstd|lz4) against uncompressed TEXT in one run, contestants alternated: export rows/s, client CPU-s, bytes stored, import rows/s.' },
  { name: 'columnar', script: 'columnar.ts', what: 'Export and import rows/s of each columnar format against TEXT in the same run (2 → 2 nodes, to a directory), with client and server CPU-s per million rows, and the ratios against the 0.8 goal (issue 16).' },
  { name: 'replicate', script: 'replicate.ts', reps: false, what: 'Replicating a finished export within one moto_server endpoint (server-side copy plus the SHA-256 read-back) against a streamed replicate.' },
  { name: 'citus-copy', script: 'citus-copy.ts', what: 'Citus → Citus copy of one 8-shard table (coordinator + 2 workers each): shard to shard against through the destination coordinator, alternated in the same run; rows/s and CPU seconds of the client, the source cluster, the destination coordinator and the destination workers.' },
  { name: 'threads', script: 'threads.ts', what: 'Exporter worker threads: the CPU one thread costs to start (from dist/ and from the sources through tsx, per format), and segferry export processes of 2 nodes with --threads off and on for TEXT, Arrow and Parquet, alternated in one run: rows/s, client and server CPU-s per million rows; the figures behind the threads auto rule.' },
  { name: 'encrypt', script: 'encrypt.ts', what: 'Client-side encryption (--encrypt key-file) cost: encrypted export rows/s and client CPU as a ratio against a plain export of the same table in the same run.' },
  { name: 'object-checksum', script: 'object-checksum.ts', what: 'Object checksum cost: CRC-32 and SHA-256 alone (CPU-s per GB), and TEXT exports of one table with objectChecksum crc32 and sha256 alternated in one run: client CPU-s per GB stored and the difference.' },
];

export interface SectionResult {
  name: string;
  what: string;
  /** The script's stdout: its figures. */
  output: string;
  exitCode: number;
  wallS: number;
}

/** Runs one section as a child process; its stderr passes through as progress. */
export function runSection(s: BenchSection, quick: boolean, reps?: number): SectionResult {
  const t = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(HERE, s.script), ...(quick ? ['--quick'] : []), ...(reps !== undefined && s.reps !== false ? ['--reps', String(reps)] : [])], {
    cwd: path.join(HERE, '..'),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 << 20,
  });
  process.stdout.write(r.stdout ?? '');
  return { name: s.name, what: s.what, output: (r.stdout ?? '').trimEnd(), exitCode: r.status ?? 1, wallS: (Date.now() - t) / 1000 };
}

/** Markdown for docs/benchmarks.md: one heading per section with its printed figures. */
export function sectionsMarkdown(results: SectionResult[]): string {
  return results
    .map((r) => `\n## ${r.name}\n\n${r.what} (\`bench/${SECTIONS.find((s) => s.name === r.name)?.script ?? r.name}\`, ${r.wallS.toFixed(0)} s${r.exitCode !== 0 ? `, FAILED with exit code ${r.exitCode}` : ''})\n\n\`\`\`\n${r.output}\n\`\`\`\n`)
    .join('');
}
