/**
 * `copyTables`: cluster to cluster, streaming. Each unit (a table on one source node) runs
 * `COPY (SELECT …) TO STDOUT` on its source node and writes the rows, as they arrive, into
 * `COPY … FROM STDIN` on each of its destination nodes, in one destination transaction per
 * unit that also records the unit in the import ledger (`segferry.loads`). Nothing touches
 * disk or storage.
 */
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { AbortedError, InternalError, InvalidOptionError, RowCountMismatchError, SegferryError, VerifyMismatchError, fromDatabaseError } from '../errors.js';
import { makeEmitter, type EventListener } from '../events.js';
import { selectSQL } from '../export/formats.js';
import type { ExportUnit } from '../export/units.js';
import { addRowHashSums, RowHasher, ROW_HASH_ALGORITHM } from '../format/row-hash.js';
import { columnListSQL, copyOptionsSQL } from '../format/options.js';
import { ensureLedger, LEDGER_TABLE } from '../import/ledger.js';
import { copyInSQL } from '../import/load.js';
import type { ImportTablePlan, ImportTarget } from '../import/route.js';
import type { RowChecksum } from '../manifest/types.js';
import { BinaryTuples, COPY_BINARY_HEADER, COPY_BINARY_TRAILER } from '../pg/copy-binary.js';
import { copyOut, type CopyOutStream } from '../pg/copy-out.js';
import { quoteIdent, quoteQualified } from '../pg/sql.js';
import { COORDINATOR_NODE, type PlanNode } from '../topology/types.js';
import { Sessions } from '../import/sessions.js';
import { runPool, throwIfAborted } from '../util/pool.js';
import type { ExportResult } from '../export/export.js';
import { verifyImport } from '../import/verify.js';
import { runVia, type ViaOptions } from './via.js';
import { copyExportUnits } from './shards.js';
import { forgetTables, isShardToShard, markTruncating, truncateOnNode } from '../import/truncate.js';
import { checkEncryptOption, openKeySource, type EncryptOption } from '../crypto/keys.js';
import { planCopy, type CopyPlan, type CopyPlanOptions, type CopyUnitPlan } from './plan.js';

export type { CopyFormatKind, CopyPlan, CopyPlanOptions, CopyUnitPlan } from './plan.js';
export { planCopy } from './plan.js';

/** Options of {@link copyTables}. */
export interface CopyOptions extends CopyPlanOptions {
  /** Use this plan instead of planning again (e.g. after printing it). */
  plan?: CopyPlan;
  /**
   * Compare each table's row count and `copy-rowhash64` checksum: the source side is hashed
   * from the bytes as they pass (no second scan), the destination side by a scan of the
   * destination rows in the same format (default false). A mismatch is reported in
   * `verify`, not thrown.
   */
  verify?: boolean;
  /**
   * With `via`: client-side encryption of the staged objects (docs/encryption.md; default
   * none), `{ keyFile: PATH }` or `{ kms: KEY-ID }` as `exportTables` takes it. The key source
   * is opened once: the export wraps a fresh data key with it, the loaders unwrap that key
   * and decrypt each object as it streams. A resumed copy needs the same key.
   */
  encrypt?: EncryptOption;
  /** Cancel: COPYs stop, open destination transactions roll back; committed units stay. */
  signal?: AbortSignal;
  /** Events (operation `copy`; `segment` and `progress` carry `phase`). */
  onEvent?: EventListener;
}

/** One table's verify figures. */
export interface CopyVerifyTable {
  table: string;
  ok: boolean;
  source: RowChecksum;
  destination: RowChecksum;
}

