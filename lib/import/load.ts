import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { AbortedError, ChecksumMismatchError, DecompressError, RejectLimitError, RowCountMismatchError, SchemaMismatchError, SegferryError, StorageError, fromDatabaseError, redact } from '../errors.js';
import type { CopyRowFormat } from '../pg/copy-rows.js';
import { arrowCopyFromSQL, openArrowObject, registerArrowCodecs } from '../format/arrow/api.js';
import { decompressChunks } from '../format/compress.js';
import { checksumLabel, digestMatches, digestStream, ledgerDigest, ObjectHasher, recordedDigest, type ObjectDigest } from '../manifest/digest.js';
import { columnListSQL, copyOptionsSQL, type FormatOptions } from '../format/options.js';
import { destroyClient } from '../pg/conn.js';
import { quoteQualified } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import { decryptObject, firstChunkChecked, type ObjectCipher } from '../crypto/objects.js';
import { RangedDecryptor } from '../crypto/envelope.js';
import type { ParquetObjectSource } from '../format/parquet/import.js';
import { claimObject, completeClaim, recordRejected } from './ledger.js';
import { isRowError, loadRowByRow, RejectsWriter, RejectTally, type RejectContext } from './rejects.js';
import type { ImportTarget, PlannedObject } from './plan.js';

/** One object into one node. */
export interface LoadUnit {
  /** `schema.name` of the table (as exported). */
  table: string;
  object: PlannedObject;
  target: ImportTarget;
}

/** What loading one object did. */
export interface LoadOutcome {
  /** The ledger already had it (another run committed it meanwhile): nothing was loaded. */
  skipped: boolean;
  /** Rows committed (the object's rows minus the rejected ones). */
  rows: number;
  bytes: number;
  /** Hex digest of the stored bytes, under the algorithm the manifest entry records (SHA-256 for bare objects; '' when skipped without a recorded digest). */
  digest: string;
  /** Rows the destination refused and that were set aside (only with a reject limit; else 0). */
  rejected: number;
  /** Key of the rejects object written (in the rejects store), when rows were rejected. */
  rejectsKey?: string;
}

/** Context shared by all loads of one import. */
export interface LoadContext {
  store: ObjectStore;
  importId: string;
  format: FormatOptions;
  force: boolean;
  signal: AbortSignal;
  /** Called with each chunk's size as it is sent. */
  onBytes?: (n: number) => void;
  /**
   * An encrypted export's data key (default: none). Objects are decrypted as they stream,
   * each chunk only after its tag is checked; the first chunk before the COPY opens.
   */
  cipher?: ObjectCipher;
  /**
   * Reject handling (issue 18; default none: a refused row fails the object). The COPY then
   * runs in a savepoint; after a row error the object is loaded again row by row
   * (lib/import/rejects.ts).
   */
  rejects?: RejectContext;
  /** Objects without a manifest: Parquet files of other writers are read by their own types (default false). */
  bare?: boolean;
  /**
   * The caller has opened the transaction on `client` and commits it (default false: one
   * transaction per object). `copy --via` loads a unit's objects in one transaction. A failure
   * still drops the session, rolling back everything of that transaction.
   */
  inTransaction?: boolean;
}

/** Savepoint before an object's COPY when rows may be rejected. */
const OBJECT_SAVEPOINT = 'segferry_object';

/** The COPY statement for one target. A csv object with a header line starts with it. */
export function copyInSQL(target: ImportTarget, format: FormatOptions): string {
  const header = format.kind === 'csv' && format.header ? ', HEADER true' : '';
  // `()` is not valid SQL: a table without columns is loaded without a column list (checkColumns
  // made sure the destination has none either).
  const cols = target.columns.length > 0 ? ` (${columnListSQL(target.columns)})` : '';
  return `COPY ${quoteQualified(target.relation)}${cols} FROM STDIN (${copyOptionsSQL(format)}${header})`;
}

/** The corrupt-object error: the stored bytes' digest differs from the manifest's. */
function corrupt(o: ObjectDigest & { key: string }, table: string, hex: string, ctx: { node: string; table: string; key: string; cause?: unknown }): ChecksumMismatchError {
  const d = recordedDigest(o)!;
  return new ChecksumMismatchError(`object ${o.key} of ${table} is corrupt: its ${checksumLabel(d.algorithm)} is ${hex}, the manifest records ${d.hex}; nothing of it was loaded`, ctx);
}

