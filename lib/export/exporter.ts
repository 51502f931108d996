import type pg from 'pg';
import { InternalError, RowCountMismatchError, SegferryError, fromDatabaseError } from '../errors.js';
import type { makeEmitter } from '../events.js';
import { segmentKey } from '../manifest/keys.js';
import { pickDigest } from '../manifest/digest.js';
import type { ManifestObject, RowChecksum } from '../manifest/types.js';
import { applySettings, closeQuietly, connect, describeEndpoint, destroyClient, settingsSQL } from '../pg/conn.js';
import { COPY_CHUNK_BYTES, copyOut, copyOutAfter, type CopyOutOptions, type CopyOutStream } from '../pg/copy-out.js';
import { checkFilterText } from '../pg/filter.js';
import { displayName, quoteLiteral } from '../pg/sql.js';
import { checkSnapshotId } from '../pg/snapshot.js';
import type { ObjectCipher } from '../crypto/objects.js';
import type { SegmentWriter, SegmentWriterOptions, StoredSegment } from '../segment/types.js';
import type { ObjectStore } from '../store/types.js';
import { throwIfAborted } from '../util/pool.js';
import { SnapshotGoneError } from '../errors.js';
import { addRowHashSums, RowHasher, ROW_HASH_ALGORITHM } from '../format/row-hash.js';
import { exportFormat, type CopyStatement } from './formats.js';
import { planChecksum, planExtension, type ExportPlan } from './plan.js';
import type { ExportUnit, NodeWork, UnitResult } from './units.js';
import type { StreamScan } from '../topology/types.js';

// One data node's exporter, apart from the orchestration in export.ts so that it can run in
// this thread or in a worker thread.

/**
 * Order-independent row checksum query over the rows of a SELECT: the definition of manifests
 * whose checksums name no algorithm (written before `copy-rowhash64`); verify still uses it
 * for them.
 */
export function checksumSQL(selectSQL: string): string {
  // ROW(alias.*), not alias::text: a column with the alias's name would win over the row.
  return `SELECT count(*)::int8 AS rows,
                 COALESCE(sum(('x' || substr(md5(ROW(_segferry_row.*)::text), 1, 15))::bit(60)::int8::numeric), 0)::text AS sum
            FROM (${selectSQL}) _segferry_row`;
}

// Moved to formats.ts with the format table; re-exported for existing importers.
export { selectSQL } from './formats.js';

/** Add two checksums of the same algorithm (`copy-rowhash64` modulo 2^64, the md5 one exactly). */
export function addChecksums(a: RowChecksum, b: RowChecksum): RowChecksum {
  if (a.algorithm !== b.algorithm) throw new InternalError(`cannot add checksums of algorithms ${a.algorithm ?? 'md5'} and ${b.algorithm ?? 'md5'}`);
  if (a.algorithm === ROW_HASH_ALGORITHM) return { rows: a.rows + b.rows, sum: addRowHashSums(a.sum, b.sum), algorithm: a.algorithm };
  return { rows: a.rows + b.rows, sum: (BigInt(a.sum) + BigInt(b.sum)).toString() };
}

export type { NodeWork, UnitResult } from './units.js';

/**
 * Settings, transaction-local, under which an exporter's COPY of a unit reads its page range
 * (docs/streams.md). `seq-filter`: no TID range scan, so the range is a filter of a sequential
 * scan that reads through PostgreSQL's bulk-read ring; no Parallel Seq Scan (COPY (query) may be
 * planned parallel, and workers would scan the whole relation again); no synchronized scan
 * start, so a stream's rows come in page order, as from a TID range scan (the same objects for
 * the same ranges). `tid-range`: the session's own values back (`TO DEFAULT`).
 */
export function scanSettingsSQL(scan: StreamScan): string {
  const names = ['enable_tidscan', 'max_parallel_workers_per_gather', 'synchronize_seqscans'];
  const seq = ['off', '0', 'off'];
  return names.map((n, i) => `SET LOCAL ${n} ${scan === 'seq-filter' ? `= ${seq[i]}` : 'TO DEFAULT'}`).join('; ');
}

