import type pg from 'pg';
import { InvalidOptionError, ManifestMissingError, SegferryError, StorageError, fromDatabaseError } from '../errors.js';
import { makeEmitter, withRetryEvents, type EventListener } from '../events.js';
import { quoteIdent, quoteQualified } from '../pg/sql.js';
import { openStore } from '../store/open.js';
import type { ObjectStore } from '../store/types.js';
import { COORDINATOR_NODE } from '../topology/discover.js';
import type { PlanNode } from '../topology/types.js';
import { Sessions } from './sessions.js';
import { throwIfAborted } from '../util/pool.js';
import { runKeyedPool } from '../util/keyed-pool.js';
import { ensureLedger } from './ledger.js';
import { forgetTables, truncateOnNode } from './truncate.js';
import { checkRejectOptions, priorRejects, RejectBudget, type RejectContext, type RejectOptions } from './rejects.js';
import { loadObject, type LoadUnit } from './load.js';
import { planImport, type ImportPlan, type ImportPlanOptions, type ImportTablePlan } from './plan.js';
import { verifyImport, type VerifyResult } from './verify.js';
import { applyDataExtras, dataExtras, loadsData, startDdlRestore, type DdlRestore } from './restore.js';
import { readExportKey } from './encryption.js';
import { readManifest } from '../manifest/io.js';

/** Options of {@link importTables}. */
export interface ImportOptions extends ImportPlanOptions, RejectOptions {
  /** Use this plan instead of planning again (e.g. after printing it). */
  plan?: ImportPlan;
  /**
   * Run {@link verifyImport} after loading and return its result in `verify` (default false).
   * A mismatch is reported there, not thrown: check `result.verify.ok`.
   */
  verify?: boolean;
  /**
   * With `create`, restore the schema the export carries (its `ddl`, issue 14; default true):
   * check both DDL objects' SHA-256 and every statement against the allowlist, compare existing
   * tables (the same definition: used as is, DDL not run; another: ERR_DDL_CONFLICT before any
   * data), run pre-data in one transaction, load, then post-data (keys, indexes, foreign keys,
   * triggers: after all rows, so load order and cycles do not matter and triggers do not fire),
   * sequence values, materialized views, and ANALYZE (unless `analyze` is false; default on
   * here). Each phase is recorded in `segferry.ddl_phases`: a rerun finishes an interrupted
   * restore. One destination server or Citus coordinator (`target`; a Citus export's
   * distribution is replayed into Citus, plain tables elsewhere), or every node of a static `topology`.
   * `schemaOnly` and `dataOnly` split this in two.
   */
  ddl?: boolean;
  /**
   * Only the schema (default false): with `create`, restore the export's DDL (pre-data,
   * post-data, sequences, materialized views) and load no rows. An export taken with
   * `schemaOnly` is imported this way whether or not this is set.
   */
  schemaOnly?: boolean;
  /**
   * Only the data (default false): skip every DDL phase (as `ddl: false`), load the rows into
   * the existing tables, then set the export's sequence values and refresh its materialized
   * views (those that exist at the destination), as pg_restore --data-only does.
   */
  dataOnly?: boolean;
  /**
   * Load with `session_replication_role = replica` (default false): triggers and foreign-key
   * checks do not fire during the load, as pg_restore --disable-triggers. Needed for a data-only
   * import into tables whose foreign keys (e.g. a cycle) and triggers already exist. Setting it
   * needs a superuser (PostgreSQL 15); the rows are then not checked against the foreign keys.
   */
  disableTriggers?: boolean;
  /** Cancel: loaders stop, open transactions roll back; committed objects stay (and are skipped next time). */
  signal?: AbortSignal;
  /** Progress events (operation `import`). */
  onEvent?: EventListener;
}

/** What happened to one table. */
export interface ImportTableResult {
  table: string;
  route: 'coordinator' | 'direct';
  /** Loads planned (objects × target nodes). */
  objects: number;
  /** Loads done in this run. */
  loaded: number;
  /** Loads skipped because the ledger already had them. */
  skipped: number;
  /** Rows and bytes loaded in this run. */
  rows: number;
  bytes: number;
  /** Rows the destination refused in this run, set aside in rejects objects (reject limits only; else 0). */
  rejected: number;
  /** Nodes where the table was created (`create`). */
  created: string[];
  /** True when the table was emptied before loading (`truncate`). */
  truncated: boolean;
  analyzed: boolean;
}

/** One destination node's share. */
export interface ImportNodeSummary {
  node: string;
  objects: number;
  skipped: number;
  rows: number;
  bytes: number;
  /** Rows refused on this node in this run (reject limits only; else 0). */
  rejected: number;
  elapsedMs: number;
}

