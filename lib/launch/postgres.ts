/**
 * Throwaway PostgreSQL servers from the installed server programs: the one launcher behind
 * `segferry demo`, the integration tests (test/helpers/pg.ts) and the benchmarks
 * (bench/lib/cluster.ts).
 *
 * A {@link PgServers} group owns one temp directory `<base>/segferry-pg-[label-]XXXXXX` holding
 * `owner.pid` (the creating process, so that {@link sweepStaleServers} can remove what a dead
 * process left), an initdb template made once, and one data directory per server copied from
 * it (copying is ~10× faster than initdb). Servers listen on 127.0.0.1 only, on a free port that
 * is kept across stop/start, with Unix sockets off; settings go into `<dataDir>/segferry.conf`
 * (so `ALTER SYSTEM` still wins, and a restart reads the same file) and the server log is
 * `<dataDir>/server.log`. As root, initdb and postgres run as `postgres` (or `nobody`), since
 * PostgreSQL refuses to run as root.
 *
 * Nothing here installs process handlers: callers decide. The demo calls
 * {@link PgServers.destroySync} on `exit`; the tests call {@link PgServers.abandon} from their
 * emergency-exit hook.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readdirSync, realpathSync, rmSync, statfsSync, unlinkSync } from 'node:fs';
import { appendFile, chown, cp, lstat, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import pg from 'pg';
import { InvalidOptionError, PrerequisiteError, SegferryError } from '../errors.js';
import { pidAlive, removeWhenGone, waitOrKillSync } from './processes.js';

/** Where the PostgreSQL server programs are. */
export interface PgBinaries {
  /** Directory holding `initdb` and `postgres`. */
  bindir: string;
  /** Major version, e.g. 15. */
  major: number;
}

/** What to install, shown when the server binaries are missing. */
export const INSTALL_HINT =
  'install the PostgreSQL server (with postgres_fdw, part of the standard contrib modules): ' +
  'Debian/Ubuntu "apt-get install postgresql", Fedora/RHEL "dnf install postgresql-server postgresql-contrib", ' +
  'macOS "brew install postgresql@17"; or point SEGFERRY_PG_BINDIR at the directory holding initdb and postgres';

/** Database superuser that initdb creates unless told otherwise. */
export const DEFAULT_SUPERUSER = 'segferry';

/** Prefix of every group's temp directory (what {@link sweepStaleServers} looks for). */
export const SERVERS_DIR_PREFIX = 'segferry-pg-';

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function hasServer(dir: string): boolean {
  return isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));
}

