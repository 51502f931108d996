import type { DataKey, KeySource } from '../crypto/keys.js';
import { EncryptionKeyError, InvalidOptionError, PrefixNotEmptyError } from '../errors.js';
import { ROW_HASH_ALGORITHM } from '../format/row-hash.js';
import { MANIFEST_KEY, unitObjectMatcher } from '../manifest/keys.js';
import type { ObjectStore } from '../store/types.js';
import { CheckpointWriter, planDifference, planDigest, planFields, readCheckpoint, type Checkpoint } from './checkpoint.js';
import { OBJECT_CHECKSUMS } from '../manifest/digest.js';
import { planChecksum, type ExportPlan } from './plan.js';
import { doneUnits, planUnits, rangeStarts, resultOf, type ExportUnit, type UnitResult } from './units.js';

/** Where an export starts: its checkpoint, the units already done and the units to run. */
export interface ExportStart {
  checkpoint: CheckpointWriter;
  createdAt: string;
  /** Units a previous run stored (resume only). */
  done: UnitResult[];
  /** Units to export, in plan order. */
  todo: ExportUnit[];
  /** Client-side encryption: the export's data key (a resume: the first run's). */
  dataKey?: DataKey;
  /** The manifest id the checkpoint records (given to the first run), if any. */
  manifestId?: string;
}

/**
 * Delete every object (and partial upload) of the given units, so they can be written again,
 * except the keys in `keep` (objects of the kept streams of a pair read in ranges).
 */
export async function deleteUnitObjects(store: ObjectStore, units: { objectName: string; node: string }[], keep: ReadonlySet<string> = new Set()): Promise<void> {
  if (units.length === 0) return;
  const mine = unitObjectMatcher(units);
  const del: string[] = [];
  for await (const o of store.list('')) if (mine(o.key) && !keep.has(o.key)) del.push(o.key);
  await store.delete(del);
}

/**
 * Start an export's checkpoint. Fresh (`resume` false): every unit is to do. Resume: refuse a
 * finished export or a checkpoint of another plan; keep the units the checkpoint lists as done
 * (by unit id, or by (table, node) for checkpoints of earlier versions), except md5-era
 * checksums, which do not add to `copy-rowhash64` ones; delete whatever the other units left
 * behind, so each is redone from a clean point. The checkpoint is stored before returning,
 * with the claiming run's id and the key stems of every unit it may write (lib/export/ownership.ts).
 *
 * `keys` (client-side encryption; default none): a fresh data key, recorded wrapped in the
 * checkpoint before any object; a resume unwraps the first run's and keeps it, so kept and
 * redone objects share one key, as the manifest records one. A resume must use encryption
 * exactly when the first run did. A plan carrying a wrapped data key (`plan.clientEncryption`)
 * needs `keys` and uses that key.
 *
 * `manifestId` (default none): recorded in the checkpoint; a resume must give the same, or none
 * (then the recorded one is returned).
 */