/** What {@link importTables} returns. */
export interface ImportResult {
  importId: string;
  /** Display location of the export (no credentials). */
  location: string;
  plan: ImportPlan;
  tables: ImportTableResult[];
  nodes: ImportNodeSummary[];
  loaded: number;
  skipped: number;
  rows: number;
  bytes: number;
  /** Rows refused in this run, over all tables (reject limits only; else 0). */
  rejected: number;
  /**
   * With a reject limit: where the rejects objects are (display form, no credentials) and the
   * keys written in this run, one per (object, node) that had refused rows.
   */
  rejects?: { location: string; keys: string[] };
  elapsedMs: number;
  /** Things the user should know (e.g. a bare prefix has no checksums). */
  notes: string[];
  /** Present with `verify`. */
  verify?: VerifyResult;
}


function createTableSQL(tp: ImportTablePlan): string {
  const types = tp.createTypes;
  if (!types || types.length !== tp.columns.length) {
    throw new InvalidOptionError(`the plan of ${tp.table} lacks the destination's column types for create: plan it again (planImport)`);
  }
  // Types as the destination spelled them when planning (lib/import/safety.ts), never the manifest's text.
  const cols = tp.columns.map((c, i) => `${quoteIdent(c.name)} ${types[i]}${c.notNull === true ? ' NOT NULL' : ''}`);
  return `CREATE TABLE IF NOT EXISTS ${quoteQualified(tp.destination)} (${cols.join(', ')})`;
}

/**
 * `truncate`: first every node's ledger rows of tables not truncated on that node (an earlier
 * run's other route), then, node by node, each table's rows with that node's ledger rows in one
 * transaction (lib/import/truncate.ts). In this order a failure leaves, on each node, either the
 * table and its ledger rows untouched or both gone, and stray ledger rows only ever removed
 * ahead of their rows: a rerun without truncate then resumes from the ledgers or refuses the
 * non-empty table (ERR_DESTINATION_NOT_EMPTY), and a rerun with truncate starts afresh; never
 * are rows skipped as loaded after they were emptied.
 */
async function truncateAll(plan: ImportPlan, s: Sessions, order: string[], results: Map<string, ImportTableResult>, notes: string[], signal: AbortSignal | undefined): Promise<void> {
  const run = async (node: string, essential: boolean, work: (c: pg.Client) => Promise<void>) => {
    throwIfAborted(signal);
    if (!essential) {
      // A node that receives nothing only has its ledger tidied: not worth failing for. Its
      // session is opened (and kept idle) here, so that only an unreachable node is tolerated.
      try {
        s.release(node, await s.acquire(node));
      } catch (e) {
        notes.push(`node ${node}: not reachable to clear its ledger rows of the truncated tables (${(e as SegferryError).code ?? 'error'})`);
        return;
      }
    }
    await s.withSession(node, 'prepare', work);
  };
  for (const node of order) {
    const stray = plan.ledgerNodes.includes(node) ? plan.tables.filter((t) => !t.truncate.includes(node)) : [];
    if (stray.length > 0) await run(node, plan.tables.some((t) => t.targets.some((x) => x.node === node)), (c) => forgetTables(c, stray));
  }
  for (const node of order) {
    const truncs = plan.tables.filter((t) => t.truncate.includes(node));
    if (truncs.length > 0) {
      await run(node, true, async (c) => {
        for (const t of truncs) {
          try {
            await truncateOnNode(c, t, node);
          } catch (e) {
            throw fromDatabaseError(e, { node, table: t.table, action: 'truncate' });
          }
          results.get(t.table)!.truncated = true;
        }
      });
    }
  }
}

/** Attempts per object when reading it from storage fails midway. */
const OBJECT_ATTEMPTS = 4;

/**
 * Import an export into a destination cluster: plan (unless `plan` is given), create and
 * truncate tables as asked, then load every object not yet in the ledger, in parallel up to
 * `concurrency`, each in its own transaction together with its ledger row (see
 * `loadObject`). Rerunning after a failure or interruption loads only what is missing;
 * a second run of a finished import loads nothing.
 *
 * Memory: about concurrency × (store read buffer + chunk being hashed + COPY write buffer),
 * at most ≈ 4 MiB per loader (see `concurrency`); objects are streamed, never held whole.
 */
