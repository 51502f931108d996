import { AbortedError, DdlUnsupportedError, InvalidOptionError, SegferryError } from '../errors.js';
// pg_dump's side (lib/ddl, the PostgreSQL launcher) loads only when an export takes the DDL.
import type { DdlScope, DdlSnapshot } from '../ddl/capture.js';
import { COORDINATOR_NODE, type PlanNode } from '../topology/types.js';
import type pg from 'pg';
import { closeAllQuietly, connect, parseConnection, type NodeEndpoint } from '../pg/conn.js';
import { sameEndpoint } from '../topology/clients.js';
import { makeEmitter, withRetryEvents, type EventListener } from '../events.js';
import { serializeManifest } from '../manifest/io.js';
import { CHECKPOINT_KEY, MANIFEST_KEY } from '../manifest/keys.js';
import type { ClientEncryption, Manifest, ManifestDdl, ManifestObject, ManifestSequence } from '../manifest/types.js';
import { displayName } from '../pg/sql.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';
import { runPool } from '../util/pool.js';
import { exportNode } from './exporter.js';
import { runQueue, type ExportContext, type NodeRunner } from './queue.js';
import { buildManifest } from './manifest.js';
import type { ExporterThreads } from './threads.js';
import { autoThreads, cores, onThisHost } from './threads-rule.js';
import { planExportClosingLater, type ExportPlan, type PlanOptions } from './plan.js';
import { prepareDestination } from './destination.js';
import { streamMemory } from './streams.js';
import { deleteUnitObjects, startExport } from './resume.js';
import { OpenedSessions, SnapshotSessions } from './snapshots.js';
import { coordinatorSnapshotNode } from './ddl-snapshot.js';
import { SegmentNumbers, hasGap } from './numbering.js';
import { nodeQueues, planUnits, UnitQueue, type ExportUnit, type NodeWork, type UnitResult } from './units.js';
import { claimForExport, planStems } from './ownership.js';
import { commitExclusive, type PrefixClaim } from '../store/claim.js';
import type { EncryptOption, KeySource } from '../crypto/keys.js';
import type { ObjectCipher } from '../crypto/objects.js';

// Moved to exporter.ts, formats.ts, lib/manifest/keys.ts and destination.ts; re-exported for existing importers.
export { addChecksums, checksumSQL, selectSQL } from './exporter.js';
export { isSegferryKey } from '../manifest/keys.js';
export { prepareDestination } from './destination.js';

