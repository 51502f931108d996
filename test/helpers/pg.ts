/**
 * Throw-away PostgreSQL servers for integration tests.
 *
 * Each server gets its own temporary directory (`<tmp>/segferry-pg-<name>-XXXXXX`) holding the
 * data directory (`data/`, with the server log in `data/server.log`). Servers listen on
 * 127.0.0.1 only, on a free port, with scram-sha-256 password authentication for the superuser
 * role `segferry`. No Unix-domain socket is created.
 *
 * PostgreSQL refuses to run as root: when the test process is root, initdb and pg_ctl run as the
 * `postgres` OS user (or `nobody` when there is none) and the temporary directory is handed over
 * to that user.
 *
 * Every started server is remembered in a module-level registry. {@link destroyAllServers} tears
 * them all down. A process `exit` handler (and SIGINT/SIGTERM/SIGHUP handlers in the main thread,
 * see cleanup.ts) synchronously sends the remaining postmasters SIGQUIT (immediate shutdown) and
 * leaves deleting their directories to a detached shell, because vitest SIGKILLs a worker 500 ms
 * after its SIGTERM. Directories left behind by test processes
 * that died without running any handler (SIGKILL) are swept on the next {@link startServer}.
 */
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import pg from 'pg';
import { onEmergencyExit, pidAlive as alive, removeWhenGone, sleepSync } from './cleanup.js';

/** A running (or stopped) throw-away PostgreSQL server. */
export interface PgServer {
  /** Name given at start (e.g. `dn1`); also part of the temp directory name. */
  readonly name: string;
  /** Always the loopback address. */
  readonly host: '127.0.0.1';
  /** TCP port, fixed for the server's lifetime (kept across stop/start). */
  readonly port: number;
  /** The PostgreSQL data directory (its parent temp directory is removed by destroy()). */
  readonly dataDir: string;
  /** Database superuser role: `segferry`. */
  readonly user: string;
  /** Password of {@link user} (scram-sha-256 authentication on 127.0.0.1). */
  readonly password: string;
  /** `postgres://user:password@127.0.0.1:port/db`, URL-encoded; `db` defaults to `postgres`. */
  url(database?: string): string;
  /** Runs one statement on a short-lived pg.Client and returns its rows. */
  query<T = any>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  /** Stops the server (`fast` by default). The data directory is kept. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts the server again after stop(), on the same port with the same data directory. */
  start(): Promise<void>;
  /** Stops the server (immediate) if it runs and deletes its directory. Idempotent. */
  destroy(): Promise<void>;
}

/** Options for {@link startServer}. */
export interface StartServerOptions {
  /** Server name, used in the temp directory name and error messages. */
  name: string;
  /** Password of the `segferry` role (default: random). */
  password?: string;
  /** Extra postgresql.conf settings, written verbatim (`key = value`); values are quoted as needed. */
  settings?: Record<string, string>;
  /** Libraries for `shared_preload_libraries`. */
  sharedPreload?: string[];
}

/** Superuser role created by initdb. */
export const PG_SUPERUSER = 'segferry';

/** Settings every test server gets (small footprint, no durability). */
const BASE_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  shared_buffers: '64MB',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '100',
  max_wal_size: '1GB',
  logging_collector: 'off',
  log_line_prefix: '%m [%p] %q%u@%d ',
  log_timezone: 'UTC',
  timezone: 'UTC',
  lc_messages: 'C',
  password_encryption: 'scram-sha-256',
};

const START_TIMEOUT_S = 90;
const STOP_TIMEOUT_S = 60;
const PORT_ATTEMPTS = 6;
const DIR_PREFIX = 'segferry-pg-';

// ---------------------------------------------------------------------------------------------
// Binaries and OS user

let binDirCache: string | undefined;

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function hasServerBinaries(dir: string): boolean {
  return isExecutable(path.join(dir, 'initdb')) && isExecutable(path.join(dir, 'pg_ctl'));
}

function versionKey(v: string): number[] {
  return v.split(/[^0-9]+/).filter(Boolean).map(Number);
}

