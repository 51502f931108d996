import { randomUUID } from 'node:crypto';
import { ConnectError, InvalidOptionError, PrefixNotEmptyError, SegferryError, UnfinishedExportError } from '../errors.js';
import { makeEmitter, withRetryEvents, type EventListener } from '../events.js';
import { serializeManifest } from '../manifest/io.js';
import { MANIFEST_KEY, MANIFEST_VERSION, type Manifest, type ManifestTable, type RowChecksum } from '../manifest/types.js';
import { displayName } from '../pg/sql.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';
import type { RelationRead, TablePlan } from '../topology/types.js';
import { runPool, throwIfAborted } from '../util/pool.js';
import { VERSION } from '../version.js';
import { addChecksums, exportNode, type NodeWork, type TableNodeResult } from './exporter.js';
import { ExporterThreads, cores } from './threads.js';
import { planExport, segmentKey, type ExportPlan, type PlanOptions } from './plan.js';
import { ROW_HASH_ALGORITHM } from '../format/row-hash.js';
import { CHECKPOINT_KEY, CheckpointWriter, planDigest, readCheckpoint, type Checkpoint, type CheckpointUnit } from './checkpoint.js';
import { claimForExport, planStems, surveyPrefix } from './ownership.js';
import { claimedError, commitExclusive, type PrefixClaim } from '../store/claim.js';

// Moved to exporter.ts with the per-node exporter; re-exported for existing importers.
export { addChecksums, checksumSQL, selectSQL } from './exporter.js';

/** Options of {@link exportTables}. */
export interface ExportOptions extends PlanOptions {
  /** Destination: `s3://bucket/prefix`, `file:///dir` or a directory path. */
  to: string | ObjectStore;
  /** S3 client settings (endpoint, path style, checksum mode, credentials, part size). */
  s3?: S3Options;
  /** Replace an existing export under the prefix (its manifest and segments are deleted first). */
  overwrite?: boolean;
  /**
   * Continue an unfinished export under the prefix: (table, node) units its checkpoint lists
   * as stored are kept; every other unit is exported again from a clean point (its leftover
   * objects are deleted first). The plan must be the same as the first run's. Resumed units
   * read a newer snapshot than the kept ones.
   */
  resume?: boolean;
  /** Use this plan instead of planning again (e.g. after a `dryRun`). */
  plan?: ExportPlan;
  /**
   * Run the data nodes' exporters in worker threads, so that they use more than one core.
   * `true`: worker threads, at most one per core (os.availableParallelism()); exporters beyond
   * that share them. `false`: every exporter on this thread's event loop. `'auto'` (default):
   * worker threads when the host has at least 4 cores and at least 2 exporters run at once,
   * else this thread.
   *
   * Why: on one event loop an export cannot use more than one core: about 110 MB/s of Arrow
   * (≈ 9.4 CPU-s per GB filling columns from BINARY COPY) or about 450 MB/s of TEXT. A worker
   * costs ≈ 0.25–0.5 CPU-s to start (the upper end with S3: it loads the AWS SDK) and 25–45 MB
   * of memory (its own V8 isolate; docs/memory.md). Measured on 2 cores with 3 local servers,
   * 1.5 GB to a directory (docs/benchmarks.md): threads gave TEXT 0.90–0.95× and Arrow
   * 1.04–1.05× the rows/s (the servers need the second core), so 2-core hosts stay on one thread.
   *
   * Output is the same either way (byte-identical objects). A destination given as an
   * ObjectStore object cannot cross threads: its exporters always run on this thread.
   */
  threads?: boolean | 'auto';
  /** Cancel: exporters stop, unfinished uploads are aborted, no manifest is written. */
  signal?: AbortSignal;
  /** Progress events. */
  onEvent?: EventListener;
}

/** Per-node figures of a finished export. */
export interface NodeSummary {
  node: string;
  bytes: number;
  rows: number;
  objects: number;
  elapsedMs: number;
}

/** What {@link exportTables} returns. */
export interface ExportResult {
  manifest: Manifest;
  plan: ExportPlan;
  /** Display location of the export (no credentials). */
  location: string;
  elapsedMs: number;
  nodes: NodeSummary[];
  /**
   * `overwrite`: objects under the prefix that look like segferry's but that its old manifest
   * or checkpoint does not name (nested exports, other jobs' segments): not deleted.
   */
  leftAlone?: string[];
}

