import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { openStore } from '../store/open.js';
import type { EncryptOption } from '../crypto/keys.js';
import { InvalidOptionError, SegferryError, redact, redactCredentials } from '../errors.js';
import { exportTables } from '../export/export.js';
import { planExport, type PlanOptions } from '../export/plan.js';
import { checkStreamScan } from '../export/streams.js';
import type { StaticTopology } from '../topology/discover.js';
import type { S3Options } from '../store/s3.js';
import { OBJECT_FLAGS, OBJECT_FLAGS_HELP, objectOptionsOf } from './object-flags.js';
import type { FormatKind } from '../format/options.js';
import { VERSION } from '../version.js';
import { Reporter, outputMode } from './report.js';
import type { DemoOptions } from '../demo/demo.js';
import type { CliShared } from './import.js';
import { onInterrupt } from './interrupt.js';

/** Exit codes: 0 success, 1 operation failed, 2 usage error, 3 verify mismatch, 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, usage: 2, mismatch: 3, interrupted: 130 } as const;

const HELP = `segferry ${VERSION}: parallel table export/import between PostgreSQL clusters and S3

Usage:
  segferry export (--source URL [--topology auto|postgres|fdw|citus] | --topology FILE.json)
                  (--table PATTERN ... | --schema NAME ... | --all) [--exclude-table PATTERN ...]
                  --to DEST [options]
  segferry plan   (same as export, prints the plan; = export --dry-run; with --out FILE
                  writes a plan file for many hosts: run and finish below)
  segferry run    --plan FILE --part K/N   one part of a plan file's units (one host of many)
  segferry finish --plan FILE              check every part, then write the manifest
  segferry import --from DEST (--target URL | --topology FILE.json) [--table NAME ...]
                  [--route auto|coordinator|direct] [--concurrency N] [--truncate|--append] [--create]
                  [--analyze] [--force] [--verify] [--dry-run]
  segferry verify --from DEST (--target URL | --topology FILE.json)
  segferry copy   --source URL|FILE.json --target URL|FILE.json (--table PATTERN ... | --schema NAME ... | --all)
                  [--format text|csv|binary] [--create] [--truncate|--append] [--verify] [--dry-run]
                  [--via s3://bucket/prefix|DIR [--format arrow|parquet] ...]   (staged through storage)
  segferry cleanup --at DEST [--yes]   (leftovers of failed runs)
  segferry check  --at DEST [--read-data] [--concurrency N]   (integrity, no database)
  segferry replicate --from SRC --to DST [--concurrency N] [--resume] [--verify]
  segferry demo   [--rows N] [--to DIR] [--keep]   the whole job on throwaway clusters
  segferry --help | --version

Run "segferry <command> --help" for a command's options and examples.

DEST is s3://bucket/prefix, a directory path or a file:// URL.
Connections: postgres:// URLs or the standard PG* variables and ~/.pgpass.
S3: the standard AWS variables and profiles (AWS_ENDPOINT_URL, AWS_REGION, ...).
`;

const S3_FLAGS = {
  's3-endpoint': { type: 'string' },
  's3-region': { type: 'string' },
  's3-path-style': { type: 'boolean' },
  's3-checksum': { type: 'string' },
  's3-part-size': { type: 'string' },
  's3-upload-memory': { type: 'string' },
  's3-sse': { type: 'string' },
  's3-sse-kms-key-id': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const OUTPUT_FLAGS = {
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const EXPORT_FLAGS = {
  source: { type: 'string', short: 's' },
  topology: { type: 'string' },
  table: { type: 'string', short: 't', multiple: true },
  all: { type: 'boolean' },
  schema: { type: 'string', short: 'n', multiple: true },
  'exclude-table': { type: 'string', short: 'T', multiple: true },
  'table-file': { type: 'string', multiple: true },
  'exclude-table-file': { type: 'string', multiple: true },
  ddl: { type: 'boolean' },
  'no-ddl': { type: 'boolean' },
  'schema-only': { type: 'boolean' },
  'data-only': { type: 'boolean' },
  to: { type: 'string' },
  format: { type: 'string', short: 'f' },
  'segment-size': { type: 'string' },
  ...OBJECT_FLAGS,
  columns: { type: 'string' },
  where: { type: 'string' },
  replicated: { type: 'string', multiple: true },
  concurrency: { type: 'string', short: 'j' },
  streams: { type: 'string' },
  'stream-scan': { type: 'string' },
  threads: { type: 'string' },
  overwrite: { type: 'boolean' },
  resume: { type: 'boolean' },
  encrypt: { type: 'string' },
  'dry-run': { type: 'boolean' },
  out: { type: 'string' },
  'hold-snapshots': { type: 'boolean' },
  'no-checksums': { type: 'boolean' },
  header: { type: 'boolean' },
  delimiter: { type: 'string' },
  null: { type: 'string' },
  quote: { type: 'string' },
  escape: { type: 'string' },
  'parquet-compression': { type: 'string' },
  'row-group-size': { type: 'string' },
  ...S3_FLAGS,
  ...OUTPUT_FLAGS,
} as const satisfies ParseArgsConfig['options'];

const EXPORT_HELP = `segferry export: stream tables out of every data node in parallel into segments

Usage:
  segferry export (--source URL [--topology auto|postgres|fdw|citus] | --topology FILE.json)
                  (--table PATTERN ... | --schema NAME ... | --all) --to DEST [options]

Options:
  -s, --source URL         coordinator (or single server) connection URL
      --topology T         auto (default: Citus or postgres_fdw from the catalog), postgres, fdw,
                           citus (Citus: shards read on the workers), or a JSON file naming the nodes:
                           {"nodes":[{"name":"dn1","url":"postgres://..."}],"replicated":["nation"]}
  -t, --table NAME         table to export (repeatable): name, schema.name, "Quoted", or a
                           pg_dump-style pattern: sales.order*, t?, "Quoted" parts exact
      --all                every ordinary and partitioned table outside the system schemas
                           (not segferry's ledger schema, not extensions' tables)
  -n, --schema NAME        every table of schema NAME (repeatable, exact name)
  -T, --exclude-table PAT  leave out tables matching PAT (repeatable)
      --table-file FILE    tables or patterns, one a line (# comments, blank lines skipped)
      --exclude-table-file FILE  patterns to leave out, one a line
      --ddl / --no-ddl     carry the schema (pg_dump --schema-only, for import --create);
                           default: on with --all or --schema. Any topology (fdw: local partitions)
      --schema-only        only the DDL and a manifest without segments (import --create makes
                           the schema from it)
      --data-only          only the rows, no DDL; with --all/--schema also sequence values and
                           materialized views (set and refreshed after an import's data)
      --to DEST            s3://bucket/prefix, a directory or file:// URL
  -f, --format F           text (default), csv, arrow (Apache Arrow IPC files), binary (COPY
                           BINARY objects, each loadable alone) or parquet (docs/formats.md)
      --segment-size N     max bytes per object (default 1GiB; accepts KiB/MiB/GiB suffixes),
                           as stored: after compression
      --parquet-compression C  zstd (default), snappy or none (--format parquet)
      --row-group-size N   COPY bytes of the rows of one Parquet row group (default 32MiB, at
                           most a quarter of the segment size; memory: docs/memory.md)
${OBJECT_FLAGS_HELP}      --columns a,b        export only these columns, in this order
      --where SQL          filter applied on every node (trusted SQL, never user input)
      --replicated NAME    treat NAME as replicated: exported from one node (repeatable)
      --streams N|auto     sessions reading one table on one node at once, by ctid page
                           ranges (Citus: whole shards) in one snapshot of the node
                           (default auto: one per 256MiB, at most min(max_parallel_workers,
                           8); docs/streams.md)
      --stream-scan S      how streams read their ranges: auto (default; seq-filter for a
                           relation over shared_buffers with at most 4 streams, else
                           tid-range), seq-filter (a sequential scan per stream, its range a
                           filter: reads the table once per stream) or tid-range (TID range
                           scans: each page read once, better for cold tables on slow disks)
  -j, --concurrency N      sessions reading at once over all nodes (default: the sum over
                           nodes of their streams, i.e. number of nodes with one stream each)
      --threads T          on, off or auto (default): exporters in worker threads, one per
                           core at most; auto = on with 2+ exporters at once and 4+ cores,
                           or 2+ cores for Arrow, Parquet, compressed or encrypted objects
                           read from servers on other hosts
      --overwrite          replace an existing export under DEST
      --resume             continue an unfinished export under DEST (same options as the first run)
      --encrypt E          client-side encryption of every object: key-file:PATH (a local 256-bit
                           key) or kms:KEY-ID (AWS KMS, on the --s3-endpoint); docs/encryption.md
      --dry-run            print the plan as JSON and export nothing
      --out FILE           plan only: write the plan with --to DEST as a plan file for
                           segferry run --part K/N on many hosts (docs/multi-host.md)
      --hold-snapshots     with plan --out: export one snapshot per node into the plan and keep
                           those sessions open until finish writes the manifest (or Ctrl-C), so
                           every part reads one state per node
      --no-checksums       skip the per-node row checksums that verify uses
  csv:  --header  --delimiter C  --null S  --quote C  --escape C
  text: --delimiter C  --null S
  S3:   --s3-endpoint URL  --s3-region R  --s3-path-style  --s3-checksum WHEN_REQUIRED|WHEN_SUPPORTED
        --s3-part-size N  --s3-upload-memory N  --s3-sse AES256|aws:kms  --s3-sse-kms-key-id ID
  Output: --json (one JSON event per line)  -q/--quiet  -v/--verbose (stack traces)

Examples:
  segferry export --source postgres://app@coord/shop --table orders --table nation \\
                  --to s3://backups/shop/2026-11-22 --format csv --header
  segferry export --source postgres://app@db/shop --all --exclude-table 'audit.*' --to /data/shop
  segferry plan --source postgres://app@db/shop --schema sales --table 'public.order*'
  segferry export --topology nodes.json --table orders --to /data/export --segment-size 256MiB
  segferry export --source postgres://app@coord/shop --table orders --to /tmp/x --dry-run
`;

const PLAN_HELP = `segferry plan: plan an export and print it, or write it as a plan file for many hosts

Usage:
  segferry plan (--source URL [--topology auto|postgres|fdw|citus] | --topology FILE.json)
                (--table PATTERN ... | --schema NAME ... | --all) [options]
  segferry plan ... --to DEST --out FILE [--hold-snapshots] [--encrypt E]

Reads the catalog only (no COPY, nothing stored) and prints the plan as JSON: the nodes, the
relations read on each, the columns, the distribution, size estimates and the objects' layout
(= segferry export --dry-run). No credentials appear in it.

With --to DEST --out FILE it writes the plan and its destination as a plan file instead: each
host then runs one part (segferry run --plan FILE --part K/N) and segferry finish --plan FILE
writes the manifest (docs/multi-host.md).

Options:
  -s, --source URL         coordinator (or single server) connection URL
      --topology T         auto (default), postgres, fdw, citus, or a JSON file naming the nodes
  -t, --table NAME         table to plan (repeatable): name, schema.name, "Quoted", or a
                           pg_dump-style pattern: sales.order*, t?
      --all                every ordinary and partitioned table outside the system schemas
  -n, --schema NAME        every table of schema NAME (repeatable, exact name)
  -T, --exclude-table PAT  leave out tables matching PAT (repeatable)
      --table-file FILE    tables or patterns, one a line; --exclude-table-file FILE likewise
      --to DEST            with --out: where every part writes (s3://bucket/prefix, a directory
                           or file:// URL)
      --out FILE           write the plan file (with --to) instead of printing the plan
      --hold-snapshots     with --out: export one snapshot per node into the plan and keep those
                           sessions open until finish writes the manifest (or Ctrl-C), so every
                           part reads one state per node
      --encrypt E          with --out: make the export's data key now and write it wrapped into
                           the plan (key-file:PATH or kms:KEY-ID); every part needs the same
  The objects' layout, as for export (segferry export --help): -f/--format F, --segment-size N,
  --parquet-compression C, --row-group-size N, --compress C, --extension, --arrow-compression C,
  --object-checksum A, --columns a,b, --where SQL, --replicated NAME, --streams N|auto,
  --stream-scan S, -j/--concurrency N, --no-checksums; csv: --header --delimiter C --null S
  --quote C --escape C; text: --delimiter C --null S
  S3:   as for export (--s3-endpoint URL ...): for --hold-snapshots and --encrypt kms:KEY-ID
  Output: --json  -q/--quiet  -v/--verbose (stack traces)

Examples:
  segferry plan --source postgres://app@coord/shop --table orders
  segferry plan --source postgres://app@db/shop --all --exclude-table 'audit.*'
  segferry plan --source postgres://app@coord/shop --table orders --to s3://backups/shop/d1 --out plan.json
  segferry plan --topology nodes.json --schema sales --to /data/sales --out plan.json --hold-snapshots
`;

/** Parse `1048576`, `256KiB`, `64MiB`, `1GiB`, `1G`. */
export function parseSize(s: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(s);
  if (!m) throw new InvalidOptionError(`${what}: cannot read size ${JSON.stringify(s)} (e.g. 1073741824, 256KiB, 1GiB)`);
  const unit = (m[2] ?? '').toLowerCase().replace(/i?b$/, '');
  const mult = unit === '' ? 1 : unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1024 ** 4;
  const v = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidOptionError(`${what}: size out of range`);
  return v;
}

