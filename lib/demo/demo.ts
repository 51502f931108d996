/**
 * `segferry demo`: the main job on embedded defaults. Starts a throwaway source cluster
 * (coordinator + 3 postgres_fdw data nodes) and an empty destination cluster of the same
 * layout from the installed PostgreSQL, a local S3 server (s3rver) or a directory, fills the
 * source with sample data, then exports, imports and verifies; then moves a small whole
 * database (lib/demo/whole-db.ts: export `all` with its DDL, import `create` into an empty
 * database, counts and schema compared); and cleans everything up, also when interrupted.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AbortedError, SegferryError, VerifyMismatchError, fromDatabaseError } from '../errors.js';
import type { EventListener } from '../events.js';
import { exportTables, type ExportResult } from '../export/export.js';
import type { FormatKind } from '../format/options.js';
import { importTables, type ImportResult } from '../import/import.js';
import { verifyImport, type VerifyResult } from '../import/verify.js';
import type { S3Options } from '../store/s3.js';
import { DISPOSABLE_SETTINGS, PgServers, defaultBaseDir, serverAccount, sweepStaleServers, type PgServer } from '../launch/postgres.js';
import { DEMO_DB, createFdwCluster } from './data.js';
import { startLocalS3, type LocalS3 } from './s3.js';
import { prepareWholeDb, runWholeDb, WHOLE_DB, WHOLE_DB_RESTORED, type WholeDbResult } from './whole-db.js';
import { findPgDump } from '../ddl/pgdump.js';

/** Default number of `orders` rows: about 150 MB of text. */
export const DEMO_ROWS = 1_000_000;
/** Default segment size of the demo: small, so each node writes several segments. */
export const DEMO_SEGMENT_SIZE = 16 * 1024 * 1024;
/** The demo's bucket on the local S3 server. */
export const DEMO_BUCKET = 'segferry-demo';

/** What the demo reports through. The CLI's Reporter implements it; the demo never prints. */
export interface DemoUI {
  /** A step or result message. */
  note(text: string, fields?: Record<string, unknown>): void;
  /** Receives export/import/verify events. */
  listener(): EventListener;
  /** Summary of a finished export. */
  exportSummary(r: ExportResult): void;
  /** Summary of a finished import. */
  importSummary(r: ImportResult): void;
  /** Verify results. */
  verifyReport(v: VerifyResult): void;
}

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Rows of the distributed table (default {@link DEMO_ROWS}). */
  rows?: number;
  /** Export into this directory instead of the local S3 server. */
  to?: string;
  /** Leave the clusters (and the S3 server) running and print how to reach them. */
  keep?: boolean;
  /** Segment size (default {@link DEMO_SEGMENT_SIZE}). */
  segmentSize?: number;
  /** Format (default text). */
  format?: FormatKind;
  /** Cancel: stops the servers at once and removes everything. */
  signal?: AbortSignal;
}

