import { createHash } from 'node:crypto';
import { ManifestInvalidError } from '../errors.js';
import { CHECKPOINT_KEY } from '../manifest/keys.js';
import type { ArrowColumnSummary, ClientEncryption, ManifestObject, ParquetColumnSummary, RowChecksum } from '../manifest/types.js';
import { checkClientEncryption } from '../manifest/io.js';
import { displayName } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import type { ExportPlan } from './plan.js';
import type { ExportUnit } from './units.js';
import { validRangeStarts } from './streams.js';

export { CHECKPOINT_KEY } from '../manifest/keys.js';

/** One finished unit: all its objects are stored. */
export interface CheckpointUnit {
  /** Its {@link ExportUnit.id}. Absent in checkpoints of earlier versions: they match on (table, node). */
  unit?: string;
  /** Table display name (`schema.name`). */
  table: string;
  /** The node read. */
  node: string;
  objects: ManifestObject[];
  rows: number;
  bytes: number;
  checksum?: RowChecksum;
  /** Arrow format: the unit's column summary. */
  arrow?: ArrowColumnSummary[];
  parquet?: ParquetColumnSummary[];
}

/** Durable list of finished units; `--resume` keeps them and redoes the rest. */
export interface Checkpoint {
  kind: 'segferry-checkpoint';
  version: 1;
  /** Digest of what the export reads and how it writes: a resume must plan the same. */
  planDigest: string;
  /**
   * The same, part by part ({@link planFields}), so that a refused resume names what changed.
   * Absent in checkpoints of earlier versions.
   */
  planFields?: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  units: CheckpointUnit[];
  /** Run id of the prefix claim of the run that wrote this (lets `--resume` take a dead run's claim over). */
  runId?: string;
  /**
   * Key stems (`<table>_<node>_segment.`) of every unit the runs may write, recorded before
   * the first object: leftovers under them are provably this export's (lib/export/ownership.ts).
   */
  stems?: string[];
  /**
   * First page of each range of the (table, node) pairs read in streams, by unit group
   * (`<objectName>_<node>`), as the first run cut them: a resume keeps them (docs/streams.md).
   */
  ranges?: Record<string, number[]>;
  /** A part record of a plan run on many hosts (lib/export/parts.ts): part K of N. */
  part?: [number, number];
  /**
   * Client-side encryption: the data key (wrapped, as in the manifest) of the objects stored so
   * far, recorded before the first object, so a resumed export keeps the same data key.
   */
  clientEncryption?: ClientEncryption;
  /**
   * The manifest id fixed in advance (`copy --via`: the copy's ledger id), recorded before the
   * first object so that a resumed run writes the manifest under the same id.
   */
  manifestId?: string;
}

/** What of a plan decides the objects' content (not size estimates), in a fixed order. */
function planEssence(plan: ExportPlan) {
  return {
    format: plan.format,
    segmentSize: plan.segmentSize,
    filter: plan.filter,
    settings: plan.sessionSettings,
    checksums: plan.checksums,
    // Only when set, so that digests of plans without them stay as they were.
    ...(plan.compression ? { compression: plan.compression } : {}),
    ...(plan.extension ? { extension: true } : {}),
    ...(plan.arrowCompression ? { arrowCompression: plan.arrowCompression } : {}),
    // SHA-256 as before the option: checkpoints of earlier runs keep their digest.
    ...(plan.objectChecksum !== undefined && plan.objectChecksum !== 'sha256' ? { objectChecksum: plan.objectChecksum } : {}),
    // A plan's data key (run in parts): part records stored under another key do not count.
    ...(plan.clientEncryption ? { wrappedKey: plan.clientEncryption.wrappedKey } : {}),
    tables: plan.tables.map((t) => ({
      table: displayName(t.table),
      objectName: t.objectName,
      columns: t.columns.map((c) => [c.name, c.type]),
      reads: t.reads.map((r) => [r.node, displayName(r.relation), r.columns ?? null]),
    })),
  };
}

/** Digest of the parts of a plan that decide the objects' content (not size estimates). */
export function planDigest(plan: ExportPlan): string {
  return createHash('sha256').update(JSON.stringify(planEssence(plan))).digest('hex');
}

const short = (v: unknown) => createHash('sha256').update(JSON.stringify(v) ?? 'null').digest('hex').slice(0, 16);

/**
 * The same essence as {@link planDigest}, each part digested alone (16 hex digits each): every
 * option, each table's object name and columns (`columns:<table>`), the relations read for it
 * (`reads:<table>`), and the tables' order (`tables`). A checkpoint records them so that a resume
 * refused for another plan can say what changed ({@link planDifference}). Digests only: a filter
 * or a key never appears in the checkpoint in the clear.
 */
export function planFields(plan: ExportPlan): Record<string, string> {
  const { tables, ...options } = planEssence(plan);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(options)) out[k] = short(v);
  for (const t of tables) {
    out[`columns:${t.table}`] = short([t.objectName, t.columns]);
    out[`reads:${t.table}`] = short(t.reads);
  }
  out.tables = short(tables.map((t) => t.table));
  return out;
}