/** What {@link copyTables} returns. */
export interface CopyResult {
  copyId: string;
  plan: CopyPlan;
  /** Unit loads (unit × target node) done in this run, and skipped because an earlier run committed them. */
  loaded: number;
  skipped: number;
  rows: number;
  bytes: number;
  elapsedMs: number;
  tables: { table: string; route: 'coordinator' | 'direct'; rows: number; loaded: number; skipped: number; created: string[]; truncated: boolean }[];
  nodes: { node: string; objects: number; rows: number; bytes: number; elapsedMs: number }[];
  notes: string[];
  verify?: { ok: boolean; tables: CopyVerifyTable[] };
}

/** The COPY FROM of one target in the copy's format. */
function copyFromSQL(target: ImportTarget, plan: CopyPlan): string {
  if (plan.format === 'binary') return `COPY ${quoteQualified(target.relation)} (${columnListSQL(target.columns)}) FROM STDIN (FORMAT binary)`;
  return copyInSQL(target, plan.source.format);
}

/** The COPY TO of one read in the copy's format. */
function copyToSQL(read: ExportUnit['reads'][number], unit: ExportUnit, plan: CopyPlan): string {
  const sel = selectSQL(read, unit.table, plan.source.filter);
  return `COPY (${sel}) TO STDOUT (${plan.format === 'binary' ? 'FORMAT binary' : copyOptionsSQL(plan.source.format)})`;
}

/** Write to a stream, waiting for 'drain' when it is full: backpressure from the destination socket. */
async function writeTo(w: Writable, buf: Buffer, failed: () => unknown): Promise<void> {
  const err = failed();
  if (err !== undefined) throw err;
  if (w.destroyed) throw new InternalError('the destination COPY stream is gone');
  if (w.write(buf)) return;
  // Resolve on drain; a stream that fails or closes instead must not leave us waiting.
  await new Promise<void>((resolve, reject) => {
    const done = (e?: unknown) => {
      w.off('drain', onDrain);
      w.off('error', onError);
      w.off('close', onClose);
      if (e === undefined) resolve(); else reject(e);
    };
    const onDrain = () => done();
    const onError = (e: unknown) => done(failed() ?? e);
    const onClose = () => done(failed() ?? new InternalError('the destination COPY stream closed'));
    w.on('drain', onDrain);
    w.on('error', onError);
    w.on('close', onClose);
  });
}

/** Await every promise (so nothing is left running), then throw the first failure, if any. */
async function allOrFirstError(ps: Promise<unknown>[]): Promise<void> {
  const r = await Promise.allSettled(ps);
  const bad = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (bad) throw bad.reason;
}