function versionOf(bindir: string): number {
  const r = spawnSync(join(bindir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+)(?:\.\d+)?/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : 0;
}

const binariesCache = new Map<string, PgBinaries>();

/**
 * Find initdb and postgres: `SEGFERRY_PG_BINDIR`, then PATH (following symlinks, as Debian's
 * /usr/local/bin links do), then `pg_config --bindir`, then the newest of
 * /usr/lib/postgresql/N/bin, /usr/pgsql-N/bin and Homebrew's postgresql@N. The answer is
 * remembered per SEGFERRY_PG_BINDIR and PATH.
 * Throws ERR_PREREQUISITE naming what to install.
 */
export function findPgBinaries(): PgBinaries {
  const key = `${process.env.SEGFERRY_PG_BINDIR ?? ''}\0${process.env.PATH ?? ''}`;
  const cached = binariesCache.get(key);
  if (cached) return cached;
  const found = searchPgBinaries();
  binariesCache.set(key, found);
  return found;
}

/**
 * The `bin` folders of versioned PostgreSQL installs, newest major version first: Debian's
 * /usr/lib/postgresql/N, the PGDG RPMs' /usr/pgsql-N, Homebrew's postgresql@N.
 */
export function versionedBinDirs(): string[] {
  const found: { dir: string; v: number }[] = [];
  const scan = (parent: string, re: RegExp) => {
    let names: string[] = [];
    try { names = readdirSync(parent); } catch { return; }
    for (const n of names) {
      const m = re.exec(n);
      if (m) found.push({ dir: join(parent, n, 'bin'), v: Number(m[1]) });
    }
  };
  scan('/usr/lib/postgresql', /^(\d+)$/);
  scan('/usr', /^pgsql-(\d+)$/);
  scan('/opt/homebrew/opt', /^postgresql@(\d+)$/);
  scan('/usr/local/opt', /^postgresql@(\d+)$/);
  return found.sort((a, b) => b.v - a.v).map((c) => c.dir);
}

function searchPgBinaries(): PgBinaries {
  const ok = (dir: string | undefined): PgBinaries | undefined => {
    if (!dir || !hasServer(dir)) return undefined;
    return { bindir: dir, major: versionOf(dir) };
  };
  const env = process.env.SEGFERRY_PG_BINDIR;
  if (env) {
    const b = ok(env);
    if (b) return b;
    throw new PrerequisiteError(`SEGFERRY_PG_BINDIR=${env} holds no initdb and postgres`, { hint: INSTALL_HINT });
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const initdb = join(dir, 'initdb');
    if (!existsSync(initdb)) continue;
    let real = initdb;
    try { real = realpathSync(initdb); } catch { /* keep */ }
    const b = ok(dirname(real)) ?? ok(dir);
    if (b) return b;
  }
  const pc = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (pc.status === 0) {
    const b = ok(pc.stdout.trim());
    if (b) return b;
  }
  for (const dir of versionedBinDirs()) {
    const b = ok(dir);
    if (b) return b;
  }
  throw new PrerequisiteError(`PostgreSQL server programs (initdb, postgres) not found; looked in PATH, pg_config --bindir, /usr/lib/postgresql/*/bin and /usr/pgsql-*/bin`, {
    hint: INSTALL_HINT,
  });
}

/** The OS account servers run as: ourselves, or an unprivileged one when we are root. */
export interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

/** As root: `postgres` if that account exists, else `nobody`. Otherwise undefined (run as ourselves). */
export function serverAccount(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  let passwd = '';
  try { passwd = readFileSync('/etc/passwd', 'utf8'); } catch { /* none */ }
  for (const want of ['postgres', 'nobody']) {
    const line = passwd.split('\n').find((l) => l.startsWith(want + ':'));
    if (!line) continue;
    const f = line.split(':');
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && uid !== 0) return { uid, gid, name: want };
  }
  throw new PrerequisiteError('running as root, and neither a "postgres" nor a "nobody" account exists to run PostgreSQL as', {
    hint: 'run as a normal user, or create a "postgres" account (useradd -r postgres)',
  });
}

async function chownTree(path: string, who: RunAs): Promise<void> {
  await chown(path, who.uid, who.gid);
  if (!(await lstat(path)).isDirectory()) return;
  await Promise.all((await readdir(path)).map((n) => chownTree(join(path, n), who)));
}

/** A free TCP port on 127.0.0.1 (the OS picks; another process may take it before we bind). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/**
 * Settings every server gets: loopback only, no Unix socket (nothing outside the temp directory
 * is touched), durability off (the data is disposable), log to stderr in C and UTC.
 */
export const BASE_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: '64MB',
  logging_collector: 'off',
  lc_messages: 'C',
  log_timezone: 'UTC',
  timezone: 'UTC',
});

/**
 * Extra settings for bulk loads into servers nobody replicates or inspects (the demo): WAL
 * minimal so a table created and filled in one transaction skips the WAL, rare checkpoints, no
 * autovacuum, few connections.
 */
export const DISPOSABLE_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_wal_size: '2GB',
  checkpoint_timeout: '30min',
  max_connections: '40',
  autovacuum: 'off',
  log_min_messages: 'warning',
});

/**
 * Where throwaway servers go by default: a memory file system (/dev/shm) when it has room, since
 * fsync is off anyway and copying data directories there is about 10× faster than on a disk;
 * else the OS temp dir (as root: /tmp, which the server account can reach).
 */
export function defaultBaseDir(root: boolean, needBytes = 4 * 1024 ** 3): string {
  try {
    const st = statfsSync('/dev/shm');
    if (st.bavail * st.bsize >= needBytes) {
      accessSync('/dev/shm', constants.W_OK);
      return '/dev/shm';
    }
  } catch { /* no /dev/shm */ }
  return root ? '/tmp' : tmpdir();
}

/** Options of {@link PgServers}. */
export interface PgServersOptions {
  /** Parent of the temp directory (default: {@link defaultBaseDir}). */
  baseDir?: string;
  /** Part of the temp directory's name, `segferry-pg-<label>-XXXXXX` (default: none). */
  label?: string;
  /** Database superuser name (default {@link DEFAULT_SUPERUSER}, `segferry`). */
  user?: string;
  /** Password of that user; when set, TCP connections need it (scram-sha-256), else trust. */
  password?: string;
  /** Settings on top of {@link BASE_SETTINGS} (default none). */
  settings?: Record<string, string>;
  /** Libraries for `shared_preload_libraries`, e.g. `['citus']` (default none). */
  sharedPreload?: string[];
  /** WAL segment size in MiB given to initdb (default 1: each copy of the template is 15 MiB smaller than with 16). */
  walSegmentMiB?: number;
  /** How long a server may take to accept connections, in ms (default 90 000). */
  startTimeoutMs?: number;
}

