/**
 * `copy --via`: the source is exported into a staging prefix exactly as `exportTables` writes
 * it, and a pool of loaders takes each object as soon as the export reports it stored (its
 * `segment` event) and loads it into the destination node(s) of its unit, as `importTables`
 * would, while the export goes on. Loads are recorded in the ledger under the id the export's
 * manifest will carry, so an import of the prefix afterwards finds them loaded.
 *
 * Exactly once across failures: a unit (the export checkpoint's grain) is loaded into each of
 * its target nodes in one transaction, committed only once the checkpoint records the unit.
 * A run that dies leaves every unit either recorded (its objects kept; loaded or not) or not
 * (its objects deleted and exported again, its loads never committed), so a rerun resumes the
 * export (`resume`) and loads what the ledger lacks.
 */
import { randomUUID } from 'node:crypto';
import { AbortedError, EncryptionKeyError, InternalError, InvalidOptionError, PrefixNotEmptyError, SegferryError } from '../errors.js';
import type { SegferryEvent } from '../events.js';
import { exportTables, type ExportResult, type StoredUnit } from '../export/export.js';
import { readCheckpoint } from '../export/checkpoint.js';
import { loadObject, type LoadOutcome } from '../import/load.js';
import type { PlannedObject } from '../import/route.js';
import type { Sessions } from '../import/sessions.js';
import type { KeySource } from '../crypto/keys.js';
import type { ObjectCipher } from '../crypto/objects.js';
import type { ClientEncryption, Manifest, ManifestObject } from '../manifest/types.js';
import { readManifest } from '../manifest/io.js';
import { MANIFEST_KEY } from '../manifest/keys.js';
import { displayName } from '../pg/sql.js';
import { openStore } from '../store/open.js';
import { WorkerSignals } from '../util/worker-signals.js';
import type { S3Options } from '../store/s3.js';
import type { CopyPlan } from './plan.js';
import { pickDigest } from '../manifest/digest.js';

/** Ledger ids of staged copies start with this, so that a copy knows its own finished prefix again. */
const VIA_ID_PREFIX = 'copy-via:';

/** What a staging prefix holds for a copy: nothing of it (a new id), an unfinished run, or a finished one. */
export interface StagedState {
  /** The copy's ledger id (= the staging export's manifest id). */
  copyId: string;
  state: 'new' | 'unfinished' | 'finished';
}

/**
 * Look at the staging prefix: the checkpoint of an unfinished `copy --via` records its id; a
 * finished one's manifest carries it. Anything else (an empty prefix, another export) gets a
 * new id; the export then refuses an occupied prefix as always.
 */
export async function stagedState(via: string, s3?: S3Options): Promise<StagedState> {
  const store = openStore(via, s3);
  try {
    const cp = await readCheckpoint(store);
    if (cp?.manifestId?.startsWith(VIA_ID_PREFIX)) return { copyId: cp.manifestId, state: 'unfinished' };
    if (!cp && (await store.head(MANIFEST_KEY))) {
      const m = await readManifest(store);
      if (m.id.startsWith(VIA_ID_PREFIX)) return { copyId: m.id, state: 'finished' };
    }
    return { copyId: VIA_ID_PREFIX + randomUUID(), state: 'new' };
  } finally {
    store.close();
  }
}

/**
 * One unit's loads into one target node, in one transaction. Objects arrive as the export
 * stores them; `final` is the unit's object list once the checkpoint records it.
 */
interface UnitJob {
  table: string;
  node: string;
  unit: string;
  pending: PlannedObject[];
  final?: Set<string>;
  wake?: () => void;
}