/**
 * Keys that look like segferry's, at any depth. Not proof of ownership: deletions go by
 * lib/export/ownership.ts (only keys directly under the prefix that its manifest or checkpoint names).
 */
export function isSegferryKey(key: string): boolean {
  return key === MANIFEST_KEY || key === CHECKPOINT_KEY || /_segment\.\d+(\.segferry-partial-[0-9a-f]+)?$/.test(key);
}


/**
 * Refuse a prefix that already holds an export, unless `overwrite`: then delete the old
 * manifest first (so the old export is invalid from that moment on), then its segments.
 * Only objects directly under the prefix that its manifest or checkpoint names are deleted
 * (issue 13); look-alikes (nested exports, other jobs' segments) are returned, untouched.
 */
export async function prepareDestination(store: ObjectStore, overwrite: boolean, dryCheck = false): Promise<string[]> {
  const survey = await surveyPrefix(store);
  // Before planning: a run holding the prefix is reported as such, not as an unfinished export.
  if (dryCheck && survey.claim) throw claimedError(store, survey.claim);
  const leftAlone = survey.leftAlone.map((o) => o.key);
  const existing = [...survey.ours.map((o) => o.key), ...leftAlone.filter((k) => !k.includes('/'))];
  if (existing.length === 0) return leftAlone;
  if (!overwrite) {
    const hasManifest = existing.includes(MANIFEST_KEY);
    const Err = hasManifest ? PrefixNotEmptyError : existing.includes(CHECKPOINT_KEY) ? UnfinishedExportError : PrefixNotEmptyError;
    throw new Err(
      hasManifest
        ? `${store.url} already holds an export (${MANIFEST_KEY} and ${existing.length - 1} other objects)`
        : `${store.url} holds ${existing.length} objects of an unfinished export (no manifest)`,
      { hint: hasManifest ? 'choose an empty prefix, or pass overwrite (--overwrite) to replace what is there' : 'continue it with resume (--resume), or pass overwrite (--overwrite) to start again' },
    );
  }
  if (dryCheck) return leftAlone;
  const ours = survey.ours.map((o) => o.key);
  if (ours.includes(MANIFEST_KEY)) await store.delete([MANIFEST_KEY]);
  await store.delete(ours.filter((k) => k !== MANIFEST_KEY));
  return leftAlone;
}

/** The plan's size estimates per node (sum of the relations each node reads). */
export function nodeEstimates(plan: ExportPlan): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of plan.tables) for (const r of t.reads) out[r.node] = (out[r.node] ?? 0) + r.estimatedBytes;
  return out;
}


/**
 * Delete every object (and partial upload) of the given (table, node) units, so they can be
 * written again from segment 0.
 */
async function deleteUnitObjects(store: ObjectStore, units: { objectName: string; node: string }[]): Promise<void> {
  if (units.length === 0) return;
  const stems = units.map((u) => segmentKey(u.objectName, u.node, 0).replace(/0$/, ''));
  const del: string[] = [];
  for await (const o of store.list('')) {
    if (stems.some((p) => o.key.startsWith(p) && /^\d+(\.segferry-partial-[0-9a-f]+)?$/.test(o.key.slice(p.length)))) del.push(o.key);
  }
  await store.delete(del);
}

/**
 * Export tables: plan on the coordinator (unless `plan` is given), then run one exporter
 * per data node, each streaming its COPY output into `<table>_<node>_segment.<n>` objects
 * of at most `segmentSize` bytes, and write `manifest.json` last.
 *
 * Memory: each exporter holds its socket's 256 KiB read buffer, about 3.75 MiB of row
 * blocks (more only while a row larger than a block is assembled), and its upload's buffers
 * (S3: (queueSize + 1) × partSize, 24 MiB by default; directory: 1 MiB). Total ≈ concurrency × that,
 * plus 25–45 MB per worker thread when `threads` uses them (at most min(concurrency, cores)).
 */