/**
 * An object's bytes as they stream from the store, each stored piece passed to `onStored`
 * first (the hash of what the manifest describes), decrypted chunk by chunk when the export is
 * encrypted. A read error goes to `onReadError` too (the caller tells it from a COPY error).
 */
async function* plainStream(ctx: LoadContext, key: string, onStored: (c: Buffer) => void, onReadError: (e: unknown) => void): AsyncGenerator<Buffer> {
  const s = await ctx.store.read(key, { signal: ctx.signal });
  s.on('error', onReadError);
  if (ctx.cipher) return yield* decryptObject(s as AsyncIterable<Buffer>, ctx.cipher, key, onStored);
  for await (const c of s as AsyncIterable<Buffer>) {
    onStored(c);
    yield c;
  }
}

/**
 * A Parquet object as its reader takes it (lib/format/parquet/import.ts): the size, ranged
 * reads (the footer) and one stream front to back whose stored bytes pass `onStored` (the
 * hash). An encrypted object is decrypted: ranges fetch and open only the chunks covering
 * them (RangedDecryptor), the stream chunk by chunk; a damaged chunk is ERR_DECRYPTION.
 */
async function parquetObject(
  ctx: LoadContext, o: PlannedObject, where: { node: string; table: string; key: string },
  onStored: (c: Buffer) => void, onReadError: (e: unknown) => void,
): Promise<ParquetObjectSource> {
  const ranged = async (start: number, end: number): Promise<Uint8Array> => {
    const parts: Buffer[] = [];
    for await (const c of await ctx.store.read(o.key, { signal: ctx.signal, range: { start, end } })) parts.push(c as Buffer);
    const b = Buffer.concat(parts);
    if (b.length !== end - start) throw new StorageError(`reading bytes ${start}-${end} of ${o.key} returned ${b.length} bytes`, where);
    return b;
  };
  const cipher = ctx.cipher;
  const stream = () => plainStream(ctx, o.key, onStored, onReadError);
  if (!cipher) return { size: o.bytes, range: ranged, stream };
  const r = await RangedDecryptor.open(cipher.dataKey, o.key, o.bytes, ranged, cipher.chunkSize);
  return { size: r.size, range: (start, end) => r.range(start, end), stream };
}

/**
 * Load one object in one transaction on `client` (a session on the target node with the
 * manifest's settings applied): claim it in the ledger, stream it from storage through its
 * digest (the manifest entry's CRC-32 or SHA-256) into `COPY … FROM STDIN`, compare the digest
 * and COPY's row count with the manifest, and commit only if both match. On any failure nothing of the object stays: a mismatch rolls
 * back, and a broken stream drops the session (the server aborts the open transaction).
 *
 * Memory: one store read buffer and one COPY write buffer; the object is never held whole
 * (Arrow: plus one record batch and one 1 MiB output chunk; compressed objects: the decoder's
 * state, see decompressChunks). A compressed object that does not decode is ERR_DECOMPRESS
 * (ERR_CHECKSUM_MISMATCH when its bytes differ from the manifest's), rolled back like any other.
 */
