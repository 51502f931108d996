import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidOptionError, VerifyMismatchError, redact } from '../errors.js';
import type { FormatKind } from '../format/options.js';
import { importTables, type ImportOptions } from '../import/import.js';
import { planImport, type BareSource, type ImportPlanOptions } from '../import/plan.js';
import { verifyImport, type VerifyOptions, type VerifyResult } from '../import/verify.js';
import type { S3Options } from '../store/s3.js';
import { outputMode, type Reporter } from './report.js';
import { parseEncryptOption } from '../crypto/keys.js';
import { onInterrupt } from './interrupt.js';

/** What main.ts shares with these commands (passed in to avoid an import cycle). */
export interface CliShared {
  s3Flags: Record<string, { type: 'string' | 'boolean' }>;
  s3FromFlags: (v: Record<string, unknown>) => S3Options;
  topologyFromFlag: (t: string | undefined) => unknown;
  reporter: () => Reporter;
}

const IMPORT_HELP = `segferry import: load an export into a destination cluster, each object exactly once

Usage:
  segferry import --from DEST (--target URL [--topology auto|postgres|fdw|citus] | --topology FILE.json)
                  [--table NAME ...] [--route auto|coordinator|direct] [--concurrency N] [--streams N|auto]
                  [--truncate | --append] [--create] [--analyze] [--force] [--verify] [--dry-run]
                  [--reject-limit N] [--reject-limit-per-node N] [--rejects DEST]

Options:
      --from DEST          the export: s3://bucket/prefix, a directory or file:// URL
      --target URL         destination coordinator (or single server) connection URL
      --topology T         auto (default), postgres, fdw, citus, or a JSON file naming the destination
                           nodes: {"nodes":[{"name":"dn1","url":"postgres://..."}],"replicated":["nation"]}
  -t, --table NAME         import only this table of the export (repeatable; default: all)
      --route R            auto (default), coordinator (COPY through the coordinator; the engine
                           routes rows) or direct (each object into the node named as its source;
                           Citus: into its shard on the workers, when shard ranges match)
  -j, --concurrency N      loaders at once (default: the sum of the nodes' streams, at least the
                           destination nodes and 2; ≤ ~4 MiB each)
      --streams N|auto     objects loaded at once into one destination node, each in its own
                           transaction (default auto: min(max_parallel_workers, 4, free
                           connections / 4) of the node; docs/streams.md)
      --truncate           empty each destination table first (and forget its ledger rows)
      --append             load into tables that already hold other rows, adding to them (without
                           it or --truncate, a non-empty table is refused unless this import is resumed)
      --create             create the destination schema: when the export carries DDL (export
                           --all/--schema/--ddl), check it (SHA-256, allowed statements), run
                           pre-data, load, run post-data (keys, indexes, foreign keys, triggers),
                           set sequences, ANALYZE; existing tables must match the export. Without
                           DDL: missing tables from the manifest's columns (bare columns)
      --no-ddl             with --create: ignore the export's DDL (bare columns as before)
      --schema-only        with --create: restore the export's DDL (all phases), load no rows
      --data-only          skip the DDL phases: load the rows into existing tables, then set the
                           export's sequences and refresh its materialized views
      --disable-triggers   load with session_replication_role = replica: no triggers, no foreign-key
                           checks during the load (pg_restore's flag; needs a superuser)
      --analyze            ANALYZE each table after its last object (default on with DDL)
      --no-analyze         skip the ANALYZE of --create with DDL
      --force              load objects again even when the ledger records them
      --verify             compare counts and checksums with the export afterwards (exit 3 if different)
      --reject-limit N     set aside up to N rows of each table that the destination refuses (bad
                           encoding, a value out of range or too long, a constraint) instead of
                           failing their object; one more fails the import (ERR_REJECT_LIMIT)
      --reject-limit-per-node N  the same, counted per destination node over all tables
      --rejects DEST       where rejected rows go (default: next to the export), as JSON lines in
                           segferry-rejects.<node>.<object>.jsonl, one object per object with rejects
      --dry-run            print the plan as JSON and load nothing
      --encrypt E          read an encrypted export: key-file:PATH or kms (the key id and the
                           wrapped data key come from the manifest); kms:KEY-ID to insist on a key
  Objects without a manifest (e.g. GaussDB(DWS) export), one table at a time:
      --bare               load <name>_<node>_segment.<n>[.txt|.csv][.gz|.zst] objects (.gz/.zst
                           decompressed); needs exactly one --table
      --object-name NAME   the <name> part of the keys (default: the table's name)
      -f, --format F       text (default), csv or parquet (Parquet of any writer whose columns
                           match the table); csv: --header --delimiter C --null S --quote C --escape C
  S3:   --s3-endpoint URL  --s3-region R  --s3-path-style  --s3-checksum WHEN_REQUIRED|WHEN_SUPPORTED
  Output: --json (one JSON event per line)  -q/--quiet  -v/--verbose (stack traces)

Each object is loaded in one transaction together with its row in the ledger table
segferry.loads on the node it went to, so a rerun after a failure loads only what is missing.

Examples:
  segferry import --from s3://backups/shop/2026-11-22 --target postgres://app@coord/shop --verify
  segferry import --from /data/export --topology nodes.json --truncate --analyze
  segferry import --from /data/shop --target postgres://app@new/shop --create --verify
  segferry import --from s3://dws/orders --target postgres://app@db/shop --bare --table orders --format csv
`;

