import { createHash } from 'node:crypto';
import { checkEncryptOption, openKeySource, unwrapFor, type EncryptOption } from '../crypto/keys.js';
import type { ClientEncryption } from '../crypto/envelope.js';
import type { ObjectCipher } from '../crypto/objects.js';
import { InvalidOptionError, ManifestInvalidError, PlanIncompleteError, PrefixNotEmptyError } from '../errors.js';
import { makeEmitter, withRetryEvents, type EventListener } from '../events.js';
import { isObjectChecksum } from '../manifest/digest.js';
import { checkClientEncryption, readManifest, serializeManifest } from '../manifest/io.js';
import { MANIFEST_KEY, PART_KEY, partKey, segmentStem } from '../manifest/keys.js';
import type { Manifest } from '../manifest/types.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';
import { acquireClaim, commitExclusive } from '../store/claim.js';
import { runPool } from '../util/pool.js';
import { CheckpointWriter, planDigest, readCheckpoint, type Checkpoint, type CheckpointUnit } from './checkpoint.js';
import { workItems } from './export.js';
import { exportNode } from './exporter.js';
import { buildManifest } from './manifest.js';
import { SegmentNumbers } from './numbering.js';
import type { ExportPlan } from './plan.js';
import { runQueue, type ExportContext, type NodeRunner } from './queue.js';
import { deleteUnitObjects } from './resume.js';
import { SnapshotSessions } from './snapshots.js';
import { checkPlanSnapshots } from './hold.js';
import { validRangeStarts, validStreamScan } from './streams.js';
import { doneUnits, planUnits, resultOf, type ExportUnit, type UnitResult } from './units.js';

// One plan, many hosts (docs/multi-host.md): `plan --out` writes the plan as a file, each host
// runs one part of its units (`run --part K/N`) and records what it stored under the
// destination (`segferry-part-K-of-N.json`), and `finish` checks every unit and writes the
// manifest. The bucket is the meeting point; no part talks to another.

/** A plan as a file: what `segferry plan --out` writes. Free of credentials, like the plan. */
export interface PlanFile {
  kind: 'segferry-plan';
  version: 1;
  /** The destination every part writes to (no credentials: S3 keys come from each host's environment). */
  to: string;
  createdAt: string;
  plan: ExportPlan;
}

/** The plan file of a plan and its destination. */
export function planFile(plan: ExportPlan, to: string): PlanFile {
  return { kind: 'segferry-plan', version: 1, to, createdAt: new Date().toISOString(), plan };
}

/** Parse a plan file (untrusted: its structure is checked; its SQL parts are checked again where used). */
export function parsePlanFile(text: string, where: string): PlanFile {
  let f: PlanFile;
  try {
    f = JSON.parse(text) as PlanFile;
  } catch (e) {
    throw new ManifestInvalidError(`${where} is not valid JSON`, { cause: e });
  }
  const p = f?.plan;
  if (f?.kind !== 'segferry-plan' || f.version !== 1 || typeof f.to !== 'string' || typeof p !== 'object' || p === null
    || p.version !== 1 || !Array.isArray(p.tables) || !Array.isArray(p.nodes) || typeof p.format?.kind !== 'string'
    || !Number.isSafeInteger(p.segmentSize) || !p.tables.every((t) => Array.isArray(t?.reads) && typeof t.objectName === 'string')) {
    throw new ManifestInvalidError(`${where} is not a segferry plan file (segferry plan --to DEST --out FILE writes one)`);
  }
  // Range starts become ctid literals in SQL (lib/pg/sql.ts checks them again).
  for (const t of p.tables) {
    for (const sp of Array.isArray(t.streams) ? t.streams : []) {
      if (sp?.ranges !== undefined && !validRangeStarts(sp.ranges)) throw new ManifestInvalidError(`${where}: table ${t.objectName} has bad page ranges on node ${String(sp.node)}`);
      // It decides the settings a range's COPY runs under (lib/export/exporter.ts scanSettingsSQL).
      if (!validStreamScan(sp?.scan)) throw new ManifestInvalidError(`${where}: table ${t.objectName} has an unknown stream scan on node ${String(sp.node)} (seq-filter or tid-range)`);
    }
  }
  // Held snapshot ids reach SET TRANSACTION SNAPSHOT: their shape and nodes are checked here (and again where used).
  const snapshots = checkPlanSnapshots(p.snapshots, p.nodes.map((n) => n?.name), where);
  if (snapshots) p.snapshots = snapshots;
  // The wrapped data key reaches KMS or the unwrapping: checked as a manifest's entry is.
  if (p.clientEncryption !== undefined) checkClientEncryption(p.clientEncryption, (why) => new ManifestInvalidError(`${where}: ${why}`));
  if (p.objectChecksum !== undefined && !isObjectChecksum(p.objectChecksum)) throw new ManifestInvalidError(`${where}: objectChecksum must be crc32 or sha256`);
  return f;
}