export async function exportTables(opts: ExportOptions): Promise<ExportResult> {
  const t0 = Date.now();
  const emit = makeEmitter('export', opts.onEvent);
  if (opts.threads !== undefined && typeof opts.threads !== 'boolean' && opts.threads !== 'auto') {
    throw new InvalidOptionError(`threads must be true, false or 'auto' (got ${JSON.stringify(opts.threads)})`);
  }
  const s3 = withRetryEvents(opts.s3, emit);
  const store = typeof opts.to === 'string' ? openStore(opts.to, s3) : opts.to;
  if (!store) throw new InvalidOptionError('no destination given');
  let threads: ExporterThreads | undefined;
  let claim: PrefixClaim | undefined;
  let leftAlone: string[] = [];
  try {
    throwIfAborted(opts.signal);
    await store.check();
    // Refuse an occupied prefix before any database work; delete (overwrite) only once planned.
    if (!opts.resume) await prepareDestination(store, opts.overwrite ?? false, true);
    const plan = opts.plan ?? (await planExport(opts));
    const digest = planDigest(plan);
    // Claim the prefix before anything is deleted or written; the loser deletes nothing (issue 13).
    claim = await claimForExport(store, opts.resume === true, emit);
    let previous: Checkpoint | undefined;
    if (opts.resume) {
      if (await store.head(MANIFEST_KEY)) {
        throw new PrefixNotEmptyError(`${store.url} already holds a finished export: nothing to resume`, {
          hint: 'choose another prefix, or pass overwrite to replace it',
        });
      }
      previous = await readCheckpoint(store);
      if (previous && previous.planDigest !== digest) {
        throw new InvalidOptionError(`the unfinished export under ${store.url} was planned differently (tables, nodes, columns, format, segment size or filter changed)`, {
          hint: 'resume with the same options as the first run, or pass overwrite to start again',
        });
      }
      // Units an older version stored carry the md5 checksum, which does not add to this one: redo them.
      if (previous && plan.checksums) previous.units = previous.units.filter((u) => u.checksum?.algorithm === ROW_HASH_ALGORITHM);
    } else {
      const kept = await prepareDestination(store, opts.overwrite ?? false);
      // Only an overwrite could have deleted them; then say what it did not delete.
      if (opts.overwrite && kept.length > 0) {
        leftAlone = kept;
        const shown = kept.slice(0, 20).join(', ') + (kept.length > 20 ? ` and ${kept.length - 20} more` : '');
        emit({ type: 'warning', code: 'left-alone', message: `left alone (not this export's): ${shown}` });
      }
    }
    const createdAt = previous?.createdAt ?? new Date().toISOString();
    const checkpoint = new CheckpointWriter(store, previous ?? {
      kind: 'segferry-checkpoint', version: 1, planDigest: digest, createdAt, updatedAt: createdAt, units: [],
    }, claim.runId, planStems(plan));

    const work = new Map<string, NodeWork>();
    for (const n of plan.nodes) work.set(n.name, { node: n, items: [] });
    const results: TableNodeResult[] = [];
    const stale: { objectName: string; node: string }[] = [];
    for (const t of plan.tables) {
      const byNode = new Map<string, RelationRead[]>();
      for (const r of t.reads) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
      for (const [node, reads] of byNode) {
        const u = checkpoint.units.find((x) => x.table === displayName(t.table) && x.node === node);
        if (u) {
          results.push({ ...u, table: t });
          continue;
        }
        work.get(node)!.items.push({ table: t, reads });
        if (opts.resume) stale.push({ objectName: t.objectName, node });
      }
    }
    // A clean point for every unit that is redone: delete whatever it left behind.
    await deleteUnitObjects(store, stale);
    await checkpoint.save();
    emit({
      type: 'start',
      tables: plan.tables.map((t) => displayName(t.table)),
      nodes: plan.nodes.map((n) => n.name),
      estimatedBytes: plan.tables.reduce((a, t) => a + t.estimatedBytes, 0),
      nodeBytes: nodeEstimates(plan),
    });

    const busy = [...work.values()].filter((w) => w.items.length > 0);
    const atOnce = Math.min(busy.length, opts.concurrency ?? plan.concurrency);
    if (typeof opts.to === 'string' && useThreads(opts.threads, atOnce)) {
      threads = new ExporterThreads({ plan, location: opts.to, ...(opts.s3 ? { s3: opts.s3 } : {}), size: Math.min(atOnce, cores()), emit, onRetry: s3.onRetry! });
    }
    const pool = threads;
    const runNode: NodeRunner = pool
      ? (w, signal, onUnitDone) => pool.run(w, signal, onUnitDone)
      : async (w, signal, onUnitDone) => { await exportNode(w, plan, store, signal, emit, onUnitDone); };

    const summaries: NodeSummary[] = [];
    const tableLeft = new Map<string, Set<string>>();
    for (const w of work.values()) {
      for (const it of w.items) {
        const k = displayName(it.table.table);
        tableLeft.set(k, (tableLeft.get(k) ?? new Set()).add(w.node.name));
      }
    }
    await runPool(
      busy,
      opts.concurrency ?? plan.concurrency,
      async (w, signal) => {
        const started = Date.now();
        const mine: TableNodeResult[] = [];
        const record = (r: TableNodeResult) => {
          mine.push(r);
          results.push(r);
          const u: CheckpointUnit = { ...r, table: displayName(r.table.table) };
          return checkpoint.record(u);
        };
        try {
          await runNode(w, signal, record);
        } catch (e) {
          // A replicated table whose node is lost is read from its next replica; anything
          // else on a lost node fails the export.
          const left = w.items.filter((it) => !mine.some((r) => r.table === it.table));
          if (!(e instanceof ConnectError) || signal.aborted || left.length === 0 || left.some((it) => it.table.distribution.kind !== 'replicated')) throw e;
          await replicaFallback(w, left, e, plan, store, signal, emit, record, runNode);
        }
        const s: NodeSummary = {
          node: w.node.name,
          bytes: mine.reduce((a, r) => a + r.bytes, 0),
          rows: mine.reduce((a, r) => a + r.rows, 0),
          objects: mine.reduce((a, r) => a + r.objects.length, 0),
          elapsedMs: Date.now() - started,
        };
        summaries.push(s);
        emit({ type: 'node-done', ...s });
        for (const r of mine) {
          const name = displayName(r.table.table);
          const left = tableLeft.get(name)!;
          left.delete(w.node.name);
          if (left.size === 0) {
            const all = results.filter((x) => x.table === r.table);
            emit({
              type: 'table-done',
              table: name,
              rows: all.reduce((a, x) => a + x.rows, 0),
              bytes: all.reduce((a, x) => a + x.bytes, 0),
              objects: all.reduce((a, x) => a + x.objects.length, 0),
            });
          }
        }
      },
      opts.signal,
    );

    const manifest = buildManifest(plan, results, createdAt, opts.s3);
    throwIfAborted(opts.signal);
    // The commit point: written only after every object is stored.
    // Conditional where the store allows, and only while this run still holds the claim.
    await commitExclusive(claim, MANIFEST_KEY, serializeManifest(manifest));
    await store.delete([CHECKPOINT_KEY]).catch(() => {});
    await claim.release();
    const elapsedMs = Date.now() - t0;
    emit({
      type: 'done',
      tables: manifest.tables.length,
      objects: manifest.objects.length,
      rows: manifest.tables.reduce((a, t) => a + t.rows, 0),
      bytes: manifest.objects.reduce((a, o) => a + o.bytes, 0),
      elapsedMs,
    });
    summaries.sort((a, b) => (a.node < b.node ? -1 : 1));
    const result: ExportResult = { manifest, plan, location: store.url, elapsedMs, nodes: summaries };
    if (leftAlone.length > 0) result.leftAlone = leftAlone;
    return result;
  } finally {
    await threads?.close();
    // A clean failure gives the prefix back (a checkpoint, if any, still allows --resume).
    await claim?.release();
    if (typeof opts.to === 'string') store.close();
  }
}

