/**
 * Every error segferry throws is a {@link SegferryError} with a stable `code`.
 * Match on `err.code`, never on message text. Database failures keep the server's
 * SQLSTATE in `sqlState` and the original error in `cause`.
 *
 * Messages never contain credentials: they name nodes, hosts, ports, tables and keys only,
 * and every message passes through {@link redact} before it is stored.
 */

/** Stable error codes. New codes may be added; existing ones never change meaning. */
export type ErrorCode =
  | 'ERR_INVALID_OPTION'
  | 'ERR_CONNECT'
  | 'ERR_AUTH'
  | 'ERR_TABLE_NOT_FOUND'
  | 'ERR_COLUMN_NOT_FOUND'
  | 'ERR_TOPOLOGY'
  | 'ERR_DATABASE'
  | 'ERR_ROW_TOO_LARGE'
  | 'ERR_BUCKET_NOT_FOUND'
  | 'ERR_STORAGE'
  | 'ERR_PREFIX_NOT_EMPTY'
  | 'ERR_UNFINISHED_EXPORT'
  | 'ERR_MANIFEST_MISSING'
  | 'ERR_MANIFEST_INVALID'
  | 'ERR_OBJECT_MISSING'
  | 'ERR_CHECKSUM_MISMATCH'
  | 'ERR_ROW_COUNT_MISMATCH'
  | 'ERR_SCHEMA_MISMATCH'
  | 'ERR_VERIFY_MISMATCH'
  | 'ERR_KEY_ESCAPES_ROOT'
  | 'ERR_ABORTED'
  | 'ERR_PREREQUISITE'
  | 'ERR_WORKER'
  | 'ERR_COPY_PROTOCOL'
  | 'ERR_VALUE_CONVERSION'
  | 'ERR_FORMAT'
  | 'ERR_INTERNAL'
  | 'ERR_PREFIX_CLAIMED'
  | 'ERR_MANIFEST_UNSAFE'
  | 'ERR_DESTINATION_NOT_EMPTY'
  | 'ERR_ENCRYPTION_KEY'
  | 'ERR_DECRYPTION'
  | 'ERR_BINARY_TYPE_MISMATCH'
  | 'ERR_PG_DUMP'
  | 'ERR_DDL_UNSUPPORTED'
  | 'ERR_DDL_REFUSED'
  | 'ERR_DDL_CONFLICT'
  | 'ERR_PLAN_INCOMPLETE'
  | 'ERR_REJECT_LIMIT'
  | 'ERR_SNAPSHOT_GONE'
  | 'ERR_DECOMPRESS';

/** Fields shared by every segferry error. */
export interface ErrorContext {
  /** Topology node the failure happened on, if any. */
  node?: string;
  /** Table (schema-qualified) concerned, if any. */
  table?: string;
  /** Storage key concerned, if any. */
  key?: string;
  /** PostgreSQL SQLSTATE when the failure came from a server. */
  sqlState?: string;
  /** One line telling the user what to do about it. */
  hint?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** Base class of all segferry errors. */
export class SegferryError extends Error {
  readonly code: ErrorCode;
  readonly node?: string;
  readonly table?: string;
  readonly key?: string;
  readonly sqlState?: string;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}) {
    super(redact(message), ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.name = new.target.name;
    this.code = code;
    if (ctx.node !== undefined) this.node = ctx.node;
    if (ctx.table !== undefined) this.table = ctx.table;
    if (ctx.key !== undefined) this.key = ctx.key;
    if (ctx.sqlState !== undefined) this.sqlState = ctx.sqlState;
    if (ctx.hint !== undefined) this.hint = redact(ctx.hint);
  }

  /** A plain object for logs and `--json` output (no stack, no cause, no secrets). */
  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const k of ['node', 'table', 'key', 'sqlState', 'hint'] as const) {
      if (this[k] !== undefined) o[k] = this[k];
    }
    return o;
  }
}

