import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidOptionError, redact } from '../errors.js';
import { copyTables, copyVerifyError, planCopy, type CopyFormatKind, type CopyOptions, type CopyResult } from '../copy/copy.js';
import { outputMode, type Reporter, type Summary } from './report.js';
import { onInterrupt } from './interrupt.js';
import type { S3Options } from '../store/s3.js';
import { parseEncryptOption } from '../crypto/keys.js';
import { OBJECT_FLAGS, OBJECT_FLAGS_HELP, hasObjectFlags, objectOptionsOf } from './object-flags.js';

/** What main.ts shares with this command (passed in to avoid an import cycle). */
export interface CopyCliShared {
  topologyFromFlag: (t: string | undefined) => unknown;
  reporter: () => Reporter;
  /** The S3 flags (`--s3-endpoint` …) and their reading, for `--via s3://…`. */
  s3Flags?: Record<string, { type: 'string' | 'boolean' }>;
  s3FromFlags?: (v: Record<string, unknown>) => S3Options;
  /** Sizes with KiB/MiB/GiB suffixes (`--segment-size`). */
  parseSize?: (s: string, what: string) => number;
  /** Names or patterns from a `--table-file`/`--exclude-table-file`, one a line. */
  readNameFile?: (path: string, flag: string) => string[];
}

const COPY_HELP = `segferry copy: copy tables from one cluster to another, streaming, node to node

Usage:
  segferry copy --source URL|FILE.json --target URL|FILE.json
                (--table PATTERN ... | --schema NAME ... | --all) [--exclude-table PATTERN ...]
                [--format text|csv|binary|arrow|parquet] [--create] [--truncate|--append] [--where SQL]
                [--columns a,b] [--replicated NAME] [--route auto|coordinator] [--concurrency N]
                [--verify] [--dry-run] [--json]
                [--via s3://bucket/prefix|DIR [--segment-size N] [--encrypt E] [--compress C] [--extension]
                 [--arrow-compression C] [--object-checksum A] [S3 flags as for export]]

Options:
  -s, --source S           source coordinator (or single server) URL, or a JSON file naming the
                           source nodes: {"nodes":[{"name":"dn1","url":"postgres://..."}],"replicated":["nation"]}
      --target T           destination coordinator (or single server) URL, or a JSON file naming its nodes
  -t, --table NAME         table to copy (repeatable): name, schema.name, "Quoted", or a
                           pg_dump-style pattern ('sales.order*', ? one character)
      --all                every ordinary and partitioned table of the source outside the system
                           schemas (not segferry's ledger schema, not extensions' tables)
  -n, --schema NAME        every table of schema NAME (repeatable, exact name)
  -T, --exclude-table PAT  leave out tables matching PAT (repeatable)
      --table-file FILE    tables or patterns to copy, one a line (# comments)
      --exclude-table-file FILE  patterns to leave out, one a line
  -f, --format F           text (default), csv, or binary (COPY BINARY: only when every column has
                           the same type on both ends, else ERR_BINARY_TYPE_MISMATCH); with --via
                           also arrow or parquet (the staged objects' format, as export writes it)
      --create             create missing destination tables from the source's columns
      --truncate           empty each destination table first (not again when resuming)
      --append             add to the destination tables (the default)
      --where SQL          filter applied on every source node (trusted SQL, never user input)
      --columns a,b        copy only these columns, in this order
      --replicated NAME    treat NAME as replicated on the source (repeatable)
      --route R            auto (default): node to node when the layouts match (static node names,
                           fdw partitions, Citus → Citus shard to shard with equal shard ranges), else
                           through the destination coordinator; coordinator: always through it
  -j, --concurrency N      units (table × source node, or Citus shard) copied at once (default: source nodes)
      --via DEST           stage through storage (s3://bucket/prefix, a directory or file:// URL, empty
                           or new): the source is exported there as segferry export writes it, and
                           each object is loaded as soon as it is stored; DEST ends as a complete export.
                           The same command after a failure resumes in DEST
      --segment-size N     with --via: max bytes per object (default 1GiB; KiB/MiB/GiB suffixes)
      --encrypt E          with --via: encrypt the staged objects as export --encrypt does, and
                           decrypt them to load: key-file:PATH or kms:KEY-ID (docs/encryption.md)
  With --via, the staged objects stored as export stores them (the loaders read them as import does):
${OBJECT_FLAGS_HELP}      --verify             compare row counts and checksums of every table afterwards (exit 3 if different)
      --dry-run            print the plan as JSON and copy nothing
  Output: --json (one JSON event per line)  -q/--quiet  -v/--verbose (stack traces)

Each unit commits on its destination node together with its row in segferry.loads, so a rerun
of the same command after a failure copies only the units that did not commit (resume is
implied). See docs/copy.md.

Examples:
  segferry copy --source postgres://app@old/shop --target postgres://app@new/shop --table orders --verify
  segferry copy --source nodes-a.json --target nodes-b.json --table orders --table nation --format binary
`;