/** What the demo did. */
export interface DemoResult {
  location: string;
  export: ExportResult;
  import: ImportResult;
  /** True when every table matched (a mismatch throws ERR_VERIFY_MISMATCH instead). */
  verified: boolean;
  /** The whole-database part (export `all` with DDL, import `create`); absent when pg_dump is missing. */
  wholeDb?: WholeDbResult;
  elapsedMs: number;
  /** With `keep`: how to reach what is still running. */
  kept?: { source: string; destination: string; s3?: string; dir: string; pids: number[] };
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Run the demo. Resources are released in `finally` and as soon as `signal` aborts (so a
 * long query is cut short by stopping its server), unless `keep` is set and all went well.
 */
/**
 * s3rver ignores If-None-Match, so every export's prefix claim there is best effort and says so
 * (`claim-best-effort`, docs/s3-compatibility.md). For the demo's own server that is no cause for
 * concern: the demo started it on 127.0.0.1 for this run alone and writes a fresh prefix, so no
 * other run can race it. The event stays, as `level: 'info'`: -v prints it, --json shows it.
 * Only here: segferry never guesses from an endpoint (a loopback address can be a tunnel to a
 * shared server, or a local server several jobs write to), so every other store keeps the warning.
 */
export function ownServerEvents(listener: EventListener): EventListener {
  return (e) => listener(e.type === 'warning' && e.code === 'claim-best-effort'
    ? { ...e, level: 'info', message: `${e.message}; this is the demo's own local S3 server, started for this run alone, so no other run writes there` }
    : e);
}

export async function runDemo(ui: DemoUI, opts: DemoOptions = {}): Promise<DemoResult> {
  const t0 = Date.now();
  const rows = opts.rows ?? DEMO_ROWS;
  const signal = opts.signal;
  let servers: PgServers | undefined;
  let s3: LocalS3 | undefined;
  let keep = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= (async () => {
    await Promise.allSettled([servers?.destroy(), s3?.stop()]);
  })());
  const lastResort = () => { servers?.destroySync(); s3?.kill(); };
  const onAbort = () => { void cleanup(); };
  signal?.addEventListener('abort', onAbort, { once: true });
  process.once('exit', lastResort);
  const check = () => {
    if (signal?.aborted) throw signal.reason instanceof SegferryError ? signal.reason : new AbortedError('interrupted');
  };
  const step = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    check();
    const t = Date.now();
    try {
      const r = await f();
      check();
      ui.note(`demo: ${what}: ${secs(Date.now() - t)}`, { step: what, elapsedMs: Date.now() - t });
      return r;
    } catch (e) {
      check();
      throw e instanceof SegferryError ? e : fromDatabaseError(e, { action: 'demo setup' });
    }
  };
  try {
    // Leftovers of demos that were killed before they could clean up.
    const base = defaultBaseDir(serverAccount() !== undefined);
    sweepStaleServers(base);
    servers = await PgServers.create({ baseDir: base, settings: { ...DISPOSABLE_SETTINGS } });
    const srv = servers;
    ui.note(
      `demo: PostgreSQL ${srv.bin.major} from ${srv.bin.bindir}${srv.runAs ? `, servers run as OS user ${srv.runAs.name} (we are root)` : ''}; temp dir ${srv.dir}`,
      { step: 'setup', bindir: srv.bin.bindir, major: srv.bin.major, dir: srv.dir },
    );
    const names = ['coordinator', 'dn1', 'dn2', 'dn3'];
    const started = await step('start 8 PostgreSQL servers and the object store', async () => {
      const pgs = srv.startAll([...names.map((n) => `source-${n}`), ...names.map((n) => `dest-${n}`)]);
      let store: Promise<LocalS3 | undefined> = Promise.resolve(undefined);
      if (!opts.to) store = startLocalS3(join(srv.dir, 's3'), DEMO_BUCKET, { keep: opts.keep === true });
      const [all, local] = await Promise.all([pgs, store.catch((e: unknown) => { ui.note(`demo: the local S3 server did not start (${(e as Error).message}); using a directory instead`); return undefined; })]);
      s3 = local;
      return all;
    });
    const src = started.slice(0, 4) as [PgServer, PgServer, PgServer, PgServer];
    const dst = started.slice(4, 8) as [PgServer, PgServer, PgServer, PgServer];

    let to: string;
    let s3opts: S3Options | undefined;
    if (opts.to) {
      to = resolve(opts.to);
      mkdirSync(to, { recursive: true });
    } else if (s3) {
      to = `s3://${DEMO_BUCKET}/demo/${new Date().toISOString().replace(/[:.]/g, '-')}`;
      s3opts = s3.s3;
      ui.note(`demo: local S3 server (s3rver) at ${s3.endpoint}, bucket ${DEMO_BUCKET}`, { step: 's3', endpoint: s3.endpoint });
    } else {
      to = join(srv.dir, 'export');
      ui.note(`demo: s3rver is not installed (it comes with "npm ci" in a clone of segferry); exporting to the directory ${to} instead`, { step: 's3', dir: to });
    }

    await step(`create sample data: ${rows} orders rows hash-distributed over dn1..dn3, a products table replicated on each, an empty destination of the same layout, and a small whole database (${WHOLE_DB})`, () =>
      Promise.all([
        createFdwCluster(src[0], src.slice(1), { rows }),
        createFdwCluster(dst[0], dst.slice(1), { rows: 0 }),
        // The whole-database part's databases (below), made while the nodes fill theirs.
        prepareWholeDb(src[0], dst[0]),
      ]));

    // Events of the runs against the demo's own S3 server: see ownServerEvents.
    const listen = () => (s3opts ? ownServerEvents(ui.listener()) : ui.listener());
    const source = src[0].url(DEMO_DB);
    const tables = ['orders', 'products'];
    ui.note(`demo: export ${tables.join(', ')} from ${src[0].host}:${src[0].port}/${DEMO_DB} to ${to}`, { step: 'export', to });
    const exp = await exportTables({
      source,
      topology: 'fdw',
      tables,
      replicated: ['products'],
      segmentSize: opts.segmentSize ?? DEMO_SEGMENT_SIZE,
      format: opts.format ?? 'text',
      to,
      ...(s3opts ? { s3: s3opts } : {}),
      ...(signal ? { signal } : {}),
      onEvent: listen(),
    });
    ui.exportSummary(exp);
    check();

    // Import node-direct: the destination's foreign servers are named like the source's nodes,
    // so each object goes straight into the matching data node, and the replicated table into
    // every copy.
    const target = dst[0].url(DEMO_DB);
    ui.note(`demo: import into ${dst[0].host}:${dst[0].port}/${DEMO_DB} (node-direct: dn1..dn3 by name)`, { step: 'import' });
    const imp = await importTables({
      from: to,
      ...(s3opts ? { s3: s3opts } : {}),
      target,
      topology: 'fdw',
      route: 'direct',
      ...(signal ? { signal } : {}),
      onEvent: listen(),
    });
    ui.importSummary(imp);
    check();

    // Verify through the destination coordinator, then every copy of the replicated table.
    ui.note('demo: verify row counts and checksums against the manifest', { step: 'verify' });
    const common = { from: to, ...(s3opts ? { s3: s3opts } : {}), ...(signal ? { signal } : {}), onEvent: listen() };
    const ver = await verifyImport({ ...common, target, topology: 'fdw', route: 'direct' });
    const replicas = await verifyImport({
      ...common,
      topology: { nodes: dst.slice(1).map((n, i) => ({ name: `dn${i + 1}`, url: n.url(DEMO_DB) })), replicated: ['products'] },
      tables: ['products'],
    });
    const merged: VerifyResult = {
      location: ver.location,
      ok: ver.ok && replicas.ok,
      tables: [...ver.tables.filter((t) => t.table !== 'public.products'), ...replicas.tables],
    };
    ui.verifyReport(merged);
    if (!merged.ok) {
      const bad = merged.tables.filter((t) => t.match === false).map((t) => t.table);
      throw new VerifyMismatchError(`the demo's destination differs from the export in ${bad.join(', ')}`, {
        hint: 'this is a bug in segferry: run again with --keep to inspect the clusters, and report it',
      });
    }
    const verified = true;

    // A whole database: its schema (pg_dump) travels with the data and is restored first.
    let wholeDb: WholeDbResult | undefined;
    let dump: string | undefined;
    try {
      dump = findPgDump(srv.bin.major).path;
    } catch (e) {
      ui.note(`demo: whole database skipped: ${(e as Error).message}`, { step: 'whole-db', skipped: true });
    }
    if (dump) {
      const wto = opts.to ? `${to}-whole-db` : s3 ? `${to}-whole-db` : join(srv.dir, 'export-whole-db');
      ui.note(`demo: whole database: export --all of ${src[0].host}:${src[0].port}/${WHOLE_DB} (schema by pg_dump, in the data's snapshot) to ${wto}, import --create into the empty ${dst[0].host}:${dst[0].port}/${WHOLE_DB_RESTORED}`, { step: 'whole-db', to: wto });
      wholeDb = await step('whole database: export --all, import --create', () => runWholeDb(src[0], dst[0], wto, s3opts, signal));
      const w = wholeDb;
      ui.note(`demo: whole database: ${w.counts.map((c) => `${c.table} ${c.source} → ${c.destination} rows`).join(', ')}`, { step: 'whole-db-counts', counts: w.counts });
      ui.note(`demo: whole database: schema ${w.schemaIdentical ? 'identical' : 'DIFFERENT'} (pg_dump --schema-only of source and destination, ${w.schemaLines} lines: types, keys, foreign key, partitions, view, comments)`, { step: 'whole-db-schema', identical: w.schemaIdentical });
      if (!w.schemaIdentical || w.counts.some((c) => c.source !== c.destination)) {
        throw new VerifyMismatchError('the demo\'s restored database differs from its source', { hint: 'this is a bug in segferry: run again with --keep to inspect the clusters, and report it' });
      }
    }

    const res: DemoResult = { location: to, export: exp, import: imp, verified, elapsedMs: Date.now() - t0 };
    if (wholeDb) res.wholeDb = wholeDb;
    if (opts.keep) {
      keep = true;
      const pids = [...srv.servers.map((s) => s.pid), s3?.pid].filter((p): p is number => p !== undefined);
      res.kept = { source: src[0].url(DEMO_DB), destination: dst[0].url(DEMO_DB), dir: srv.dir, pids };
      if (s3) res.kept.s3 = `${s3.endpoint} (bucket ${DEMO_BUCKET}, credentials: see segferry demo --help)`;
      srv.detach();
      s3?.detach();
    }
    return res;
  } catch (e) {
    // Stopping the servers on an interrupt makes running queries fail: report the interrupt.
    check();
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    process.off('exit', lastResort);
    if (!keep) await cleanup();
  }
}