/** Runs one node's exporter, here or in a worker thread; `onUnitDone` gets the caller's own table objects. */
type NodeRunner = (w: NodeWork, signal: AbortSignal, onUnitDone: (r: TableNodeResult) => Promise<void>) => Promise<void>;

/** `threads: 'auto'` uses worker threads from this many cores on (see ExportOptions.threads). */
const AUTO_THREADS_MIN_CORES = 4;

/** Whether exporters run in worker threads (see ExportOptions.threads). */
function useThreads(threads: ExportOptions['threads'], atOnce: number): boolean {
  if (atOnce === 0) return false;
  if (threads === true || threads === false) return threads;
  return atOnce >= 2 && cores() >= AUTO_THREADS_MIN_CORES;
}

/**
 * Export replicated tables of a lost node from their other replicas, in the order the plan
 * lists them. Objects the lost node had stored for those tables are deleted first.
 */
async function replicaFallback(
  w: NodeWork,
  items: NodeWork['items'],
  cause: SegferryError,
  plan: ExportPlan,
  store: ObjectStore,
  signal: AbortSignal,
  emit: ReturnType<typeof makeEmitter>,
  record: (r: TableNodeResult) => Promise<void>,
  runNode: NodeRunner,
): Promise<void> {
  await deleteUnitObjects(store, items.map((it) => ({ objectName: it.table.objectName, node: w.node.name })));
  for (const it of items) {
    const candidates = (it.table.distribution.replicas ?? []).filter((n) => n !== w.node.name);
    let lastErr: unknown = cause;
    let done = false;
    for (const name of candidates) {
      const node = plan.nodes.find((n) => n.name === name);
      if (!node) continue;
      emit({ type: 'retry', node: name, table: displayName(it.table.table), attempt: 2, reason: `node ${w.node.name} lost (${cause.code}); reading the replica on ${name}` });
      const relocated: TablePlan = { ...it.table, reads: it.reads.map((r) => ({ ...r, node: name })) };
      try {
        await runNode({ node, items: [{ table: relocated, reads: relocated.reads }] }, signal, (r) => record({ ...r, table: it.table }));
        done = true;
        break;
      } catch (e) {
        if (!(e instanceof ConnectError) || signal.aborted) throw e;
        lastErr = e;
      }
    }
    if (!done) throw lastErr;
  }
}