/** Jobs waiting for a loader, in the order their first object arrived. Descriptors only, never data. */
class JobQueue {
  #items: UnitJob[] = [];
  #waiting: ((j: UnitJob | undefined) => void)[] = [];
  #closed = false;
  push(j: UnitJob): void {
    const w = this.#waiting.shift();
    if (w) w(j);
    else this.#items.push(j);
  }
  /** No more jobs: waiting loaders get `undefined` once the queue is empty. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w(undefined);
  }
  next(): Promise<UnitJob | undefined> {
    const j = this.#items.shift();
    if (j !== undefined || this.#closed) return Promise.resolve(j);
    return new Promise((r) => this.#waiting.push(r));
  }
}

/** What the loaders report back per load, and the export's events. */
export interface ViaHooks {
  /** An export event (segment, progress, retry, warning), passed on with `phase: "export"`. */
  onExportEvent: (e: SegferryEvent) => void;
  /** One object loaded (into its unit's open transaction) or found in the ledger, on one node. */
  onLoaded: (job: { table: string; key: string; segment: number; node: string }, out: LoadOutcome) => void;
}

/** Options of {@link runVia}. */
export interface ViaOptions {
  via: string;
  s3?: S3Options;
  tables: string[];
  signal?: AbortSignal;
  /** Client-side encryption: one key source for the export and the loaders (default none). */
  keys?: KeySource;
}

/** The planned load of a stored object (digest and size: what the export reported, checked at load). */
function planned(o: Pick<ManifestObject, 'key' | 'node' | 'segment' | 'bytes' | 'rows' | 'sha256' | 'crc32' | 'compression'>, targets: string[]): PlannedObject {
  return {
    key: o.key, sourceNode: o.node, segment: o.segment, bytes: o.bytes, rows: o.rows, ...pickDigest(o), targets, loaded: [],
    ...(o.compression ? { compression: o.compression } : {}),
  };
}

/**
 * Run the staged copy: the export with `plan.source` into `via` (resumed when the plan says
 * an earlier run left it unfinished; skipped when it finished), and loaders fed by its
 * `segment` events, one unit and target node at a time. A loader's failure stops the export
 * (nothing more is stored, no manifest is written); the export's failure stops the loaders,
 * whose open transactions roll back. Either way every worker has stopped before this rejects.
 * Units committed so far stay, with their ledger rows.
 *
 * Memory: the export's (docs/memory.md) plus, per loader, one store read buffer and one COPY
 * write buffer (as `importTables`). Loaders: concurrency × the most targets a unit has, each
 * holding one destination session while its unit is exported.
 */
export async function runVia(plan: CopyPlan, opts: ViaOptions, dst: Sessions, hooks: ViaHooks): Promise<ExportResult> {
  const t0 = Date.now();
  const store = openStore(opts.via, opts.s3);
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason instanceof SegferryError ? opts.signal.reason : new AbortedError());
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const queue = new JobQueue();
  const jobs = new Map<string, UnitJob>();
  const errors: unknown[] = [];
  const wakeAll = () => { for (const j of jobs.values()) j.wake?.(); };
  const stop = (e: unknown) => {
    errors.push(e);
    if (!ac.signal.aborted) ac.abort(e);
    queue.close();
    wakeAll();
  };
  let exportDone = false;
  const units = new Map(plan.units.map((u) => [`${u.table}\u0000${u.sourceNode}`, u]));
  const tables = new Map(plan.tables.map((t) => [t.table, t]));
  // The source node a unit is planned on, for objects a replica read in its place.
  const targetsOf = (table: string, unit: string, node: string) => (units.get(`${table}\u0000${node}`) ?? plan.units.find((u) => u.id === unit))?.targets;
  // Set before the first object is stored (the export's `started`), or from a finished manifest.
  let cipher: ObjectCipher | undefined;
  const unwrap = async (enc: ClientEncryption | undefined) => {
    if (!enc) {
      if (opts.keys) throw new InvalidOptionError(`the staging export at ${store.url} is not encrypted: leave out encrypt`);
      return;
    }
    if (!opts.keys) throw new EncryptionKeyError(`the staging export at ${store.url} is encrypted: run the copy with the same encrypt`);
    cipher = { dataKey: await opts.keys.unwrap(enc), chunkSize: enc.chunkSize };
  };

  const jobOf = (table: string, unit: string, source: string, node: string): UnitJob => {
    // A replica fallback reads a unit again under another node's keys: a job of its own.
    const id = `${unit}\u0000${source}\u0000${node}`;
    let j = jobs.get(id);
    if (!j) {
      jobs.set(id, j = { table, node, unit, pending: [] });
      queue.push(j);
    }
    return j;
  };
  const addObjects = (table: string, unit: string, source: string, objects: PlannedObject[], final?: Set<string>) => {
    const targets = targetsOf(table, unit, source);
    if (!targets) {
      stop(new InternalError(`the export stored objects of ${table} on ${source}, which the copy plan does not have`));
      return;
    }
    for (const n of targets) {
      const j = jobOf(table, unit, source, n);
      j.pending.push(...objects.map((o) => ({ ...o, targets })));
      if (final) j.final = final;
      j.wake?.();
    }
  };
  const stored = (u: StoredUnit, kept: boolean) => {
    if (u.objects.length === 0) return;
    const final = new Set(u.objects.map((o) => o.key));
    // Kept units' objects were stored by an earlier run: no segment event announces them.
    addObjects(u.table, u.unit, u.node, kept ? u.objects.map((o) => planned(o, [])) : [], final);
  };