/** Options of {@link exportTables}. */
export interface ExportOptions extends PlanOptions {
  /** Destination: `s3://bucket/prefix`, `file:///dir` or a directory path. */
  to: string | ObjectStore;
  /** S3 client settings (endpoint, path style, checksum mode, credentials, part size). */
  s3?: S3Options;
  /** Replace an existing export under the prefix (its manifest and segments are deleted first). */
  overwrite?: boolean;
  /**
   * Continue an unfinished export under the prefix: units (table, node) its checkpoint lists
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
   * worker threads when at least 2 exporters run at once and either the host has 4 or more
   * cores, or it has 2–3 cores, the client is the bottleneck (Arrow, Parquet, compressed or
   * encrypted objects) and the servers run on other hosts (not loopback or a Unix socket).
   * Else this thread (autoThreads in lib/export/threads.ts).
   *
   * Why: one event loop cannot use more than about a core (≈ 1.2 with its GC threads). Per
   * million rows of the bench table the client spends ≈ 1 CPU-s on TEXT, ≈ 3–4 on Arrow, ≈ 5–6
   * on Parquet (zstd) and ≈ 9 on gzip TEXT, the servers' COPY ≈ 2.5–3. So TEXT is bound by the
   * servers, and the converting formats by the client's loop, which a second one lifts when the
   * cores are the client's own. Servers on the same 2 cores take the second core: there threads
   * on / off measured TEXT 0.64–0.94×, Arrow 0.91–0.96×, Parquet 1.00× the rows/s for 1.1–1.5×
   * the client CPU (bench/threads.ts). A thread costs ≈ 0.12 CPU-s to start (TEXT; ≈ 0.28 with
   * apache-arrow or the Parquet writer; more with S3, which loads the AWS SDK), then warms up
   * its own JIT, and 25–45 MB of memory (its own V8 isolate; docs/memory.md).
   *
   * Output is the same either way (byte-identical objects). A destination given as an
   * ObjectStore object cannot cross threads: its exporters always run on this thread.
   */
  threads?: boolean | 'auto';
  /**
   * Cancel (default: none): exporters stop their COPY, store writes waiting on the store are
   * cut short, unfinished uploads are aborted once every exporter has stopped, no manifest is
   * written. The export rejects with ERR_ABORTED, or with the reason itself when it is a
   * SegferryError.
   */
  signal?: AbortSignal;
  /**
   * Carry the schema (issue 14): pg_dump --schema-only of the selection, stored as
   * `segferry-ddl-pre-data.sql` and `segferry-ddl-post-data.sql` with sequence values in the
   * manifest, for `import --create`. Default: on with `all` or `schemas`, off otherwise.
   * Single servers (in the data's snapshot), static topologies (the first node's
   * definitions, just before the data) and Citus (the coordinator's shell tables, just before
   * the data, with the distribution as data in `ddl.distribution`) and postgres_fdw
   * coordinators (the logical tables and partition bounds, foreign partitions as local ones;
   * never foreign servers, user mappings or foreign tables).
   */
  ddl?: boolean;
  /**
   * Only the schema (default false): the DDL objects and a manifest with `schemaOnly: true`,
   * the tables' columns and no segments (pg_dump --schema-only). Implies `ddl`; the same
   * topologies as `ddl`. `import --create` of it creates the schema and loads nothing.
   */
  schemaOnly?: boolean;
  /**
   * Only the data (default false): no DDL objects (`ddl` off). With `all` or `schemas` the
   * manifest still records the scope's sequence values and populated materialized views
   * (`sequences`, `matviews`), which an import sets and refreshes after the data, as
   * pg_dump --data-only does.
   */
  dataOnly?: boolean;
  /** Directory holding pg_dump (default: SEGFERRY_PG_BINDIR, PATH, pg_config --bindir, /usr/lib/postgresql/N/bin). */
  pgBindir?: string;
  /**
   * Client-side encryption (docs/encryption.md; default none): `{ keyFile: PATH }` (a local
   * 256-bit key) or `{ kms: KEY-ID }` (AWS KMS `GenerateDataKey`, on the `s3` options' endpoint
   * and credentials). A fresh data key per export, recorded wrapped in the manifest; every
   * object (segments, DDL objects, multipart parts) is stored encrypted, and `segmentSize`
   * holds on the stored bytes. A resume keeps the first run's data key.
   */
  encrypt?: EncryptOption;
  /**
   * An opened key source instead of `encrypt` (default none): `copy --via` opens one and shares
   * it with its loaders, which unwrap the data key the checkpoint records.
   */
  keySource?: KeySource;
  /** Hooks for a consumer of the objects as they are stored (`copy --via`; default none). */
  stages?: ExportStages;
  /** Progress events. */
  onEvent?: EventListener;
  /**
   * Id of the manifest (default: a random UUID, chosen when it is written). `copy --via` fixes
   * it in advance: objects it loads before the manifest exists are recorded in the destination
   * ledger under the id an import of the prefix will use. Recorded in the checkpoint: a resume
   * keeps it (and refuses another).
   */
  manifestId?: string;
}

/** A unit whose objects are all stored (see {@link ExportStages}). */
export interface StoredUnit {
  /** The unit id (`segment` events carry it as `unit`). */
  unit: string;
  /** `schema.name`. */
  table: string;
  /** The node read. */
  node: string;
  objects: ManifestObject[];
}

/**
 * What a consumer of an export's objects as they are stored learns besides the `segment`
 * events: units are the checkpoint's grain, so objects of a unit that is not recorded may be
 * deleted and written again (a failure, a resume), and only recorded units are final.
 */
export interface ExportStages {
  /**
   * Called once the checkpoint is stored, before any object is written: the units a resume
   * keeps from earlier runs, and the wrapped data key of an encrypted export. Awaited.
   */
  started?: (s: { kept: StoredUnit[]; clientEncryption?: ClientEncryption }) => void | Promise<void>;
  /**
   * Called for each unit of this run once the checkpoint records it. (A resume whose streams
   * left a gap in a pair's segment numbers redoes the pair whole, units already reported
   * included, with a `streams-renumber` warning: a consumer that cannot undo plans one stream.)
   */
  unitStored?: (u: StoredUnit) => void;
}

/** A unit result as a {@link StoredUnit}. */
function storedUnit(r: UnitResult): StoredUnit {
  return { unit: r.unit.id, table: displayName(r.unit.table.table), node: r.node, objects: r.objects };
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

/** The plan's size estimates per node (sum of the relations each node reads). */
export function nodeEstimates(plan: ExportPlan): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of plan.tables) for (const r of t.reads) out[r.node] = (out[r.node] ?? 0) + r.estimatedBytes;
  return out;
}


