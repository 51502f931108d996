import type pg from 'pg';
import { SegferryError, fromDatabaseError } from '../errors.js';
import type { makeEmitter } from '../events.js';
import { columnListSQL, copyOptionsSQL, csvHeaderLine } from '../format/options.js';
import type { ManifestObject, RowChecksum } from '../manifest/types.js';
import { applySettings, closeQuietly, connect, describeEndpoint, destroyClient } from '../pg/conn.js';
import { copyOut } from '../pg/copy-out.js';
import { displayName, quoteLiteral, quoteQualified } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import type { PlanNode, RelationRead, TablePlan } from '../topology/types.js';
import { throwIfAborted } from '../util/pool.js';
import { segmentKey, type ExportPlan } from './plan.js';
import { SegmentWriter, type StoredSegment } from './segmenter.js';
import { ArrowSegmentWriter } from '../format/arrow/segment-writer.js';
import { arrowSelectSQL, describeRead } from '../format/arrow/export-sql.js';
import type { CheckpointUnit } from './checkpoint.js';

// One data node's exporter, apart from the orchestration in export.ts so that it can run in
// this thread or in a worker thread.

/** Order-independent row checksum query over the same rows the COPY reads. */
export function checksumSQL(selectSQL: string): string {
  // ROW(alias.*), not alias::text: a column with the alias's name would win over the row.
  return `SELECT count(*)::int8 AS rows,
                 COALESCE(sum(('x' || substr(md5(ROW(_segferry_row.*)::text), 1, 15))::bit(60)::int8::numeric), 0)::text AS sum
            FROM (${selectSQL}) _segferry_row`;
}

/** The SELECT one node runs for one relation. */
export function selectSQL(read: RelationRead, table: TablePlan, filter: string | null): string {
  const cols = read.columns ?? table.columns.map((c) => c.name);
  return `SELECT ${columnListSQL(cols)} FROM ${quoteQualified(read.relation)}${filter ? ` WHERE (${filter})` : ''}`;
}

/** Add two checksums. */
export function addChecksums(a: RowChecksum, b: RowChecksum): RowChecksum {
  return { rows: a.rows + b.rows, sum: (BigInt(a.sum) + BigInt(b.sum)).toString() };
}

export interface NodeWork {
  node: PlanNode;
  items: { table: TablePlan; reads: RelationRead[] }[];
}

/** A finished (table, node) unit, as the checkpoint records it but with the table's plan. */
export type TableNodeResult = Omit<CheckpointUnit, 'table'> & { table: TablePlan };

/**
 * One data node's exporter: one session in a REPEATABLE READ READ ONLY transaction reads
 * every assigned relation with COPY, one after another; a second session in the same
 * snapshot (pg_export_snapshot) computes the checksums at the same time.
 */
