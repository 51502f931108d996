import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { fromDatabaseError, InvalidOptionError, redact, registerSecret } from '../errors.js';
import { passwordFromFile } from './pgpass.js';
import { directSocket } from './socket.js';
import { quoteLiteral } from './sql.js';

/**
 * Where a node is, without its password. This is what plans and manifests carry.
 * Passwords live only in this process (see `rememberPassword`); a plan read back
 * from JSON in another process falls back to PGPASSWORD and ~/.pgpass, as libpq does.
 */
export interface NodeEndpoint {
  host: string;
  port: number;
  database: string;
  user: string;
  /** libpq `sslmode`: disable, prefer, require, verify-ca, verify-full (default: pg's default). */
  sslmode?: string;
  /** Paths to TLS files (not secrets themselves). */
  sslrootcert?: string;
  sslcert?: string;
  sslkey?: string;
  /** libpq `hostaddr`: numeric address to connect to; `host` stays the name for TLS (default: none, connect to `host`). */
  hostaddr?: string;
  /** libpq `application_name` (default: the operation, e.g. `segferry export`). */
  applicationName?: string;
  /** libpq `connect_timeout` in seconds (default: 15). */
  connectTimeout?: number;
  /** libpq `options`: command-line options sent to the server at start (default: none). */
  options?: string;
}

const passwords = new Map<string, string>();

function endpointKey(e: NodeEndpoint): string {
  return `${e.user}@${e.host}:${e.port}/${e.database}`;
}

/** Keep a node's password in memory for this process and mark it as a secret. */
export function rememberPassword(e: NodeEndpoint, password: string | undefined): void {
  if (password === undefined || password === '') return;
  registerSecret(password);
  passwords.set(endpointKey(e), password);
}

/**
 * Give `to` the password remembered for `from`, if any (Citus workers are reached with the
 * coordinator's credentials). The password never leaves this module.
 */
export function inheritPassword(to: NodeEndpoint, from: NodeEndpoint): void {
  const pw = passwords.get(endpointKey(from));
  if (pw !== undefined && !passwords.has(endpointKey(to))) passwords.set(endpointKey(to), pw);
}

/**
 * The password remembered for a node, only to hand it to a worker thread of this process,
 * which has its own copy of this module (see export/threads.ts). Never log or store it.
 */
export function rememberedPassword(e: NodeEndpoint): string | undefined {
  return passwords.get(endpointKey(e));
}

/** `host:port/db` for messages (never a password: the parts pass through redact()). */
export function describeEndpoint(e: NodeEndpoint): string {
  return redact(`${e.host}:${e.port}/${e.database}`);
}

/** Keys of a libpq `key=value` connection string that segferry understands. */
const CONNINFO_KEYS = new Set([
  'host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey',
  'application_name', 'connect_timeout', 'options',
]);

/**
 * Parse a libpq `key=value` connection string (libpq's rules: spaces around `=` allowed,
 * values single-quoted with `\'` and `\\` escapes, or unquoted up to the next space with
 * backslash escapes). Later keys win, as in libpq. Errors never echo a value.
 *
 * @throws InvalidOptionError on a syntax error or a key not in the list above.
 */
export function parseConninfo(s: string): Map<string, string> {
  const out = new Map<string, string>();
  const bad = (why: string) => new InvalidOptionError(`cannot parse the connection string: ${why}`, {
    hint: 'use postgres://user@host:port/db or libpq key=value pairs (host, hostaddr, port, dbname, user, password, sslmode, sslrootcert, sslcert, sslkey, application_name, connect_timeout, options)',
  });
  const space = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (i < n && space(s[i])) i++;
    if (i >= n) break;
    let key = '';
    while (i < n && s[i] !== '=' && !space(s[i])) key += s[i++];
    while (i < n && space(s[i])) i++;
    if (s[i] !== '=') throw bad(`missing "=" after ${JSON.stringify(key)}`);
    i++;
    while (i < n && space(s[i])) i++;
    let value = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) throw bad(`unterminated quoted value of ${JSON.stringify(key)}`);
        const c = s[i]!;
        if (c === '\\' && i + 1 < n) { value += s[i + 1]; i += 2; continue; }
        if (c === "'") { i++; break; }
        value += c;
        i++;
      }
    } else {
      while (i < n && !space(s[i])) {
        if (s[i] === '\\' && i + 1 < n) { value += s[i + 1]; i += 2; continue; }
        value += s[i++];
      }
    }
    // Remember the password at once: a later error must not be able to print it.
    if (key === 'password') registerSecret(value);
    if (!CONNINFO_KEYS.has(key)) throw bad(`unknown key ${JSON.stringify(key.slice(0, 40))}`);
    out.set(key, value);
  }
  return out;
}

