/**
 * Reject limits on import (issue 18): rows the destination refuses are set aside instead of
 * failing their object, until a limit is passed. PostgreSQL 15's COPY has no ON_ERROR, so the
 * rows are found here: after an object's COPY fails with a data error, its rows are read from
 * storage again and loaded in batches, each inside a savepoint of the object's transaction; a
 * failing batch is split at the line the server names (or halved) until single rows remain,
 * and a row that fails alone is rejected. What loads commits with the object's ledger row.
 */
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { InvalidOptionError, RejectLimitError, RowCountMismatchError, SegferryError, redact } from '../errors.js';
import { RowHasher } from '../format/row-hash.js';
import { rejectsKey } from '../manifest/keys.js';
import { COPY_BINARY_HEADER, COPY_BINARY_TRAILER } from '../pg/copy-binary.js';
import { CopyRowSplitter, type CopyRowFormat } from '../pg/copy-rows.js';
import type { ObjectStore, ObjectWriter } from '../store/types.js';
import { LEDGER_TABLE, readRejected } from './ledger.js';
import type { Sessions } from './sessions.js';

/** Reject options of an import (library and CLI). */
export interface RejectOptions {
  /**
   * Rows of one table the destination may refuse, summed over its objects and nodes (and over
   * earlier runs of the same import, from the ledgers), before the import fails with
   * ERR_REJECT_LIMIT. Default: none (a refused row fails its object, as without this option).
   */
  rejectLimit?: number;
  /** Rows one destination node may refuse, over all tables. Default: none. */
  rejectLimitPerNode?: number;
  /**
   * Where rejects objects go: `s3://bucket/prefix`, a directory, `file://` URL or an open store.
   * Default: next to the export (its own prefix). Only with a limit.
   */
  rejects?: string | ObjectStore;
}