/** A caller passed an option that cannot work. */
export class InvalidOptionError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_INVALID_OPTION', message, ctx); }
}
/** A server could not be reached (refused, timed out, DNS). */
export class ConnectError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_CONNECT', message, ctx); }
}
/** A server rejected the credentials (SQLSTATE 28P01 / 28000), or asked for a password and none was given (no SQLSTATE). */
export class AuthError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_AUTH', message, ctx); }
}
/** A requested table does not exist (SQLSTATE 42P01). */
export class TableNotFoundError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_TABLE_NOT_FOUND', message, ctx); }
}
/** A requested column does not exist (SQLSTATE 42703). */
export class ColumnNotFoundError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_COLUMN_NOT_FOUND', message, ctx); }
}
/** The cluster layout could not be worked out or is inconsistent. */
export class TopologyError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_TOPOLOGY', message, ctx); }
}
/** Any other server-side failure; `sqlState` tells which. */
export class DatabaseError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DATABASE', message, ctx); }
}
/** One row is larger than the segment size, so no object can hold it whole. */
export class RowTooLargeError extends SegferryError {
  readonly rowBytes: number;
  constructor(message: string, rowBytes: number, ctx?: ErrorContext) {
    super('ERR_ROW_TOO_LARGE', message, ctx);
    this.rowBytes = rowBytes;
  }
}
/** The bucket does not exist or is not accessible. */
export class BucketNotFoundError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_BUCKET_NOT_FOUND', message, ctx); }
}
/** Object storage failed (after retries). */
export class StorageError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_STORAGE', message, ctx); }
}
/** The destination prefix already holds an export; pass `overwrite` to replace it. */
export class PrefixNotEmptyError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_PREFIX_NOT_EMPTY', message, ctx); }
}
/** The prefix holds an export that never wrote its manifest. */
export class UnfinishedExportError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_UNFINISHED_EXPORT', message, ctx); }
}
/** No manifest.json under the prefix: the export is missing or incomplete. */
export class ManifestMissingError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_MANIFEST_MISSING', message, ctx); }
}
/** The manifest is not valid JSON or not a segferry manifest this version reads. */
export class ManifestInvalidError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_MANIFEST_INVALID', message, ctx); }
}
/** An object the manifest lists is not in storage. */
export class ObjectMissingError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_OBJECT_MISSING', message, ctx); }
}
/** An object's bytes do not hash to the SHA-256 the manifest records. */
export class ChecksumMismatchError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_CHECKSUM_MISMATCH', message, ctx); }
}
/** COPY reported a different row count than the manifest records. */
export class RowCountMismatchError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_ROW_COUNT_MISMATCH', message, ctx); }
}
/** The destination table's columns do not fit the exported columns. */
export class SchemaMismatchError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_SCHEMA_MISMATCH', message, ctx); }
}
/** `verify` found a table whose destination count or checksum differs from the source. */
export class VerifyMismatchError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_VERIFY_MISMATCH', message, ctx); }
}
/** A storage key would resolve outside the directory store's root. */
export class KeyEscapesRootError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_KEY_ESCAPES_ROOT', message, ctx); }
}
/** The operation was cancelled through its AbortSignal. */
export class AbortedError extends SegferryError {
  constructor(message = 'operation aborted', ctx?: ErrorContext) { super('ERR_ABORTED', message, ctx); }
}

/**
 * A program segferry needs is missing or does not work (the demo's PostgreSQL server binaries),
 * or a runtime feature (WebAssembly for the row hash's explicit `'wasm'` engine: none under `node --jitless`).
 */
export class PrerequisiteError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_PREREQUISITE', message, ctx); }
}

/**
 * An exporter's worker thread ended without a result: it crashed, ran out of memory or could
 * not start. `node` names the data node it exported.
 */
export class WorkerError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_WORKER', message, ctx); }
}

/**
 * The bytes of a COPY stream are not what the protocol allows: a malformed message header, a
 * COPY BINARY stream without its signature or trailer, a tuple whose field count or lengths do
 * not add up. The server or something between it and segferry sent them; retrying may help.
 */
export class CopyProtocolError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_COPY_PROTOCOL', message, ctx); }
}