export async function exportNode(
  w: NodeWork,
  plan: ExportPlan,
  store: ObjectStore,
  signal: AbortSignal,
  emit: ReturnType<typeof makeEmitter>,
  onUnitDone: (r: TableNodeResult) => Promise<void>,
): Promise<TableNodeResult[]> {
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
  let ck: pg.Client | undefined;
  let writer: SegmentWriter | ArrowSegmentWriter | undefined;
  let activeCopy: { destroy(): void } | undefined;
  const onAbort = () => {
    activeCopy?.destroy();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    client = await connect(w.node.endpoint, { node, applicationName: 'segferry export' }).catch((e) => { throw fail(e, 'connect'); });
    throwIfAborted(signal);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY').catch((e) => { throw fail(e, 'begin'); });
    await applySettings(client, plan.sessionSettings).catch((e) => { throw fail(e, 'set session'); });

    // Checksums run in a second session sharing this snapshot, one item after another, while
    // the COPYs stream; item i's promise settles when its scan is done.
    let checksums: Promise<RowChecksum>[] | undefined;
    if (plan.checksums) {
      const snap = (await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s').catch((e) => { throw fail(e, 'export snapshot'); })).rows[0]!.s;
      ck = await connect(w.node.endpoint, { node, applicationName: 'segferry checksum' }).catch((e) => { throw fail(e, 'connect'); });
      const c = ck;
      const ready = (async () => {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await c.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snap)}`);
        await applySettings(c, plan.sessionSettings);
      })();
      let prev: Promise<unknown> = ready;
      checksums = w.items.map((item) => {
        const p = prev.then(async () => {
          let acc: RowChecksum = { rows: 0, sum: '0' };
          for (const r of item.reads) {
            const row = (await c.query<{ rows: string; sum: string }>(checksumSQL(selectSQL(r, item.table, plan.filter)))).rows[0]!;
            acc = addChecksums(acc, { rows: Number(row.rows), sum: row.sum });
          }
          return acc;
        });
        prev = p;
        // Failures surface when awaited below; never leave a rejection unhandled meanwhile.
        p.catch(() => {});
        return p;
      });
    }

    const results: TableNodeResult[] = [];
    let nodeBytes = 0;
    let nodeRows = 0;
    let lastTick = 0;
    for (const item of w.items) {
      const t = item.table;
      current = displayName(t.table);
      const objects: ManifestObject[] = [];
      const header = t.columns.length > 0 && plan.format.kind === 'csv' && plan.format.header
        ? csvHeaderLine(plan.format, t.columns.map((c) => c.name))
        : undefined;
      const onStored = (s: StoredSegment) => {
        const o: ManifestObject = { key: s.key, table: current, node, segment: s.segment, bytes: s.bytes, rows: s.rows, sha256: s.sha256 };
        if (s.sources) o.shards = s.sources;
        objects.push(o);
        emit({ type: 'segment', node, table: current, key: s.key, segment: s.segment, bytes: s.bytes, rows: s.rows });
      };
      const keyOf = (n: number) => segmentKey(t.objectName, node, n);
      const sw = plan.format.kind === 'arrow'
        ? new ArrowSegmentWriter({ store, keyOf, cap: plan.segmentSize, table: current, node, onStored })
        : new SegmentWriter({ store, keyOf, cap: plan.segmentSize, table: current, node, ...(header ? { header } : {}), onStored });
      writer = sw;
      for (const r of item.reads) {
        throwIfAborted(signal);
        // Citus: an object never mixes shards, so an importer can load it into one shard.
        if (r.shardId !== undefined && sw.source !== undefined && sw.source !== r.shardId) await sw.cut();
        sw.source = r.shardId;
        let sql: string;
        if (sw instanceof ArrowSegmentWriter) {
          // Arrow reads BINARY COPY, decoded by each column's type as this node reports it.
          const cols = await describeRead(client, r, t, plan.filter).catch((e) => { throw fail(e, 'describe columns'); });
          await sw.beginCopy(cols);
          sql = `COPY (${arrowSelectSQL(r, t, plan.filter, cols)}) TO STDOUT (FORMAT binary)`;
        } else {
          sql = `COPY (${selectSQL(r, t, plan.filter)}) TO STDOUT (${copyOptionsSQL(plan.format)})`;
        }
        const stream = copyOut(client, sql);
        activeCopy = stream;
        try {
          for await (const rc of stream) {
            await sw.write(rc);
            const now = Date.now();
            if (now - lastTick >= 500) {
              lastTick = now;
              emit({ type: 'progress', node, table: current, segment: sw.segment, bytes: nodeBytes + sw.totalBytes, rows: nodeRows + sw.totalRows });
            }
          }
        } catch (e) {
          stream.destroy();
          throw e instanceof SegferryError ? e : fail(e, 'COPY');
        } finally {
          activeCopy = undefined;
        }
      }
      await sw.finish();
      writer = undefined;
      nodeBytes += sw.totalBytes;
      nodeRows += sw.totalRows;
      const res: TableNodeResult = { table: t, node, objects, rows: sw.totalRows, bytes: sw.totalBytes };
      if (sw instanceof ArrowSegmentWriter) res.arrow = sw.summary();
      const ckp = checksums?.[w.items.indexOf(item)];
      if (ckp) {
        const c = await ckp.catch((e) => { throw fail(e, 'checksum'); });
        if (c.rows !== res.rows) {
          throw new SegferryError('ERR_ROW_COUNT_MISMATCH', `table ${current} on node ${node}: COPY sent ${res.rows} rows but the checksum scan counted ${c.rows} in the same snapshot`, { node, table: current });
        }
        res.checksum = c;
      }
      results.push(res);
      await onUnitDone(res);
    }
    await client.query('COMMIT').catch((e) => { throw fail(e, 'commit'); });
    return results;
  } catch (e) {
    destroyClient(ck);
    destroyClient(client);
    ck = client = undefined;
    if (writer) await writer.abort();
    throw e instanceof SegferryError ? e : fail(e, 'export');
  } finally {
    signal.removeEventListener('abort', onAbort);
    await closeQuietly(ck);
    await closeQuietly(client);
  }
}