function compareVersionsDesc(a: string, b: string): number {
  const x = versionKey(a);
  const y = versionKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (y[i] ?? -1) - (x[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Directory holding the PostgreSQL server binaries (initdb, pg_ctl, postgres).
 *
 * Looks at, in order: `initdb`/`pg_ctl` on PATH (symlinks are resolved so that a
 * `/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb` link yields the real directory),
 * `pg_config --bindir`, and the newest `/usr/lib/postgresql/<version>/bin`.
 *
 * @throws Error "PostgreSQL server binaries not found: ..." when none is found.
 */
export function findPgBinDir(): string {
  if (binDirCache) return binDirCache;
  const found = searchPgBinDir();
  if (!found) {
    throw new Error('PostgreSQL server binaries not found: install postgresql (Debian: apt-get install postgresql-15)');
  }
  binDirCache = found;
  return found;
}

function searchPgBinDir(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const initdb = path.join(dir, 'initdb');
    if (!isExecutable(initdb)) continue;
    try {
      const real = path.dirname(fs.realpathSync(initdb));
      if (hasServerBinaries(real)) return real;
    } catch {
      /* fall through */
    }
    if (hasServerBinaries(dir)) return dir;
  }
  try {
    const r = spawnSyncText('pg_config', ['--bindir']);
    if (r && hasServerBinaries(r)) return r;
  } catch {
    /* no pg_config */
  }
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(root).sort(compareVersionsDesc);
  } catch {
    /* none */
  }
  for (const v of versions) {
    const dir = path.join(root, v, 'bin');
    if (hasServerBinaries(dir)) return dir;
  }
  return undefined;
}

function spawnSyncText(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  if (r.status !== 0 || typeof r.stdout !== 'string') return undefined;
  return r.stdout.trim() || undefined;
}

/** The OS identity initdb/pg_ctl run as: undefined = the current user. */
interface RunAs {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

let runAsCache: RunAs | null | undefined;

/** When the process is root: the `postgres` OS user if it exists, else `nobody`. */
function runAsUser(): RunAs | undefined {
  if (runAsCache !== undefined) return runAsCache ?? undefined;
  runAsCache = null;
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    let passwd = '';
    try {
      passwd = fs.readFileSync('/etc/passwd', 'utf8');
    } catch {
      /* ignore */
    }
    const entries = new Map<string, RunAs>();
    for (const line of passwd.split('\n')) {
      const f = line.split(':');
      if (f.length < 7) continue;
      entries.set(f[0]!, { user: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
    }
    const chosen = entries.get('postgres') ?? entries.get('nobody');
    if (!chosen) throw new Error('running as root, but neither a "postgres" nor a "nobody" OS user exists to run PostgreSQL as');
    runAsCache = chosen;
  }
  return runAsCache ?? undefined;
}

/** A temp root the run-as user can traverse (os.tmpdir(), or /tmp when that is not reachable). */
function tempRoot(runAs: RunAs | undefined): string {
  const t = os.tmpdir();
  if (!runAs) return t;
  let dir = path.resolve(t);
  let ok = true;
  for (;;) {
    try {
      const st = fs.statSync(dir);
      if ((st.mode & 0o001) === 0 && st.uid !== runAs.uid) ok = false;
    } catch {
      ok = false;
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return ok ? t : '/tmp';
}

// ---------------------------------------------------------------------------------------------
// Process helpers

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function childEnv(runAs: RunAs | undefined, home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) could change what initdb/pg_ctl do.
    if (k.startsWith('PG')) continue;
    if (k === 'LANG' || k.startsWith('LC_')) continue;
    env[k] = v;
  }
  env.LC_ALL = 'C';
  env.LANG = 'C';
  if (runAs) {
    env.HOME = home;
    env.USER = runAs.user;
    env.LOGNAME = runAs.user;
  }
  return env;
}

function run(cmd: string, args: string[], opts: { runAs: RunAs | undefined; cwd: string; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const so: SpawnOptions = {
      cwd: opts.cwd,
      env: childEnv(opts.runAs, opts.cwd),
      stdio: ['ignore', 'pipe', 'pipe'],
    };
    if (opts.runAs) {
      so.uid = opts.runAs.uid;
      so.gid = opts.runAs.gid;
    }
    const child = spawn(cmd, args, so);
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
      timer.unref();
    }
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`could not run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

/** A loopback TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

async function chownTo(file: string, runAs: RunAs | undefined): Promise<void> {
  if (runAs) await fsp.chown(file, runAs.uid, runAs.gid);
}

function quoteSetting(v: string): string {
  // Numbers, booleans and simple identifiers/units may stay bare; everything else gets quoted.
  if (/^-?[0-9]+(\.[0-9]+)?[A-Za-z]*$/.test(v) || /^(on|off|true|false)$/i.test(v)) return v;
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

async function tailOf(file: string, from = 0, maxBytes = 4000): Promise<string> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(from, size - maxBytes);
      const len = Math.max(0, size - start);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, start);
      return buf.toString('utf8').trimEnd();
    } finally {
      await fh.close();
    }
  } catch {
    return '(no server log)';
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fsp.stat(file)).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Registry and emergency cleanup

interface Registered {
  baseDir: string;
  dataDir: string;
}

const registry = new Map<string, { entry: Registered; server: PgServer }>();
let handlersInstalled = false;
let sweptStale = false;

function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const first = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is a postgres process serving `dataDir` (checked via /proc where available). */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  if (!alive(pid)) return false;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes(dataDir);
  } catch {
    return !fs.existsSync('/proc/self');
  }
}

/** Send SIGQUIT (immediate shutdown) to the postmaster of every listed server; return their pids. */
function sigquitPostmasters(entries: Registered[]): number[] {
  const pids: number[] = [];
  for (const e of entries) {
    const pid = readPostmasterPid(e.dataDir);
    if (pid && isPostmasterOf(pid, e.dataDir)) {
      try {
        process.kill(pid, 'SIGQUIT');
        pids.push(pid);
      } catch {
        /* already gone */
      }
    }
  }
  return pids;
}

/** Immediate shutdown (SIGQUIT) of every listed server, wait for them, delete their dirs. */
function killAndRemoveSync(entries: Registered[]): void {
  const pids = sigquitPostmasters(entries);
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) sleepSync(20);
  for (const pid of pids) {
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* ignore */
      }
    }
  }
  for (const e of entries) {
    try {
      fs.rmSync(e.baseDir, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
}

/** Exit/signal path: SIGQUIT (immediate shutdown) every postmaster, delete dirs in the background. */
function emergencyCleanup(): void {
  const entries = [...registry.values()].map((r) => r.entry);
  registry.clear();
  const pids = sigquitPostmasters(entries);
  removeWhenGone(pids, entries.map((e) => e.baseDir));
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  onEmergencyExit(emergencyCleanup);
}

/** Removes directories (and servers) left by earlier test processes that died without cleanup. */
function sweepStale(root: string): void {
  if (sweptStale) return;
  sweptStale = true;
  let names: string[] = [];
  try {
    names = fs.readdirSync(root).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  const stale: Registered[] = [];
  for (const n of names) {
    const baseDir = path.join(root, n);
    let owner: number;
    try {
      owner = Number(fs.readFileSync(path.join(baseDir, 'owner.pid'), 'utf8').trim());
    } catch {
      continue; // not ours, or still being created
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid || alive(owner)) continue;
    stale.push({ baseDir, dataDir: path.join(baseDir, 'data') });
  }
  if (stale.length) killAndRemoveSync(stale);
}

// ---------------------------------------------------------------------------------------------
// Server

class Server implements PgServer {
  readonly host = '127.0.0.1' as const;
  readonly user = PG_SUPERUSER;
  running = false;
  private destroyed = false;

  constructor(
    readonly name: string,
    readonly password: string,
    readonly baseDir: string,
    readonly dataDir: string,
    private currentPort: number,
    private readonly bin: string,
    private readonly runAs: RunAs | undefined,
  ) {}

  get port(): number {
    return this.currentPort;
  }

  get logFile(): string {
    return path.join(this.dataDir, 'server.log');
  }

  url(database = 'postgres'): string {
    const u = encodeURIComponent(this.user);
    const p = encodeURIComponent(this.password);
    return `postgres://${u}:${p}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  async query<T = any>(sql: string, params?: unknown[], database = 'postgres'): Promise<T[]> {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: this.port,
      user: this.user,
      password: this.password,
      database,
      connectionTimeoutMillis: 30_000,
    });
    // A server shut down under an idle client emits 'error'; never let that crash the process.
    client.on('error', () => {});
    await client.connect();
    try {
      const res = await client.query(sql, params as any[] | undefined);
      // Multi-statement text returns an array of results: give the rows of the last one.
      const last = Array.isArray(res) ? res[res.length - 1] : res;
      return (last?.rows ?? []) as T[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Writes our settings file (port included); postgresql.conf includes it. */
  async writeConf(settings: Record<string, string>): Promise<void> {
    const all: Record<string, string> = { ...BASE_SETTINGS, ...settings, port: String(this.currentPort) };
    const text =
      '# written by test/helpers/pg.ts\n' +
      Object.entries(all)
        .map(([k, v]) => `${k} = ${quoteSetting(v)}`)
        .join('\n') +
      '\n';
    const file = path.join(this.dataDir, 'segferry.conf');
    await fsp.writeFile(file, text, { mode: 0o600 });
    await chownTo(file, this.runAs);
  }

  setPort(port: number): void {
    this.currentPort = port;
  }

  /** One pg_ctl start; returns undefined on success or the failure text (with log tail). */
  async tryStart(): Promise<{ error: string; portConflict: boolean } | undefined> {
    const logOffset = await fileSize(this.logFile);
    const r = await run(
      path.join(this.bin, 'pg_ctl'),
      ['start', '-w', '-t', String(START_TIMEOUT_S), '-D', this.dataDir, '-l', this.logFile],
      { runAs: this.runAs, cwd: this.baseDir, timeoutMs: (START_TIMEOUT_S + 30) * 1000 },
    );
    if (r.code === 0) {
      this.running = true;
      return undefined;
    }
    const log = await tailOf(this.logFile, logOffset);
    // A postmaster that came up late (pg_ctl timed out) must not survive.
    await this.pgCtlStop('immediate').catch(() => {});
    const portConflict = /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(log);
    return {
      portConflict,
      error: `pg_ctl start failed for server "${this.name}" (port ${this.port}, data ${this.dataDir}), exit ${r.code ?? r.signal}:\n` +
        `${r.output.trim()}\n--- tail of ${this.logFile} ---\n${log}`,
    };
  }

  private async pgCtlStop(mode: 'fast' | 'immediate'): Promise<RunResult> {
    return run(
      path.join(this.bin, 'pg_ctl'),
      ['stop', '-w', '-t', String(STOP_TIMEOUT_S), '-m', mode, '-D', this.dataDir],
      { runAs: this.runAs, cwd: this.baseDir, timeoutMs: (STOP_TIMEOUT_S + 30) * 1000 },
    );
  }

  /** Whether a postmaster is serving this data directory right now (not just our flag). */
  isRunning(): boolean {
    const pid = readPostmasterPid(this.dataDir);
    return pid !== undefined && isPostmasterOf(pid, this.dataDir);
  }

  async start(): Promise<void> {
    if (this.destroyed) throw new Error(`server "${this.name}" was destroyed`);
    if (this.isRunning()) {
      this.running = true;
      return;
    }
    const fail = await this.tryStart();
    if (fail) throw new Error(fail.error);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.running && !this.isRunning()) return;
    const r = await this.pgCtlStop(mode);
    if (r.code !== 0 && readPostmasterPid(this.dataDir) !== undefined) {
      const log = await tailOf(this.logFile);
      throw new Error(`pg_ctl stop -m ${mode} failed for server "${this.name}": ${r.output.trim()}\n--- tail of ${this.logFile} ---\n${log}`);
    }
    this.running = false;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      if (this.running || readPostmasterPid(this.dataDir) !== undefined) {
        await this.pgCtlStop('immediate').catch(() => {});
        const pid = readPostmasterPid(this.dataDir);
        if (pid && isPostmasterOf(pid, this.dataDir)) killAndRemoveSync([{ baseDir: this.baseDir, dataDir: this.dataDir }]);
      }
      this.running = false;
      await fsp.rm(this.baseDir, { recursive: true, force: true });
    } finally {
      registry.delete(this.baseDir);
    }
  }
}

function randomPassword(): string {
  // URL-unsafe characters on purpose: callers must use url(), which encodes them.
  return `sf-${crypto.randomBytes(9).toString('base64url')}/+@:`;
}

/**
 * initdb + start one server. The data directory lives in a fresh `fs.mkdtemp` directory; the
 * port is a free loopback port (start is retried with another port on a bind conflict).
 *
 * @throws when binaries are missing, initdb fails, or the server does not start (the message
 *   includes the tail of the server log).
 */
export async function startServer(opts: StartServerOptions): Promise<PgServer> {
  const bin = findPgBinDir();
  const runAs = runAsUser();
  const root = tempRoot(runAs);
  installHandlers();
  sweepStale(root);

  const safeName = opts.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const baseDir = await fsp.mkdtemp(path.join(root, `${DIR_PREFIX}${safeName}-`));
  const dataDir = path.join(baseDir, 'data');
  const password = opts.password ?? randomPassword();
  const server = new Server(opts.name, password, baseDir, dataDir, 0, bin, runAs);
  registry.set(baseDir, { entry: { baseDir, dataDir }, server });
  try {
    await fsp.writeFile(path.join(baseDir, 'owner.pid'), `${process.pid}\n`);
    await chownTo(baseDir, runAs);

    // initdb reads the password from a file; it is deleted right after.
    const pwfile = path.join(baseDir, 'pwfile');
    await fsp.writeFile(pwfile, password + '\n', { mode: 0o600 });
    await chownTo(pwfile, runAs);
    const init = await run(
      path.join(bin, 'initdb'),
      ['-D', dataDir, '-U', PG_SUPERUSER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'],
      { runAs, cwd: baseDir, timeoutMs: 120_000 },
    );
    await fsp.rm(pwfile, { force: true });
    if (init.code !== 0) throw new Error(`initdb failed for server "${opts.name}" (exit ${init.code ?? init.signal}):\n${init.output.trim()}`);

    const confFile = path.join(dataDir, 'postgresql.conf');
    await fsp.appendFile(confFile, "\n# test harness settings\ninclude 'segferry.conf'\n");
    const settings: Record<string, string> = { ...(opts.settings ?? {}) };
    if (opts.sharedPreload?.length) settings.shared_preload_libraries = opts.sharedPreload.join(',');

    let lastError = '';
    for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
      server.setPort(await freePort());
      await server.writeConf(settings);
      const fail = await server.tryStart();
      if (!fail) return server;
      lastError = fail.error;
      if (!fail.portConflict) break;
    }
    throw new Error(lastError);
  } catch (e) {
    await server.destroy().catch(() => {});
    throw e;
  }
}

/** Starts several servers in parallel (same options for each). If one fails, all are destroyed. */
export async function startServers(names: string[], opts: Omit<StartServerOptions, 'name'> = {}): Promise<PgServer[]> {
  const results = await Promise.allSettled(names.map((name) => startServer({ ...opts, name })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.destroy().catch(() => {}) : undefined)));
    throw failed.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<PgServer>).value);
}

/** Destroys every server this process started and has not destroyed yet. */
export async function destroyAllServers(): Promise<void> {
  const servers = [...registry.values()].map((r) => r.server);
  await Promise.all(servers.map((s) => s.destroy().catch(() => {})));
}