/** A value the chosen format cannot represent (e.g. a numeric text form a column cannot hold). */
export class ValueConversionError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_VALUE_CONVERSION', message, ctx); }
}

/**
 * An object's content is not valid in its format, or not as segferry writes it (e.g. an Arrow
 * IPC stream whose fields lack the PostgreSQL type metadata).
 */
export class FormatError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_FORMAT', message, ctx); }
}

/**
 * A failure that is a bug in segferry, not in the database, the storage or the input: an
 * unexpected JavaScript error (`TypeError`, `RangeError`, …), kept as `cause`. Please report it.
 */
export class InternalError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_INTERNAL', message, ctx); }
}

// ---------------------------------------------------------------------------------------------
// Import safety (issue 13): what storage holds is untrusted, and loading never changes data silently.

/**
 * A manifest field that reaches SQL is not a plain identifier or a type name the destination
 * resolves (e.g. a column type carrying extra SQL). Nothing was run on the destination.
 */
export class UntrustedInputError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_MANIFEST_UNSAFE', message, ctx); }
}
/**
 * A destination table already holds rows that this import did not load: loading would add to
 * them. Pass `append` (--append) to add anyway, or `truncate` (--truncate) to replace them.
 */
export class DestinationNotEmptyError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DESTINATION_NOT_EMPTY', message, ctx); }
}

// ---------------------------------------------------------------------------------------------
// Errors across threads: postMessage clones an Error as a plain Error, losing its class and
// fields, so a worker sends this form and the receiver rebuilds the same class.

/** A {@link SegferryError} as plain data (structured-clone safe, credentials already redacted). */
export interface SerializedError {
  name: string;
  code: ErrorCode;
  message: string;
  node?: string;
  table?: string;
  key?: string;
  sqlState?: string;
  hint?: string;
  rowBytes?: number;
  stack?: string;
  /** The underlying error's name, code and message (the object itself cannot cross). */
  cause?: { name: string; message: string; code?: string };
}

type Ctor = new (message: string, ctx?: ErrorContext) => SegferryError;
const CLASSES: Record<string, Ctor> = {
  InvalidOptionError, ConnectError, AuthError, TableNotFoundError, ColumnNotFoundError, TopologyError,
  DatabaseError, BucketNotFoundError, StorageError, PrefixNotEmptyError, UnfinishedExportError,
  ManifestMissingError, ManifestInvalidError, ObjectMissingError, ChecksumMismatchError,
  RowCountMismatchError, SchemaMismatchError, VerifyMismatchError, KeyEscapesRootError, AbortedError,
  PrerequisiteError, WorkerError, CopyProtocolError, ValueConversionError, FormatError, InternalError,
  UntrustedInputError, DestinationNotEmptyError,
};

/** Plain data for a segferry error (anything else becomes ERR_WORKER, naming its message). */
export function serializeError(err: unknown): SerializedError {
  const e = err instanceof SegferryError
    ? err
    : new WorkerError(`unexpected failure in a worker thread: ${String((err as Error)?.message ?? err)}`, { cause: err });
  const s: SerializedError = { name: e.name, code: e.code, message: e.message };
  for (const k of ['node', 'table', 'key', 'sqlState', 'hint'] as const) if (e[k] !== undefined) s[k] = e[k];
  if (e instanceof RowTooLargeError) s.rowBytes = e.rowBytes;
  if (e.stack) s.stack = redact(e.stack);
  if (err instanceof SegferryError ? e.cause !== undefined : err !== undefined) {
    const c = (err instanceof SegferryError ? e.cause : err) as { name?: unknown; message?: unknown; code?: unknown } | null;
    const cause: NonNullable<SerializedError['cause']> = {
      name: typeof c?.name === 'string' ? c.name : 'Error',
      message: redact(typeof c?.message === 'string' ? c.message : String(c)),
    };
    if (typeof c?.code === 'string') cause.code = c.code;
    s.cause = cause;
  }
  return s;
}