const FLAGS = {
  source: { type: 'string', short: 's' },
  target: { type: 'string' },
  table: { type: 'string', short: 't', multiple: true },
  all: { type: 'boolean' },
  schema: { type: 'string', short: 'n', multiple: true },
  'exclude-table': { type: 'string', short: 'T', multiple: true },
  'table-file': { type: 'string', multiple: true },
  'exclude-table-file': { type: 'string', multiple: true },
  format: { type: 'string', short: 'f' },
  create: { type: 'boolean' },
  truncate: { type: 'boolean' },
  append: { type: 'boolean' },
  where: { type: 'string' },
  columns: { type: 'string' },
  replicated: { type: 'string', multiple: true },
  route: { type: 'string' },
  concurrency: { type: 'string', short: 'j' },
  verify: { type: 'boolean' },
  via: { type: 'string' },
  encrypt: { type: 'string' },
  'segment-size': { type: 'string' },
  ...OBJECT_FLAGS,
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** A `.json` path names a static topology; anything else is a URL. */
function side(value: string | undefined, shared: CopyCliShared): { url?: string; topology?: CopyOptions['sourceTopology'] } {
  if (value === undefined) return {};
  if (/\.json$/i.test(value)) return { topology: shared.topologyFromFlag(value) as CopyOptions['sourceTopology'] };
  return { url: value };
}

/** The summary of a copy. */
export function copySummaryOf(r: CopyResult): Summary {
  const notes = r.tables.map((t) => `  table     ${t.table} via ${t.route}: ${t.loaded} units copied, ${t.skipped} skipped, ${t.rows} rows${t.truncated ? ' (truncated first)' : ''}${t.created.length ? ` (created on ${t.created.join(', ')})` : ''}`);
  if (r.verify) for (const t of r.verify.tables) notes.push(`  verify    ${t.table}: ${t.ok ? 'match' : 'MISMATCH'} (source ${t.source.rows} rows, destination ${t.destination.rows} rows)`);
  notes.push(...r.notes.map((n) => `  note      ${n}`));
  return {
    operation: 'import',
    title: `Copy complete (copy id ${r.copyId}, ${r.plan.format})`,
    tablesDone: r.tables.length,
    tablesTotal: r.plan.tables.length,
    objects: r.loaded,
    skipped: r.skipped,
    rows: r.rows,
    bytes: r.bytes,
    elapsedMs: r.elapsedMs,
    nodes: r.nodes,
    notes,
  };
}

/** `segferry copy`. */
export async function cmdCopy(argv: string[], shared: CopyCliShared): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: { ...FLAGS, ...(shared.s3Flags ?? {}) }, allowPositionals: false, strict: true });
  if (v.help) {
    process.stdout.write(COPY_HELP);
    return 0;
  }
  const r = shared.reporter().configure(outputMode(v), v.verbose === true);
  const names = (files: string[] | undefined, flag: string) => (files ?? []).flatMap((f) => {
    if (!shared.readNameFile) throw new InvalidOptionError(`${flag} is not available here`);
    return shared.readNameFile(f, flag);
  });
  const tables = [...(v.table ?? []), ...names(v['table-file'], '--table-file')];
  const excluded = [...(v['exclude-table'] ?? []), ...names(v['exclude-table-file'], '--exclude-table-file')];
  if (tables.length === 0 && !v.all && !v.schema) throw new InvalidOptionError('name at least one --table, or use --schema NAME or --all');
  if (v.truncate && v.append) throw new InvalidOptionError('--truncate and --append exclude each other');
  const format = (v.format ?? 'text') as CopyFormatKind;
  if (format === 'arrow' || format === 'parquet') {
    if (v.via === undefined) throw new InvalidOptionError(`--format ${format} applies to --via only (objects in storage); a direct copy takes text, csv or binary`);
  } else if (format !== 'text' && format !== 'csv' && format !== 'binary') {
    throw new InvalidOptionError('--format takes text, csv or binary (with --via also arrow or parquet)');
  }
  const s = side(v.source, shared);
  const t = side(v.target, shared);
  if (!s.url && !s.topology && !process.env.PGHOST) throw new InvalidOptionError('give --source URL or --source FILE.json');
  if (!t.url && !t.topology) throw new InvalidOptionError('give --target URL or --target FILE.json');
  const o: CopyOptions = { tables, format };
  if (v.all) o.all = true;
  if (v.schema) o.schemas = v.schema;
  if (excluded.length > 0) o.excludeTables = excluded;
  if (s.url !== undefined) o.source = s.url;
  if (s.topology !== undefined) o.sourceTopology = s.topology;
  if (t.url !== undefined) o.target = t.url;
  if (t.topology !== undefined) o.targetTopology = t.topology;
  if (v.create) o.create = true;
  if (v.truncate) o.truncate = true;
  if (v.where !== undefined) o.where = v.where;
  if (v.columns) o.columns = v.columns.split(',').map((c) => c.trim()).filter(Boolean);
  if (v.replicated) o.replicated = v.replicated;
  if (v.route !== undefined) {
    if (v.route !== 'auto' && v.route !== 'coordinator') throw new InvalidOptionError('--route takes auto or coordinator');
    o.route = v.route;
  }
  if (v.concurrency !== undefined) {
    const n = Number(v.concurrency);
    if (!Number.isInteger(n) || n < 1) throw new InvalidOptionError('--concurrency must be a whole number of at least 1');
    o.concurrency = n;
  }
  if (v.via !== undefined) {
    o.via = v.via;
    if (shared.s3FromFlags) o.s3 = shared.s3FromFlags(v);
  }
  if (v.encrypt !== undefined) {
    if (v.via === undefined) throw new InvalidOptionError('--encrypt applies to --via only (a direct copy stores nothing)');
    o.encrypt = parseEncryptOption(v.encrypt);
  }
  if (v['segment-size'] !== undefined) {
    if (v.via === undefined) throw new InvalidOptionError('--segment-size applies to --via only (a direct copy stages nothing)');
    o.segmentSize = shared.parseSize ? shared.parseSize(v['segment-size'], '--segment-size') : Number(v['segment-size']);
  }
  if (hasObjectFlags(v)) {
    if (v.via === undefined) throw new InvalidOptionError('--compress, --extension, --arrow-compression and --object-checksum apply to --via only (a direct copy stores no objects)');
    Object.assign(o, objectOptionsOf(v));
  }
  if (v['dry-run']) {
    const plan = await planCopy(o);
    process.stdout.write(redact(JSON.stringify(plan, null, 2)) + '\n');
    return 0;
  }
  if (v.verify) o.verify = true;
  const interrupt = onInterrupt();
  try {
    const plan = await planCopy(o);
    const listener = r.listener();
    // Which route each table takes and why, right after the start event: always with --json, on the terminal with --verbose.
    const routes = outputMode(v) === 'json' || v.verbose === true;
    const onEvent: typeof listener = (e) => {
      listener(e);
      if (e.type === 'start' && routes) {
        for (const t of plan.tables) r.note(`${t.table}: ${t.route}, ${t.reason}`, { step: 'route', table: t.table, route: t.route, reason: t.reason });
      }
    };
    const res = await copyTables({ ...o, plan, signal: interrupt.signal, onEvent });
    r.summary(copySummaryOf(res));
    if (res.verify) {
      r.note(`copy verify: ${res.verify.ok ? 'match' : 'MISMATCH'}`, { step: 'verify', ...res.verify });
      const err = copyVerifyError(res.verify);
      if (err) return r.failure(err);
    }
    return 0;
  } finally {
    interrupt.dispose();
  }
}