/** How a unit wants its COPY run: a page range by its scan; undefined for whole relations (either does). */
function scanOf(u: ExportUnit): StreamScan | undefined {
  if (!u.reads.some((r) => r.pages)) return undefined;
  return u.scan === 'seq-filter' ? 'seq-filter' : 'tid-range';
}

/** How {@link exportNode} gets and gives back its session (default: it connects, and closes before returning). */
export interface ExporterSession {
  /**
   * A session to the node opened ahead (lib/export/snapshots.ts `OpenedSessions`), so that its
   * connect ran while the node's snapshot was exported; its connect error is this exporter's.
   */
  opened?: Promise<pg.Client>;
  /**
   * Takes the close of the session once its transaction has ended, instead of awaiting it here:
   * the server's backend exit is then off the path to the manifest (the caller awaits it later).
   */
  closing?: (done: Promise<void>) => void;
}

/**
 * One data node's exporter: one session in a REPEATABLE READ READ ONLY transaction runs the
 * node's queue of units one after another (or, for a stream, the units it takes from its pair's
 * shared queue, `w.queue`), each reading its relations with COPY into the
 * format's segment writer. Checksums are computed here, from the rows' bytes as COPY sends
 * them (lib/format/row-hash.ts): no second scan on the server. On abort the COPY is destroyed
 * and the open upload is cancelled (the store write gets the signal) and aborted.
 * `cipher` (default: none) stores every object encrypted (lib/crypto/objects.ts). `session`:
 * see {@link ExporterSession}.
 */