/** Rebuild the error {@link serializeError} described: same class, code, message and fields. */
export function reviveError(s: SerializedError): SegferryError {
  const ctx: ErrorContext = {};
  for (const k of ['node', 'table', 'key', 'sqlState', 'hint'] as const) if (s[k] !== undefined) ctx[k] = s[k];
  if (s.cause) ctx.cause = Object.assign(new Error(s.cause.message), { name: s.cause.name }, s.cause.code !== undefined ? { code: s.cause.code } : {});
  let e: SegferryError;
  if (s.name === 'RowTooLargeError') e = new RowTooLargeError(s.message, s.rowBytes ?? 0, ctx);
  else {
    const C = Object.hasOwn(CLASSES, s.name) ? CLASSES[s.name] : undefined;
    // The base class itself (e.g. ERR_ROW_COUNT_MISMATCH) or an unknown name: keep the code.
    e = C ? new C(s.message, ctx) : new SegferryError(s.code, s.message, ctx);
  }
  if (s.stack) e.stack = redact(s.stack);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Secrets: every password or secret key segferry sees is registered here, and every message an
// error, event or manifest carries is passed through redact(). This is a safety net: messages are
// built from non-secret fields in the first place.

/** Each registered secret, with the pattern that finds it (and its URL-encoded form). */
const secrets = new Map<string, RegExp>();

/**
 * A secret this long is masked wherever it occurs; a shorter one only where it stands alone:
 * not glued to a letter, digit or underscore on an edge that is itself one. A short password
 * such as `bench` would otherwise mask identifiers that contain it (`bench_t` → `***_t`),
 * rewriting table names in plans and messages.
 */
const SECRET_ANYWHERE_LENGTH = 16;

function secretPattern(secret: string): RegExp {
  const forms = [...new Set([secret, encodeURIComponent(secret)])].map((f) => {
    const body = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    if (f.length >= SECRET_ANYWHERE_LENGTH) return body;
    return `${/^\w/.test(f) ? '(?<!\\w)' : ''}${body}${/\w$/.test(f) ? '(?!\\w)' : ''}`;
  });
  return new RegExp(forms.join('|'), 'g');
}

/**
 * Register a secret so that it is masked wherever segferry prints text (secrets of fewer than 16
 * characters only where they stand alone as a word, see `SECRET_ANYWHERE_LENGTH`).
 */
export function registerSecret(secret: string | undefined | null): void {
  if (secret && secret.length >= 3 && !secrets.has(secret)) secrets.set(secret, secretPattern(secret));
}

/**
 * Replace `user:password@` URL credentials and libpq `password=…` pairs in a string, and nothing
 * else: for files that must read back as written (plan files), which are built from non-secret
 * fields and where masking a registered secret could rewrite a name that merely equals it.
 */
export function redactCredentials(text: string): string {
  const out = text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@');
  return out.replace(/(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)/gi, '$1***');
}

/** Replace registered secrets, `user:password@` URL credentials and libpq `password=…` pairs in a string. */
export function redact(text: string): string {
  let out = redactCredentials(text);
  for (const re of secrets.values()) out = out.replace(re, '***');
  return out;
}

interface PgLikeError {
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  errno?: number;
  syscall?: string;
}

// JavaScript's own error classes: thrown by code, never by a server or a socket.
const JS_ERROR_CLASSES = [TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError];

/**
 * Is `err` a bug rather than a failure of a server or the network: one of JavaScript's own
 * error classes (`TypeError`, `RangeError`, …) or a thrown value that is not an object at all.
 * `pg` and Node's sockets report with plain `Error`s (with a SQLSTATE or errno `code`).
 */
function isProgrammingError(err: unknown): boolean {
  if (err === null || (typeof err !== 'object' && typeof err !== 'function')) return true;
  return JS_ERROR_CLASSES.some((C) => err instanceof C);
}

/**
 * Turn an error from `pg` or the socket layer into a typed segferry error, keeping the
 * SQLSTATE, and naming the node, host and table (never the credentials). A segferry error is
 * returned as it is; a JavaScript `TypeError`, `RangeError`, … (a bug, not the database's doing)
 * becomes an {@link InternalError} with the original as `cause`.
 */
export function fromDatabaseError(
  err: unknown,
  ctx: { node?: string; table?: string; key?: string; endpoint?: string; action?: string },
): SegferryError {
  if (err instanceof SegferryError) return err;
  const e = (err ?? {}) as PgLikeError;
  const where = [ctx.node ? `node ${ctx.node}` : '', ctx.endpoint ? `(${ctx.endpoint})` : '']
    .filter(Boolean)
    .join(' ');
  const what = ctx.action ? `${ctx.action}` : 'query';
  const base: ErrorContext = { cause: err };
  if (ctx.node !== undefined) base.node = ctx.node;
  if (ctx.table !== undefined) base.table = ctx.table;
  if (ctx.key !== undefined) base.key = ctx.key;
  if (isProgrammingError(err)) {
    const name = err instanceof Error ? err.name : typeof err;
    const text = err instanceof Error ? err.message : String(err);
    return new InternalError(`internal error during ${what}${where ? ` on ${where}` : ''}${ctx.table ? ` for ${ctx.table}` : ''}: ${name}: ${text}`, {
      ...base,
      hint: 'this is a bug in segferry, not a database failure; please report it with this message',
    });
  }
  const code = typeof e.code === 'string' ? e.code : '';
  const msg = e.message ?? String(err);
  const detail = e.detail ? ` (${e.detail})` : '';
  if (/^[0-9A-Z]{5}$/.test(code)) {
    base.sqlState = code;
    if (code === '28P01' || code === '28000') {
      return new AuthError(`authentication failed on ${where}: ${msg}`, {
        ...base,
        hint: 'check the user and password for this node (URL, PGPASSWORD, .pgpass or user mapping)',
      });
    }
    if (code === '42P01') {
      return new TableNotFoundError(`${ctx.table ? `table ${ctx.table}` : 'relation'} not found on ${where}: ${msg}`, {
        ...base,
        hint: 'check the table name and schema, and that it exists on every node',
      });
    }
    if (code === '42703') {
      return new ColumnNotFoundError(`column not found on ${where}: ${msg}`, base);
    }
    if (code === '3D000') {
      return new ConnectError(`database does not exist on ${where}: ${msg}`, { ...base, hint: 'check the database name' });
    }
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') {
      return new ConnectError(`connection to ${where} lost during ${what}: ${msg}`, {
        ...base,
        hint: 'the server shut down or the network dropped; check the node and retry',
      });
    }
    return new DatabaseError(`${what} failed on ${where}${ctx.table ? ` for ${ctx.table}` : ''}: ${msg}${detail}`, base);
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ECONNRESET' || code === 'EPIPE' || /Connection terminated|not queryable|server closed the connection|socket hang up/i.test(msg)) {
    return new ConnectError(`cannot reach ${where}: ${msg}`, {
      ...base,
      hint: 'check that the server is running and reachable from here (host, port, firewall)',
    });
  }
  if (ctx.action === 'connect' && /client password must be a (non-empty )?string/i.test(msg)) {
    // pg's SCRAM exchange without a password (none in the URL, PGPASSWORD or a password file):
    // the server asked for one, so this is authentication, not the host or TLS (libpq:
    // "fe_sendauth: no password supplied").
    return new AuthError(`authentication failed on ${where}: the server asks for a password and none was given`, {
      ...base,
      hint: 'give the password in PGPASSWORD, a password file (~/.pgpass or PGPASSFILE; ignored, as by libpq, when group or others can read it: chmod 0600) or the connection URL',
    });
  }
  if (ctx.action === 'connect') {
    // TLS verification and other socket-level failures while connecting.
    return new ConnectError(`cannot connect to ${where}: ${msg}`, {
      ...base,
      hint: /cert|ssl|tls/i.test(`${code} ${msg}`) ? 'check sslmode and sslrootcert against the server certificate' : 'check the host, port and TLS settings',
    });
  }
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || (err instanceof Error && err.name === 'RuntimeError')) {
    // Not the database's failure: a bug on this side surfacing inside the COPY stream.
    return new InternalError(`${what} on ${where}${ctx.table ? ` for ${ctx.table}` : ''} failed inside segferry: ${msg}`, base);
  }
  return new DatabaseError(`${what} failed on ${where}${ctx.table ? ` for ${ctx.table}` : ''}: ${msg}`, base);
}