/** Check the limits: whole numbers ≥ 0. Returns true when any is set. */
export function checkRejectOptions(o: RejectOptions): boolean {
  for (const k of ['rejectLimit', 'rejectLimitPerNode'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new InvalidOptionError(`${k} must be a whole number of at least 0`);
  }
  const on = o.rejectLimit !== undefined || o.rejectLimitPerNode !== undefined;
  if (o.rejects !== undefined && !on) throw new InvalidOptionError('rejects (--rejects) needs a reject limit (--reject-limit or --reject-limit-per-node)');
  return on;
}

/**
 * Errors a row can cause, as opposed to the session's or the table's: SQLSTATE class 22 (data
 * exception: a malformed row, bad encoding, a value out of range or too long) and class 23
 * (integrity constraint violation: NOT NULL, CHECK, unique, foreign key). Connection loss,
 * permissions or a missing table fail the object as before.
 */
export function isRowError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return !(e instanceof SegferryError) && typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

/**
 * The line a COPY error names in its context (`COPY t, line 5, column v: …`), 1-based within
 * that COPY, or undefined. Only a hint: the row is tried alone before it is rejected.
 */
export function copyErrorLine(e: unknown): number | undefined {
  const where = (e as { where?: unknown })?.where;
  if (typeof where !== 'string') return undefined;
  const m = /^COPY .*?, line (\d+)/m.exec(where);
  return m ? Number(m[1]) : undefined;
}

/**
 * Counts of rejected rows per table and per node, shared by every loader of one import. A
 * load takes its rejects one at a time and gives them back when its object fails (it is
 * rolled back and may be tried again).
 */
export class RejectBudget {
  readonly #table = new Map<string, number>();
  readonly #node = new Map<string, number>();
  constructor(readonly limits: { table?: number; node?: number }) {}

  /** Rejects an earlier run committed (they count against the limits). */
  addPrior(table: string, node: string, n: number): void {
    this.#table.set(table, (this.#table.get(table) ?? 0) + n);
    this.#node.set(node, (this.#node.get(node) ?? 0) + n);
  }

  /** Count one more refused row of `table` on `node`; throws RejectLimitError when a limit is passed (nothing is counted then). */
  take(table: string, node: string, key: string, cause: unknown): void {
    const t = (this.#table.get(table) ?? 0) + 1;
    const n = (this.#node.get(node) ?? 0) + 1;
    const sqlState = (cause as { code?: string })?.code;
    const ctx = { table, node, key, cause, ...(sqlState ? { sqlState } : {}) };
    const why = `${redact(String((cause as Error)?.message ?? cause))}`;
    if (this.limits.table !== undefined && t > this.limits.table) {
      throw new RejectLimitError(`table ${table}: the destination refused ${t} rows (node ${node}, object ${key}), more than the reject limit ${this.limits.table}; the last: ${why}; nothing of ${key} was loaded`, {
        ...ctx, hint: 'look at the refused rows (the message, the rejects objects of committed objects), or raise --reject-limit',
      });
    }
    if (this.limits.node !== undefined && n > this.limits.node) {
      throw new RejectLimitError(`node ${node}: the destination refused ${n} rows (table ${table}, object ${key}), more than the per-node reject limit ${this.limits.node}; the last: ${why}; nothing of ${key} was loaded`, {
        ...ctx, hint: 'look at the refused rows, or raise --reject-limit-per-node',
      });
    }
    this.#table.set(table, t);
    this.#node.set(node, n);
  }

  /** Give back `n` rejects of a load that failed. */
  giveBack(table: string, node: string, n: number): void {
    if (n === 0) return;
    this.#table.set(table, (this.#table.get(table) ?? 0) - n);
    this.#node.set(node, (this.#node.get(node) ?? 0) - n);
  }
}

/** What a load with reject handling needs beyond a plain load's. */
export interface RejectContext {
  budget: RejectBudget;
  /** Where rejects objects are written. */
  store: ObjectStore;
}

/**
 * The rejects object of one source object on one node: JSON lines, one per refused row, opened
 * at the first row (so a load without rejects writes nothing). Memory: one line.
 */
export class RejectsWriter {
  #w: ObjectWriter | undefined;
  readonly key: string;
  constructor(readonly store: ObjectStore, node: string, readonly objectKey: string, readonly signal?: AbortSignal) {
    this.key = rejectsKey(node, objectKey);
  }
  get opened(): boolean {
    return this.#w !== undefined;
  }
  /** Write one line (a JSON object). */
  async write(line: Record<string, unknown>): Promise<void> {
    this.#w ??= this.store.createWriter(this.key, this.signal ? { signal: this.signal } : {});
    await this.#w.write(Buffer.from(JSON.stringify(line) + '\n'));
  }
  /** Complete the object (if any row was written). */
  async finish(): Promise<void> {
    const w = this.#w;
    this.#w = undefined;
    if (!w) return;
    try {
      await w.finish();
    } catch (e) {
      await w.abort();
      throw e;
    }
  }
  /** Drop an unfinished object. Never throws. */
  async abort(): Promise<void> {
    const w = this.#w;
    this.#w = undefined;
    await w?.abort();
  }
}

/**
 * Rows held in one batch before it is sent: a failing batch is sent again in parts, so this is
 * what is held (a row larger than this is a batch of its own).
 */
export const REJECT_BATCH_BYTES = 4 * 1024 * 1024;

/** Savepoint of one batch (nested in the object's transaction). */
const BATCH_SAVEPOINT = 'segferry_batch';

/** Input of {@link loadRowByRow}. */
export interface RowByRowInput {
  client: pg.Client;
  /** `COPY … FROM STDIN (…)` for the batches: without a csv header. */
  copySQL: string;
  /** How to find rows in `source`. */
  format: CopyRowFormat;
  /** The object's bytes (already hashed by the caller), or an Arrow or Parquet object's decoded COPY data. */
  source: AsyncIterable<Buffer>;
  /** Record a refused row (1-based ordinal among the object's rows; byte offset; its bytes; the error). */
  reject: (row: { ordinal: number; offset: number; data: Buffer }, err: unknown) => Promise<void>;
}

/** What {@link loadRowByRow} did. */
export interface RowByRowResult {
  /** Rows found in the object. */
  rows: number;
  /** Rows loaded (committed with the object). */
  loaded: number;
}

/**
 * Load an object's rows in batches of about {@link REJECT_BATCH_BYTES}, each in a savepoint;
 * a batch that fails with a row error ({@link isRowError}) is rolled back to its savepoint and
 * its rows are tried again in parts: up to the line the error names, that line alone, the
 * rest; without a usable line, halves. A row that fails alone is handed to `reject`. Any other
 * error is thrown (the caller drops the session). Memory: one batch, or one row when a row is
 * larger.
 */
export async function loadRowByRow(p: RowByRowInput): Promise<RowByRowResult> {
  const split = new CopyRowSplitter(p.format);
  const binary = p.format.kind === 'binary';
  let loaded = 0;
  let rows: { data: Buffer; offset: number }[] = [];
  let first = 1;
  let bytes = 0;

  const attempt = async (part: { data: Buffer }[]): Promise<unknown> => {
    const body = Buffer.concat(binary ? [COPY_BINARY_HEADER, ...part.map((r) => r.data), COPY_BINARY_TRAILER] : part.map((r) => r.data));
    await p.client.query(`SAVEPOINT ${BATCH_SAVEPOINT}`);
    const copy = p.client.query(copyFrom(p.copySQL));
    // A failed COPY may report twice (the server's error, then the stream's own end).
    copy.on('error', () => {});
    const err = await new Promise<unknown>((resolve) => {
      copy.once('finish', () => resolve(undefined));
      copy.once('error', resolve);
      // One write: pg-copy-streams then has nothing queued when the server refuses mid-batch.
      copy.end(body);
    });
    if (err === undefined) {
      // The server must have seen the rows found here; otherwise the framing disagrees with the
      // format options, and no row count would be right.
      if (copy.rowCount !== part.length) {
        throw new RowCountMismatchError(`COPY loaded ${copy.rowCount} rows of a batch of ${part.length}: the object's rows are not framed as its format says`, {
          hint: 'the format options do not match the object (delimiter, header, quote)',
        });
      }
      await p.client.query(`RELEASE SAVEPOINT ${BATCH_SAVEPOINT}`);
      return undefined;
    }
    if (!isRowError(err)) throw err;
    await p.client.query(`ROLLBACK TO SAVEPOINT ${BATCH_SAVEPOINT}`);
    await p.client.query(`RELEASE SAVEPOINT ${BATCH_SAVEPOINT}`);
    return err;
  };

  /** Load rows[lo, hi) (ordinals first + lo …). */
  const run = async (lo: number, hi: number): Promise<void> => {
    while (lo < hi) {
      const err = await attempt(rows.slice(lo, hi));
      if (err === undefined) {
        loaded += hi - lo;
        return;
      }
      if (hi - lo === 1) {
        await p.reject({ ...rows[lo]!, ordinal: first + lo }, err);
        return;
      }
      const line = copyErrorLine(err);
      if (line !== undefined && line >= 1 && line <= hi - lo) {
        const bad = lo + line - 1;
        await run(lo, bad);
        await run(bad, bad + 1);
        lo = bad + 1;
      } else {
        const mid = (lo + hi) >>> 1;
        await run(lo, mid);
        lo = mid;
      }
    }
  };

  const flush = async () => {
    if (rows.length === 0) return;
    await run(0, rows.length);
    first += rows.length;
    rows = [];
    bytes = 0;
  };

  for await (const chunk of p.source) {
    for (const r of split.push(chunk)) {
      rows.push(r);
      bytes += r.data.length;
      if (bytes >= REJECT_BATCH_BYTES) await flush();
    }
  }
  split.end();
  await flush();
  return { rows: split.rows, loaded };
}

/** The rows set aside while loading one object, and their checksum. */
export class RejectTally {
  readonly #hash = new RowHasher(false);
  /** Rows rejected. */
  get count(): number {
    return this.#hash.rows;
  }
  /** Add a rejected row's bytes (as the export hashed them: text/csv line, binary tuple). */
  add(row: Buffer): void {
    this.#hash.update({ data: row, rowEnds: Uint32Array.of(row.length) });
  }
  /** `copy-rowhash64` sum of the rejected rows (decimal). */
  get sum(): string {
    return this.#hash.result().sum;
  }
}

/**
 * Count against the limits the rows earlier runs of this import set aside in objects they
 * committed: every ledger row of the import with rejects, on each of the import's target nodes,
 * except the objects this run loads (a forced reload replaces their ledger rows).
 */
export async function priorRejects(s: Sessions, nodes: Iterable<string>, units: ReadonlyMap<string, readonly { object: { key: string } }[]>, importId: string, budget: RejectBudget): Promise<void> {
  for (const node of nodes) {
    const loading = new Set((units.get(node) ?? []).map((u) => u.object.key));
    for (const r of await s.withSession(node, `reading ${LEDGER_TABLE}`, (c) => readRejected(c, importId))) {
      if (!loading.has(r.key)) budget.addPrior(r.table, node, r.rejected);
    }
  }
}
