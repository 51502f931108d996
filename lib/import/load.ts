import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { AbortedError, ChecksumMismatchError, DecompressError, RowCountMismatchError, SchemaMismatchError, SegferryError, StorageError, fromDatabaseError } from '../errors.js';
import { arrowCopyFromSQL, openArrowObject } from '../format/arrow/api.js';
import { registerArrowCodecs } from '../format/arrow-codecs.js';
import { decompressChunks } from '../format/compress.js';
import { columnListSQL, copyOptionsSQL, type FormatOptions } from '../format/options.js';
import { destroyClient } from '../pg/conn.js';
import { quoteQualified } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import { claimObject, completeClaim } from './ledger.js';
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
  rows: number;
  bytes: number;
  sha256: string;
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
}

/** The COPY statement for one target. A csv object with a header line starts with it. */
export function copyInSQL(target: ImportTarget, format: FormatOptions): string {
  const header = format.kind === 'csv' && format.header ? ', HEADER true' : '';
  // `()` is not valid SQL: a table without columns is loaded without a column list (checkColumns
  // made sure the destination has none either).
  const cols = target.columns.length > 0 ? ` (${columnListSQL(target.columns)})` : '';
  return `COPY ${quoteQualified(target.relation)}${cols} FROM STDIN (${copyOptionsSQL(format)}${header})`;
}

/** SHA-256 and size of a stream, read to its end. */
async function hashStream(r: Readable): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of r) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/**
 * Load one object in one transaction on `client` (a session on the target node with the
 * manifest's settings applied): claim it in the ledger, stream it from storage through a
 * SHA-256 into `COPY … FROM STDIN`, compare the hash and COPY's row count with the manifest,
 * and commit only if both match. On any failure nothing of the object stays: a mismatch rolls
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
  const dbFail = (e: unknown, action: string) => {
    if (e instanceof SegferryError) return e;
    if (ctx.signal.aborted) return ctx.signal.reason instanceof SegferryError ? ctx.signal.reason : new AbortedError();
    return fromDatabaseError(e, { ...where, action });
  };
  let open = false;
  try {
    await client.query('BEGIN');
    open = true;
    const claimed = await claimObject(client, {
      importId: ctx.importId, key: o.key, table: unit.table,
      ...(o.sha256 !== undefined ? { sha256: o.sha256 } : {}),
      ...(o.rows !== undefined ? { rows: o.rows } : {}),
    }, ctx.force);
    if (!claimed) {
      await client.query('ROLLBACK');
      return { skipped: true, rows: 0, bytes: 0, sha256: o.sha256 ?? '' };
    }
  } catch (e) {
    destroyClient(client);
    throw dbFail(e, 'ledger claim');
  }

  const hash = createHash('sha256');
  let bytes = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      ctx.onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
  let copy: ReturnType<typeof copyFrom> | undefined;
  const startCopy = (sql: string) => {
    copy = client.query(copyFrom(sql));
    // After a failure the dropped session still reports to the COPY stream; pipeline has
    // settled by then, so keep that late error from becoming an uncaught exception.
    copy.on('error', () => {});
    return copy;
  };
  let readErr: unknown;
  try {
    const source = await ctx.store.read(o.key, { signal: ctx.signal });
    source.on('error', (e) => { readErr ??= e; });
    if (ctx.format.kind === 'arrow') {
      // Arrow: decoded one record batch at a time into COPY BINARY (or TEXT when a column is
      // held as text); the decoder reads the object to its end, so the hash covers it all.
      const hashed = async function* (): AsyncGenerator<Buffer> {
        for await (const c of source as AsyncIterable<Buffer>) {
          hash.update(c);
          bytes += c.length;
          ctx.onBytes?.(c.length);
          yield c;
        }
      };
      await registerArrowCodecs(); // zstd bodies (--arrow-compression)
      const arrow = await openArrowObject(hashed());
      if (arrow.columns.length !== t.columns.length) {
        throw new SchemaMismatchError(`object ${o.key} has ${arrow.columns.length} columns, the table ${unit.table} ${t.columns.length}`, where);
      }
      const cp = startCopy(arrowCopyFromSQL(quoteQualified(t.relation), { columns: t.columns, copyOptions: arrow.copyOptions }));
      await pipeline(Readable.from(arrow.chunks()), cp, { signal: ctx.signal });
    } else if (o.compression) {
      // The hash is of the stored bytes; COPY gets them decompressed, one chunk at a time.
      const codec = o.compression;
      const inflate = (src: AsyncIterable<Buffer>) => decompressChunks(codec, src, { key: o.key });
      await pipeline(source, hasher, inflate, startCopy(copyInSQL(t, ctx.format)), { signal: ctx.signal });
    } else {
      await pipeline(source, hasher, startCopy(copyInSQL(t, ctx.format)), { signal: ctx.signal });
    }
  } catch (e) {
    // pipeline destroyed the COPY stream (CopyFail); also drop the session, so the
    // transaction is surely gone before anything else touches the table.
    copy?.destroy();
    destroyClient(client);
    if (e instanceof SegferryError && !(e instanceof DecompressError)) throw e;
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof SegferryError ? ctx.signal.reason : new AbortedError();
    if (readErr !== undefined && e === readErr) {
      throw new StorageError(`reading ${o.key} from ${ctx.store.url} failed: ${(e as Error)?.message ?? String(e)}`, { ...where, cause: e });
    }
    if (o.sha256 !== undefined) {
      // The server rejected the data: if the object is corrupt, say that rather than the parse error.
      const again = await ctx.store.read(o.key, { signal: ctx.signal }).then(hashStream).catch(() => undefined);
      if (again && again.sha256 !== o.sha256) {
        throw new ChecksumMismatchError(`object ${o.key} of ${unit.table} is corrupt: its SHA-256 is ${again.sha256}, the manifest records ${o.sha256}; nothing of it was loaded`, {
          ...where, cause: e,
        });
      }
    }
    if (e instanceof DecompressError) throw new DecompressError(`${e.message}; nothing of it was loaded`, { ...where, cause: e.cause ?? e });
    throw fromDatabaseError(e, { ...where, action: `COPY of ${o.key}` });
  }
  const sha256 = hash.digest('hex');
  const rows = copy!.rowCount;
  try {
    if (o.sha256 !== undefined && sha256 !== o.sha256) {
      await client.query('ROLLBACK');
      open = false;
      throw new ChecksumMismatchError(`object ${o.key} of ${unit.table} is corrupt: its SHA-256 is ${sha256}, the manifest records ${o.sha256}; nothing of it was loaded`, where);
    }
    if (o.rows !== undefined && rows !== o.rows) {
      await client.query('ROLLBACK');
      open = false;
      throw new RowCountMismatchError(`object ${o.key} of ${unit.table}: COPY loaded ${rows} rows, the manifest records ${o.rows}; nothing of it was loaded`, {
        ...where, hint: 'the format options do not match the object (delimiter, header, quote)',
      });
    }
    if (o.sha256 === undefined) await completeClaim(client, ctx.importId, o.key, sha256, rows);
    await client.query('COMMIT');
    open = false;
  } catch (e) {
    if (open) destroyClient(client);
    throw dbFail(e, 'commit');
  }
  return { skipped: false, rows, bytes, sha256 };
}