function createTableSQL(tp: ImportTablePlan): string {
  const cols = tp.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}`);
  return `CREATE TABLE IF NOT EXISTS ${quoteQualified(tp.destination)} (${cols.join(', ')})`;
}

/**
 * Copy tables from one cluster to another: plan (unless `plan` is given), create and truncate
 * as asked, then run every unit not yet committed, up to `concurrency` at once. A unit commits
 * on each destination node together with its ledger row (import id = the copy id, key = the
 * unit id), so a rerun after a failure skips finished units and redoes the others from the
 * start: every row arrives exactly once.
 *
 * Memory: per running unit the COPY reader's blocks (≈ 3.75 MiB, lib/pg/copy-out.ts) plus
 * one 1 MiB block queued on each destination stream; nothing is staged.
 */
export async function copyTables(opts: CopyOptions): Promise<CopyResult> {
  const t0 = Date.now();
  const emit = makeEmitter('copy', opts.onEvent);
  throwIfAborted(opts.signal);
  if (opts.encrypt !== undefined && opts.via === undefined) throw new InvalidOptionError('encrypt applies to a copy through storage (via) only: a direct copy stores nothing');
  // A missing or malformed key file fails before any database work.
  const keys = opts.encrypt !== undefined ? await openKeySource(checkEncryptOption(opts.encrypt), opts.s3) : undefined;
  const plan = opts.plan ?? (await planCopy(opts));
  const srcNodes = new Map(plan.source.nodes.map((n) => [n.name, n]));
  const dstNodes = new Map(plan.destination.nodes.map((n) => [n.name, n]));
  if (plan.destination.coordinator) dstNodes.set(COORDINATOR_NODE, plan.destination.coordinator);
  const settings = plan.source.sessionSettings;
  const src = new Sessions(srcNodes, settings, 'segferry copy');
  const dst = new Sessions(dstNodes, settings, 'segferry copy');
  const notes = [...plan.notes];
  try {
    const tableRes = new Map(plan.tables.map((t) => [t.table, { table: t.table, route: t.route, rows: 0, loaded: 0, skipped: 0, created: [] as string[], truncated: false }]));
    const exportUnits = copyExportUnits(plan.source);
    const todo: CopyUnitPlan[] = [];
    let skipped = 0;
    let loaded = 0;
    const nodeStats = new Map<string, { node: string; objects: number; rows: number; bytes: number; elapsedMs: number; started: number }>();
    const stat = (n: string) => {
      let x = nodeStats.get(n);
      if (!x) nodeStats.set(n, x = { node: n, objects: 0, rows: 0, bytes: 0, elapsedMs: 0, started: Date.now() });
      return x;
    };
    /** One object or unit committed on `node`: the node's and the table's counts, then its events. */
    const committed = (node: string, table: string, key: string, segment: number, out: { rows: number; bytes: number }) => {
      const x = stat(node);
      x.objects++;
      x.rows += out.rows;
      x.bytes += out.bytes;
      x.elapsedMs = Date.now() - x.started;
      tableRes.get(table)!.loaded++;
      loaded++;
      emit({ type: 'segment', phase: 'import', node, table, key, segment, bytes: out.bytes, rows: out.rows });
      emit({ type: 'progress', phase: 'import', node, table, segment, bytes: x.bytes, rows: x.rows });
    };
    // Interleave source nodes so that concurrent units spread over the source cluster.
    const bySrc = new Map<string, CopyUnitPlan[]>();
    for (const u of plan.units) {
      if (u.loaded.length === u.targets.length) {
        skipped += u.targets.length;
        tableRes.get(u.table)!.skipped += u.targets.length;
        continue;
      }
      bySrc.set(u.sourceNode, [...(bySrc.get(u.sourceNode) ?? []), u]);
    }
    const queues = [...bySrc.values()];
    for (let i = 0; queues.some((q) => i < q.length); i++) for (const q of queues) if (i < q.length) todo.push(q[i]!);

    // Prepare every destination node: ledger, tables, truncation. Nodes are independent, so they
    // are prepared side by side (on Citus the coordinator first: its DDL reaches the workers).
    const targetNodes = new Set(plan.tables.flatMap((t) => t.targets.map((x) => x.node)));
    const citus = plan.destination.topology === 'citus';
    const prepare = async (node: string) => {
      throwIfAborted(opts.signal);
      const needsLedger = targetNodes.has(node) || (citus && node === COORDINATOR_NODE && targetNodes.size > 0);
      const creates = plan.tables.filter((t) => t.create.includes(node));
      const truncs = plan.truncate ? plan.tables.filter((t) => t.truncate.includes(node)) : [];
      if (!needsLedger && creates.length === 0 && truncs.length === 0) return;
      await dst.withSession(node, 'prepare', async (c) => {
        if (needsLedger) await ensureLedger(c);
        for (const t of creates) {
          if (t.destination.schema !== 'public') await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.destination.schema)}`);
          await c.query(createTableSQL(t));
          tableRes.get(t.table)!.created.push(node);
        }
        for (const t of truncs) {
          // This node's relations (shard to shard: its shard tables) with its ledger rows.
          await truncateOnNode(c, t, node);
          tableRes.get(t.table)!.truncated = true;
        }
      });
    };
    // Nodes holding an earlier run's ledger rows through another route: forgotten and marked
    // before any table is emptied, the marks removed once all are (lib/import/truncate.ts).
    const forget = (node: string, step: (c: pg.Client) => Promise<void>) => dst.withSession(node, 'prepare', step);
    if (plan.truncate) await allOrFirstError((plan.forget ?? []).map((n) => forget(n, (c) => markTruncating(c, plan.copyId, plan.tables))));
    const first = citus && dstNodes.has(COORDINATOR_NODE) ? [COORDINATOR_NODE] : [];
    const rest = [...dstNodes.keys()].filter((n) => !first.includes(n)).sort();
    // Meanwhile open the sessions the first units take on their source nodes (connect + settings).
    const warm = [...new Set(todo.slice(0, plan.concurrency).map((u) => u.sourceNode))];
    await allOrFirstError([
      (async () => { for (const n of first) await prepare(n); await allOrFirstError(rest.map(prepare)); })(),
      ...warm.map(async (n) => { src.release(n, await src.acquire(n)); }),
    ]);
    if (plan.truncate) await allOrFirstError((plan.forget ?? []).map((n) => forget(n, (c) => forgetTables(c, plan.tables))));
    emit({ type: 'start', tables: plan.tables.map((t) => t.table), nodes: [...new Set(plan.units.flatMap((u) => [u.sourceNode, ...u.targets]))].sort(), objects: plan.units.length, estimatedBytes: plan.source.tables.reduce((a, t) => a + t.estimatedBytes, 0) });
    for (const u of plan.units) {
      if (u.loaded.length === u.targets.length) for (const n of u.targets) emit({ type: 'segment', phase: 'import', node: n, table: u.table, key: u.id, segment: 0, bytes: 0, rows: 0, skipped: true });
    }

    // Source checksums per table, from the streams; units committed earlier carry theirs in the ledger.
    const srcSums = new Map<string, RowChecksum>();
    const addSum = (table: string, c: RowChecksum) => {
      const a = srcSums.get(table);
      srcSums.set(table, a ? { rows: a.rows + c.rows, sum: addRowHashSums(a.sum, c.sum), algorithm: ROW_HASH_ALGORITHM } : c);
    };
    let rowsTotal = 0;
    let bytesTotal = 0;
    let lastTick = 0;
    const srcRead = new Map<string, { bytes: number; rows: number }>();
    let staged: ExportResult | undefined;
    if (plan.via !== undefined) {
      // Staged: the export's events pass through as phase "export", each load as phase "import".
      if (opts.via === undefined) throw new InvalidOptionError('this copy plan stages through storage: give the same via location again (the plan keeps no credentials)');
      const vo: ViaOptions = { via: opts.via, tables: opts.tables ?? [] };
      if (opts.s3 !== undefined) vo.s3 = opts.s3;
      if (opts.signal !== undefined) vo.signal = opts.signal;
      if (keys) vo.keys = keys;
      staged = await runVia(plan, vo, dst, {
        onExportEvent: (e) => {
          const { operation: _o, at: _a, ...rest } = e;
          emit({ ...rest, phase: 'export' } as Parameters<typeof emit>[0]);
          if (e.type === 'segment') {
            tableRes.get(e.table)!.rows += e.rows;
            rowsTotal += e.rows;
            bytesTotal += e.bytes;
          }
        },
        onLoaded: (j, out) => {
          if (!out.skipped) return committed(j.node, j.table, j.key, j.segment, out);
          tableRes.get(j.table)!.skipped++;
          skipped++;
          emit({ type: 'segment', phase: 'import', node: j.node, table: j.table, key: j.key, segment: j.segment, bytes: out.bytes, rows: out.rows, skipped: true });
          const x = stat(j.node);
          emit({ type: 'progress', phase: 'import', node: j.node, table: j.table, segment: j.segment, bytes: x.bytes, rows: x.rows });
        },
      });
      notes.push(`staged through ${staged.location}: a complete export (manifest ${staged.manifest.id}), importable with segferry import`);
    } else await runPool(todo, plan.concurrency, async (u, signal) => {
      const eu = exportUnits.get(u.id);
      if (!eu) throw new InternalError(`unit ${u.id} is not in the source plan`);
      const tp = plan.tables.find((t) => t.table === u.table)!;
      // Progress figures are per node, all units together (as an export's and an import's are).
      const read = srcRead.get(u.sourceNode) ?? { bytes: 0, rows: 0 };
      srcRead.set(u.sourceNode, read);
      const out = await copyUnit(u, eu, tp, plan, src, dst, signal, (bytes, rows) => {
        const now = Date.now();
        if (now - lastTick >= 500) {
          lastTick = now;
          emit({ type: 'progress', phase: 'export', node: u.sourceNode, table: u.table, segment: 0, bytes: read.bytes + bytes, rows: read.rows + rows });
        }
      });
      read.bytes += out.bytes;
      read.rows += out.rows;
      emit({ type: 'segment', phase: 'export', node: u.sourceNode, table: u.table, key: u.id, segment: 0, bytes: out.bytes, rows: out.rows });
      emit({ type: 'progress', phase: 'export', node: u.sourceNode, table: u.table, segment: 0, bytes: read.bytes, rows: read.rows });
      addSum(u.table, out.checksum);
      const r = tableRes.get(u.table)!;
      for (const n of out.committed) committed(n, u.table, u.id, 0, out);
      r.skipped += u.targets.length - out.committed.length;
      skipped += u.targets.length - out.committed.length;
      r.rows += out.rows;
      rowsTotal += out.rows;
      bytesTotal += out.bytes;
    }, opts.signal);

    const res: CopyResult = {
      copyId: plan.copyId,
      plan,
      loaded,
      skipped,
      rows: rowsTotal,
      bytes: bytesTotal,
      elapsedMs: 0,
      tables: [...tableRes.values()],
      nodes: [...nodeStats.values()].map(({ started: _s, ...n }) => n).sort((a, b) => (a.node < b.node ? -1 : 1)),
      notes,
    };
    for (const t of res.tables) emit({ type: 'table-done', table: t.table, rows: t.rows, bytes: 0, objects: t.loaded + t.skipped });
    if (opts.verify && staged) {
      res.verify = await verifyStaged(opts, plan);
    } else if (opts.verify) {
      // Units committed by an earlier run: their source checksums are in the ledger.
      for (const tp of plan.tables) {
        const done = plan.units.filter((u) => u.table === tp.table && u.loaded.length > 0);
        if (done.length === 0) continue;
        for (const c of await ledgerChecksums(dst, plan.copyId, done)) addSum(tp.table, c);
      }
      res.verify = await verifyCopy(plan, dst, srcSums, opts.signal);
    }
    res.elapsedMs = Date.now() - t0;
    emit({ type: 'done', tables: res.tables.length, objects: loaded, rows: rowsTotal, bytes: bytesTotal, elapsedMs: res.elapsedMs, skipped });
    return res;
  } catch (e) {
    throw e instanceof SegferryError ? e : fromDatabaseError(e, { action: 'copy' });
  } finally {
    await src.closeAll();
    await dst.closeAll();
  }
}