/**
 * Export tables: plan on the coordinator (unless `plan` is given), then run one exporter
 * per data node, each streaming its COPY output into `<table>_<node>_segment.<n>` objects
 * of at most `segmentSize` bytes, and write `manifest.json` last.
 *
 * Memory: each exporter holds its socket's 256 KiB read buffer, about 3.75 MiB of row
 * blocks (more only while a row larger than a block is assembled), and its upload's own buffer
 * (S3: 256 KiB; directory: 1 MiB). Total ≈ concurrency × that, plus the S3 store's shared part
 * buffers for the parts being filled and in flight (`s3.uploadMemory`, 72 MiB), plus 25–45 MB per worker thread when `threads` uses them (at most min(concurrency, cores)).
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
  let ddlSnap: DdlSnapshot | undefined;
  let ddl: ManifestDdl | undefined;
  let extras: { sequences: ManifestSequence[]; matviews: { schema: string; name: string }[] } | undefined;
  // Set once the run has stored its checkpoint: from then on a failure leaves it for --resume.
  let checkpointed = false;
  // Sessions ending (snapshot sessions, streams' sessions): awaited after the manifest, not before.
  const ending: Promise<void>[] = [];
  // Streams started right after planning, before the claim and the checkpoint (see below).
  let early: { units: readonly ExportUnit[]; start: StreamStart } | undefined;
  try {
    stopIfAborted(opts.signal);
    // A missing or malformed key file fails before any database or store work.
    if (opts.encrypt !== undefined && opts.keySource !== undefined) throw new InvalidOptionError('give encrypt or keySource, not both');
    // The encryption modules, the worker threads' and the DDL's load only when used (start-up, issue 17).
    const keys: KeySource | undefined = opts.keySource ?? (opts.encrypt !== undefined ? await encryptKeySource(opts.encrypt, opts.s3) : undefined);
    await store.check();
    // Refuse an occupied prefix before any database work; delete (overwrite) only once planned.
    if (!opts.resume) await prepareDestination(store, opts.overwrite ?? false, true);
    if (opts.schemaOnly && opts.dataOnly) throw new InvalidOptionError('give schemaOnly (--schema-only) or dataOnly (--data-only), not both');
    if (opts.schemaOnly && opts.ddl === false) throw new InvalidOptionError('schemaOnly (--schema-only) exports the DDL: it cannot be combined with ddl: false (--no-ddl)');
    if (opts.dataOnly && opts.ddl === true) throw new InvalidOptionError('dataOnly (--data-only) exports no DDL: it cannot be combined with ddl: true (--ddl)');
    // auto streams are capped by the memory of a stream for this destination (docs/memory.md).
    const perStream = opts.streamMemory ?? streamMemory({ s3: store.url.startsWith('s3://') });
    const wholeScope = opts.all === true || (opts.schemas?.length ?? 0) > 0;
    const wantDdl = opts.schemaOnly === true || (!opts.dataOnly && (opts.ddl ?? wholeScope));
    // A run that is not a resume reads every unit of the plan (startExport's todo) and, without
    // the DDL or a data-only scope's extras, does no other database work before its exporters:
    // its sessions are started ahead (issue 17, bench/streams-timeline.ts, docs/streams.md).
    const ahead = !opts.resume && !wantDdl && !opts.schemaOnly && !(opts.dataOnly && wholeScope);
    // A single server's exporters read the server planning asks: the first exporter sessions
    // connect while planning runs (guessed), adopted after it if the plan reads that server.
    const guessed = ahead && !opts.plan ? guessSessions(opts) : undefined;
    let plan: ExportPlan;
    let kept = new Map<string, Promise<pg.Client>>();
    let firstItems: { units: ExportUnit[]; items: WorkItem[] } | undefined;
    if (opts.plan) plan = opts.plan;
    else {
      // The planning sessions end while the export goes on (awaited with the others' ends),
      // but a node's that is to export the node's streams' snapshot is kept for it.
      const keep = (p: ExportPlan) => {
        if (!ahead) return [];
        const units = planUnits(p);
        firstItems = { units, items: workItems(p, units) };
        return snapshotNodes(firstItems.items, opts.concurrency ?? p.concurrency);
      };
      const planned = await planExportClosingLater({ ...opts, streamMemory: perStream }, keep).catch((e: unknown) => {
        if (guessed) ending.push(closeGuessed(guessed));
        throw e;
      });
      plan = planned.plan;
      kept = planned.kept;
      ending.push(planned.closed);
    }
    if (wantDdl && plan.topology !== 'postgres' && plan.topology !== 'static' && plan.topology !== 'citus' && plan.topology !== 'fdw') {
      throw new DdlUnsupportedError(`the schema (DDL) cannot be carried from a ${plan.topology} source yet: export with --no-ddl (ddl: false) and create the destination tables yourself`, {
        hint: 'single servers, static topologies and Citus carry their DDL (docs/manifest.md)',
      });
    }
    // A run that is not a resume reads every unit of the plan (startExport's todo) and, without
    // the DDL or a data-only scope's extras, does no other database work before its streams: their
    // snapshot sessions and first stream sessions start now, so that their connects and the
    // snapshot's export overlap the claim and the checkpoint instead of following them (issue 17,
    // bench/streams-timeline.ts). The snapshot is still exported after planning, as before; it
    // only comes before the claim, which concerns the store alone. A refused claim or a failed
    // checkpoint closes these sessions unused (finally below).
    if (ahead) {
      const units = firstItems?.units ?? planUnits(plan);
      const items = firstItems?.items ?? workItems(plan, units);
      early = { units, start: startStreams(plan, items, opts.concurrency ?? plan.concurrency, kept, guessed) };
    } else if (guessed) ending.push(closeGuessed(guessed));
    ending.push(closeAllQuietly(kept.values()));
    kept.clear();
    // Claim the prefix before anything is deleted or written; the loser deletes nothing (issue 13).
    claim = await claimForExport(store, opts.resume === true, emit);
    if (!opts.resume) {
      const kept = await prepareDestination(store, opts.overwrite ?? false);
      // Only an overwrite could have deleted them; then say what it did not delete.
      if (opts.overwrite && kept.length > 0) {
        leftAlone = kept;
        const shown = kept.slice(0, 20).join(', ') + (kept.length > 20 ? ` and ${kept.length - 20} more` : '');
        emit({ type: 'warning', code: 'left-alone', message: `left alone (not this export's): ${shown}` });
      }
    }
    const { checkpoint, createdAt, done, todo: planned, dataKey, manifestId } = await startExport(store, plan, opts.resume ?? false, claim.runId, planStems(plan), keys, opts.manifestId);
    await opts.stages?.started?.({ kept: done.map(storedUnit), ...(dataKey ? { clientEncryption: dataKey.manifest } : {}) });
    const cipher: ObjectCipher | undefined = dataKey ? { dataKey: dataKey.dataKey, chunkSize: dataKey.manifest.chunkSize } : undefined;
    // Schema only: the DDL and the manifest, no unit runs.
    const todo = opts.schemaOnly ? [] : planned;
    checkpointed = true;
    const results: UnitResult[] = [...done];
    emit({
      type: 'start',
      tables: plan.tables.map((t) => displayName(t.table)),
      nodes: plan.nodes.map((n) => n.name),
      estimatedBytes: plan.tables.reduce((a, t) => a + t.estimatedBytes, 0),
      nodeBytes: nodeEstimates(plan),
    });

    if (wantDdl) {
      // Single server: pg_dump and the exporter share one snapshot; a static topology's
      // first node is dumped just before the data (said in the manifest).
      const single = plan.topology === 'postgres' && plan.nodes.length === 1;
      const citus = plan.topology === 'citus';
      const node = schemaNode(plan);
      const { DdlSnapshot, captureDdl } = await import('../ddl/capture.js');
      const sealObject = cipher ? (await import('../crypto/envelope.js')).sealObject : undefined;
      ddlSnap = await DdlSnapshot.open(node.endpoint, node.name);
      const shared = single && !opts.resume;
      const scope: DdlScope = opts.all ? 'database' : (opts.tables?.length ?? 0) === 0 && (opts.schemas?.length ?? 0) > 0 ? 'schemas' : 'tables';
      ddl = await captureDdl({
        snapshot: ddlSnap, shared, scope, tables: plan.tables.map((t) => t.table), store, citus, fdw: plan.topology === 'fdw',
        onWarning: (code, message) => emit({ type: 'warning', code, message }),
        ...(opts.schemas ? { schemas: opts.schemas } : {}),
        ...(opts.pgBindir !== undefined ? { pgBindir: opts.pgBindir } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(cipher && sealObject ? { seal: (key: string, body: Buffer) => sealObject(cipher.dataKey, key, body, cipher.chunkSize) } : {}),
      });
      // Citus, postgres_fdw: the coordinator's own rows are read in the DDL's snapshot too.
      const coordinator = shared ? undefined : coordinatorSnapshotNode(plan, node, opts.resume === true);
      if (shared) plan = { ...plan, snapshot: ddlSnap.id };
      else if (coordinator !== undefined) plan = { ...plan, snapshots: { ...plan.snapshots, [coordinator]: ddlSnap.id } };
      else { await ddlSnap.close(); ddlSnap = undefined; }
    } else if (opts.dataOnly && wholeScope) {
      // pg_dump --data-only carries sequence values and materialized view data: so does this.
      const node = schemaNode(plan);
      const { DdlSnapshot, captureDataExtras } = await import('../ddl/capture.js');
      const snap = await DdlSnapshot.open(node.endpoint, node.name);
      try {
        extras = await captureDataExtras(snap.client, opts.all ? 'database' : 'schemas', plan.tables.map((t) => t.table), opts.schemas ?? []);
      } finally {
        await snap.close();
      }
    }
    const concurrency = opts.concurrency ?? plan.concurrency;
    // Pairs read in streams run on this thread: their streams share one segment counter.
    const atOnce = Math.min(workItems(plan, todo.filter((u) => !u.stream)).length, concurrency);
    if (typeof opts.to === 'string' && useThreads(opts.threads, atOnce, plan, cipher !== undefined)) {
      const { ExporterThreads } = await import('./threads.js');
      threads = new ExporterThreads({ plan, location: opts.to, ...(opts.s3 ? { s3: opts.s3 } : {}), ...(cipher ? { cipher } : {}), size: Math.min(atOnce, cores()), emit, onRetry: s3.onRetry! });
    }
    const pool = threads;
    const runNode: NodeRunner = pool
      ? (w, signal, onUnitDone) => pool.run(w, signal, onUnitDone)
      : async (w, signal, onUnitDone) => { await exportNode(w, plan, store, signal, emit, onUnitDone, undefined, cipher); };

    const summaries = new Map<string, NodeProgress>();
    const tables = new TableProgress(todo, results, emit);
    const unitStored = opts.stages?.unitStored;
    const ctx: Omit<ExportContext, 'signal'> = { store, plan, emit, checkpoint, runNode, results, ...(unitStored ? { onRecorded: (r: UnitResult) => unitStored(storedUnit(r)) } : {}) };
    const runUnits = async (units: readonly ExportUnit[]) => {
      const counters = segmentCounters(units, results);
      const items = workItems(plan, units);
      // The streams started after planning serve this run if it reads exactly those units.
      const started = early && sameUnits(early.units, units) ? early.start : undefined;
      if (early && !started) ending.push(early.start.snapshots.closeAll(), early.start.opened.closeAll());
      early = undefined;
      const { snapshots, opened } = started ?? startStreams(plan, items, concurrency);
      const rangeRunner: NodeRunner = async (w, signal, onUnitDone) => {
        // A stream whose pair's ranges are all taken already: no session (one opened ahead stays for another stream or closeAll).
        if (w.queue?.left === 0) return;
        const taken = opened.take(w.node.name);
        await exportNode(w, plan, store, signal, emit, onUnitDone, (u) => (u.stream ? counters.get(u.group)!.stream() : undefined), cipher, {
          ...(taken ? { opened: taken } : {}),
          closing: (done) => opened.closeLater(done),
        });
      };
      const directRunner: NodeRunner = async (w, signal, onUnitDone) => {
        const taken = opened.take(w.node.name);
        await exportNode(w, plan, store, signal, emit, onUnitDone, undefined, cipher, {
          ...(taken ? { opened: taken } : {}),
          closing: (done) => opened.closeLater(done),
        });
      };
      for (const w of items) {
        const p = summaries.get(w.node.name) ?? { summary: { node: w.node.name, bytes: 0, rows: 0, objects: 0, elapsedMs: 0 }, itemsLeft: 0 };
        p.itemsLeft++;
        summaries.set(w.node.name, p);
      }
      try {
        await runPool(
          items,
          concurrency,
          async (item, signal) => {
            const started = Date.now();
            let mine: UnitResult[];
            if (item.shared) {
              try {
                const snapshot = await snapshots.acquire(item.node.name);
                mine = await runQueue({ ...ctx, signal, runNode: rangeRunner }, { node: item.node, units: item.units, snapshot, ...(item.queue ? { queue: item.queue } : {}) });
              } finally {
                snapshots.release(item.node.name);
              }
            } else if (!pool && opened.idle(item.node.name) > 0) {
              // A node read in one session whose session was opened while planning ran (guessSessions).
              mine = await runQueue({ ...ctx, signal, runNode: directRunner }, item);
            } else {
              mine = await runQueue({ ...ctx, signal }, item);
            }
            const s = addSummary(summaries.get(item.node.name)!, mine, Date.now() - started);
            if (s.itemsLeft === 0) emit({ type: 'node-done', ...s.summary });
            tables.unitsDone(mine);
          },
          opts.signal,
        );
      } finally {
        // Closes what a failure left open; after success only the sessions' ends remain, which
        // the manifest need not wait for (awaited before this function returns).
        ending.push(snapshots.closeAll(), opened.closeAll());
      }
    };
    await runUnits(todo);
    // A resume whose redone streams stored fewer objects than the holes their failed attempt
    // left: redo those (table, node) pairs whole, so segment numbers are 0..n-1 (docs/naming.md).
    const gappy = gappedGroups(results);
    if (gappy.size > 0) {
      const redo = planUnitsOf(results, gappy);
      emit({ type: 'warning', code: 'streams-renumber', message: `redoing ${[...gappy].join(', ')} whole: its segment numbers had a gap after the resume` });
      await deleteUnitObjects(store, redo.map((u) => ({ objectName: u.table.objectName, node: u.node })));
      await checkpoint.forget(new Set(redo.map((u) => u.id)));
      for (let i = results.length - 1; i >= 0; i--) if (gappy.has(results[i]!.unit.group)) results.splice(i, 1);
      await runUnits(redo);
    }

    await ddlSnap?.close();
    ddlSnap = undefined;
    const manifest = buildManifest(plan, results, createdAt, opts.s3, manifestId);
    if (ddl) manifest.ddl = ddl;
    if (dataKey) manifest.clientEncryption = dataKey.manifest;
    if (opts.schemaOnly) manifest.schemaOnly = true;
    if (extras) {
      manifest.sequences = extras.sequences;
      if (extras.matviews.length > 0) manifest.matviews = extras.matviews;
    }
    stopIfAborted(opts.signal);
    // The commit point: written only after every object is stored.
    // Conditional where the store allows, and only while this run still holds the claim.
    await commitExclusive(claim, MANIFEST_KEY, serializeManifest(manifest));
    await store.delete([CHECKPOINT_KEY]).catch(() => {});
    await claim.release();
    await Promise.all(ending.splice(0));
    const elapsedMs = Date.now() - t0;
    emit({
      type: 'done',
      tables: manifest.tables.length,
      objects: manifest.objects.length,
      rows: manifest.tables.reduce((a, t) => a + t.rows, 0),
      bytes: manifest.objects.reduce((a, o) => a + o.bytes, 0),
      elapsedMs,
    });
    const nodes = [...summaries.values()].map((x) => x.summary).sort((a, b) => (a.node < b.node ? -1 : 1));
    const result: ExportResult = { manifest, plan, location: store.url, elapsedMs, nodes };
    if (leftAlone.length > 0) result.leftAlone = leftAlone;
    return result;
  } finally {
    // Streams started ahead that no run used (a refused claim, a failed checkpoint).
    if (early) ending.push(early.start.snapshots.closeAll(), early.start.opened.closeAll());
    await Promise.all(ending.splice(0));
    await ddlSnap?.close();
    await threads?.close();
    // A clean failure gives the prefix back (a checkpoint, if any, still allows --resume).
    await claim?.release();
    // A run that failed before its checkpoint (planning, a refused prefix) leaves no empty
    // folder behind either; only one this run created, and only while it is empty.
    if (!checkpointed) await store.removeRootIfEmpty?.();
    if (typeof opts.to === 'string') store.close();
  }
}

/**
 * The node whose catalog gives the schema: the Citus coordinator (shell tables and the
 * distribution) or the postgres_fdw coordinator (logical tables, partition bounds), else the first node (a single server, a static topology's first node).
 */