  // One signal per loader, so that loaders do not pile their listeners on ac.signal.
  const loaderSignals = new WorkerSignals();
  ac.signal.addEventListener('abort', () => loaderSignals.abort(ac.signal.reason), { once: true });
  const loader = async () => {
    const signal = loaderSignals.signal();
    for (;;) {
      const j = await queue.next();
      if (j === undefined || ac.signal.aborted) return;
      const target = tables.get(j.table)?.targets.find((x) => x.node === j.node);
      if (!target) throw new InternalError(`no target ${j.node} for ${j.table}`);
      const done = new Set<string>();
      await dst.withSession(j.node, 'load', async (c) => {
        await c.query('BEGIN');
        for (;;) {
          if (ac.signal.aborted) throw ac.signal.reason;
          const o = j.pending.shift();
          if (o) {
            if (done.has(o.key)) continue;
            const out = await loadObject(c, { table: j.table, object: o, target }, {
              store, importId: plan.copyId, format: plan.source.format, force: false, signal, inTransaction: true,
              ...(cipher ? { cipher } : {}),
            });
            done.add(o.key);
            hooks.onLoaded({ table: j.table, key: o.key, segment: o.segment, node: j.node }, out);
            continue;
          }
          if (j.final && [...j.final].every((k) => done.has(k))) break;
          if (exportDone) throw new InternalError(`the objects of unit ${j.unit} loaded into ${j.node} were never recorded as a finished unit`);
          await new Promise<void>((r) => { j.wake = r; });
          j.wake = undefined;
        }
        if (done.size !== j.final.size) throw new InternalError(`unit ${j.unit}: ${done.size} objects loaded into ${j.node}, the export recorded ${j.final.size}`);
        // The unit is recorded in the checkpoint: its rows and ledger rows commit together.
        await c.query('COMMIT');
      }, { table: j.table });
    }
  };
  const most = Math.max(1, ...plan.units.map((u) => u.targets.length));
  const loaders = Array.from({ length: Math.max(1, plan.concurrency) * most }, () => loader().catch(stop));

  let result: ExportResult | undefined;
  try {
    if (plan.staged === 'finished') {
      // A run that died after the manifest: load what the ledger lacks, object by object.
      const m = await readManifest(store);
      checkSameCopy(m, plan, store.url);
      await unwrap(m.clientEncryption);
      for (const o of m.objects) stored({ unit: `${o.key}`, table: o.table, node: o.node, objects: [o] }, true);
      result = { manifest: m, plan: plan.source, location: store.url, elapsedMs: 0, nodes: [] };
    } else {
      result = await exportTables({
        tables: opts.tables,
        plan: plan.source,
        to: opts.via,
        ...(opts.s3 !== undefined ? { s3: opts.s3 } : {}),
        manifestId: plan.copyId,
        resume: plan.staged === 'unfinished',
        // The copy carries data only (the destination tables exist, or --create makes them).
        ddl: false,
        signal: ac.signal,
        ...(opts.keys ? { keySource: opts.keys } : {}),
        stages: {
          started: async (s) => {
            await unwrap(s.clientEncryption);
            for (const u of s.kept) stored(u, true);
          },
          unitStored: (u) => stored(u, false),
        },
        onEvent: (e) => {
          if (e.type === 'segment') {
            // What the export reported is what the loader checks: size, rows and digest.
            // Every object of a compressed export is compressed (the manifest records it per object).
            const codec = plan.source.compression;
            const o = planned({ key: e.key, node: e.node, segment: e.segment, bytes: e.bytes, rows: e.rows, ...pickDigest(e), ...(codec ? { compression: codec } : {}) }, []);
            addObjects(e.table, e.unit ?? `${e.table}\u0000${e.node}`, e.node, [o]);
          }
          if (e.type === 'segment' || e.type === 'progress' || e.type === 'retry' || e.type === 'warning') hooks.onExportEvent(e);
        },
      });
    }
  } catch (e) {
    // The export's own failure first: loaders that fail meanwhile (objects it removed) follow from it.
    errors.unshift(e);
    if (!ac.signal.aborted) ac.abort(e);
  } finally {
    // Every unit is recorded before the export returns: the loaders end with their jobs.
    exportDone = true;
    queue.close();
    wakeAll();
    await Promise.all(loaders);
    opts.signal?.removeEventListener('abort', onAbort);
    store.close();
  }
  if (errors.length > 0) {
    // A real failure before the abort errors it caused elsewhere.
    throw errors.find((e) => !(e instanceof AbortedError)) ?? errors[0];
  }
  if (!result) throw new InternalError('the staging export returned nothing');
  if (plan.staged === 'finished') result.elapsedMs = Date.now() - t0;
  return result;
}

/** A finished staging export is this copy's only with the same tables and format. */
function checkSameCopy(m: Manifest, plan: CopyPlan, where: string): void {
  const want = plan.source.tables.map((t) => displayName(t.table)).sort();
  const have = m.tables.map((t) => displayName({ schema: t.schema, name: t.name })).sort();
  if (m.format.kind !== plan.source.format.kind || JSON.stringify(want) !== JSON.stringify(have)) {
    throw new PrefixNotEmptyError(`${where} holds a finished copy of other tables or another format (${have.join(', ')}; ${m.format.kind})`, {
      hint: 'stage through an empty prefix, or import that one with segferry import',
    });
  }
}