/** `key = value` for postgresql.conf: numbers, booleans and units bare, the rest quoted. */
function confValue(v: string): string {
  if (/^-?[0-9]+(\.[0-9]+)?[A-Za-z]*$/.test(v) || /^(on|off|true|false)$/i.test(v)) return v;
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

const PORT_CONFLICT = /could not bind|Address already in use|could not create any TCP\/IP sockets/i;

function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is a postgres process serving `dataDir` (checked via /proc where available). */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  if (!pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dataDir);
  } catch {
    return !existsSync('/proc/self');
  }
}

/**
 * A set of throwaway servers sharing one temp directory and one initdb template.
 * `destroy()` stops every server and removes the directory; it is safe to call twice.
 */
export class PgServers {
  /** The server programs used. */
  readonly bin: PgBinaries;
  /** The group's temp directory (removed by destroy). */
  readonly dir: string;
  /** Database superuser. */
  readonly user: string;
  /** The OS account the servers run as, when not ourselves (we are root). */
  readonly runAs: RunAs | undefined;
  /** Every server started in this group, running or not. */
  readonly servers: PgServer[] = [];
  readonly #opts: PgServersOptions;
  #template: Promise<string> | undefined;
  #destroyed = false;

  /** Use {@link PgServers.create}: making the directory is asynchronous. */
  private constructor(opts: PgServersOptions, bin: PgBinaries, runAs: RunAs | undefined, dir: string) {
    this.#opts = opts;
    this.bin = bin;
    this.runAs = runAs;
    this.dir = dir;
    this.user = opts.user ?? DEFAULT_SUPERUSER;
  }