function schemaNode(plan: ExportPlan): { name: string; endpoint: NonNullable<ExportPlan['coordinator']> } {
  if ((plan.topology === 'citus' || plan.topology === 'fdw') && plan.coordinator) return { name: COORDINATOR_NODE, endpoint: plan.coordinator };
  return plan.nodes[0] ?? { name: COORDINATOR_NODE, endpoint: plan.coordinator! };
}

/** The key source of an `encrypt` option (lib/crypto/keys.ts, loaded here on first use). */
async function encryptKeySource(o: EncryptOption, s3: ExportOptions['s3']): Promise<KeySource> {
  const { checkEncryptOption, openKeySource } = await import('../crypto/keys.js');
  return openKeySource(checkEncryptOption(o), s3);
}

/** Throw ERR_ABORTED (or the reason itself when it is a SegferryError) if the signal is aborted; as runPool does. */
function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof SegferryError ? signal.reason : new AbortedError();
}

/** Whether exporters run in worker threads (see ExportOptions.threads; `auto`: {@link autoThreads}). */
function useThreads(threads: ExportOptions['threads'], atOnce: number, plan: ExportPlan, encrypted: boolean): boolean {
  if (atOnce === 0) return false;
  if (threads === true || threads === false) return threads;
  const compressed = plan.compression !== undefined || plan.arrowCompression !== undefined;
  const localServers = plan.nodes.every((n) => onThisHost(n.endpoint));
  return autoThreads({ format: plan.format.kind, compressed, encrypted, exportersAtOnce: atOnce, cores: cores(), localServers });
}