function parseCount(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new InvalidOptionError(`${what} must be a whole number of at least 1`);
  return n;
}

/** S3 options from flags (the environment fills the rest). */
export function s3FromFlags(v: Record<string, unknown>): S3Options {
  const o: S3Options = {};
  if (typeof v['s3-endpoint'] === 'string') o.endpoint = v['s3-endpoint'];
  if (typeof v['s3-region'] === 'string') o.region = v['s3-region'];
  if (v['s3-path-style'] === true) o.forcePathStyle = true;
  const cs = v['s3-checksum'];
  if (typeof cs === 'string') {
    const u = cs.toUpperCase().replace(/-/g, '_');
    if (u !== 'WHEN_REQUIRED' && u !== 'WHEN_SUPPORTED') throw new InvalidOptionError('--s3-checksum takes WHEN_REQUIRED or WHEN_SUPPORTED');
    o.checksum = u;
  }
  if (typeof v['s3-part-size'] === 'string') o.partSize = parseSize(v['s3-part-size'], '--s3-part-size');
  if (typeof v['s3-upload-memory'] === 'string') o.uploadMemory = parseSize(v['s3-upload-memory'], '--s3-upload-memory');
  const sse = v['s3-sse'];
  if (typeof sse === 'string') {
    if (sse !== 'AES256' && sse !== 'aws:kms') throw new InvalidOptionError('--s3-sse takes AES256 or aws:kms');
    o.serverSideEncryption = sse;
  }
  if (typeof v['s3-sse-kms-key-id'] === 'string') o.kmsKeyId = v['s3-sse-kms-key-id'];
  return o;
}