/**
 * True for URLs (`postgres://`, `postgresql://`, pg-connection-string's `socket:`) and socket
 * paths; anything else is read as key=value pairs, as libpq does.
 */
function isUrl(s: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(s.trim()) || s.trim().startsWith('/');
}

/**
 * Parse a `postgres://` URL or a libpq key=value string (`host=db1 port=5432 dbname=shop
 * user=app password='s e c'`) into an endpoint and remember its password. Missing parts come
 * from the standard PG* variables, then libpq defaults.
 *
 * @throws InvalidOptionError (a usage error) when the string cannot be read; never with the password in it.
 */
export function parseConnection(url: string): NodeEndpoint {
  let o: { host?: string | null; port?: string | null; database?: string | null; user?: string; password?: string };
  let q: Map<string, string>;
  if (isUrl(url)) {
    // libpq takes postgres:// and postgresql://; pg-connection-string would read any other
    // scheme (mysql://, http://) as one and quietly connect to its host and port.
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url.trim())?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'postgres' && scheme !== 'postgresql' && scheme !== 'socket') {
      throw new InvalidOptionError(`cannot parse the connection string: ${scheme}:// is not a PostgreSQL URL`, {
        hint: 'use postgres://user@host:port/db (or postgresql://), or libpq key=value pairs',
      });
    }
    try {
      o = parseConnectionString(url);
    } catch (err) {
      throw new InvalidOptionError('cannot parse the connection string (expected postgres://user:password@host:port/db)', { cause: err });
    }
    q = new Map(queryParams(url));
  } else {
    q = parseConninfo(url);
    o = {};
    const h = q.get('host');
    if (h !== undefined) o.host = h;
    const p = q.get('port');
    if (p !== undefined) o.port = p;
    const d = q.get('dbname');
    if (d !== undefined) o.database = d;
    const u = q.get('user');
    if (u !== undefined) o.user = u;
    const pw = q.get('password');
    if (pw !== undefined) o.password = pw;
  }
  const env = process.env;
  const hostaddr = q.get('hostaddr') || undefined;
  const host = o.host || env.PGHOST || hostaddr || '127.0.0.1';
  if (/[,]/.test(host) || /[,]/.test(String(o.port ?? ''))) {
    throw new InvalidOptionError('connection strings with several hosts are not supported: give one node per string');
  }
  const e: NodeEndpoint = {
    host,
    port: Number(o.port || env.PGPORT || 5432),
    database: o.database || env.PGDATABASE || o.user || env.PGUSER || userName(),
    user: o.user || env.PGUSER || userName(),
  };
  if (typeof o.password === 'string') rememberPassword(e, o.password);
  if (!Number.isInteger(e.port) || e.port <= 0 || e.port > 65535) {
    throw new InvalidOptionError(`invalid port in connection string for host ${host}`);
  }
  if (hostaddr) e.hostaddr = hostaddr;
  const sslmode = q.get('sslmode') ?? env.PGSSLMODE;
  if (sslmode) e.sslmode = sslmode;
  const rc = q.get('sslrootcert') ?? env.PGSSLROOTCERT;
  if (rc) e.sslrootcert = rc;
  const c = q.get('sslcert') ?? env.PGSSLCERT;
  if (c) e.sslcert = c;
  const k = q.get('sslkey') ?? env.PGSSLKEY;
  if (k) e.sslkey = k;
  const app = q.get('application_name');
  if (app) e.applicationName = app;
  const ct = q.get('connect_timeout');
  if (ct !== undefined && ct !== '') {
    const secs = Number(ct);
    if (!Number.isInteger(secs) || secs < 0) throw new InvalidOptionError('connect_timeout in the connection string must be a whole number of seconds');
    // libpq: 0 means wait forever; pg's 0 means the same.
    e.connectTimeout = secs;
  }
  const opt = q.get('options');
  if (opt) e.options = opt;
  return e;
}

function queryParams(url: string): URLSearchParams {
  const i = url.indexOf('?');
  return new URLSearchParams(i >= 0 ? url.slice(i + 1) : '');
}

function userName(): string {
  return process.env.USER || process.env.LOGNAME || 'postgres';
}

/** Options for opening a session on a node. */
export interface ConnectOptions {
  /** Node name used in errors. */
  node?: string;
  /** Milliseconds to wait for the connection (default 15000). */
  connectTimeoutMs?: number;
  /** application_name shown in pg_stat_activity (default "segferry"). */
  applicationName?: string;
}