function buildManifest(plan: ExportPlan, results: TableNodeResult[], createdAt: string, s3?: S3Options): Manifest {
  const tables: ManifestTable[] = plan.tables.map((t) => {
    const rs = results.filter((r) => r.table === t).sort((a, b) => (a.node < b.node ? -1 : 1));
    const mt: ManifestTable = {
      schema: t.table.schema,
      name: t.table.name,
      objectName: t.objectName,
      columns: t.columns,
      distribution: t.distribution,
      filter: plan.filter,
      rows: rs.reduce((a, r) => a + r.rows, 0),
      bytes: rs.reduce((a, r) => a + r.bytes, 0),
      nodes: rs.map((r) => {
        const n: ManifestTable['nodes'][number] = {
          node: r.node,
          // A replicated table read from a fallback replica names the planned relations.
          relations: (t.reads.some((x) => x.node === r.node) ? t.reads.filter((x) => x.node === r.node) : t.reads).map((x) => displayName(x.relation)),
          rows: r.rows,
          bytes: r.bytes,
          objects: r.objects.length,
        };
        if (r.checksum) n.checksum = r.checksum;
        return n;
      }),
    };
    if (plan.checksums && rs.every((r) => r.checksum)) {
      mt.checksum = rs.reduce<RowChecksum>((a, r) => addChecksums(a, r.checksum!), { rows: 0, sum: '0', algorithm: ROW_HASH_ALGORITHM });
    }
    const arrow = rs.find((r) => r.arrow)?.arrow;
    if (arrow) {
      // The first node's types; a column is flagged demoted when any node's objects hold it as text.
      mt.arrow = { schema: arrow.map((c, i) => (rs.some((r) => r.arrow?.[i]?.demoted) ? { ...c, demoted: true } : c)) };
    }
    return mt;
  });
  const objects = results.flatMap((r) => r.objects).sort((a, b) => (a.table === b.table ? (a.node === b.node ? a.segment - b.segment : a.node < b.node ? -1 : 1) : a.table < b.table ? -1 : 1));
  const m: Manifest = {
    kind: 'segferry-manifest',
    version: MANIFEST_VERSION,
    id: randomUUID(),
    createdAt,
    completedAt: new Date().toISOString(),
    writer: `segferry ${VERSION}`,
    source: {
      topology: plan.topology,
      nodes: plan.nodes.map((n) => ({ name: n.name, host: n.endpoint.host, port: n.endpoint.port, database: n.endpoint.database })),
    },
    format: plan.format,
    sessionSettings: plan.sessionSettings,
    segmentSize: plan.segmentSize,
    tables,
    objects,
  };
  if (plan.coordinator) m.source.coordinator = { host: plan.coordinator.host, port: plan.coordinator.port, database: plan.coordinator.database };
  if (s3?.serverSideEncryption) {
    m.encryption = { algorithm: s3.serverSideEncryption };
    if (s3.kmsKeyId) m.encryption.kmsKeyId = s3.kmsKeyId;
  }
  return m;
}