  /**
   * Find the server programs and the account to run them as, and make the temp directory
   * (with `owner.pid`). Throws ERR_PREREQUISITE when PostgreSQL is missing.
   */
  static async create(opts: PgServersOptions = {}): Promise<PgServers> {
    const bin = findPgBinaries();
    const runAs = serverAccount();
    const base = opts.baseDir ?? defaultBaseDir(runAs !== undefined);
    const label = opts.label ? opts.label.replace(/[^A-Za-z0-9_.-]/g, '_') + '-' : '';
    const dir = await mkdtemp(join(base, SERVERS_DIR_PREFIX + label));
    try {
      await writeFile(join(dir, 'owner.pid'), `${process.pid}\n`);
      if (runAs) await chown(dir, runAs.uid, runAs.gid);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return new PgServers(opts, bin, runAs, dir);
  }

  /** The superuser's password, when the group was made with one. */
  get password(): string | undefined { return this.#opts.password; }

  /** True once destroy(), destroySync() or abandon() ran. */
  get destroyed(): boolean { return this.#destroyed; }

  /** @internal Options for spawning server programs as the server account. */
  spawnOptions(): { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv } {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', TZ: 'UTC', HOME: this.dir };
    // A build pointed at by SEGFERRY_PG_BINDIR may need its own libraries.
    if (process.env.LD_LIBRARY_PATH) env.LD_LIBRARY_PATH = process.env.LD_LIBRARY_PATH;
    const o: { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv } = { cwd: this.dir, env };
    if (this.runAs) { o.uid = this.runAs.uid; o.gid = this.runAs.gid; }
    return o;
  }

  /** @internal Everything that goes into a server's segferry.conf but its port. */
  settings(): Record<string, string> {
    const s: Record<string, string> = { ...BASE_SETTINGS, ...this.#opts.settings };
    if (this.#opts.sharedPreload?.length) s.shared_preload_libraries = this.#opts.sharedPreload.join(',');
    return s;
  }

  /** @internal */
  get startTimeoutMs(): number { return this.#opts.startTimeoutMs ?? 90_000; }

  #run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve) => {
      const p = spawn(cmd, args, { ...this.spawnOptions(), stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => { output += d; });
      p.stderr!.setEncoding('utf8').on('data', (d: string) => { output += d; });
      p.once('error', (e) => resolve({ code: -1, output: output + e.message }));
      p.once('close', (code) => resolve({ code, output }));
    });
  }

  /** initdb once (concurrent callers share it); later servers copy the template. */
  #ensureTemplate(): Promise<string> {
    this.#template ??= this.#initdb();
    return this.#template;
  }

  async #initdb(): Promise<string> {
    const t = join(this.dir, 'template');
    const args = ['-D', t, '-U', this.user, '--no-sync', '--encoding=UTF8', '--locale=C', '--no-instructions', `--wal-segsize=${this.#opts.walSegmentMiB ?? 1}`];
    const pw = join(this.dir, 'pwfile');
    if (this.#opts.password !== undefined) {
      // initdb reads the password from a file; it is deleted right after.
      await writeFile(pw, this.#opts.password + '\n', { mode: 0o600 });
      if (this.runAs) await chown(pw, this.runAs.uid, this.runAs.gid);
      args.push(`--pwfile=${pw}`, '--auth-host=scram-sha-256', '--auth-local=scram-sha-256');
    } else {
      args.push('--auth=trust');
    }
    const r = await this.#run(join(this.bin.bindir, 'initdb'), args);
    await rm(pw, { force: true });
    if (r.code !== 0) {
      throw new PrerequisiteError(`initdb failed (exit ${r.code}): ${r.output.trim().split('\n').slice(-3).join(' ')}`, {
        hint: this.runAs ? `the server runs as OS user ${this.runAs.name}: it needs to read ${this.bin.bindir} and write ${this.dir}` : INSTALL_HINT,
      });
    }
    const conf = join(t, 'postgresql.conf');
    await appendFile(conf, "\n# written by segferry's launcher: port and settings of this server\ninclude 'segferry.conf'\n");
    return t;
  }

  /** Copy a data directory as the server account; `cp -a` is several times faster than fs.cp. */
  async #copy(from: string, to: string): Promise<void> {
    const r = await this.#run('cp', ['-a', from, to]);
    if (r.code === 0) return;
    await rm(to, { recursive: true, force: true });
    await cp(from, to, { recursive: true });
    if (this.runAs) await chownTree(to, this.runAs);
  }

  /**
   * Create and start a server named `name` (its data directory is `<dir>/<name>`, other
   * characters than letters, digits, `_` and `-` replaced by `_`) on a free
   * port; a port taken between our probe and the server's bind is retried with another.
   */
  async start(name: string): Promise<PgServer> {
    if (this.#destroyed) throw new SegferryError('ERR_ABORTED', 'the servers were destroyed');
    const dataDir = join(this.dir, name.replace(/[^A-Za-z0-9_-]/g, '_'));
    if (name === 'template' || this.servers.some((s) => s.dataDir === dataDir)) {
      throw new InvalidOptionError(`server name ${JSON.stringify(name)} is taken in ${this.dir}`);
    }
    const s = new PgServer(this, name, dataDir);
    this.servers.push(s);
    await this.#copy(await this.#ensureTemplate(), dataDir);
    await s.start();
    return s;
  }

  /** Start several servers at once; if one fails, the others are destroyed too. */
  async startAll(names: string[]): Promise<PgServer[]> {
    const r = await Promise.allSettled(names.map((n) => this.start(n)));
    const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) {
      await Promise.all(r.map((x) => (x.status === 'fulfilled' ? x.value.destroy().catch(() => {}) : undefined)));
      throw failed.reason;
    }
    return r.map((x) => (x as PromiseFulfilledResult<PgServer>).value);
  }

  /** @internal A server's data directory is gone: the last one takes the group's directory along. */
  async serverDestroyed(): Promise<void> {
    if (this.servers.every((s) => s.destroyed)) await this.destroy();
  }

  /** Stop every server (immediate) and remove the temp directory. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(this.servers.map((s) => s.stop('immediate').catch(() => {})));
    await rm(this.dir, { recursive: true, force: true });
  }

  #signalAll(): number[] {
    const pids: number[] = [];
    for (const s of this.servers) {
      const pid = s.pid;
      if (pid === undefined || !pidAlive(pid)) continue;
      try { process.kill(pid, 'SIGQUIT'); pids.push(pid); } catch { /* gone */ }
    }
    return pids;
  }

  /**
   * Synchronous cleanup for a process `exit` handler: immediate shutdown (SIGQUIT) of every
   * server, up to 10 s for them to end (then SIGKILL), and the directory removed.
   */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    waitOrKillSync(this.#signalAll(), 10_000);
    try { rmSync(this.dir, { recursive: true, force: true }); } catch { /* a straggler may hold files */ }
  }

  /**
   * Like {@link destroySync} but returns at once: SIGQUIT every server and leave waiting and
   * removing the directory to a detached shell (for signal handlers with a deadline).
   */
  abandon(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    removeWhenGone(this.#signalAll(), [this.dir]);
  }

  /**
   * Let this process exit while the servers keep running (`segferry demo --keep`): no handle
   * keeps the event loop, and `owner.pid` goes, so no sweep takes the servers for leftovers.
   */
  detach(): void {
    for (const s of this.servers) s.detach();
    try { unlinkSync(join(this.dir, 'owner.pid')); } catch { /* gone */ }
  }
}

