/**
 * `copy --via`: the source is exported into a staging prefix exactly as `exportTables` writes
 * it, and a pool of loaders takes each object as soon as the export reports it stored (its
 * `segment` event) and loads it into the destination node(s) of its unit, as `importTables`
 * would, while the export goes on. Loads are recorded in the ledger under the id the export's
 * manifest will carry, so an import of the prefix afterwards finds them loaded.
 */
import { AbortedError, InternalError, SegferryError } from '../errors.js';
import type { SegferryEvent } from '../events.js';
import { exportTables, type ExportResult } from '../export/export.js';
import { loadObject, type LoadOutcome } from '../import/load.js';
import type { PlannedObject } from '../import/route.js';
import type { Sessions } from '../import/sessions.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { CopyPlan } from './plan.js';

/** One stored object to load into one destination node. */
interface ViaJob {
  table: string;
  object: PlannedObject;
  node: string;
}

/**
 * Stored objects waiting for a loader. It holds descriptors only (key, node, counts), never
 * data: at most one per object of the export.
 */
class JobQueue {
  #items: ViaJob[] = [];
  #waiting: ((j: ViaJob | undefined) => void)[] = [];
  #closed = false;
  push(j: ViaJob): void {
    const w = this.#waiting.shift();
    if (w) w(j);
    else this.#items.push(j);
  }
  /** No more jobs: waiting loaders get `undefined` once the queue is empty. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w(undefined);
  }
  next(): Promise<ViaJob | undefined> {
    const j = this.#items.shift();
    if (j !== undefined || this.#closed) return Promise.resolve(j);
    return new Promise((r) => this.#waiting.push(r));
  }
}

/** What the loaders report back per load, and the export's events. */
export interface ViaHooks {
  /** An export event (segment, progress, retry, warning), passed on with `phase: "export"`. */
  onExportEvent: (e: SegferryEvent) => void;
  /** One object loaded (or found in the ledger) on one node. */
  onLoaded: (job: { table: string; key: string; segment: number; node: string }, out: LoadOutcome) => void;
}

/**
 * Run the staged copy: the export with `plan.source` into `via`, and `concurrency` loaders fed
 * by its `segment` events. A loader's failure stops the export (nothing more is stored, no
 * manifest is written); the export's failure stops the loaders. Either way every worker has
 * stopped before this rejects. Objects loaded so far stay committed, with their ledger rows.
 *
 * Memory: the export's (docs/memory.md) plus, per loader, one store read buffer and one COPY
 * write buffer (as `importTables`).
 */
export async function runVia(
  plan: CopyPlan, opts: { via: string; s3?: S3Options; tables: string[]; signal?: AbortSignal },
  dst: Sessions, hooks: ViaHooks,
): Promise<ExportResult> {
  const store = openStore(opts.via, opts.s3);
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason instanceof SegferryError ? opts.signal.reason : new AbortedError());
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const queue = new JobQueue();
  const errors: unknown[] = [];
  const stop = (e: unknown) => {
    errors.push(e);
    if (!ac.signal.aborted) ac.abort(e);
    queue.close();
  };
  const units = new Map(plan.units.map((u) => [`${u.table}\u0000${u.sourceNode}`, u]));
  const tables = new Map(plan.tables.map((t) => [t.table, t]));

  const loader = async () => {
    for (;;) {
      const j = await queue.next();
      if (j === undefined || ac.signal.aborted) return;
      const tp = tables.get(j.table)!;
      const target = tp.targets.find((x) => x.node === j.node);
      if (!target) throw new InternalError(`no target ${j.node} for ${j.table}`);
      const c = await dst.acquire(j.node);
      let out: LoadOutcome;
      try {
        out = await loadObject(c, { table: j.table, object: j.object, target }, {
          store, importId: plan.copyId, format: plan.source.format, force: false, signal: ac.signal,
        });
      } catch (e) {
        dst.drop(c);
        throw e;
      }
      dst.release(j.node, c);
      hooks.onLoaded({ table: j.table, key: j.object.key, segment: j.object.segment, node: j.node }, out);
    }
  };
  const loaders = Array.from({ length: Math.max(1, plan.concurrency) }, () => loader().catch(stop));

  let result: ExportResult | undefined;
  try {
    result = await exportTables({
      tables: opts.tables,
      plan: plan.source,
      to: opts.via,
      ...(opts.s3 !== undefined ? { s3: opts.s3 } : {}),
      manifestId: plan.copyId,
      // The copy carries data only (the destination tables exist, or --create makes them).
      ddl: false,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'segment') {
          const u = units.get(`${e.table}\u0000${e.node}`);
          if (!u) {
            stop(new InternalError(`the export stored ${e.key} of ${e.table} on ${e.node}, which the copy plan does not have`));
            return;
          }
          const object: PlannedObject = { key: e.key, sourceNode: e.node, segment: e.segment, bytes: e.bytes, rows: e.rows, targets: u.targets, loaded: [] };
          for (const n of u.targets) queue.push({ table: u.table, object, node: n });
        }
        if (e.type === 'segment' || e.type === 'progress' || e.type === 'retry' || e.type === 'warning') hooks.onExportEvent(e);
      },
    });
  } catch (e) {
    // The export's own failure first: loaders that fail meanwhile (objects it removed) follow from it.
    errors.unshift(e);
    if (!ac.signal.aborted) ac.abort(e);
  } finally {
    // Every stored object is queued before the export returns: the loaders end with the queue.
    queue.close();
    await Promise.all(loaders);
    opts.signal?.removeEventListener('abort', onAbort);
  }
  if (errors.length > 0) {
    // A real failure before the abort errors it caused elsewhere.
    throw errors.find((e) => !(e instanceof AbortedError)) ?? errors[0];
  }
  if (!result) throw new InternalError('the staging export returned nothing');
  return result;
}