/** How each option of {@link planFields} is given: the CLI flag and the library option. */
const FIELD_NAMES: Record<string, string> = {
  format: 'the format or its options (--format and its flags; format)',
  segmentSize: 'the segment size (--segment-size; segmentSize)',
  filter: 'the filter (--where; where)',
  settings: 'the session settings the values are written under (fixed by the segferry version: another version began it)',
  checksums: 'the row checksums (--no-checksums; checksums)',
  compression: 'the compression (--compress; compress)',
  extension: 'the key extensions (--extension; extension)',
  arrowCompression: 'the Arrow compression (--arrow-compression; arrowCompression)',
  objectChecksum: 'the object checksum (--object-checksum; objectChecksum)',
  wrappedKey: "the plan's data key (--encrypt)",
  tables: 'the order of the tables (--table; tables)',
};

/**
 * The first difference between the plan a checkpoint recorded (`before`, its `planFields`) and
 * `now`, as a clause naming the option (CLI flag; library option) or the table; undefined when
 * `before` is not a record of digests (a checkpoint of an earlier version) or nothing differs.
 */
export function planDifference(before: unknown, now: Record<string, string>): string | undefined {
  if (typeof before !== 'object' || before === null || Array.isArray(before)) return undefined;
  const b = before as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(now).filter((k) => k !== 'tables'), ...Object.keys(b).filter((k) => k !== 'tables'), 'tables'])];
  for (const k of keys) {
    if (b[k] === now[k]) continue;
    const colon = k.indexOf(':');
    if (colon < 0) return `${FIELD_NAMES[k] ?? k} changed`;
    const [kind, t] = [k.slice(0, colon), k.slice(colon + 1)];
    if (b[`columns:${t}`] === undefined) return `table ${t} was added (--table; tables)`;
    if (now[`columns:${t}`] === undefined) return `table ${t} was left out (--table; tables)`;
    return kind === 'columns' ? `the columns of table ${t} changed (--columns; columns, or the table's definition)` : `the nodes or relations read for table ${t} changed (the topology)`;
  }
  return undefined;
}

/** Read the checkpoint (or a part record: `key`) under a store's root, if any. */
export async function readCheckpoint(store: ObjectStore, key = CHECKPOINT_KEY): Promise<Checkpoint | undefined> {
  const b = await store.getBytes(key);
  if (!b) return undefined;
  try {
    const c = JSON.parse(b.toString('utf8')) as Checkpoint;
    if (c.kind !== 'segferry-checkpoint' || c.version !== 1 || !Array.isArray(c.units)) throw new Error('not a checkpoint');
    // Range starts become ctid literals in SQL: whole page numbers from 0, strictly increasing.
    if (c.ranges !== undefined && !validRanges(c.ranges)) throw new Error('bad page ranges');
    if (c.clientEncryption !== undefined) checkClientEncryption(c.clientEncryption, (why) => new ManifestInvalidError(why));
    // It becomes a ledger key in SQL parameters only, but keep it a plain id.
    if (c.manifestId !== undefined && (typeof c.manifestId !== 'string' || !/^[A-Za-z0-9:._-]{1,100}$/.test(c.manifestId))) throw new Error('bad manifest id');
    return c;
  } catch (e) {
    throw new ManifestInvalidError(`${store.url}${key} is not a readable segferry checkpoint`, { key, cause: e });
  }
}

/** Serialises checkpoint writes: each `record` stores the whole list after adding a unit. */
export class CheckpointWriter {
  readonly #store: ObjectStore;
  readonly #cp: Checkpoint;
  readonly #key: string;
  #chain: Promise<void> = Promise.resolve();

  /**
   * `runId`: the claim of the run writing it; `stems`: key stems of every unit it may write,
   * added to those of earlier runs and stored with the first save, before any object;
   * `key`: where it is stored (default the checkpoint's; a part record's, lib/export/parts.ts).
   */
  constructor(store: ObjectStore, cp: Checkpoint, runId?: string, stems?: string[], key = CHECKPOINT_KEY) {
    this.#store = store;
    this.#key = key;
    this.#cp = cp;
    if (runId !== undefined) cp.runId = runId;
    if (stems) cp.stems = [...new Set([...(cp.stems ?? []), ...stems])].sort();
  }

  get units(): readonly CheckpointUnit[] {
    return this.#cp.units;
  }

  /** Store the checkpoint as it is now. */
  save(): Promise<void> {
    const next = this.#chain.then(() => {
      this.#cp.updatedAt = new Date().toISOString();
      return this.#store.putBytes(this.#key, JSON.stringify(this.#cp) + '\n');
    });
    this.#chain = next.catch(() => {});
    return next;
  }

  /** The recorded range starts (see {@link Checkpoint.ranges}). */
  get ranges(): Readonly<Record<string, number[]>> {
    return this.#cp.ranges ?? {};
  }

  /** Record range starts of groups not recorded yet (stored with the next save). */
  addRanges(r: Record<string, number[]>): void {
    for (const [g, starts] of Object.entries(r)) if (!this.#cp.ranges?.[g]) (this.#cp.ranges ??= {})[g] = starts;
  }

  /** Drop the entries of these units (their objects are being deleted to redo them) and store the checkpoint. */
  forget(ids: ReadonlySet<string>): Promise<void> {
    this.#cp.units = this.#cp.units.filter((u) => u.unit === undefined || !ids.has(u.unit));
    return this.save();
  }

  /** Add a finished unit and store the checkpoint. */
  record(u: CheckpointUnit): Promise<void> {
    this.#cp.units.push(u);
    return this.save();
  }
}

/** True for `{ group: [0, a, b, …] }` with strictly increasing whole page numbers. */
function validRanges(r: unknown): boolean {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return false;
  return Object.values(r).every(validRangeStarts);
}