export async function loadObject(client: pg.Client, unit: LoadUnit, ctx: LoadContext): Promise<LoadOutcome> {
  const { object: o, target: t } = unit;
  const node = t.node;
  const where = { node, table: unit.table, key: o.key };
  // The manifest's digest of the object (none for bare objects: it is computed and recorded).
  const recorded = recordedDigest(o);
  const dbFail = (e: unknown, action: string) => {
    if (e instanceof SegferryError) return e;
    if (ctx.signal.aborted) return ctx.signal.reason instanceof SegferryError ? ctx.signal.reason : new AbortedError();
    return fromDatabaseError(e, { ...where, action });
  };
  let open = false;
  try {
    if (!ctx.inTransaction) await client.query('BEGIN');
    open = true;
    const claimed = await claimObject(client, {
      importId: ctx.importId, key: o.key, table: unit.table,
      ...(recorded ? { digest: ledgerDigest(recorded.algorithm, recorded.hex) } : {}),
      ...(o.rows !== undefined ? { rows: o.rows } : {}),
    }, ctx.force);
    if (!claimed) {
      if (!ctx.inTransaction) await client.query('ROLLBACK');
      return { skipped: true, rows: 0, bytes: 0, digest: recorded?.hex ?? '', rejected: 0 };
    }
    if (ctx.rejects) await client.query(`SAVEPOINT ${OBJECT_SAVEPOINT}`);
  } catch (e) {
    destroyClient(client);
    throw dbFail(e, 'ledger claim');
  }

  const hash = ObjectHasher.for(o);
  let bytes = 0;

  let copy: ReturnType<typeof copyFrom> | undefined;
  const startCopy = (sql: string) => {
    copy = client.query(copyFrom(sql));
    // After a failure the dropped session still reports to the COPY stream; pipeline has
    // settled by then, so keep that late error from becoming an uncaught exception.
    copy.on('error', () => {});
    return copy;
  };
  let readErr: unknown;
  // The manifest's digest and size are of the stored bytes: hashed before decryption and
  // decompression.
  const onStoredBytes = (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
    ctx.onBytes?.(c.length);
  };
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onStoredBytes(chunk);
      cb(null, chunk);
    },
  });
  try {
    if (ctx.format.kind === 'parquet') {
      // Parquet: the footer by ranged reads, then the object streamed once (hashed) and
      // decoded row group by row group into COPY BINARY (TEXT for text-form columns, and for
      // other writers' files, whose types may differ from the destination's compatibly).
      const src = await parquetObject(ctx, o, where, onStoredBytes, (e) => { readErr ??= e; });
      const { openParquetObject } = await import('../format/parquet/import.js');
      const pq = await openParquetObject(src, ctx.bare ? { foreign: true, format: 'text' } : {});
      if (pq.columns.length !== t.columns.length) {
        throw new SchemaMismatchError(`object ${o.key} has ${pq.columns.length} columns, the table ${unit.table} ${t.columns.length}`, where);
      }
      const cp = startCopy(arrowCopyFromSQL(quoteQualified(t.relation), { columns: t.columns, copyOptions: pq.copyOptions }));
      await pipeline(Readable.from(pq.chunks()), cp, { signal: ctx.signal });
    } else {
      const source = await ctx.store.read(o.key, { signal: ctx.signal });
      source.on('error', (e) => { readErr ??= e; });
      // Encryption wraps compression (lib/crypto/objects.ts), so it comes off first.
      const onStored = onStoredBytes;
      const cipher = ctx.cipher;
      const codec = o.compression;
      if (ctx.format.kind === 'arrow') {
        await registerArrowCodecs(); // zstd bodies (--arrow-compression)
        const stored = cipher
          ? decryptObject(source as AsyncIterable<Buffer>, cipher, o.key, onStored)
          : (async function* (): AsyncGenerator<Buffer> {
            for await (const c of source as AsyncIterable<Buffer>) {
              onStored(c);
              yield c;
            }
          })();
        // Arrow: decoded one record batch at a time into COPY BINARY (or TEXT when a column is
        // held as text); the decoder reads the object to its end, so the hash covers it all.
        const arrow = await openArrowObject(stored);
        if (arrow.columns.length !== t.columns.length) {
          throw new SchemaMismatchError(`object ${o.key} has ${arrow.columns.length} columns, the table ${unit.table} ${t.columns.length}`, where);
        }
        const cp = startCopy(arrowCopyFromSQL(quoteQualified(t.relation), { columns: t.columns, copyOptions: arrow.copyOptions }));
        await pipeline(Readable.from(arrow.chunks()), cp, { signal: ctx.signal });
      } else if (cipher) {
        // A wrong key or a damaged first chunk fails here, before the COPY opens.
        const plain = await firstChunkChecked(decryptObject(source as AsyncIterable<Buffer>, cipher, o.key, onStored));
        const rows = codec ? decompressChunks(codec, plain, { key: o.key }) : plain;
        await pipeline(Readable.from(rows), startCopy(copyInSQL(t, ctx.format)), { signal: ctx.signal });
      } else if (codec) {
        // COPY gets the stored bytes decompressed, one chunk at a time.
        const inflate = (src: AsyncIterable<Buffer>) => decompressChunks(codec, src, { key: o.key });
        await pipeline(source, hasher, inflate, startCopy(copyInSQL(t, ctx.format)), { signal: ctx.signal });
      } else {
        await pipeline(source, hasher, startCopy(copyInSQL(t, ctx.format)), { signal: ctx.signal });
      }
    }
  } catch (e) {
    if (ctx.rejects && isRowError(e) && readErr === undefined && !ctx.signal.aborted) {
      // A row the destination refuses: find it (and any others) row by row, in this transaction.
      return loadRejecting(client, unit, ctx, ctx.rejects, e);
    }
    // pipeline destroyed the COPY stream (CopyFail); also drop the session, so the
    // transaction is surely gone before anything else touches the table.
    copy?.destroy();
    destroyClient(client);
    if (e instanceof SegferryError && !(e instanceof DecompressError)) throw e;
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof SegferryError ? ctx.signal.reason : new AbortedError();
    if (readErr !== undefined && e === readErr) {
      throw new StorageError(`reading ${o.key} from ${ctx.store.url} failed: ${(e as Error)?.message ?? String(e)}`, { ...where, cause: e });
    }
    if (recorded) {
      // The server rejected the data: if the object is corrupt, say that rather than the parse error.
      const again = await ctx.store.read(o.key, { signal: ctx.signal }).then((r) => digestStream(o, r as AsyncIterable<Buffer>)).catch(() => undefined);
      if (again && !digestMatches(o, again.hex)) throw corrupt(o, unit.table, again.hex, { ...where, cause: e });
    }
    if (e instanceof DecompressError) throw new DecompressError(`${e.message}; nothing of it was loaded`, { ...where, cause: e.cause ?? e });
    throw fromDatabaseError(e, { ...where, action: `COPY of ${o.key}` });
  }
  const digest = hash.digest();
  const rows = copy!.rowCount;
  try {
    if (recorded && !digestMatches(o, digest)) {
      await client.query('ROLLBACK');
      open = false;
      throw corrupt(o, unit.table, digest, where);
    }
    if (o.rows !== undefined && rows !== o.rows) {
      await client.query('ROLLBACK');
      open = false;
      throw new RowCountMismatchError(`object ${o.key} of ${unit.table}: COPY loaded ${rows} rows, the manifest records ${o.rows}; nothing of it was loaded`, {
        ...where, hint: 'the format options do not match the object (delimiter, header, quote)',
      });
    }
    if (!recorded) await completeClaim(client, ctx.importId, o.key, ledgerDigest(hash.algorithm, digest), rows);
    if (!ctx.inTransaction) await client.query('COMMIT');
    open = false;
  } catch (e) {
    if (open) destroyClient(client);
    throw dbFail(e, 'commit');
  }
  return { skipped: false, rows, bytes, digest, rejected: 0 };
}