function sslConfig(e: NodeEndpoint): pg.ClientConfig['ssl'] {
  const mode = e.sslmode;
  if (!mode || mode === 'disable' || mode === 'allow' || mode === 'prefer') return undefined;
  const fs = { ca: e.sslrootcert, cert: e.sslcert, key: e.sslkey };
  const read = (p?: string) => (p ? readFileSyncText(p) : undefined);
  const base: Record<string, unknown> = {};
  if (fs.ca) base.ca = read(fs.ca);
  if (fs.cert) base.cert = read(fs.cert);
  if (fs.key) base.key = read(fs.key);
  // Connected by hostaddr: the certificate is still checked against the host name.
  if (e.hostaddr) base.servername = e.host;
  if (mode === 'require') return { ...base, rejectUnauthorized: false };
  if (mode === 'verify-ca') return { ...base, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  return { ...base, rejectUnauthorized: true };
}

import { readFileSync } from 'node:fs';
function readFileSyncText(p: string): string {
  return readFileSync(p, 'utf8');
}

/** Open a pg client on a node; failures become typed errors naming the node. */
export async function connect(e: NodeEndpoint, opts: ConnectOptions = {}): Promise<pg.Client> {
  const cfg: pg.ClientConfig = {
    host: e.hostaddr ?? e.host,
    port: e.port,
    database: e.database,
    user: e.user,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? (e.connectTimeout !== undefined ? e.connectTimeout * 1000 : 15_000),
    application_name: e.applicationName ?? opts.applicationName ?? 'segferry',
  };
  if (e.options !== undefined) cfg.options = e.options;
  // libpq's order: the connection string, PGPASSWORD (pg reads it), then the password file,
  // read here: pg's own reading of it prints a deprecation warning on every run.
  const pw = passwords.get(endpointKey(e)) ?? (process.env.PGPASSWORD === undefined ? passwordFromFile(e) : undefined);
  if (pw !== undefined) cfg.password = pw;
  const ssl = sslConfig(e);
  if (ssl !== undefined) cfg.ssl = ssl;
  // Plain TCP reads into one reusable buffer that COPY readers take over (lib/pg/socket.ts);
  // TLS keeps Node's own socket, whose reads the TLS layer consumes natively.
  else cfg.stream = () => directSocket();
  const client = new pg.Client(cfg);
  // A server that dies while the client is idle emits 'error' on the client: never crash on it.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    try { await client.end(); } catch { /* already closed */ }
    const ctx: { node?: string; endpoint: string; action: string } = { endpoint: describeEndpoint(e), action: 'connect' };
    if (opts.node !== undefined) ctx.node = opts.node;
    throw fromDatabaseError(err, ctx);
  }
  return client;
}

/**
 * Session settings that make the text form of every value lossless and identical across
 * clusters. Export records them in the manifest; import applies the recorded ones.
 */
export const SESSION_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  bytea_output: 'hex',
  TimeZone: 'UTC',
  client_encoding: 'UTF8',
  standard_conforming_strings: 'on',
});

/** Apply session settings with set_config (values are bound, never spliced into SQL). */
export async function applySettings(client: pg.Client, settings: Readonly<Record<string, string>>): Promise<void> {
  const names = Object.keys(settings);
  if (names.length === 0) return;
  const sql = 'SELECT ' + names.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`).join(', ');
  await client.query(sql, names.flatMap((n) => [n, settings[n] as string]));
}

/**
 * Session settings as one statement (`SELECT set_config('DateStyle', 'ISO, MDY', false), …`), to
 * send in one query string with others (one round trip instead of one each), names and values
 * quoted by {@link quoteLiteral}. Undefined when one holds a backslash, whose meaning in a literal
 * depends on `standard_conforming_strings` (a server may have it off until these settings turn it
 * on), or a NUL, which no literal holds: then bind them with {@link applySettings}.
 */
export function settingsSQL(settings: Readonly<Record<string, string>>): string | undefined {
  const names = Object.keys(settings);
  if (names.length === 0) return undefined;
  if (names.some((n) => /[\\\0]/.test(n) || /[\\\0]/.test(settings[n] as string))) return undefined;
  return 'SELECT ' + names.map((n) => `pg_catalog.set_config(${quoteLiteral(n)}, ${quoteLiteral(settings[n] as string)}, false)`).join(', ');
}

/** Close a client, ignoring errors (used on cleanup paths). */
export async function closeQuietly(client: pg.Client | undefined): Promise<void> {
  if (!client) return;
  try { await client.end(); } catch { /* ignore */ }
}

/** Close sessions that may still be connecting, all at once; failed connects are skipped. */
export async function closeAllQuietly(sessions: Iterable<Promise<pg.Client>>): Promise<void> {
  await Promise.all([...sessions].map(async (p) => closeQuietly(await p.catch(() => undefined))));
}

/**
 * Drop a client's connection at once, without waiting for a running query (used when an
 * operation is cancelled or failed: the server ends the backend when the socket closes).
 */
export function destroyClient(client: pg.Client | undefined): void {
  if (!client) return;
  const c = client as unknown as { connection?: { stream?: { destroy(): void } } };
  try { c.connection?.stream?.destroy(); } catch { /* ignore */ }
  client.end().catch(() => {});
}