// --- Prefix claims (issue 13) ---------------------------------------------------------------

/**
 * Another run holds the destination prefix (its `segferry-claim.json` exists): two exports into
 * one prefix would corrupt each other. The message names the claim's run id, host and time.
 */
export class PrefixClaimedError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_PREFIX_CLAIMED', message, ctx); }
}

// --- Client-side encryption (issue 18) -------------------------------------------------------

/**
 * An encryption key is missing, unreadable, not 256 bits, or not the one the export was
 * encrypted with (its key id differs, or the data key does not unwrap). Raised before any
 * object is read. Never shows the key.
 */
export class EncryptionKeyError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_ENCRYPTION_KEY', message, ctx); }
}

/** An encrypted object fails authentication: damaged, truncated, extended, renamed or replaced. */
export class DecryptionError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DECRYPTION', message, ctx); }
}

// --- Copy and COPY BINARY (issue 15) --------------------------------------------------------

/**
 * `--format binary` cannot be used: a destination column's type differs from the source's
 * (`format_type` names), or a type's binary form is not portable between clusters (it embeds
 * type OIDs: composite types, arrays of user-defined types). The message names the column and
 * both types; text or csv works.
 */
export class BinaryTypeMismatchError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_BINARY_TYPE_MISMATCH', message, ctx); }
}