/**
 * Encrypt a plan run in parts (`segferry plan --out FILE --encrypt …`): make the export's one
 * data key now, with `encrypt`'s key file or KMS key (`GenerateDataKey`), and return the plan
 * carrying it wrapped (`clientEncryption`, as the manifest will record it). The plain key is
 * dropped here: every part unwraps the wrapped one with its own `--encrypt` (the same key file
 * on each host, or KMS `Decrypt`), so all objects share one key and `finish` records it.
 * `s3`: where KMS is reached (default: the SDK's own endpoint and credentials).
 */
export async function encryptPlan(plan: ExportPlan, encrypt: EncryptOption, s3?: S3Options): Promise<ExportPlan> {
  return { ...plan, clientEncryption: await planDataKey(encrypt, s3) };
}

/**
 * The wrapped data key {@link encryptPlan} puts into a plan, made without the plan: call it
 * before planning so that a missing or bad key file, or a KMS key that cannot be used, fails
 * before any database work (EncryptionKeyError). The plain key is dropped here.
 */
export async function planDataKey(encrypt: EncryptOption, s3?: S3Options): Promise<ClientEncryption> {
  const keys = await openKeySource(checkEncryptOption(encrypt), s3);
  const { dataKey, manifest } = await keys.newDataKey();
  dataKey.fill(0);
  return manifest;
}

/**
 * The cipher of a part: the plan's data key unwrapped with `encrypt`, before anything is read
 * or stored (EncryptionKeyError: no key, or another key, for an encrypted plan;
 * InvalidOptionError: a key for a plan that is not encrypted). Undefined: not encrypted.
 */
async function partCipher(plan: ExportPlan, encrypt: EncryptOption | undefined, s3: S3Options | undefined, to: string): Promise<ObjectCipher | undefined> {
  const dataKey = await unwrapFor(plan.clientEncryption, encrypt === undefined ? undefined : checkEncryptOption(encrypt), s3, to);
  return dataKey ? { dataKey, chunkSize: plan.clientEncryption!.chunkSize } : undefined;
}

/** A unit's share of the estimated bytes (a range unit: its pages' share of the relation). */
function unitBytes(u: ExportUnit, plan: Pick<ExportPlan, 'tables'>): number {
  const bytes = u.reads.reduce((a, r) => a + r.estimatedBytes, 0);
  const pages = u.table.streams?.find((s) => s.node === u.node)?.pages;
  const range = u.reads[0]?.pages;
  if (!range || !pages) return bytes;
  void plan;
  return (bytes * ((range[1] ?? pages) - range[0])) / pages;
}

/**
 * The plan's units in `n` parts balanced by estimated bytes: (table, node) pairs, each whole
 * (the streams of a pair share one segment counter), biggest first, each to the lightest part
 * so far (ties: the lowest part). Deterministic: every host computes the same parts. Pure.
 */