/** One server of a {@link PgServers} group. */
export class PgServer {
  /** Name given at start; also (sanitized) the data directory's name. */
  readonly name: string;
  /** The data directory. */
  readonly dataDir: string;
  /** Always the loopback address. */
  readonly host = '127.0.0.1' as const;
  readonly #owner: PgServers;
  #port = 0;
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #destroyed = false;

  /** @internal Made by {@link PgServers.start}. */
  constructor(owner: PgServers, name: string, dataDir: string) {
    this.#owner = owner;
    this.name = name;
    this.dataDir = dataDir;
  }

  /** TCP port, chosen at the first start and kept across stop/start (0 before). */
  get port(): number { return this.#port; }

  /** The server's log (stderr of the postmaster, appended to across restarts). */
  get logFile(): string { return join(this.dataDir, 'server.log'); }

  /** The superuser's password, when the group was made with one. */
  get password(): string | undefined { return this.#owner.password; }

  /** Database superuser. */
  get user(): string { return this.#owner.user; }

  /** Process id of the postmaster, while it runs. */
  get pid(): number | undefined {
    const p = this.#proc;
    return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
  }

  /** True once destroy() removed the data directory. */
  get destroyed(): boolean { return this.#destroyed; }

  /** Connection URL, URL-encoded (with the password, if any: keep it out of output); `db` defaults to `postgres`. */
  url(db = 'postgres'): string {
    const pw = this.password;
    const auth = encodeURIComponent(this.user) + (pw !== undefined ? ':' + encodeURIComponent(pw) : '');
    return `postgres://${auth}@${this.host}:${this.#port}/${encodeURIComponent(db)}`;
  }

  /**
   * Run SQL on a short-lived connection to database `db` (default `postgres`) and return the
   * rows; several statements (without params) give the last one's rows.
   */
  async query<T = any>(sql: string, params?: unknown[], db = 'postgres'): Promise<T[]> {
    const c = new pg.Client({
      host: this.host, port: this.#port, user: this.user, password: this.password, database: db, connectionTimeoutMillis: 30_000,
    });
    // A server shut down under an idle client emits 'error'; never let that crash the process.
    c.on('error', () => {});
    await c.connect();
    try {
      const res = (await c.query(sql, params as unknown[] | undefined)) as pg.QueryResult | pg.QueryResult[];
      const last = Array.isArray(res) ? res[res.length - 1] : res;
      return (last?.rows ?? []) as T[];
    } finally {
      await c.end().catch(() => {});
    }
  }

  /**
   * Start the server and wait until it accepts connections. The first start picks a free port;
   * later ones (after stop) reuse it. Does nothing while it runs.
   */
  async start(): Promise<void> {
    if (this.#destroyed) throw new SegferryError('ERR_ABORTED', `server ${this.name} was destroyed`);
    if (this.pid !== undefined) return;
    const fixed = this.#port !== 0;
    let lastErr = '';
    for (let attempt = 0; attempt < (fixed ? 1 : 6); attempt++) {
      if (!fixed) this.#port = await freePort();
      const r = await this.#startOnce();
      if (r === undefined) return;
      lastErr = r;
      // Another process took the port between our probe and the bind: try another.
      if (!PORT_CONFLICT.test(r)) break;
    }
    throw new PrerequisiteError(`PostgreSQL server ${this.name} (port ${this.#port}, data ${this.dataDir}) did not start: ${lastErr || 'no output'}`, {
      hint: `see ${this.logFile}; check that the server binaries in ${this.#owner.bin.bindir} work`,
    });
  }

  /** One postmaster launch; undefined when it is ready, else the new part of its log. */
  async #startOnce(): Promise<string | undefined> {
    const settings = { ...this.#owner.settings(), port: String(this.#port) };
    const conf = Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}`).join('\n') + '\n';
    const confFile = join(this.dataDir, 'segferry.conf');
    await writeFile(confFile, conf, { mode: 0o600 });
    const runAs = this.#owner.runAs;
    if (runAs) await chown(confFile, runAs.uid, runAs.gid);
    let logStart = 0;
    try { logStart = readFileSync(this.logFile).length; } catch { /* new */ }
    const fd = openSync(this.logFile, 'a');
    let proc: ChildProcess;
    try {
      // Own process group: a terminal's Ctrl-C reaches only us, and we stop the servers in
      // order. A log file rather than a pipe lets a kept server outlive this process.
      proc = spawn(join(this.#owner.bin.bindir, 'postgres'), ['-D', this.dataDir], { ...this.#owner.spawnOptions(), stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    // No handle of ours keeps the event loop alive: stop() and start() wait on timers.
    proc.unref();
    this.#proc = proc;
    let exited = false;
    let spawnError = '';
    this.#exited = new Promise((res) => proc.once('exit', () => { exited = true; res(); }));
    proc.once('error', (e) => { spawnError = e.message; exited = true; });
    const deadline = Date.now() + this.#owner.startTimeoutMs;
    while (!exited && Date.now() < deadline) {
      if (this.#ready(proc.pid)) return undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!exited) { this.kill(); await this.#exited; }
    this.#proc = undefined;
    let log = '';
    try { log = readFileSync(this.logFile).subarray(logStart).toString('utf8'); } catch { /* none */ }
    return [spawnError, ...log.trim().split('\n').slice(-4)].filter(Boolean).join(' ') || (exited ? 'the postmaster exited' : 'timed out');
  }

  /** postmaster.pid line 8 turns `ready` when connections are accepted (what pg_ctl -w waits for). */
  #ready(pid: number | undefined): boolean {
    let lines: string[];
    try { lines = readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n'); } catch { return false; }
    return Number(lines[0]) === pid && lines[7]?.trim() === 'ready';
  }

  /**
   * Stop the server: `fast` (default; SIGINT: roll back sessions, checkpoint), `immediate`
   * (SIGQUIT: no checkpoint; fine for throwaway data) or `smart` (SIGTERM: wait for sessions).
   * After 60 s it is killed. The data directory is kept.
   */
  async stop(mode: 'fast' | 'immediate' | 'smart' = 'fast'): Promise<void> {
    const p = this.#proc;
    if (!p || this.pid === undefined) return;
    p.kill(mode === 'fast' ? 'SIGINT' : mode === 'immediate' ? 'SIGQUIT' : 'SIGTERM');
    const timer = setTimeout(() => this.kill(), 60_000);
    await this.#exited;
    clearTimeout(timer);
    this.#proc = undefined;
  }

  /** Let this process exit while the server keeps running. */
  detach(): void {
    this.#proc?.unref();
    this.#proc = undefined;
  }

  /** SIGKILL the postmaster (its backends exit when it is gone). */
  kill(): void {
    const pid = this.pid;
    if (pid === undefined) return;
    try { this.#proc!.kill('SIGKILL'); } catch { /* gone */ }
  }

  /** Stop (immediate) and remove the data directory; the group's last server removes the group. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    await this.stop('immediate');
    this.#destroyed = true;
    await rm(this.dataDir, { recursive: true, force: true });
    await this.#owner.serverDestroyed();
  }
}

/**
 * Remove the temp directories under `root` that processes now dead left behind (killed before
 * any cleanup ran): immediate shutdown of their postmasters, then the directories. A directory
 * is only touched when its `owner.pid` names a process that no longer exists, so concurrent
 * runs on one machine leave each other alone; one without `owner.pid` (being made, or kept by
 * `demo --keep`) is never touched. Returns the directories removed.
 */
export function sweepStaleServers(root: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(SERVERS_DIR_PREFIX));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const dir = join(root, n);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8').trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid || pidAlive(owner)) continue;
    const pids: number[] = [];
    let subdirs: string[] = [];
    try { subdirs = readdirSync(dir); } catch { /* unreadable */ }
    for (const s of subdirs) {
      const dataDir = join(dir, s);
      const pid = readPostmasterPid(dataDir);
      if (pid === undefined || !isPostmasterOf(pid, dataDir)) continue;
      try { process.kill(pid, 'SIGQUIT'); pids.push(pid); } catch { /* gone, or not ours to signal */ }
    }
    waitOrKillSync(pids, 10_000);
    try {
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch { /* not ours to remove */ }
  }
  return removed;
}