/** `--threads on|off|auto` as the library's `threads` option. */
export function threadsFromFlag(t: string | undefined): boolean | 'auto' {
  if (t === undefined || t === 'auto') return 'auto';
  if (t === 'on') return true;
  if (t === 'off') return false;
  throw new InvalidOptionError(`--threads takes on, off or auto (got ${JSON.stringify(t)})`);
}

/**
 * Read a `--table-file`/`--exclude-table-file`: one name or pattern a line, as gpcopy's
 * include/exclude files; blank lines and lines starting with `#` are skipped.
 */
export function readNameFile(path: string, flag: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidOptionError(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** Read a static topology file, or pass a keyword through. */
export function topologyFromFlag(t: string | undefined): PlanOptions['topology'] {
  if (t === undefined || t === 'auto' || t === 'postgres' || t === 'fdw' || t === 'citus') return t;
  let text: string;
  try {
    text = readFileSync(t, 'utf8');
  } catch (e) {
    throw new InvalidOptionError(`--topology ${t}: not auto|postgres|fdw|citus and not a readable file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return JSON.parse(text) as StaticTopology;
  } catch {
    throw new InvalidOptionError(`--topology ${t}: not valid JSON`);
  }
}

const mode = outputMode;

/** `--encrypt SPEC` checked; the encryption modules load only when it is given (start-up, issue 17). */
async function parseEncrypt(spec: string): Promise<EncryptOption> {
  return (await import('../crypto/keys.js')).parseEncryptOption(spec);
}


async function cmdExport(argv: string[], dryRunCommand: boolean, reporter: () => Reporter): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: EXPORT_FLAGS, allowPositionals: false, strict: true });
  if (v.help) {
    process.stdout.write(dryRunCommand ? PLAN_HELP : EXPORT_HELP);
    return EXIT.ok;
  }
  const r = reporter().configure(mode(v), v.verbose === true);
  const topology = topologyFromFlag(v.topology);
  const tables = [...(v.table ?? []), ...(v['table-file'] ?? []).flatMap((f) => readNameFile(f, '--table-file'))];
  const excluded = [...(v['exclude-table'] ?? []), ...(v['exclude-table-file'] ?? []).flatMap((f) => readNameFile(f, '--exclude-table-file'))];
  if (tables.length === 0 && !v.all && !v.schema) throw new InvalidOptionError('name at least one --table, or use --schema NAME or --all');
  if (typeof topology !== 'object' && !v.source && !process.env.PGHOST && !process.env.PGDATABASE) {
    throw new InvalidOptionError('give --source URL (or PG* variables), or --topology FILE.json');
  }
  const format = (v.format ?? 'text') as FormatKind;
  const fmt: Record<string, unknown> = { kind: format };
  if (v.header) fmt.header = true;
  if (v.delimiter !== undefined) fmt.delimiter = v.delimiter;
  if (v.null !== undefined) fmt.null = v.null;
  if (v.quote !== undefined) fmt.quote = v.quote;
  if (v.escape !== undefined) fmt.escape = v.escape;
  if (v['parquet-compression'] !== undefined) fmt.compression = v['parquet-compression'];
  if (v['row-group-size'] !== undefined) fmt.rowGroupBytes = parseSize(v['row-group-size'], '--row-group-size');
  const opts: PlanOptions = { tables, format: fmt as PlanOptions['format'] };
  if (v.all) opts.all = true;
  if (v.schema) opts.schemas = v.schema;
  if (excluded.length > 0) opts.excludeTables = excluded;
  if (v.source) opts.source = v.source;
  if (topology !== undefined) opts.topology = topology;
  if (v['segment-size']) opts.segmentSize = parseSize(v['segment-size'], '--segment-size');
  Object.assign(opts, objectOptionsOf(v));
  if (v.columns) opts.columns = v.columns.split(',').map((c) => c.trim()).filter(Boolean);
  if (v.where !== undefined) opts.where = v.where;
  if (v.replicated) opts.replicated = v.replicated;
  const conc = parseCount(v.concurrency, '--concurrency');
  if (conc !== undefined) opts.concurrency = conc;
  if (v.streams !== undefined) opts.streams = v.streams === 'auto' ? 'auto' : parseCount(v.streams, '--streams')!;
  if (v['stream-scan'] !== undefined) opts.streamScan = checkStreamScan(v['stream-scan'], '--stream-scan');
  if (v['no-checksums']) opts.checksums = false;
  if (v.ddl && v['no-ddl']) throw new InvalidOptionError('give --ddl or --no-ddl, not both');
  const ddl = v.ddl ? true : v['no-ddl'] ? false : undefined;
  if (v['schema-only'] && v['data-only']) throw new InvalidOptionError('give --schema-only or --data-only, not both');
  if (v.out !== undefined) {
    if (!dryRunCommand) throw new InvalidOptionError('--out belongs to segferry plan');
    if (!v.to) throw new InvalidOptionError('segferry plan --out FILE needs --to DEST: the parts write there');
    // One data key for every part, in the file wrapped only (lib/export/parts.ts encryptPlan),
    // made before planning: a missing or bad key fails before any database work.
    // The plan file's modules (and the held snapshots') load with `plan --out` only (start-up, issue 17).
    const { planDataKey, planFile } = await import('../export/parts.js');
    const wrapped = v.encrypt !== undefined ? await planDataKey(await parseEncrypt(v.encrypt), s3FromFlags(v)) : undefined;
    const planned = await planExport(opts);
    const plan = wrapped ? { ...planned, clientEncryption: wrapped } : planned;
    if (!v['hold-snapshots']) {
      await writeFile(v.out, redactCredentials(JSON.stringify(planFile(plan, v.to), null, 2)) + '\n');
      process.stdout.write(`plan written to ${v.out}: ${plan.tables.length} tables, ${plan.nodes.length} nodes\n`);
      return EXIT.ok;
    }
    // One snapshot per node, held open here until finish has written the manifest (or Ctrl-C).
    const interrupt = onInterrupt();
    const store = openStore(v.to, s3FromFlags(v));
    try {
      const { holdSnapshots, holdUntilFinished } = await import('../export/hold.js');
      const held = await holdSnapshots(plan);
      try {
        await writeFile(v.out, redactCredentials(JSON.stringify(planFile({ ...plan, snapshots: held.snapshots }, v.to), null, 2)) + '\n');
      } catch (e) {
        await held.release();
        throw e;
      }
      process.stdout.write(`plan written to ${v.out}: ${plan.tables.length} tables, ${plan.nodes.length} nodes; holding ${plan.nodes.length} snapshot(s) until finish writes the manifest under ${redact(v.to)} (Ctrl-C releases them)\n`);
      const how = await holdUntilFinished(held, { store, signal: interrupt.signal });
      process.stdout.write(how === 'finished' ? 'finish has written the manifest: snapshots released\n' : 'interrupted: snapshots released (parts not yet run can no longer read them)\n');
      return EXIT.ok;
    } finally {
      interrupt.dispose();
      store.close();
    }
  }
  if (v['hold-snapshots']) throw new InvalidOptionError('--hold-snapshots belongs to segferry plan --out FILE');
  if (dryRunCommand || v['dry-run']) {
    const plan = await planExport(opts);
    process.stdout.write(redact(JSON.stringify(plan, null, 2)) + '\n');
    return EXIT.ok;
  }
  if (!v.to) throw new InvalidOptionError('give --to DEST (s3://bucket/prefix or a directory)');
  const threads = threadsFromFlag(v.threads);
  const interrupt = onInterrupt();
  try {
    const res = await exportTables({
      ...opts,
      to: v.to,
      threads,
      s3: s3FromFlags(v),
      overwrite: v.overwrite === true,
      resume: v.resume === true,
      ...(ddl !== undefined ? { ddl } : {}),
      ...(v.encrypt !== undefined ? { encrypt: await parseEncrypt(v.encrypt) } : {}),
      ...(v['schema-only'] ? { schemaOnly: true } : {}),
      ...(v['data-only'] ? { dataOnly: true } : {}),
      signal: interrupt.signal,
      onEvent: r.listener(),
    });
    r.exportSummary(res);
    return EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

const DEMO_FLAGS = {
  rows: { type: 'string' },
  to: { type: 'string' },
  keep: { type: 'boolean' },
  'segment-size': { type: 'string' },
  format: { type: 'string', short: 'f' },
  ...OUTPUT_FLAGS,
} as const satisfies ParseArgsConfig['options'];

const demoHelp = (DEMO_ROWS: number) => `segferry demo: the whole job on throwaway clusters, nothing to set up

Starts a source cluster (a coordinator and 3 data nodes, postgres_fdw-sharded) and an empty
destination cluster of the same layout from the installed PostgreSQL server programs, plus a
local S3-compatible server (s3rver) on 127.0.0.1; fills the source with sample data (a
hash-distributed "orders" table and a replicated "products" table); exports in parallel
with progress, imports, verifies, prints the summary; then moves a small whole database
(export --all with its schema by pg_dump, import --create into an empty database) and compares
row counts and schema dumps; and removes everything again (also on Ctrl-C). As root, the servers run as the "postgres" (or "nobody") OS user.

Usage:
  segferry demo [--rows N] [--to DIR] [--keep] [options]

Options:
      --rows N             rows of the distributed table (default ${DEMO_ROWS}, about 150 MB)
      --to DIR             export into this directory instead of the local S3 server (kept)
      --keep               leave the clusters and S3 server running and print how to reach them
      --segment-size N     max bytes per object (default 16MiB)
  -f, --format F           text (default) or csv
  Output: --json (one JSON event per line)  -q/--quiet  -v/--verbose (stack traces)

The local S3 server takes access key id S3RVER with secret S3RVER (s3rver's fixed pair),
path-style addressing and --s3-checksum WHEN_REQUIRED.

Needs the PostgreSQL server programs (initdb, postgres) with postgres_fdw; found on PATH,
through pg_config, in /usr/lib/postgresql/*/bin, or in SEGFERRY_PG_BINDIR.

Examples:
  npm run demo
  segferry demo --rows 100000 --to /tmp/segferry-demo
  segferry demo --keep
`;

async function cmdDemo(argv: string[], reporter: () => Reporter): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: DEMO_FLAGS, allowPositionals: false, strict: true });
  const { DEMO_ROWS, runDemo } = await import('../demo/demo.js');
  if (v.help) {
    process.stdout.write(demoHelp(DEMO_ROWS));
    return EXIT.ok;
  }
  const r = reporter().configure(mode(v), v.verbose === true);
  const opts: DemoOptions = {};
  if (v.rows !== undefined) {
    const n = Number(v.rows.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 0 || n > 100_000_000) throw new InvalidOptionError('--rows takes a whole number from 0 to 100000000');
    opts.rows = n;
  }
  if (v.to !== undefined) opts.to = v.to;
  if (v.keep) opts.keep = true;
  if (v['segment-size']) opts.segmentSize = parseSize(v['segment-size'], '--segment-size');
  if (v.format !== undefined) {
    if (v.format !== 'text' && v.format !== 'csv') throw new InvalidOptionError('--format takes text or csv');
    opts.format = v.format;
  }
  const ac = new AbortController();
  opts.signal = ac.signal;
  let interrupts = 0;
  const onSig = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts === 1) {
      r.stop();
      r.note(`demo: ${sig}: stopping the servers and removing the temp files (again to quit at once)`);
      ac.abort(new SegferryError('ERR_ABORTED', 'interrupted'));
    } else {
      // The demo's exit handler kills what is left.
      process.exit(EXIT.interrupted);
    }
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  try {
    const res = await runDemo(r, opts);
    if (res.kept) {
      const k = res.kept;
      r.note(`demo: kept running:\n  source       ${k.source}\n  destination  ${k.destination}${k.s3 ? `\n  s3           ${k.s3}` : ''}\n  files        ${k.dir}\n  stop with    kill ${k.pids.join(' ')} && rm -rf ${k.dir}`, { step: 'kept', ...k });
    }
    r.note(`demo: ${res.verified ? 'verify OK, ' : ''}finished in ${(res.elapsedMs / 1000).toFixed(1)} s${res.kept ? '' : ', everything removed'}${opts.to ? `; the export is in ${res.location}` : ''}`, { step: 'end', verified: res.verified, elapsedMs: res.elapsedMs });
    return EXIT.ok;
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

/** A reporter set up from the raw arguments, for a failure before (or without) a command's own. */
function rawReporter(args: string[]): Reporter {
  const verbose = args.some((a) => a === '--verbose' || /^-[a-zA-Z]*v[a-zA-Z]*$/.test(a));
  return new Reporter().configure(args.includes('--json') ? 'json' : mode({ quiet: args.includes('--quiet') || args.includes('-q') }), verbose);
}

function cliShared(reporter: () => Reporter): CliShared {
  return { s3Flags: S3_FLAGS, s3FromFlags, topologyFromFlag, reporter };
}

/** CLI entry point; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // A closed pipe (`segferry export --json | head`) must not crash the run: stop writing.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => { if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e; });
  }
  const [cmd, ...rest] = argv;
  let rep: Reporter | undefined;
  const reporter = () => (rep ??= new Reporter());
  let reported = false;
  // Every failure ends as one typed error line (and a `{"type":"error"}` event with --json),
  // also one that escapes as an unhandled rejection or an 'error' event nobody listens to.
  const fatal = (err: unknown) => {
    if (reported) return;
    reported = true;
    let code: number = EXIT.failed;
    try { code = reporter().failure(err); } catch { /* output is gone: the exit code still tells */ }
    process.exit(code === EXIT.ok ? EXIT.failed : code);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  try {
    // The import, copy and maintenance commands load their modules when run: an export does
    // not pay for their start-up (≈ 40 modules, ≈ 0.05 CPU-s per run); demo too (cmdDemo).
    switch (cmd) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(HELP);
        return cmd === undefined ? EXIT.usage : EXIT.ok;
      case '--version':
      case '-V':
        process.stdout.write(VERSION + '\n');
        return EXIT.ok;
      case 'export':
        return await cmdExport(rest, false, reporter);
      case 'plan':
        return await cmdExport(rest, true, reporter);
      case 'import':
        return await (await import('./import.js')).cmdImport(rest, cliShared(reporter));
      case 'verify':
        return await (await import('./import.js')).cmdVerify(rest, cliShared(reporter));
      case 'copy':
        return await (await import('./copy.js')).cmdCopy(rest, { topologyFromFlag, reporter, s3Flags: S3_FLAGS, s3FromFlags, parseSize, readNameFile });
      case 'cleanup':
        return await (await import('./cleanup.js')).cmdCleanup(rest, S3_FLAGS, s3FromFlags);
      case 'check':
        return await (await import('./check.js')).cmdCheck(rest, S3_FLAGS, s3FromFlags);
      case 'replicate':
        return await (await import('./replicate.js')).cmdReplicate(rest, S3_FLAGS, s3FromFlags);
      case 'demo':
        return await cmdDemo(rest, reporter);
      case 'run':
        return await (await import('./parts.js')).cmdRun(rest, S3_FLAGS, s3FromFlags);
      case 'finish':
        return await (await import('./parts.js')).cmdFinish(rest, S3_FLAGS, s3FromFlags);
      default:
        process.stderr.write(`segferry: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
        return EXIT.usage;
    }
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      // An unknown or incomplete flag is a usage error like any other: one ERR_INVALID_OPTION
      // line (exit 2) and, with --json, the error event (the flags were never parsed, so --json
      // is looked for by hand).
      reported = true;
      return rawReporter(rest).failure(
        new InvalidOptionError((err as Error).message, { hint: `run "segferry ${cmd} --help" for the options`, cause: err }),
      );
    }
    reported = true;
    // check, cleanup, replicate, run and finish print their own output: their failure still
    // honours --json (the error event) and -v (the stack trace), as every command's does.
    return (rep ?? rawReporter(rest)).failure(err);
  }
}