/** The ledger's record of a unit's source checksum (kept in the ledger's `sha256` column). */
const LEDGER_SUM_PREFIX = `${ROW_HASH_ALGORITHM}:`;

/** Source checksums of units an earlier run committed, read from the first target's ledger. */
async function ledgerChecksums(dst: Sessions, copyId: string, units: CopyUnitPlan[]): Promise<RowChecksum[]> {
  const out: RowChecksum[] = [];
  for (const u of units) {
    const n = u.loaded[0]!;
    out.push(await dst.withSession(n, `reading ${LEDGER_TABLE}`, async (c) => {
      const r = await c.query<{ s: string | null; rows: string | null }>(`SELECT sha256 AS s, rows::text AS rows FROM ${LEDGER_TABLE} WHERE import_id = $1 AND object_key = $2`, [copyId, u.id]);
      const s = r.rows[0]?.s ?? '';
      if (!s.startsWith(LEDGER_SUM_PREFIX)) throw new InternalError(`ledger row of ${u.id} on ${n} carries no checksum`);
      return { rows: Number(r.rows[0]!.rows), sum: s.slice(LEDGER_SUM_PREFIX.length), algorithm: ROW_HASH_ALGORITHM };
    }));
  }
  return out;
}

/**
 * One unit: claim it in the ledger of each target (targets whose ledger has it are left out),
 * stream the source COPY into every remaining target's COPY FROM, check the row counts, record
 * the rows and source checksum in the ledger rows and commit each target. On any failure
 * every open destination transaction is dropped (rolled back) and the error names the node.
 */