export function planParts(plan: Pick<ExportPlan, 'tables'>, n: number): ExportUnit[][] {
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidOptionError(`the number of parts must be a whole number of at least 1 (got ${n})`);
  const groups = new Map<string, ExportUnit[]>();
  for (const u of planUnits(plan)) groups.set(u.group, [...(groups.get(u.group) ?? []), u]);
  const sized = [...groups.values()].map((units, i) => ({ units, i, bytes: units.reduce((a, u) => a + unitBytes(u, plan), 0) }));
  sized.sort((a, b) => b.bytes - a.bytes || a.i - b.i);
  const parts = Array.from({ length: n }, () => ({ bytes: 0, units: [] as ExportUnit[] }));
  for (const g of sized) {
    const p = parts.reduce((best, x) => (x.bytes < best.bytes ? x : best), parts[0]!);
    p.bytes += g.bytes;
    p.units.push(...g.units);
  }
  // Plan order inside each part.
  const order = new Map(planUnits(plan).map((u, i) => [u.id, i]));
  return parts.map((p) => p.units.sort((a, b) => order.get(a.id)! - order.get(b.id)!));
}

/** Parse `K/N` (K from 1). */
export function parsePart(s: string): { k: number; n: number } {
  const m = /^([1-9]\d{0,5})\/([1-9]\d{0,5})$/.exec(s.trim());
  if (!m || Number(m[1]) > Number(m[2])) throw new InvalidOptionError(`--part ${JSON.stringify(s)}: give K/N with 1 ≤ K ≤ N, e.g. 2/8`);
  return { k: Number(m[1]), n: Number(m[2]) };
}

/** Options of {@link runPlanPart}. */
export interface RunPartOptions {
  plan: ExportPlan;
  /** Destination (default: none; the CLI takes the plan file's). */
  to: string | ObjectStore;
  /** Part K (from 1) of N. */
  part: { k: number; n: number };
  /** Sessions reading at once (default: the plan's concurrency). */
  concurrency?: number;
  /** S3 client settings. */
  s3?: S3Options;
  /**
   * Client-side encryption (default none): required exactly when the plan carries a data key
   * (encryptPlan); the key file or KMS that unwraps it (`{ kms: true }` takes the plan's key id).
   */
  encrypt?: EncryptOption;
  /** Cancel (default: none): as for exportTables. */
  signal?: AbortSignal;
  /** Progress events. */
  onEvent?: EventListener;
}

/** What {@link runPlanPart} did. */
export interface PartResult {
  part: { k: number; n: number };
  /** Units of the part, and how many of them an earlier run of it had already stored. */
  units: number;
  kept: number;
  rows: number;
  bytes: number;
  objects: number;
}

/**
 * Run part K of N of a plan: export its units to the destination and record each finished
 * unit in `segferry-part-K-of-N.json` there. A part run again keeps the (table, node) pairs its
 * record lists whole and redoes every other pair whole (its leftovers deleted first). Parts do
 * not take the prefix claim (they write disjoint keys by construction); `finishPlan` does.
 * Exporters run on this thread. A plan carrying a data key (encryptPlan) needs `encrypt`: the
 * key is unwrapped first, so a wrong key fails before anything is stored. A plan carrying held snapshots (`snapshots`, from
 * holdSnapshots) has every session on a node import that node's snapshot; otherwise each part
 * exports each node's snapshot itself: see docs/multi-host.md for what consistency each gives.
 */