export async function startExport(store: ObjectStore, plan: ExportPlan, resume: boolean, runId?: string, stems?: string[], keys?: KeySource, manifestId?: string): Promise<ExportStart> {
  const digest = planDigest(plan);
  let previous: Checkpoint | undefined;
  if (resume) {
    if (await store.head(MANIFEST_KEY)) {
      throw new PrefixNotEmptyError(`${store.url} already holds a finished export: nothing to resume`, {
        hint: 'choose another prefix, or pass overwrite (--overwrite) to replace it',
      });
    }
    previous = await readCheckpoint(store);
    if (previous && previous.planDigest !== digest) {
      // Planned alike but for the object checksum (e.g. begun by a version whose only digest was SHA-256).
      const began = OBJECT_CHECKSUMS.find((a) => a !== planChecksum(plan) && planDigest({ ...plan, objectChecksum: a }) === previous!.planDigest);
      if (began) {
        throw new InvalidOptionError(`the unfinished export under ${store.url} was started with ${began} object checksums, not ${planChecksum(plan)}`, {
          hint: `resume it with --object-checksum ${began} (objectChecksum: '${began}'), or pass overwrite (--overwrite) to start again`,
        });
      }
      // Checkpoints of earlier versions record the digest only: then the candidates are listed.
      const changed = planDifference(previous.planFields, planFields(plan));
      throw new InvalidOptionError(`the unfinished export under ${store.url} was planned differently: ${changed ?? 'tables, nodes, columns, format, segment size or filter changed'}`, {
        hint: 'resume with the same options as the first run, or pass overwrite (--overwrite) to start again',
      });
    }
  }
  // Ranges as the first run cut them, so that kept and redone streams cover every page once.
  const units = planUnits(plan, previous?.ranges ?? {});
  const createdAt = previous?.createdAt ?? new Date().toISOString();
  // A checkpoint of an earlier version (same digest) gains the per-part digests too.
  if (previous) previous.planFields ??= planFields(plan);
  const cp: Checkpoint = previous ?? { kind: 'segferry-checkpoint', version: 1, planDigest: digest, planFields: planFields(plan), createdAt, updatedAt: createdAt, units: [] };
  let dataKey: DataKey | undefined;
  if (previous?.clientEncryption && !keys) {
    throw new EncryptionKeyError(`the unfinished export under ${store.url} is encrypted: resume it with the same --encrypt`);
  }
  if (plan.clientEncryption && !keys) {
    throw new EncryptionKeyError(`the plan carries an encrypted export's data key (key id ${plan.clientEncryption.keyId}): run it with the same --encrypt`);
  }
  if (keys) {
    // A plan carrying its data key (encryptPlan) fixes the key; so does the first run's checkpoint.
    const recorded = previous?.clientEncryption ?? plan.clientEncryption;
    if (recorded) {
      dataKey = { dataKey: await keys.unwrap(recorded), manifest: recorded };
    } else {
      if (previous && previous.units.length > 0) {
        throw new InvalidOptionError(`the unfinished export under ${store.url} was started without encryption: resume it without --encrypt`, {
          hint: 'or pass overwrite (--overwrite) to start again encrypted',
        });
      }
      dataKey = await keys.newDataKey();
    }
    cp.clientEncryption = dataKey.manifest;
  }
  if (manifestId !== undefined) {
    if (cp.manifestId !== undefined && cp.manifestId !== manifestId) {
      throw new InvalidOptionError(`the unfinished export under ${store.url} is to be manifest ${cp.manifestId}, not ${manifestId}`);
    }
    cp.manifestId = manifestId;
  }
  // Units an older version stored carry the md5 checksum, which does not add to this one: redo them.
  if (plan.checksums) cp.units = cp.units.filter((u) => u.checksum?.algorithm === ROW_HASH_ALGORITHM);
  const kept = doneUnits(units, cp.units);
  // Keep only the entries that name a unit of this plan, once each.
  cp.units = [...kept.values()];
  const checkpoint = new CheckpointWriter(store, cp, runId, stems);
  checkpoint.addRanges(rangeStarts(units));
  const done: UnitResult[] = [];
  const todo: ExportUnit[] = [];
  for (const u of units) {
    const c = kept.get(u.id);
    if (c) done.push(resultOf(u, c));
    else todo.push(u);
  }
  // A clean point for every unit that is redone: delete whatever it left behind, except the
  // objects of kept streams of the same (table, node).
  const keep = new Set(done.flatMap((r) => r.objects.map((o) => o.key)));
  if (resume) await deleteUnitObjects(store, todo.map((u) => ({ objectName: u.table.objectName, node: u.node })), keep);
  await checkpoint.save();
  return { checkpoint, createdAt, done, todo, ...(dataKey ? { dataKey } : {}), ...(cp.manifestId !== undefined ? { manifestId: cp.manifestId } : {}) };
}