/** Emits `table-done` once every unit of a table in this run has finished. */
class TableProgress {
  readonly #left = new Map<string, Set<string>>();
  readonly #results: readonly UnitResult[];
  readonly #emit: ReturnType<typeof makeEmitter>;

  constructor(todo: readonly ExportUnit[], results: readonly UnitResult[], emit: ReturnType<typeof makeEmitter>) {
    for (const u of todo) {
      const k = displayName(u.table.table);
      this.#left.set(k, (this.#left.get(k) ?? new Set()).add(u.id));
    }
    this.#results = results;
    this.#emit = emit;
  }

  /** Units finished (by one pool item). */
  unitsDone(mine: readonly UnitResult[]): void {
    for (const r of mine) {
      const name = displayName(r.unit.table.table);
      const left = this.#left.get(name);
      if (!left || !left.delete(r.unit.id) || left.size > 0) continue;
      const all = this.#results.filter((x) => x.unit.table === r.unit.table);
      this.#emit({
        type: 'table-done',
        table: name,
        rows: all.reduce((a, x) => a + x.rows, 0),
        bytes: all.reduce((a, x) => a + x.bytes, 0),
        objects: all.reduce((a, x) => a + x.objects.length, 0),
      });
    }
  }
}

/**
 * A pool item: a node's queue run in one session, or (`shared`) a session reading the node's
 * shared snapshot: one stream of a pair, taking the pair's ranges from `queue`, or one unit.
 */