export async function runPlanPart(opts: RunPartOptions): Promise<PartResult> {
  const { plan, part } = opts;
  const emit = makeEmitter('export', opts.onEvent);
  const s3 = withRetryEvents(opts.s3, emit);
  const store = typeof opts.to === 'string' ? openStore(opts.to, s3) : opts.to;
  const key = partKey(part.k, part.n);
  try {
    // A missing or wrong key fails before the store is touched.
    const cipher = await partCipher(plan, opts.encrypt, opts.s3, store.url);
    await store.check();
    if (await store.head(MANIFEST_KEY)) throw new PrefixNotEmptyError(`${store.url} already holds a finished export: nothing to run`);
    const mine = planParts(plan, part.n)[part.k - 1]!;
    const digest = planDigest(plan);
    const previous = await readCheckpoint(store, key);
    const cp: Checkpoint = previous && previous.planDigest === digest
      ? previous
      : { kind: 'segferry-checkpoint', version: 1, planDigest: digest, createdAt: new Date().toISOString(), updatedAt: '', units: [], part: [part.k, part.n] };
    // Keep a pair only when all its units are recorded: a pair is redone whole (numbers stay 0..n-1).
    const recorded = doneUnits(mine, cp.units);
    const keptGroups = new Set(mine.filter((u) => recorded.has(u.id)).map((u) => u.group));
    for (const u of mine) if (!recorded.has(u.id)) keptGroups.delete(u.group);
    const done = mine.filter((u) => keptGroups.has(u.group)).map((u) => resultOf(u, recorded.get(u.id)!));
    const todo = mine.filter((u) => !keptGroups.has(u.group));
    cp.units = done.map((r) => recorded.get(r.unit.id)!);
    const stems = [...new Set(mine.map((u) => segmentStem(u.table.objectName, u.node)))];
    const checkpoint = new CheckpointWriter(store, cp, undefined, stems, key);
    await deleteUnitObjects(store, todo.map((u) => ({ objectName: u.table.objectName, node: u.node })));
    await checkpoint.save();

    const results: UnitResult[] = [...done];
    const counters = new Map<string, SegmentNumbers>();
    for (const u of todo) if (u.stream && !counters.has(u.group)) counters.set(u.group, new SegmentNumbers());
    const runNode: NodeRunner = async (w, signal, onUnitDone) => {
      await exportNode(w, plan, store, signal, emit, onUnitDone, (u) => (u.stream ? counters.get(u.group)!.stream() : undefined), cipher);
    };
    const ctx: Omit<ExportContext, 'signal'> = { store, plan, emit, checkpoint, runNode, results };
    const items = workItems(plan, todo);
    // Nodes whose snapshot the plan carries (held by `plan --hold-snapshots`) need no session of their own.
    const held = (node: string) => plan.snapshots?.[node] !== undefined;
    const shared = new Map<string, number>();
    for (const w of items) if (w.shared && !held(w.node.name)) shared.set(w.node.name, (shared.get(w.node.name) ?? 0) + 1);
    const snapshots = new SnapshotSessions(plan.nodes, shared);
    try {
      await runPool(items, opts.concurrency ?? plan.concurrency, async (item, signal) => {
        if (!item.shared || held(item.node.name)) return void (await runQueue({ ...ctx, signal }, item));
        try {
          const snapshot = await snapshots.acquire(item.node.name);
          await runQueue({ ...ctx, signal }, { node: item.node, units: item.units, snapshot, ...(item.queue ? { queue: item.queue } : {}) });
        } finally {
          await snapshots.release(item.node.name);
        }
      }, opts.signal);
    } finally {
      await snapshots.closeAll();
    }
    const ours = results.filter((r) => mine.includes(r.unit));
    return {
      part,
      units: mine.length,
      kept: done.length,
      rows: ours.reduce((a, r) => a + r.rows, 0),
      bytes: ours.reduce((a, r) => a + r.bytes, 0),
      objects: ours.reduce((a, r) => a + r.objects.length, 0),
    };
  } finally {
    if (typeof opts.to === 'string') store.close();
  }
}

/** JSON with every object's keys sorted (undefined members left out, as JSON.stringify does). */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * The fingerprint `finish` records in the manifest (`planFingerprint`): SHA-256 (hex) of the
 * whole plan as JSON with keys sorted, so a plan read again from its file, or the same plan
 * object, gives the same; a plan made again (new estimates, snapshots, data key) does not.
 */
export function planFingerprint(plan: ExportPlan): string {
  return createHash('sha256').update(canonicalJson(plan)).digest('hex');
}

/** Options of {@link finishPlan}. */
export interface FinishPlanOptions {
  plan: ExportPlan;
  to: string | ObjectStore;
  s3?: S3Options;
  onEvent?: EventListener;
}

/**
 * Finish a plan run in parts: every unit of the plan must be recorded by a part record under
 * the destination, with each recorded object present at its recorded size; else
 * PlanIncompleteError naming the missing units. Then the manifest is written (under the prefix
 * claim, conditionally where the store allows), recording the plan's fingerprint
 * ({@link planFingerprint}), and the part records are deleted. An encrypted plan's wrapped data
 * key becomes the manifest's `clientEncryption` (finish needs no key).
 *
 * Idempotent: where the destination already holds a manifest recording this plan's fingerprint
 * (finish ran before, e.g. its answer was lost), nothing is written; that manifest is returned,
 * with an `info`-level `warning` event `already-finished`, and part records of this plan that a
 * failed delete left are removed. Any other manifest there: PrefixNotEmptyError, with a hint.
 */
