/**
 * What under a prefix is provably this export's (issue 13): a bucket is shared ground, so
 * `--overwrite`, `--resume` and `cleanup --yes` delete only keys that sit directly under the
 * prefix and that the prefix's own manifest or checkpoint names. Everything else that merely
 * looks like segferry's (a nested export, another job's `*_segment.N`) is left alone and reported.
 */
import { ManifestInvalidError } from '../errors.js';
import { readManifest } from '../manifest/io.js';
import { CLAIM_KEY, MANIFEST_KEY, PART_KEY, isControlKey, isSegferryKey, isSegmentOf, rejectsObjectOf, segmentStem, segmentStemOf } from '../manifest/keys.js';
import type { Manifest } from '../manifest/types.js';
import { acquireClaim, readClaim, type Claim, type PrefixClaim } from '../store/claim.js';
import type { ObjectInfo, ObjectStore } from '../store/types.js';
import { readCheckpoint, type Checkpoint } from './checkpoint.js';
import type { ExportPlan } from './plan.js';

/** Key stem of a (table, node) unit: its objects are `<stem><n>`. */
export const unitStem = segmentStem;

/**
 * Unit stems a manifest or checkpoint names: the manifest's objects and every (table, source
 * node) pair of its tables; the checkpoint's finished units' objects and the stems its runs
 * recorded when they started (before any object of the unit was written); the same of every
 * part record of a plan run in parts (`segferry-part-K-of-N.json`, docs/multi-host.md).
 */
export function ownedStems(src: { manifest?: Manifest | undefined; checkpoint?: Checkpoint | undefined; parts?: readonly Checkpoint[] | undefined }): Set<string> {
  const stems = new Set<string>();
  const m = src.manifest;
  if (m) {
    for (const o of m.objects ?? []) {
      const s = segmentStemOf(o.key);
      if (s) stems.add(s);
    }
    const nodes = (m.source?.nodes ?? []).map((n) => n.name);
    for (const t of m.tables ?? []) {
      for (const n of new Set([...nodes, ...(t.nodes ?? []).map((x) => x.node)])) stems.add(unitStem(t.objectName, n));
    }
  }
  for (const c of [src.checkpoint, ...(src.parts ?? [])]) {
    if (!c) continue;
    for (const s of c.stems ?? []) stems.add(s);
    for (const u of c.units ?? []) {
      for (const o of u.objects ?? []) {
        const s = segmentStemOf(o.key);
        if (s) stems.add(s);
      }
    }
  }
  return stems;
}

/**
 * True when `key` lies directly under the prefix and belongs to one of `stems` (or is a fixed key),
 * or is the rejects object of an import of one of those stems' objects.
 */
export function isOwnedKey(key: string, stems: Set<string>): boolean {
  if (key.includes('/')) return false;
  if (isControlKey(key)) return key !== CLAIM_KEY; // the claim goes only on request
  // Rejects objects of imports of this export (issue 18): ours when their source object is.
  const ro = rejectsObjectOf(key);
  if (ro !== undefined) {
    const st = segmentStemOf(ro);
    return st !== undefined && stems.has(st) && isSegmentOf(ro, st);
  }
  const s = /^(.*_segment\.)(.*)$/.exec(key);
  return s !== null && stems.has(s[1]!) && isSegmentOf(key, s[1]!);
}

/** What {@link surveyPrefix} found. */
export interface PrefixSurvey {
  /** The prefix's manifest, when readable. */
  manifest?: Manifest;
  /** The prefix's checkpoint, when readable. */
  checkpoint?: Checkpoint;
  /** The readable part records of a plan run in parts (an unfinished multi-host export). */
  parts?: Checkpoint[];
  /** The prefix's claim, if any (never counted among `ours`). */
  claim?: Claim;
  /** Objects provably this prefix's export's (manifest and checkpoint included). */
  ours: ObjectInfo[];
  /** Objects that look like segferry's but are not provably ours: never deleted. */
  leftAlone: ObjectInfo[];
  /** Unit stems the manifest and checkpoint name. */
  stems: Set<string>;
}

/**
 * Sort what lies under a store's prefix into this export's own objects and look-alikes.
 * An unreadable manifest or checkpoint names nothing (its objects are then left alone).
 */
export async function surveyPrefix(store: ObjectStore): Promise<PrefixSurvey> {
  const out: PrefixSurvey = { ours: [], leftAlone: [], stems: new Set() };
  if (await store.head(MANIFEST_KEY)) {
    try {
      out.manifest = await readManifest(store);
    } catch (e) {
      if (!(e instanceof ManifestInvalidError)) throw e;
    }
  }
  try {
    const c = await readCheckpoint(store);
    if (c) out.checkpoint = c;
  } catch (e) {
    if (!(e instanceof ManifestInvalidError)) throw e;
  }
  // Part records name their stems like a checkpoint (written before the part's first object).
  for await (const o of store.list('segferry-part-')) {
    if (o.key.includes('/') || !PART_KEY.test(o.key)) continue;
    try {
      const p = await readCheckpoint(store, o.key);
      if (p) (out.parts ??= []).push(p);
    } catch (e) {
      if (!(e instanceof ManifestInvalidError)) throw e;
    }
  }
  const claim = await readClaim(store);
  if (claim) out.claim = claim;
  const stems = ownedStems(out);
  out.stems = stems;
  for await (const o of store.list('')) {
    if (o.key === CLAIM_KEY) continue;
    if (isOwnedKey(o.key, stems)) out.ours.push(o);
    else if (isSegferryKey(o.key)) out.leftAlone.push(o);
  }
  return out;
}

/** Stems of every unit a plan may write: each table on each node (replica fallbacks too). */
export function planStems(plan: ExportPlan): string[] {
  const out = new Set<string>();
  for (const t of plan.tables) for (const n of plan.nodes) out.add(unitStem(t.objectName, n.name));
  return [...out].sort();
}

/**
 * Claim the prefix for an export. A resume may take over the claim of the run that wrote the
 * checkpoint (that run is dead, or the user would not resume); anything else must be absent.
 */
export async function claimForExport(store: ObjectStore, resume: boolean, emit: (e: { type: 'warning'; code: string; message: string; key?: string }) => void): Promise<PrefixClaim> {
  let takeOver: string | undefined;
  if (resume) {
    try {
      takeOver = (await readCheckpoint(store))?.runId;
    } catch {
      /* an unreadable checkpoint fails the resume later, with its own error */
    }
  }
  return acquireClaim(store, {
    ...(takeOver ? { takeOver } : {}),
    onBestEffort: (message) => emit({ type: 'warning', code: 'claim-best-effort', message, key: CLAIM_KEY }),
  });
}