export async function exportNode(
  w: NodeWork,
  plan: ExportPlan,
  store: ObjectStore,
  signal: AbortSignal,
  emit: ReturnType<typeof makeEmitter>,
  onUnitDone: (r: UnitResult) => Promise<void>,
  numbering?: (u: ExportUnit) => ((local: number) => number) | undefined,
  cipher?: ObjectCipher,
  session?: ExporterSession,
): Promise<UnitResult[]> {
  const node = w.node.name;
  const endpoint = describeEndpoint(w.node.endpoint);
  let current = '';
  const fail = (e: unknown, action: string) => {
    if (signal.aborted && !(e instanceof SegferryError)) {
      const r = signal.reason;
      return r instanceof SegferryError ? r : fromDatabaseError(e, { node, table: current, endpoint, action });
    }
    return fromDatabaseError(e, { node, ...(current ? { table: current } : {}), endpoint, action });
  };
  let client: pg.Client | undefined;
  let writer: SegmentWriter | undefined;
  // Objects stored for the unit under way: a unit is all or nothing, so they go if it fails.
  let unfinished: ManifestObject[] = [];
  let activeCopy: CopyOutStream | undefined;
  // A stream's next range, taken while the current one reads, its COPY sent behind the current one.
  let ahead: { unit: ExportUnit; copy?: CopyStatement; stream?: CopyOutStream } | undefined;
  // A stream's ranges whose last object is being finished and recorded while the next one reads.
  const finishing: Promise<void>[] = [];
  const onAbort = () => {
    activeCopy?.destroy();
    ahead?.stream?.destroy();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    // A stream started after its pair's other streams took every range: nothing to read, no session.
    if (w.queue && w.queue.left === 0 && !session?.opened) return [];
    if (plan.filter !== null) checkFilterText(plan.filter); // before any COPY, also for Arrow's SELECT
    const format = await exportFormat(plan.format.kind, plan);
    // The encrypting writer loads with a cipher only (start-up of unencrypted exports, issue 17).
    const Encrypted = cipher ? (await import('../crypto/objects.js')).EncryptedSegmentWriter : undefined;
    const opened = session?.opened;
    if (opened) session.opened = undefined; // taken: closed below on every path
    client = await (opened ?? connect(w.node.endpoint, { node, applicationName: 'segferry export' })).catch((e) => { throw fail(e, 'connect'); });
    throwIfAborted(signal);
    // One snapshot for the rows: the DDL's (a single server, lib/ddl/capture.ts: rows and schema
    // agree) or, for streams, the one their node's snapshot session exported. It must come
    // before any query of the transaction; SET TRANSACTION SNAPSHOT takes no parameters, so
    // the id's shape is checked.
    // A plan run in parts may carry one held snapshot per node (lib/export/hold.ts).
    const held = plan.snapshots?.[node];
    const snapshot = plan.snapshot ?? held ?? w.snapshot;
    // BEGIN, the snapshot and the session settings in one query string: one round trip (the
    // simple protocol runs them in order and stops at the first error).
    const settings = settingsSQL(plan.sessionSettings);
    // The session's scan settings (scanSettingsSQL), 'tid-range' being the server's own. When its
    // first unit reads a range as a filtered sequential scan (every unit of a pair's queue does
    // alike), they go into the start query: no round trip of their own.
    const first = w.units[0] && scanOf(w.units[0]) === 'seq-filter' ? 'seq-filter' : undefined;
    let scanMode: StreamScan = first ?? 'tid-range';
    const start = ['BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', ...(snapshot !== undefined ? [`SET TRANSACTION SNAPSHOT ${quoteLiteral(checkSnapshotId(snapshot))}`] : []), ...(settings ? [settings] : []), ...(first ? [scanSettingsSQL(first)] : [])];
    await client.query(start.join('; ')).catch((e) => {
      // 22023 invalid_parameter_value: "invalid snapshot identifier: <id>", its exporting
      // transaction has ended (a setting's invalid value has that code too, without the id).
      const err = e as { code?: string; message?: string };
      if (held !== undefined && snapshot === held && err.code === '22023' && String(err.message).includes(held)) {
        throw new SnapshotGoneError(`node ${node}: the snapshot the plan carries (${held}) is gone: the session of segferry plan --hold-snapshots that held it has ended`, {
          node, sqlState: '22023', cause: e, hint: 'make a new plan (segferry plan ... --out FILE --hold-snapshots), keep it running, and run every part of it',
        });
      }
      throw fail(e, snapshot !== undefined ? 'set snapshot' : 'begin');
    });
    if (!settings) await applySettings(client, plan.sessionSettings).catch((e) => { throw fail(e, 'set session'); });
    // A read's COPY statement (Arrow and Parquet first query the read's column types).
    const conn = client; // narrowed: the closure below sees it as set
    const copyOf = (read: ExportUnit['reads'][number], table: ExportUnit['table']) =>
      format.copy(conn, read, table, plan).catch((e) => { throw fail(e, 'describe columns'); });

    const ext = planExtension(plan);
    const results: UnitResult[] = [];
    let nodeBytes = 0;
    let nodeRows = 0;
    let lastTick = 0;
    // The session's COPYs run one after another: each starts in the blocks the previous one left
    // (a stream's ranges: no fresh 1.25 MiB blocks per range for the GC, bench/range-cost.ts).
    const blocks: Buffer[] = [];
    // A pair's streams take its ranges from one queue (w.queue); else this session's own list.
    const own = w.units[Symbol.iterator]();
    const take = w.queue ? () => w.queue!.take() : () => own.next().value as ExportUnit | undefined;
    for (let unit = take(); unit !== undefined; unit = ahead?.unit ?? take()) {
      const t = unit.table;
      // A stream's figures are its range's own (the CLI adds up a node's ranges); else the session's so far.
      const [baseBytes, baseRows] = unit.stream ? [0, 0] : [nodeBytes, nodeRows];
      current = displayName(t.table);
      const objects: ManifestObject[] = [];
      unfinished = objects;
      // Streams of one (table, node) share one counter (lib/export/numbering.ts); else 0, 1, 2…
      const num = numbering?.(unit) ?? ((n: number) => n);
      const onStored = (s: StoredSegment) => {
        const o: ManifestObject = { key: s.key, table: current, node, segment: num(s.segment), bytes: s.bytes, rows: s.rows, ...pickDigest(s) };
        if (s.sources) o.shards = s.sources;
        if (s.compression) o.compression = s.compression;
        objects.push(o);
        emit({ type: 'segment', node, table: current, key: s.key, segment: o.segment, bytes: s.bytes, rows: s.rows, unit: unit.id, ...pickDigest(s) });
      };
      const wo: SegmentWriterOptions = { store, keyOf: (n) => segmentKey(t.objectName, node, num(n), ext), cap: plan.segmentSize, table: current, node, onStored, signal, checksum: planChecksum(plan) };
      // Encryption is the last step before the store: the format's writer never sees it.
      const plain = Encrypted && cipher ? undefined : format.writer(wo, t, plan);
      const sw = plain ?? new Encrypted!((o) => format.writer(o, t, plan), wo, cipher!);
      writer = sw;
      const reuse = plain?.releasesChunks === true;
      const hasher = plan.checksums ? new RowHasher(format.binary) : undefined;
      let copyRows = 0;
      // This range's COPY, when it was sent behind the previous range's.
      const queued = ahead?.unit === unit ? ahead : undefined;
      ahead = undefined;
      // A unit read the other way than the session's last: switch (transaction-local) before its COPY.
      const want = scanOf(unit);
      if (want !== undefined && want !== scanMode && !queued?.stream) {
        await client.query(scanSettingsSQL(want)).catch((e) => { throw fail(e, 'set scan'); });
        scanMode = want;
      }
      for (const r of unit.reads) {
        throwIfAborted(signal);
        const copy = queued?.copy ?? (await copyOf(r, t));
        // Citus: the shard id is the rows' source, so an object never mixes shards and an
        // importer can load it into one shard.
        await sw.begin({ ...(copy.columns ? { columns: copy.columns } : {}), ...(r.shardId !== undefined ? { source: r.shardId } : {}) });
        // A writer that keeps chunks (the columnar ones, until their batch is taken) hands them
        // back in bursts: the stream keeps that many for reuse instead of a fresh block per MiB
        // (each a cause of full GCs). A chunk handed back between reads is left to the GC. The
        // stream that gets it is whichever COPY is active then, possibly a later read's than the
        // one that filled it (a batch keeps rows of several reads): right, because every COPY
        // stream's blocks have one size (COPY_CHUNK_BYTES plus the read room; release() keeps
        // no other), so a block of one stream serves any other alike.
        const keptBytes = reuse || !plain ? undefined : plain.deferRelease?.((rc) => activeCopy?.release(rc));
        const copyOpts: CopyOutOptions = { blocks, ...(keptBytes === undefined ? {} : { freeBlocks: Math.ceil(keptBytes / COPY_CHUNK_BYTES) + 2 }) };
        const stream = queued?.stream ?? copyOut(client, copy.sql, copyOpts);
        activeCopy = stream;
        // A stream takes its next range now and sends its COPY behind this one: the server
        // starts it as soon as this one ends, instead of idling while the client drains this
        // range and asks (20–40 ms a range, bench/streams-timeline.ts). Its own unit, objects
        // and checkpoint entry as before; it counts as done only once its objects are recorded.
        // Not for the pair's last ranges (no more left than sessions): a range taken early is
        // one another session, free sooner, cannot take, and the streams would end up to a
        // range apart (110 against 18 ms, same bench).
        if (unit.stream && w.queue && w.queue.left > (unit.sessions ?? 1) && unit.reads.length === 1 && !format.asks) {
          const nu = w.queue.take();
          // Sent behind this COPY only when it reads the same way (a pair's ranges all do).
          const nuScan = nu && scanOf(nu);
          if (nu !== undefined && nu.reads.length === 1 && (nuScan === undefined || nuScan === scanMode)) {
            const c = await copyOf(nu.reads[0]!, nu.table);
            ahead = { unit: nu, copy: c, stream: copyOutAfter(stream, client, c.sql, copyOpts) };
          } else if (nu !== undefined) {
            ahead = { unit: nu };
          }
        }
        try {
          for await (const rc of stream) {
            hasher?.update(rc);
            await sw.write(rc);
            // Nothing refers to the chunk now: its block is reused (no full GC per ≈ 18 MB).
            if (reuse) stream.release(rc);
            const now = Date.now();
            if (now - lastTick >= 500) {
              lastTick = now;
              emit({ type: 'progress', node, table: current, segment: sw.segment, bytes: baseBytes + sw.totalBytes, rows: baseRows + sw.totalRows, ...(unit.stream ? { unit: unit.id } : {}) });
            }
          }
        } catch (e) {
          stream.destroy();
          throw e instanceof SegferryError ? e : fail(e, 'COPY');
        } finally {
          activeCopy = undefined;
        }
        copyRows += stream.rowCount;
      }
      // The unit's last object stored, its counts checked: its result.
      const complete = async (): Promise<UnitResult> => {
        await sw.finish();
        if (writer === sw) writer = undefined;
        nodeBytes += sw.totalBytes;
        nodeRows += sw.totalRows;
        // A stream's last figures: its node's total is the sum of its streams' (lib/cli/progress.ts).
        if (unit.stream) emit({ type: 'progress', node, table: current, segment: sw.segment, bytes: sw.totalBytes, rows: sw.totalRows, unit: unit.id });
        const res: UnitResult = { unit, node, objects, rows: sw.totalRows, bytes: sw.totalBytes, ...sw.summary() };
        if (hasher) {
          const c = hasher.result();
          // The server's own count (CommandComplete) against the rows hashed and the rows stored.
          if (c.rows !== copyRows || res.rows !== copyRows || hasher.inCopy) {
            throw new RowCountMismatchError(`table ${current} on node ${node}: COPY reported ${copyRows} rows, ${c.rows} were checksummed and ${res.rows} stored`, { node, table: current });
          }
          res.checksum = c;
        }
        results.push(res);
        return res;
      };
      if (unit.stream) {
        // A stream starts its next range's COPY while this range's last object is finished and
        // the checkpoint records it: the backend does not wait for the store between ranges
        // (≈ 20 ms a range on a loaded 2-core machine, bench/streams-timeline.ts). At most one
        // range finishes at once; a failure deletes that range's objects and fails the stream.
        await finishing.at(-1);
        const p = complete().then(onUnitDone).catch(async (e: unknown) => {
          await sw.abort().catch(() => {});
          await store.delete(objects.map((o) => o.key)).catch(() => {});
          throw e;
        });
        p.catch(() => {});
        finishing.push(p);
      } else {
        await onUnitDone(await complete());
      }
      writer = undefined;
      unfinished = [];
    }
    await Promise.all(finishing);
    await client.query('COMMIT').catch((e) => { throw fail(e, 'commit'); });
    if (session?.closing) {
      session.closing(closeQuietly(client));
      client = undefined;
    }
    return results;
  } catch (e) {
    destroyClient(client);
    client = undefined;
    // A session opened ahead that this exporter never reached (it failed before the connect).
    const left = session?.opened;
    if (left) {
      session.opened = undefined;
      left.then(destroyClient, () => {});
    }
    if (writer) await writer.abort();
    await Promise.allSettled(finishing);
    // Best effort: what a failed delete leaves, --resume and cleanup remove (the checkpoint names its stem).
    if (unfinished.length > 0) await store.delete(unfinished.map((o) => o.key)).catch(() => {});
    throw e instanceof SegferryError ? e : fail(e, 'export');
  } finally {
    signal.removeEventListener('abort', onAbort);
    await closeQuietly(client);
  }
}