// --- Whole databases: DDL in the export (issue 14) -------------------------------------------

/** pg_dump ran but failed (its message, redacted, is in the error's message). */
export class PgDumpError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_PG_DUMP', message, ctx); }
}

/** The selection's DDL cannot be carried (a standalone foreign table; a range- or append-distributed Citus table; the identity sequence of an unselected table): export with --no-ddl. */
export class DdlUnsupportedError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DDL_UNSUPPORTED', message, ctx); }
}

/** A DDL statement read from storage is not of a kind segferry runs; nothing was run. */
export class DdlRefusedError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DDL_REFUSED', message, ctx); }
}

/** A destination object exists with another definition than the export's; nothing was loaded. */
export class DdlConflictError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DDL_CONFLICT', message, ctx); }
}

// --- One plan, many hosts (issue 17) ---------------------------------------------------------

/**
 * `finish` found units of the plan that no part has stored (or whose recorded objects are
 * missing or of another size): the message names them; run their parts (again) first.
 */
export class PlanIncompleteError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_PLAN_INCOMPLETE', message, ctx); }
}

// --- Reject limits on import (issue 18) ------------------------------------------------------

/**
 * An import with a reject limit (`rejectLimit`, `rejectLimitPerNode`) found more rows the
 * destination refuses than the limit allows: the object being loaded is rolled back as without
 * a limit (none of its rows committed, no ledger row). The message names the table, the node,
 * the count and the limit; `sqlState` is the last refused row's.
 */
export class RejectLimitError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_REJECT_LIMIT', message, ctx); }
}

// --- Snapshots held for the parts of a plan (issue 17) ---------------------------------------

/**
 * A snapshot the plan carries (`segferry plan --hold-snapshots`) can no longer be imported:
 * the session holding it has ended (the plan command was stopped, or the node restarted).
 * The parts cannot read that state any more: make a new plan (and run every part of it).
 */
export class SnapshotGoneError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_SNAPSHOT_GONE', message, ctx); }
}

// --- Compressed objects (issue 16) -----------------------------------------------------------

/**
 * A compressed object (`--compress gzip|zstd`) is not a valid stream of its codec: corrupt,
 * truncated, or a zstd frame larger than the one-frame memory bound (lib/format/zstd.ts). The
 * message names the object; nothing of it was loaded.
 */
export class DecompressError extends SegferryError {
  constructor(message: string, ctx?: ErrorContext) { super('ERR_DECOMPRESS', message, ctx); }
}
