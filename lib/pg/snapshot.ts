import type pg from 'pg';
import { InternalError, fromDatabaseError } from '../errors.js';
import { connect, describeEndpoint, destroyClient, type NodeEndpoint } from './conn.js';

/** A snapshot id as pg_export_snapshot() returns it (e.g. `00000003-0000001B-1`); anything else is refused. */
export function checkSnapshotId(id: string): string {
  if (!/^[0-9A-F]+(-[0-9A-F]+)+$/i.test(id) || id.length > 64) throw new InternalError(`not a snapshot id: ${JSON.stringify(id.slice(0, 80))}`);
  return id;
}

/** A session whose open transaction exports a snapshot: see {@link exportSnapshot}. */
export interface ExportedSnapshot {
  /** The session, idle in its REPEATABLE READ READ ONLY transaction; the caller commits and closes it. */
  client: pg.Client;
  /** pg_export_snapshot()'s id, checked by {@link checkSnapshotId}. */
  id: string;
}

/** An {@link ExportedSnapshot} with its server's version (`exportSnapshot(…, { serverVersion: true })`). */
export interface ExportedSnapshotWithVersion extends ExportedSnapshot {
  /** The server's `server_version`, e.g. `15.18`. */
  serverVersion: string;
  /** The server's `server_version_num`, e.g. 150018. */
  serverVersionNum: number;
}

/** Options of {@link exportSnapshot}. */
export interface ExportSnapshotOptions {
  /** Node name, in errors. */
  node: string;
  applicationName: string;
  /** Also read the server's version, in the same round trip (default false: only pg_dump's callers need it). */
  serverVersion?: boolean;
}

/**
 * Open a session on a node, begin `REPEATABLE READ READ ONLY` and export its snapshot
 * (`pg_export_snapshot()`, PostgreSQL docs 9.27.5: other sessions can import it with
 * `SET TRANSACTION SNAPSHOT` while this transaction stays open). With `serverVersion`, the
 * server version comes in the same round trip, for callers that match tools to the server
 * (pg_dump); the streams' and held snapshots do not ask for it.
 *
 * Errors: the connect's as `connect` gives them (ERR_CONNECT, ERR_AUTH, …, action `connect`);
 * a failure afterwards destroys the session and is wrapped by `fromDatabaseError` with action
 * `export snapshot`, naming `node` and the endpoint (never its password).
 */
export async function exportSnapshot(endpoint: NodeEndpoint, opts: ExportSnapshotOptions & { serverVersion: true }): Promise<ExportedSnapshotWithVersion>;
export async function exportSnapshot(endpoint: NodeEndpoint, opts: ExportSnapshotOptions): Promise<ExportedSnapshot>;
export async function exportSnapshot(endpoint: NodeEndpoint, opts: ExportSnapshotOptions): Promise<ExportedSnapshot | ExportedSnapshotWithVersion> {
  const ctx = { node: opts.node, endpoint: describeEndpoint(endpoint) };
  const client = await connect(endpoint, { node: opts.node, applicationName: opts.applicationName }).catch((e) => { throw fromDatabaseError(e, { ...ctx, action: 'connect' }); });
  return snapshotOn(client, endpoint, opts);
}

/**
 * {@link exportSnapshot} on a session already open to the node, idle and outside a transaction
 * (the export's planning session, lib/export/export.ts): the same statements and errors, the
 * session destroyed on failure. `applicationName` is not applied (the session keeps its own).
 */
export async function snapshotOn(client: pg.Client, endpoint: NodeEndpoint, opts: ExportSnapshotOptions): Promise<ExportedSnapshot | ExportedSnapshotWithVersion> {
  const ctx = { node: opts.node, endpoint: describeEndpoint(endpoint) };
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const version = opts.serverVersion === true ? `, pg_catalog.current_setting('server_version') AS v, pg_catalog.current_setting('server_version_num') AS n` : '';
    const row = (await client.query<{ id: string; v?: string; n?: string }>(`SELECT pg_catalog.pg_export_snapshot() AS id${version}`)).rows[0]!;
    const id = checkSnapshotId(row.id);
    return opts.serverVersion === true ? { client, id, serverVersion: row.v!, serverVersionNum: Number(row.n) } : { client, id };
  } catch (e) {
    destroyClient(client);
    throw fromDatabaseError(e, { ...ctx, action: 'export snapshot' });
  }
}