export async function finishPlan(opts: FinishPlanOptions): Promise<Manifest> {
  const { plan } = opts;
  const emit = makeEmitter('export', opts.onEvent);
  const store = typeof opts.to === 'string' ? openStore(opts.to, withRetryEvents(opts.s3, emit)) : opts.to;
  try {
    await store.check();
    const digest = planDigest(plan);
    const fingerprint = planFingerprint(plan);
    if (await store.head(MANIFEST_KEY)) {
      let there: Manifest | undefined;
      try {
        there = await readManifest(store);
      } catch (e) {
        if (!(e instanceof ManifestInvalidError)) throw e;
      }
      if (there?.planFingerprint === fingerprint) {
        // The manifest records this very plan: finished before. Leftover part records of this plan go.
        const left: string[] = [];
        for await (const o of store.list('segferry-part-')) {
          if (!PART_KEY.test(o.key)) continue;
          const r = await readCheckpoint(store, o.key).catch(() => undefined);
          if (r?.planDigest === digest) left.push(o.key);
        }
        await store.delete(left).catch(() => {});
        emit({ type: 'warning', level: 'info', code: 'already-finished', message: `${store.url} already holds this plan's finished export (manifest ${there.id}, completed ${there.completedAt}): nothing written` });
        return there;
      }
      const why = !there ? 'its manifest is not readable'
        : there.planFingerprint === undefined ? `its manifest ${there.id} records no plan (written by segferry export, or by finish of a version before plan fingerprints: then segferry check --at DEST tells whether it is whole)`
          : `its manifest ${there.id} was finished from another plan`;
      throw new PrefixNotEmptyError(`${store.url} already holds a finished export that is not this plan's: ${why}`, {
        hint: 'this plan cannot finish over another export: plan again with another destination (segferry plan ... --to NEW --out FILE) and run its parts there; segferry check --at DEST tells what the export there holds',
      });
    }
    const recordKeys: string[] = [];
    const entries: CheckpointUnit[] = [];
    const sizes = new Map<string, number>();
    for await (const o of store.list('')) {
      sizes.set(o.key, o.size);
      if (PART_KEY.test(o.key)) recordKeys.push(o.key);
    }
    for (const k of recordKeys.sort()) {
      const r = await readCheckpoint(store, k);
      if (r && r.planDigest === digest) entries.push(...r.units);
    }
    const units = planUnits(plan);
    const done = doneUnits(units, entries);
    const missing: string[] = [];
    const results: UnitResult[] = [];
    for (const u of units) {
      const c = done.get(u.id);
      const bad = !c ? 'not stored' : c.objects.find((o) => sizes.get(o.key) !== o.bytes);
      if (bad) missing.push(`${u.id} (${typeof bad === 'string' ? bad : `object ${bad.key} ${sizes.has(bad.key) ? 'has another size' : 'is missing'}`})`);
      else results.push(resultOf(u, c!));
    }
    if (missing.length > 0) {
      const shown = missing.slice(0, 20).join(', ') + (missing.length > 20 ? ` and ${missing.length - 20} more` : '');
      throw new PlanIncompleteError(`${missing.length} of ${units.length} units of the plan are not done under ${store.url}: ${shown}`, {
        hint: 'run the parts that hold them again (segferry run --plan FILE --part K/N), then finish',
      });
    }
    const claim = await acquireClaim(store, { onBestEffort: (message) => emit({ type: 'warning', code: 'claim-best-effort', message }) });
    try {
      const createdAt = new Date().toISOString();
      const manifest = buildManifest(plan, results, createdAt, opts.s3);
      if (plan.clientEncryption) manifest.clientEncryption = plan.clientEncryption;
      manifest.planFingerprint = fingerprint;
      await commitExclusive(claim, MANIFEST_KEY, serializeManifest(manifest));
      await store.delete(recordKeys).catch(() => {});
      return manifest;
    } finally {
      await claim.release();
    }
  } finally {
    if (typeof opts.to === 'string') store.close();
  }
}