/**
 * The object's COPY failed with a row error (the transaction is at its savepoint): roll back to
 * it, read the object again and load it row by row (lib/import/rejects.ts), setting refused rows
 * aside in its rejects object. The rejects object is stored before the transaction commits, so
 * a crash in between leaves a rejects object for a load that is not committed: the rerun loads
 * the object again and overwrites it (same key). The ledger row records the rejected count and
 * their checksum sum in the same transaction as the rows.
 *
 * Memory: one batch (lib/import/rejects.ts REJECT_BATCH_BYTES, or the largest row) besides the
 * store read buffer.
 */
async function loadRejecting(client: pg.Client, unit: LoadUnit, ctx: LoadContext, rc: RejectContext, first: unknown): Promise<LoadOutcome> {
  const { object: o, target: t } = unit;
  const node = t.node;
  const where = { node, table: unit.table, key: o.key };
  const writer = new RejectsWriter(rc.store, node, o.key, ctx.signal);
  const tally = new RejectTally();
  let open = true;
  let readErr: unknown;
  try {
    await client.query(`ROLLBACK TO SAVEPOINT ${OBJECT_SAVEPOINT}`);
    const hash = ObjectHasher.for(o);
    let bytes = 0;
    // Hashed as stored, then decrypted, as in the first attempt.
    const onStored = (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    };
    const onReadError = (e: unknown) => { readErr ??= e; };
    const plain = () => plainStream(ctx, o.key, onStored, onReadError);
    // Arrow and Parquet: the rows are those of the decoded COPY data (binary tuples or text
    // lines); a rejected row's bytes are that decoded row, its ordinal the row's in the object.
    const decoded = (a: { copyOptions: string; chunks(): AsyncIterable<Uint8Array> }) => ({
      copySQL: arrowCopyFromSQL(quoteQualified(t.relation), { columns: t.columns, copyOptions: a.copyOptions }),
      format: { kind: /binary/i.test(a.copyOptions) ? 'binary' : 'text' } as CopyRowFormat,
      input: a.chunks() as AsyncIterable<Buffer>,
    });
    let copySQL: string;
    let format: CopyRowFormat;
    let input: AsyncIterable<Buffer>;
    const arrow = ctx.format.kind === 'arrow' || ctx.format.kind === 'parquet';
    if (ctx.format.kind === 'arrow') {
      await registerArrowCodecs();
      ({ copySQL, format, input } = decoded(await openArrowObject(plain())));
    } else if (ctx.format.kind === 'parquet') {
      const { openParquetObject } = await import('../format/parquet/import.js');
      ({ copySQL, format, input } = decoded(await openParquetObject(await parquetObject(ctx, o, where, onStored, onReadError), ctx.bare ? { foreign: true, format: 'text' } : {})));
    } else {
      copySQL = copyInSQL(t, { ...ctx.format, header: false });
      format = ctx.format.kind === 'csv'
        ? { kind: 'csv', quote: ctx.format.quote ?? '"', escape: ctx.format.escape ?? ctx.format.quote ?? '"', header: ctx.format.header === true }
        : { kind: ctx.format.kind === 'binary' ? 'binary' : 'text' };
      input = o.compression ? decompressChunks(o.compression, plain(), { key: o.key }) : plain();
    }
    const res = await loadRowByRow({
      client, copySQL, format, source: input,
      reject: async (row, err) => {
        rc.budget.take(unit.table, node, o.key, err);
        tally.add(row.data);
        const e = err as { code?: string; message?: string; detail?: string };
        await writer.write({
          object: o.key, table: unit.table, node, row: row.ordinal,
          ...(arrow ? {} : { offset: row.offset }),
          sqlstate: e.code, message: redact(String(e.message ?? err)),
          ...(e.detail ? { detail: redact(e.detail) } : {}),
          data: row.data.toString('base64'),
        });
      },
    });
    const digest = hash.digest();
    const recorded = recordedDigest(o);
    if (recorded && !digestMatches(o, digest)) throw corrupt(o, unit.table, digest, { ...where, cause: first });
    if (o.rows !== undefined && res.rows !== o.rows) {
      throw new RowCountMismatchError(`object ${o.key} of ${unit.table} holds ${res.rows} rows, the manifest records ${o.rows}; nothing of it was loaded`, {
        ...where, hint: 'the format options do not match the object (delimiter, header, quote)',
      });
    }
    if (!recorded) await completeClaim(client, ctx.importId, o.key, ledgerDigest(hash.algorithm, digest), res.rows);
    await recordRejected(client, ctx.importId, o.key, tally.count, arrow ? null : tally.sum);
    // Stored before the commit: see above.
    await writer.finish();
    await client.query('COMMIT');
    open = false;
    return { skipped: false, rows: res.loaded, bytes, digest, rejected: tally.count, ...(tally.count > 0 ? { rejectsKey: writer.key } : {}) };
  } catch (e) {
    await writer.abort();
    rc.budget.giveBack(unit.table, node, tally.count);
    if (open) destroyClient(client);
    // Over the limit, this object is surely not committed: a rejects object an earlier, crashed
    // run left for it is stale.
    if (e instanceof RejectLimitError) await rc.store.delete([writer.key]).catch(() => {});
    if (e instanceof SegferryError) throw e;
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof SegferryError ? ctx.signal.reason : new AbortedError();
    // A broken read is retried by the importer, like a broken read of the first attempt.
    if (readErr !== undefined && e === readErr) {
      throw new StorageError(`reading ${o.key} from ${ctx.store.url} failed: ${(e as Error)?.message ?? String(e)}`, { ...where, cause: e });
    }
    throw fromDatabaseError(e, { ...where, action: `COPY of ${o.key} row by row` });
  }
}