interface WorkItem extends NodeWork {
  shared: boolean;
}

/**
 * The pool's items: a node none of whose units is a range gives one item, its queue, run in
 * one session as before; a node with range units gives, per (table, node) pair read in
 * streams, one item per stream (`sessions`, at most its units), all taking the pair's ranges
 * from one shared queue, and one item per other unit, all reading one snapshot. Nodes take
 * turns, so that every node gets going before any gets a second stream.
 */
export function workItems(plan: Pick<ExportPlan, 'nodes'>, units: readonly ExportUnit[]): WorkItem[] {
  const lists: WorkItem[][] = [];
  for (const w of nodeQueues(plan, units)) {
    if (w.units.length === 0) continue;
    if (!w.units.some((u) => u.stream)) {
      lists.push([{ ...w, shared: false }]);
      continue;
    }
    const list: WorkItem[] = [];
    const queued = new Set<string>();
    for (const u of w.units) {
      if (!u.stream) list.push({ node: w.node, units: [u], shared: true });
      if (!u.stream || queued.has(u.group)) continue;
      queued.add(u.group);
      const pair = w.units.filter((x) => x.group === u.group);
      const queue = new UnitQueue(pair);
      const streams = Math.max(1, Math.min(u.sessions ?? pair.length, pair.length));
      for (let i = 0; i < streams; i++) list.push({ node: w.node, units: pair, queue, shared: true });
    }
    lists.push(list);
  }
  const out: WorkItem[] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

/** A run's streams started ahead of their pool items: their nodes' snapshot sessions and first sessions. */
interface StreamStart {
  snapshots: SnapshotSessions;
  opened: OpenedSessions;
}

/**
 * The snapshot sessions of the nodes whose pool items read in streams, and for the streams the
 * pool starts first (the first `concurrency` of `items`, in the pool's order) their node's snapshot export and their own
 * session's connect, started at once: the connects overlap the snapshot's export instead of
 * following it (bench/streams-timeline.ts). Later streams connect when they start.
 * `kept`: planning sessions by node, which export their node's snapshot instead of a new
 * session (taken out of the map; the caller closes what is left). `guessed`: sessions opened
 * while planning ran, adopted by the node of the first items whose endpoint they reach, for its
 * first streams or its one exporter (else closed with the rest by closeAll).
 */
function startStreams(plan: ExportPlan, items: readonly WorkItem[], concurrency: number, kept?: Map<string, Promise<pg.Client>>, guessed?: GuessedSessions): StreamStart {
  const snapshots = new SnapshotSessions(plan.nodes, countBy(items.filter((w) => w.shared), (w) => w.node.name));
  const opened = new OpenedSessions();
  const first = items.slice(0, concurrency);
  const adopter = guessed ? first.find((w) => sameEndpoint(w.node.endpoint, guessed.endpoint)) : undefined;
  if (guessed) opened.adopt(adopter?.node ?? { name: '', endpoint: guessed.endpoint }, guessed.sessions);
  const wanted = countBy(first.filter((w) => w.shared), (w) => w.node.name);
  for (const [name, k] of wanted) {
    const node = first.find((w) => w.node.name === name)!.node;
    const session = kept?.get(name);
    kept?.delete(name);
    if (!(session && snapshots.adopt(name, session))) {
      if (session) kept?.set(name, session); // not adopted: the caller closes it
      snapshots.start(name);
    }
    opened.open(node, Math.max(0, k - opened.idle(name)));
  }
  return { snapshots, opened };
}

/** Sessions opened to the source while planning runs (see {@link guessSessions}). */
interface GuessedSessions {
  endpoint: NodeEndpoint;
  sessions: Promise<pg.Client>[];
}

/**
 * Exporter sessions opened on a guess while planning runs (issue 17): for a source planned as a
 * single server (`topology` auto or postgres), its data is read from the server planning asks, so
 * the first exporter sessions (`streams` when a number, at most 4; else 1) connect alongside the
 * planning session instead of after the plan. A plan that reads elsewhere (a Citus or
 * postgres_fdw coordinator's nodes) closes them unused; one that failed to connect is replaced by
 * a new connect when taken. Undefined with a static topology, `threads: true` or a source that
 * does not parse (planning reports that).
 */
function guessSessions(opts: ExportOptions): GuessedSessions | undefined {
  if (opts.source === undefined || opts.threads === true) return undefined;
  if (!(opts.topology === undefined || opts.topology === 'auto' || opts.topology === 'postgres')) return undefined;
  let endpoint: NodeEndpoint;
  try {
    endpoint = parseConnection(opts.source);
  } catch {
    return undefined;
  }
  const n = typeof opts.streams === 'number' && Number.isInteger(opts.streams) ? Math.max(1, Math.min(opts.streams, opts.concurrency ?? 4, 4)) : 1;
  const sessions = Array.from({ length: n }, () => {
    const p = connect(endpoint, { node: COORDINATOR_NODE, applicationName: 'segferry export' });
    p.catch(() => {});
    return p;
  });
  return { endpoint, sessions };
}

/** Close guessed sessions no exporter took. */
async function closeGuessed(g: GuessedSessions): Promise<void> {
  await closeAllQuietly(g.sessions);
}

/** The nodes whose snapshot sessions {@link startStreams} starts: those of the first `concurrency` items read in streams. */
function snapshotNodes(items: readonly WorkItem[], concurrency: number): PlanNode[] {
  const out = new Map<string, PlanNode>();
  for (const w of items.slice(0, concurrency)) if (w.shared) out.set(w.node.name, w.node);
  return [...out.values()];
}

/** Whether two unit lists are the same units in the same order. */
function sameUnits(a: readonly ExportUnit[], b: readonly ExportUnit[]): boolean {
  return a.length === b.length && a.every((u, i) => u.id === b[i]!.id);
}

function countBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
}