const VERIFY_HELP = `segferry verify: compare a destination's row counts and checksums with an export's

Usage:
  segferry verify --from DEST (--target URL [--topology auto|postgres|fdw|citus] | --topology FILE.json)
                  [--table NAME ...] [--route coordinator|direct] [--concurrency N]

Prints, per table, match or mismatch with both figures. Exit code 0 when all match, 3 on any
mismatch, 1 on failure. Tables exported without checksums compare row counts only; objects
without a manifest (--bare --table NAME) have nothing recorded to compare. An encrypted export
verifies without its key (the manifest is plaintext); --encrypt key-file:PATH|kms also checks
that the key opens the export's data key.

Options:
      --from DEST          the export: s3://bucket/prefix, a directory or file:// URL
      --target URL         destination coordinator (or single server) connection URL
      --topology T         auto (default), postgres, fdw, citus, or a JSON file naming the
                           destination nodes (each node scanned; replicated tables node by node)
  -t, --table NAME         compare only this table of the export (repeatable; default: all)
      --route R            coordinator (default; auto is the same): one scan per table through
                           the coordinator; direct: one scan per node relation, in parallel, summed
  -j, --concurrency N      scans at once (default: the number of scans, at least 2, at most 8)
      --encrypt E          key-file:PATH, kms or kms:KEY-ID (optional, see above)
  S3:   --s3-endpoint URL  --s3-region R  --s3-path-style  --s3-checksum WHEN_REQUIRED|WHEN_SUPPORTED
  Output: --json (one JSON line per table result)  -q/--quiet  -v/--verbose (stack traces)

Examples:
  segferry verify --from s3://backups/shop/2026-11-22 --target postgres://app@coord/shop
  segferry verify --from /data/export --topology nodes.json --route direct
`;

function flags(shared: CliShared) {
  return {
    from: { type: 'string' },
    target: { type: 'string' },
    topology: { type: 'string' },
    table: { type: 'string', short: 't', multiple: true },
    route: { type: 'string' },
    concurrency: { type: 'string', short: 'j' },
    streams: { type: 'string' },
    truncate: { type: 'boolean' },
    append: { type: 'boolean' },
    create: { type: 'boolean' },
    analyze: { type: 'boolean' },
    'no-analyze': { type: 'boolean' },
    'no-ddl': { type: 'boolean' },
    'schema-only': { type: 'boolean' },
    'data-only': { type: 'boolean' },
    'disable-triggers': { type: 'boolean' },
    force: { type: 'boolean' },
    verify: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    encrypt: { type: 'string' },
    'reject-limit': { type: 'string' },
    'reject-limit-per-node': { type: 'string' },
    rejects: { type: 'string' },
    bare: { type: 'boolean' },
    'object-name': { type: 'string' },
    format: { type: 'string', short: 'f' },
    header: { type: 'boolean' },
    delimiter: { type: 'string' },
    null: { type: 'string' },
    quote: { type: 'string' },
    escape: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
    ...shared.s3Flags,
  } as const satisfies ParseArgsConfig['options'];
}

type Values = Record<string, string | boolean | string[] | undefined>;

const mode = (v: Values) => outputMode(v);

/** Options shared by import and verify, from flags. */
function common(v: Values, shared: CliShared): ImportPlanOptions {
  if (typeof v.from !== 'string') throw new InvalidOptionError('give --from DEST (s3://bucket/prefix or a directory)');
  const topology = shared.topologyFromFlag(v.topology as string | undefined) as ImportPlanOptions['topology'];
  if (typeof topology !== 'object' && !v.target && !process.env.PGHOST && !process.env.PGDATABASE) {
    throw new InvalidOptionError('give --target URL (or PG* variables), or --topology FILE.json');
  }
  const o: ImportPlanOptions = { from: v.from, s3: shared.s3FromFlags(v) };
  if (typeof v.encrypt === 'string') o.encrypt = parseEncryptOption(v.encrypt);
  if (typeof v.target === 'string') o.target = v.target;
  if (topology !== undefined) o.topology = topology;
  const tables = v.table as string[] | undefined;
  if (tables && tables.length > 0) o.tables = tables;
  if (v.route !== undefined) {
    if (v.route !== 'auto' && v.route !== 'coordinator' && v.route !== 'direct') throw new InvalidOptionError('--route takes auto, coordinator or direct');
    o.route = v.route;
  }
  if (v.concurrency !== undefined) {
    const n = Number(v.concurrency);
    if (!Number.isInteger(n) || n < 1) throw new InvalidOptionError('--concurrency must be a whole number of at least 1');
    o.concurrency = n;
  }
  if (v.streams !== undefined) {
    const n = Number(v.streams);
    if (v.streams !== 'auto' && !(Number.isInteger(n) && n >= 1 && n <= 1024)) throw new InvalidOptionError('--streams takes auto or a whole number from 1 to 1024');
    o.streams = v.streams === 'auto' ? 'auto' : n;
  }
  if (v.bare) {
    if (!tables || tables.length !== 1) throw new InvalidOptionError('--bare needs exactly one --table: the table the objects hold');
    const fmt: Record<string, unknown> = { kind: (v.format ?? 'text') as FormatKind };
    if (v.header) fmt.header = true;
    for (const k of ['delimiter', 'null', 'quote', 'escape'] as const) if (typeof v[k] === 'string') fmt[k] = v[k];
    const b: BareSource = { table: tables[0]!, format: fmt as BareSource['format'] };
    if (typeof v['object-name'] === 'string') b.objectName = v['object-name'];
    o.bare = b;
  } else if (v.format !== undefined || v.header || v['object-name'] !== undefined) {
    throw new InvalidOptionError('--format, --header and --object-name apply to --bare only: a manifest records the format');
  }
  return o;
}