export async function importTables(opts: ImportOptions): Promise<ImportResult> {
  const t0 = Date.now();
  const emit = makeEmitter('import', opts.onEvent);
  const store: ObjectStore = typeof opts.from === 'string' ? openStore(opts.from, withRetryEvents(opts.s3, emit)) : opts.from;
  const sessions: { s?: Sessions } = {};
  let restore: DdlRestore | undefined;
  const rejecting = checkRejectOptions(opts);
  let rejectStore: ObjectStore | undefined;
  try {
    throwIfAborted(opts.signal);
    if (rejecting) {
      rejectStore = opts.rejects === undefined ? store : typeof opts.rejects === 'string' ? openStore(opts.rejects, withRetryEvents(opts.s3, emit)) : opts.rejects;
      if (rejectStore !== store) await rejectStore.check();
    }
    // The export's schema first (pre-data), so that planning finds the tables (lib/import/restore.ts).
    // An encrypted export's data key first: a wrong or missing key fails before anything runs.
    const cipher = await readExportKey(store, opts.encrypt, opts.s3, opts.bare !== undefined);
    restore = await startDdlRestore(store, opts, cipher);
    // A missing manifest is left to planning, which reports it with its own hint.
    const manifest = opts.bare === undefined ? await readManifest(store).catch((e: unknown) => { if (e instanceof ManifestMissingError) return undefined; throw e; }) : undefined;
    const loadData = loadsData(manifest, opts, restore !== undefined);
    const extras = dataExtras(manifest, opts, restore !== undefined);
    const plan = opts.plan ?? (await planImport({ ...opts, from: store, ...(restore ? { analyze: false } : {}) }));
    const nodes = new Map<string, PlanNode>(plan.nodes.map((n) => [n.name, n]));
    if (plan.coordinator) nodes.set(COORDINATOR_NODE, plan.coordinator);
    // Triggers and foreign keys off for the load (pg_restore --disable-triggers); needs a superuser.
    const settings = opts.disableTriggers ? { ...plan.sessionSettings, session_replication_role: 'replica' } : plan.sessionSettings;
    const s = new Sessions(nodes, settings, 'segferry import');
    sessions.s = s;

    const results = new Map<string, ImportTableResult>(plan.tables.map((t) => [t.table, {
      table: t.table, route: t.route, objects: t.objects.reduce((a, o) => a + o.targets.length, 0),
      loaded: 0, skipped: 0, rows: 0, bytes: 0, rejected: 0, created: [], truncated: false, analyzed: false,
    }]));

    const notes = [...plan.notes];
    // Prepare every node before loading: ledger and missing tables, then truncation.
    const targetNodes = new Set(plan.tables.flatMap((t) => t.targets.map((x) => x.node)));
    // Citus workers refuse CREATE SCHEMA: the coordinator goes first and creates the ledger's
    // schema, which Citus propagates to the workers.
    const citus = plan.topology === 'citus';
    const order = [...nodes.keys()].sort((a, b) => (a === b ? 0 : citus && a === COORDINATOR_NODE ? -1 : citus && b === COORDINATOR_NODE ? 1 : a < b ? -1 : 1));
    for (const node of order) {
      throwIfAborted(opts.signal);
      const needsLedger = targetNodes.has(node) || (citus && node === COORDINATOR_NODE && targetNodes.size > 0);
      const creates = plan.tables.filter((t) => t.create.includes(node));
      if (!needsLedger && creates.length === 0) continue;
      const where: { table?: string | undefined } = {};
      await s.withSession(node, 'prepare', async (c) => {
        if (needsLedger) await ensureLedger(c, rejecting);
        for (const t of creates) {
          where.table = t.table;
          if (t.destination.schema !== 'public') await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.destination.schema)}`);
          await c.query(createTableSQL(t));
          results.get(t.table)!.created.push(node);
        }
      }, where);
    }
    if (plan.truncate) await truncateAll(plan, s, order, results, notes, opts.signal);

    // Units: (object, target node) pairs not yet in a ledger, interleaved across nodes so
    // that the loaders spread over the destination.
    const perNode = new Map<string, LoadUnit[]>();
    const left = new Map<string, number>();
    const tableLeft = new Map<string, number>();
    const nodeStats = new Map<string, ImportNodeSummary & { started: number }>();
    const stat = (n: string) => {
      let x = nodeStats.get(n);
      if (!x) nodeStats.set(n, x = { node: n, objects: 0, skipped: 0, rows: 0, bytes: 0, rejected: 0, elapsedMs: 0, started: Date.now() });
      return x;
    };
    let estimatedBytes = 0;
    const nodeBytes: Record<string, number> = {};
    let objectCount = 0;
    const skippedUnits: LoadUnit[] = [];
    for (const t of plan.tables) {
      for (const o of loadData ? t.objects : []) {
        for (const n of o.targets) {
          const target = t.targets.find((x) => x.node === n)!;
          // A Citus shard-direct object names its own shard table.
          const u: LoadUnit = { table: t.table, object: o, target: o.relation ? { ...target, relation: o.relation } : target };
          objectCount++;
          stat(n);
          if (o.loaded.includes(n)) { skippedUnits.push(u); continue; }
          perNode.set(n, [...(perNode.get(n) ?? []), u]);
          left.set(n, (left.get(n) ?? 0) + 1);
          tableLeft.set(t.table, (tableLeft.get(t.table) ?? 0) + 1);
          estimatedBytes += o.bytes;
          nodeBytes[n] = (nodeBytes[n] ?? 0) + o.bytes;
        }
      }
    }
    // Reject limits count what earlier runs of this import set aside in objects they committed.
    let rejectCtx: RejectContext | undefined;
    const rejectKeys: string[] = [];
    if (rejecting) {
      const budget = new RejectBudget({
        ...(opts.rejectLimit !== undefined ? { table: opts.rejectLimit } : {}),
        ...(opts.rejectLimitPerNode !== undefined ? { node: opts.rejectLimitPerNode } : {}),
      });
      await priorRejects(s, [...targetNodes].sort(), perNode, plan.importId, budget);
      rejectCtx = { budget, store: rejectStore! };
    }
    const units: LoadUnit[] = [];
    const queues = [...perNode.values()];
    for (let i = 0; queues.some((q) => i < q.length); i++) for (const q of queues) if (i < q.length) units.push(q[i]!);

    emit({
      type: 'start',
      tables: plan.tables.map((t) => t.table),
      nodes: [...nodeStats.keys()].sort(),
      objects: objectCount,
      estimatedBytes,
      nodeBytes,
    });
    for (const u of skippedUnits) {
      const r = results.get(u.table)!;
      r.skipped++;
      stat(u.target.node).skipped++;
      emit({ type: 'segment', node: u.target.node, table: u.table, key: u.object.key, segment: u.object.segment, bytes: u.object.bytes, rows: u.object.rows ?? 0, skipped: true });
    }
    const nodeDone = (n: string) => {
      const x = stat(n);
      x.elapsedMs = Date.now() - x.started;
      emit({ type: 'node-done', node: n, bytes: x.bytes, rows: x.rows, objects: x.objects, elapsedMs: x.elapsedMs });
    };
    for (const n of nodeStats.keys()) if (!left.get(n)) nodeDone(n);

    const tableDone = async (t: ImportTablePlan) => {
      const r = results.get(t.table)!;
      if (plan.analyze) {
        // The nodes that took rows, and the coordinator that plans queries over them.
        // Citus: ANALYZE on the coordinator reaches every shard.
        const where = new Map(citus ? [] : t.targets.map((x) => [x.node, x.relation]));
        if (plan.coordinator && !where.has(COORDINATOR_NODE)) where.set(COORDINATOR_NODE, t.destination);
        for (const [n, rel] of where) {
          await s.withSession(n, 'ANALYZE', (c) => c.query(`ANALYZE ${quoteQualified(rel)}`), { table: t.table });
        }
        r.analyzed = true;
      }
      emit({ type: 'table-done', table: t.table, rows: r.rows, bytes: r.bytes, objects: r.loaded + r.skipped });
    };
    for (const t of plan.tables) if (!tableLeft.get(t.table)) await tableDone(t);

    const lastTick = new Map<string, number>();
    // At most plan.streams[node] objects of one node at once (import --streams), concurrency in all.
    await runKeyedPool(units, plan.concurrency, (u) => u.target.node, (n) => plan.streams?.[n] ?? plan.concurrency, async (u, signal) => {
      const n = u.target.node;
      const x = stat(n);
      let out;
      // A storage read that breaks mid-object rolled the object back: load it again (the
      // ledger makes that safe), a few times, with growing pauses.
      for (let attempt = 1; ; attempt++) {
        try {
          out = await s.withSession(n, `COPY of ${u.object.key}`, (c) => loadObject(c, u, {
            store, importId: plan.importId, format: plan.format, force: plan.force, signal, bare: plan.bare,
            ...(cipher ? { cipher } : {}),
            ...(rejectCtx ? { rejects: rejectCtx } : {}),
            onBytes: (b) => {
              x.bytes += b;
              const now = Date.now();
              if (now - (lastTick.get(n) ?? 0) >= 500) {
                lastTick.set(n, now);
                emit({ type: 'progress', node: n, table: u.table, segment: u.object.segment, bytes: x.bytes, rows: x.rows });
              }
            },
          }), { table: u.table });
        } catch (e) {
          if (!(e instanceof StorageError) || attempt >= OBJECT_ATTEMPTS || signal.aborted) throw e;
          emit({ type: 'retry', node: n, table: u.table, key: u.object.key, attempt: attempt + 1, reason: e.message });
          await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
          continue;
        }
        break;
      }
      const r = results.get(u.table)!;
      if (out.skipped) {
        r.skipped++;
        x.skipped++;
      } else {
        r.loaded++;
        r.rows += out.rows;
        r.bytes += out.bytes;
        r.rejected += out.rejected;
        x.objects++;
        x.rows += out.rows;
        x.rejected += out.rejected;
        if (out.rejectsKey) rejectKeys.push(out.rejectsKey);
      }
      emit({
        type: 'segment', node: n, table: u.table, key: u.object.key, segment: u.object.segment, bytes: out.bytes, rows: out.rows,
        ...(out.skipped ? { skipped: true } : {}), ...(out.rejected > 0 ? { rejected: out.rejected } : {}),
      });
      const nl = left.get(n)! - 1;
      left.set(n, nl);
      if (nl === 0) nodeDone(n);
      const tl = tableLeft.get(u.table)! - 1;
      tableLeft.set(u.table, tl);
      if (tl === 0) await tableDone(plan.tables.find((t) => t.table === u.table)!);
    }, opts.signal);

    if (extras) {
      // Where the sequences live: the coordinator, else every node (node-local definitions).
      const where = plan.coordinator ? [COORDINATOR_NODE] : plan.nodes.map((n) => n.name);
      for (const n of where) {
        const x = await s.withSession(n, 'sequences and materialized views after the data', (c) => applyDataExtras(c, extras));
        notes.push(`${where.length > 1 ? `node ${n}: ` : ''}sequences: ${x.sequences} set; materialized views: ${x.matviews} refreshed${x.missing.length > 0 ? `; not at the destination, left out: ${x.missing.join(', ')}` : ''}`);
      }
    }
    if (restore) {
      const analyze = opts.analyze !== false && loadData;
      const did = await restore.afterData(analyze);
      notes.push(...restore.notes);
      notes.push(`schema restored from the export's DDL (${restore.mode === 'adopt' ? 'the tables existed with the same definition: DDL not run' : restore.mode === 'resume' ? 'finishing an earlier run' : 'pre-data before the data'}${did.length > 0 ? '; ' + did.join('; ') : ''})`);
      if (analyze) for (const r of results.values()) r.analyzed = true;
    }
    const tables = [...results.values()];
    const res: ImportResult = {
      importId: plan.importId,
      location: plan.location,
      plan,
      tables,
      nodes: [...nodeStats.values()].map(({ started: _s, ...n }) => n).sort((a, b) => (a.node < b.node ? -1 : 1)),
      loaded: tables.reduce((a, t) => a + t.loaded, 0),
      skipped: tables.reduce((a, t) => a + t.skipped, 0),
      rows: tables.reduce((a, t) => a + t.rows, 0),
      bytes: tables.reduce((a, t) => a + t.bytes, 0),
      rejected: tables.reduce((a, t) => a + t.rejected, 0),
      elapsedMs: 0,
      notes,
    };
    if (rejecting) res.rejects = { location: rejectStore!.url, keys: rejectKeys.sort() };
    await s.closeAll();
    res.elapsedMs = Date.now() - t0;
    emit({ type: 'done', tables: tables.length, objects: res.loaded, rows: res.rows, bytes: res.bytes, elapsedMs: res.elapsedMs, skipped: res.skipped });
    if (opts.verify) {
      // (schema, name) pairs: display strings would be parsed again and break on dots and case.
      const v: Parameters<typeof verifyImport>[0] = { from: store, tables: plan.tables.map((t) => ({ ...t.destination })) };
      if (opts.target !== undefined) v.target = opts.target;
      if (opts.topology !== undefined) v.topology = opts.topology;
      if (opts.bare !== undefined) v.bare = opts.bare;
      if (opts.signal !== undefined) v.signal = opts.signal;
      if (opts.onEvent !== undefined) v.onEvent = opts.onEvent;
      res.verify = await verifyImport(v);
    }
    return res;
  } catch (e) {
    throw e instanceof SegferryError ? e : fromDatabaseError(e, { action: 'import' });
  } finally {
    await restore?.close();
    await sessions.s?.closeAll();
    if (typeof opts.from === 'string') store.close();
    if (rejectStore && rejectStore !== store && typeof opts.rejects === 'string') rejectStore.close();
  }
}