/** One shared segment counter per (table, node) read in streams, seeded with the numbers its kept units stored. */
function segmentCounters(units: readonly ExportUnit[], kept: readonly UnitResult[]): Map<string, SegmentNumbers> {
  const m = new Map<string, SegmentNumbers>();
  for (const u of units) {
    if (!u.stream || m.has(u.group)) continue;
    m.set(u.group, new SegmentNumbers(kept.filter((r) => r.unit.group === u.group).flatMap((r) => r.objects.map((o) => o.segment))));
  }
  return m;
}

/** Groups read in streams whose stored segment numbers are not 0..n-1. */
function gappedGroups(results: readonly UnitResult[]): Set<string> {
  const by = new Map<string, number[]>();
  for (const r of results) if (r.unit.stream) by.set(r.unit.group, [...(by.get(r.unit.group) ?? []), ...r.objects.map((o) => o.segment)]);
  return new Set([...by].filter(([, ns]) => hasGap(ns)).map(([g]) => g));
}

/** Every unit of the given groups, from the results (all of a group's units are done). */
function planUnitsOf(results: readonly UnitResult[], groups: ReadonlySet<string>): ExportUnit[] {
  return results.filter((r) => groups.has(r.unit.group)).map((r) => r.unit).sort((a, b) => (a.stream?.index ?? 0) - (b.stream?.index ?? 0));
}

/** A node's figures so far and its pool items not finished yet. */
interface NodeProgress {
  summary: NodeSummary;
  itemsLeft: number;
}

/** Add a finished pool item's figures to its node's. */
function addSummary(s: NodeProgress, mine: readonly UnitResult[], elapsedMs: number): NodeProgress {
  s.itemsLeft--;
  s.summary.bytes += mine.reduce((a, r) => a + r.bytes, 0);
  s.summary.rows += mine.reduce((a, r) => a + r.rows, 0);
  s.summary.objects += mine.reduce((a, r) => a + r.objects.length, 0);
  s.summary.elapsedMs = Math.max(s.summary.elapsedMs, elapsedMs);
  return s;
}