async function copyUnit(
  u: CopyUnitPlan, eu: ExportUnit, tp: ImportTablePlan, plan: CopyPlan, src: Sessions, dst: Sessions, signal: AbortSignal,
  onProgress: (bytes: number, rows: number) => void,
): Promise<{ rows: number; bytes: number; checksum: RowChecksum; committed: string[] }> {
  type Target = { node: string; client: pg.Client; stream?: ReturnType<typeof copyFrom>; err?: unknown };
  // Not Sessions.withSession: one source and several target sessions are open at once, each
  // given back as its own transaction ends, and a failure during an abort is the abort's error.
  const targets: Target[] = [];
  let source: pg.Client | undefined;
  let reader: CopyOutStream | undefined;
  const onAbort = () => { reader?.destroy(); for (const t of targets) t.stream?.destroy(); };
  signal.addEventListener('abort', onAbort, { once: true });
  const fail = (e: unknown, node: string, action: string) => {
    if (e instanceof SegferryError) return e;
    if (signal.aborted) return signal.reason instanceof SegferryError ? signal.reason : new AbortedError();
    return fromDatabaseError(e, { node, table: u.table, action });
  };
  // The source session and its snapshot are set up while the targets are claimed.
  const sourceReady = (async () => {
    const c = await src.acquire(u.sourceNode);
    source = c;
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY').catch((e) => { throw fail(e, u.sourceNode, 'begin'); });
    return c;
  })();
  sourceReady.catch(() => {});
  try {
    // Claims first: a concurrent run of the same copy waits here for the other's transaction.
    for (const n of u.targets) {
      if (u.loaded.includes(n)) continue;
      const client = await dst.acquire(n);
      const t: Target = { node: n, client };
      targets.push(t);
      try {
        await client.query('BEGIN');
        const r = await client.query(`INSERT INTO ${LEDGER_TABLE} (import_id, object_key, table_name) VALUES ($1, $2, $3) ON CONFLICT (import_id, object_key) DO NOTHING`, [plan.copyId, u.id, u.table]);
        if (r.rowCount !== 1) {
          await client.query('ROLLBACK');
          targets.pop();
          dst.release(n, client);
        }
      } catch (e) {
        throw fail(e, n, 'ledger claim');
      }
    }
    if (targets.length === 0) {
      const sc = await sourceReady;
      await sc.query('ROLLBACK').catch((e) => { throw fail(e, u.sourceNode, 'rollback'); });
      src.release(u.sourceNode, sc);
      source = undefined;
      return { rows: 0, bytes: 0, checksum: { rows: 0, sum: '0', algorithm: ROW_HASH_ALGORITHM }, committed: [] };
    }
    for (const t of targets) {
      const target = tp.targets.find((x) => x.node === t.node)!;
      // Shard to shard: the unit's destination shard table on that worker.
      const rel = tp.objects.find((o) => o.key === u.id)?.relation;
      const s = t.client.query(copyFrom(copyFromSQL(rel ? { ...target, relation: rel } : target, plan)));
      t.stream = s;
      s.on('error', (e) => { t.err ??= fail(e, t.node, 'COPY FROM'); });
    }
    const firstError = () => targets.find((t) => t.err !== undefined)?.err;
    const writeAll = async (buf: Buffer) => {
      // Every target gets the same block; the slowest sets the pace.
      await Promise.all(targets.map((t) => writeTo(t.stream!, buf, firstError)));
    };

    const sc = await sourceReady;
    const binary = plan.format === 'binary';
    const hasher = new RowHasher(binary);
    const tuples = binary ? new BinaryTuples() : undefined;
    if (binary) await writeAll(COPY_BINARY_HEADER);
    let rows = 0;
    let bytes = 0;
    for (const read of eu.reads) {
      throwIfAborted(signal);
      reader = copyOut(sc, copyToSQL(read, eu, plan));
      try {
        for await (const rc of reader as AsyncIterable<{ data: Buffer; rowEnds: Uint32Array }>) {
          hasher.update(rc);
          let buf = rc.data;
          if (tuples) {
            const r = tuples.range(rc.data, rc.rowEnds);
            buf = rc.data.subarray(r.start, r.end);
          }
          if (buf.length > 0) await writeAll(buf);
          bytes += buf.length;
          onProgress(bytes, hasher.rows);
        }
      } catch (e) {
        reader.destroy();
        const dstErr = firstError();
        if (dstErr !== undefined) throw dstErr;
        throw fail(e, u.sourceNode, 'COPY TO');
      }
      rows += reader.rowCount;
      reader = undefined;
    }
    await sc.query('COMMIT').catch((e) => { throw fail(e, u.sourceNode, 'commit'); });
    src.release(u.sourceNode, sc);
    source = undefined;
    if (binary) await writeAll(COPY_BINARY_TRAILER);
    const checksum = hasher.result();
    if (checksum.rows !== rows || tuples?.inCopy) {
      throw new RowCountMismatchError(`table ${u.table} on source node ${u.sourceNode}: COPY reported ${rows} rows, ${checksum.rows} were checksummed`, { node: u.sourceNode, table: u.table });
    }
    for (const t of targets) {
      t.stream!.end();
      try {
        // finished() also settles for a stream that failed before this point.
        await finished(t.stream!);
      } catch (e) {
        throw t.err ?? fail(e, t.node, 'COPY FROM');
      }
      if (t.err !== undefined) throw t.err;
      if (t.stream!.rowCount !== rows) {
        throw new RowCountMismatchError(`table ${u.table}: the source node ${u.sourceNode} sent ${rows} rows, destination node ${t.node} took ${t.stream!.rowCount}; nothing of this unit was committed there`, { node: t.node, table: u.table });
      }
    }
    const committed: string[] = [];
    for (const t of targets) {
      try {
        await t.client.query(`UPDATE ${LEDGER_TABLE} SET rows = $3, sha256 = $4 WHERE import_id = $1 AND object_key = $2`, [plan.copyId, u.id, rows, LEDGER_SUM_PREFIX + checksum.sum]);
        await t.client.query('COMMIT');
      } catch (e) {
        throw fail(e, t.node, 'commit');
      }
      committed.push(t.node);
      dst.release(t.node, t.client);
      t.stream = undefined;
    }
    targets.length = 0;
    return { rows, bytes, checksum, committed };
  } catch (e) {
    reader?.destroy();
    await sourceReady.catch(() => {});
    if (source) src.drop(source);
    // Dropping the session rolls back the unit's rows and its ledger row on that node.
    for (const t of targets) { t.stream?.destroy(); dst.drop(t.client); }
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Verify: per table, the source checksum (from the streams, and from the ledger for units of
 * earlier runs) against a scan of the destination rows in the copy's format, hashed the same
 * way. The destination relation must hold only what was copied (append onto existing rows
 * shows as a mismatch). Replicated tables on a static destination are checked on every node.
 */
async function verifyCopy(plan: CopyPlan, dst: Sessions, srcSums: Map<string, RowChecksum>, signal?: AbortSignal): Promise<{ ok: boolean; tables: CopyVerifyTable[] }> {
  const tables: CopyVerifyTable[] = [];
  for (const tp of plan.tables) {
    throwIfAborted(signal);
    const source = srcSums.get(tp.table) ?? { rows: 0, sum: '0', algorithm: ROW_HASH_ALGORITHM };
    const replicatedEverywhere = tp.route === 'direct' && tp.objects.every((o) => o.targets.length === tp.targets.length) && tp.targets.length > 1 && tp.objects.length > 0 && tp.distribution.kind === 'replicated';
    // Node-direct targets are whole node relations. Shard to shard: the workers also see the
    // distributed table (Citus metadata is synced), so one scan through the coordinator.
    const scans = tp.route === 'coordinator' ? [tp.targets[0]!]
      : isShardToShard(tp) ? [{ node: COORDINATOR_NODE, relation: tp.destination, columns: tp.targets[0]!.columns }]
      : tp.targets;
    let total: RowChecksum | undefined;
    let ok = true;
    for (const target of scans) {
      const h = await dst.withSession(target.node, 'verify scan', async (c) => {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const sql = `COPY (SELECT ${columnListSQL(target.columns)} FROM ${quoteQualified(target.relation)}) TO STDOUT (${plan.format === 'binary' ? 'FORMAT binary' : copyOptionsSQL(plan.source.format)})`;
        const hasher = new RowHasher(plan.format === 'binary');
        const s = copyOut(c, sql);
        for await (const rc of s) hasher.update(rc);
        await c.query('COMMIT');
        return hasher.result();
      }, { table: tp.table });
      if (replicatedEverywhere) {
        if (h.rows !== source.rows || h.sum !== source.sum) ok = false;
        total = h;
      } else {
        total = total ? { rows: total.rows + h.rows, sum: addRowHashSums(total.sum, h.sum), algorithm: ROW_HASH_ALGORITHM } : h;
      }
    }
    const destination = total ?? { rows: 0, sum: '0', algorithm: ROW_HASH_ALGORITHM };
    if (destination.rows !== source.rows || destination.sum !== source.sum) ok = false;
    tables.push({ table: tp.table, ok, source, destination });
  }
  return { ok: tables.every((t) => t.ok), tables };
}

/**
 * Verify a staged copy as an import of its prefix is verified: the destination against the
 * counts and `copy-rowhash64` checksums the staging export's manifest recorded.
 */
async function verifyStaged(opts: CopyOptions, plan: CopyPlan): Promise<{ ok: boolean; tables: CopyVerifyTable[] }> {
  const vo: Parameters<typeof verifyImport>[0] = { from: opts.via!, tables: plan.tables.map((t) => t.table) };
  if (opts.s3 !== undefined) vo.s3 = opts.s3;
  if (opts.target !== undefined) vo.target = opts.target;
  if (opts.targetTopology !== undefined) vo.topology = opts.targetTopology;
  if (opts.signal !== undefined) vo.signal = opts.signal;
  if (opts.encrypt !== undefined) vo.encrypt = opts.encrypt;
  const v = await verifyImport(vo);
  const tables = v.tables.map((t) => ({
    table: t.table,
    ok: t.match !== false,
    source: { rows: t.source?.rows ?? 0, sum: t.source?.sum ?? '', algorithm: ROW_HASH_ALGORITHM },
    destination: t.destination,
  } satisfies CopyVerifyTable));
  return { ok: v.ok, tables };
}

/** A verify result with a mismatch as an error (the CLI's exit code 3). */
export function copyVerifyError(v: NonNullable<CopyResult['verify']>): VerifyMismatchError | undefined {
  const bad = v.tables.filter((t) => !t.ok);
  if (bad.length === 0) return undefined;
  return new VerifyMismatchError(`copy verify: ${bad.map((t) => `${t.table} source ${t.source.rows} rows / ${t.source.sum}, destination ${t.destination.rows} rows / ${t.destination.sum}`).join('; ')}`);
}