/** `segferry import`. */
export async function cmdImport(argv: string[], shared: CliShared): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: flags(shared), allowPositionals: false, strict: true });
  if (v.help) {
    process.stdout.write(IMPORT_HELP);
    return 0;
  }
  const r = shared.reporter().configure(mode(v), v.verbose === true);
  const o: ImportOptions = common(v, shared);
  if (v.truncate) o.truncate = true;
  if (v.append) o.append = true;
  if (v.create) o.create = true;
  if (v.analyze) o.analyze = true;
  if (v['no-analyze']) {
    if (v.analyze) throw new InvalidOptionError('give --analyze or --no-analyze, not both');
    o.analyze = false;
  }
  if (v['no-ddl']) o.ddl = false;
  if (v['schema-only']) o.schemaOnly = true;
  if (v['data-only']) o.dataOnly = true;
  if (v['disable-triggers']) o.disableTriggers = true;
  if (v.force) o.force = true;
  for (const [flag, key] of [['reject-limit', 'rejectLimit'], ['reject-limit-per-node', 'rejectLimitPerNode']] as const) {
    if (v[flag] === undefined) continue;
    const n = Number(v[flag]);
    if (!/^\d+$/.test(String(v[flag])) || !Number.isSafeInteger(n)) throw new InvalidOptionError(`--${flag} must be a whole number of at least 0`);
    o[key] = n;
  }
  if (typeof v.rejects === 'string') o.rejects = v.rejects;
  if (v['dry-run']) {
    const plan = await planImport(o);
    process.stdout.write(redact(JSON.stringify(plan, null, 2)) + '\n');
    return 0;
  }
  if (v.verify) o.verify = true;
  const interrupt = onInterrupt();
  try {
    const res = await importTables({ ...o, signal: interrupt.signal, onEvent: r.listener() });
    r.importSummary(res);
    if (res.verify) return finishVerify(res.verify, r);
    return 0;
  } finally {
    interrupt.dispose();
  }
}

/** `segferry verify`. */
export async function cmdVerify(argv: string[], shared: CliShared): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: flags(shared), allowPositionals: false, strict: true });
  if (v.help) {
    process.stdout.write(VERIFY_HELP);
    return 0;
  }
  for (const k of ['truncate', 'append', 'create', 'analyze', 'no-analyze', 'no-ddl', 'schema-only', 'data-only', 'disable-triggers', 'force', 'verify', 'dry-run', 'reject-limit', 'reject-limit-per-node', 'rejects', 'streams'] as const) {
    if (v[k]) throw new InvalidOptionError(`--${k} is an import option`);
  }
  const r = shared.reporter().configure(mode(v), v.verbose === true);
  const c = common(v, shared);
  const o: VerifyOptions = { from: c.from };
  if (c.s3) o.s3 = c.s3;
  if (c.target !== undefined) o.target = c.target;
  if (c.topology !== undefined) o.topology = c.topology;
  if (c.tables) o.tables = c.tables;
  if (c.bare) o.bare = c.bare;
  if (c.route !== undefined) o.route = c.route;
  if (c.concurrency !== undefined) o.concurrency = c.concurrency;
  if (c.encrypt !== undefined) o.encrypt = c.encrypt;
  const res = await verifyImport({ ...o, onEvent: r.listener() });
  return finishVerify(res, r);
}

function finishVerify(res: VerifyResult, r: Reporter): number {
  r.verifyReport(res);
  if (res.ok) return 0;
  const bad = res.tables.filter((t) => t.match === false).map((t) => t.table);
  return r.failure(new VerifyMismatchError(`verify found ${bad.length} table(s) that differ from the export: ${bad.join(', ')}`, {
    hint: 'the figures above show where; look for writes to the destination, or reload with import --truncate --force',
  }));
}
