/**
 * Throwaway PostgreSQL servers from the installed server binaries, for the demo (and reusable by
 * tests): initdb once into a template, copy it per server, start `postgres` on a free loopback
 * port with Unix sockets off. As root, servers run as an unprivileged OS user (`postgres` if it
 * exists, else `nobody`), since PostgreSQL refuses to run as root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chownSync, closeSync, constants, openSync, statfsSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { chown, cp, lstat, readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import pg from 'pg';
import { PrerequisiteError, SegferryError } from '../errors.js';

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

function hasServer(dir: string): boolean {
  return existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'));
}

function versionOf(bindir: string): number {
  const r = spawnSync(join(bindir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+)(?:\.\d+)?/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : 0;
}

/**
 * Find initdb and postgres: `SEGFERRY_PG_BINDIR`, then PATH (following symlinks, as Debian's
 * /usr/local/bin links do), then `pg_config --bindir`, then the newest of
 * /usr/lib/postgresql/N/bin, /usr/pgsql-N/bin and Homebrew's postgresql@N.
 * Throws ERR_PREREQUISITE naming what to install.
 */
export function findPgBinaries(): PgBinaries {
  const tried: string[] = [];
  const ok = (dir: string | undefined): PgBinaries | undefined => {
    if (!dir) return undefined;
    tried.push(dir);
    if (!hasServer(dir)) return undefined;
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
  const candidates: { dir: string; v: number }[] = [];
  const scan = (parent: string, re: RegExp, sub: string) => {
    let names: string[] = [];
    try { names = readdirSync(parent); } catch { return; }
    for (const n of names) {
      const m = re.exec(n);
      if (m) candidates.push({ dir: join(parent, n, sub), v: Number(m[1]) });
    }
  };
  scan('/usr/lib/postgresql', /^(\d+)$/, 'bin');
  scan('/usr', /^pgsql-(\d+)$/, 'bin');
  scan('/opt/homebrew/opt', /^postgresql@(\d+)$/, 'bin');
  scan('/usr/local/opt', /^postgresql@(\d+)$/, 'bin');
  candidates.sort((a, b) => b.v - a.v);
  for (const c of candidates) {
    const b = ok(c.dir);
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
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Settings for a throwaway server: durability off (the data is disposable), WAL minimal so a
 * table created and filled in one transaction skips the WAL, Unix sockets off so nothing
 * outside the temp directory is touched.
 */
export const THROWAWAY_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_wal_size: '2GB',
  checkpoint_timeout: '30min',
  shared_buffers: '64MB',
  max_connections: '40',
  autovacuum: 'off',
  logging_collector: 'off',
  log_min_messages: 'warning',
});

/**
 * Where throwaway servers go: a memory file system (/dev/shm) when it has room, since fsync is
 * off anyway and copying data directories there is about 10× faster than on a disk; else the
 * OS temp dir (as root: /tmp, which the server account can reach).
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
export interface PgClusterOptions {
  /** Parent of the temp directory (default: {@link defaultBaseDir}). */
  baseDir?: string;
  /** Database superuser name (default `segferry`). */
  user?: string;
  /** Password of that user; when set, TCP connections need it (scram-sha-256), else trust. */
  password?: string;
  /** Extra server settings. */
  settings?: Record<string, string>;
}

/**
 * A set of throwaway servers sharing one temp directory and one initdb template.
 * `destroy()` stops every server and removes the directory; it is safe to call twice.
 */
export class PgServers {
  readonly bin: PgBinaries;
  readonly dir: string;
  readonly user: string;
  readonly runAs: RunAs | undefined;
  readonly #opts: PgClusterOptions;
  readonly servers: PgServer[] = [];
  #template: string | undefined;
  #destroyed = false;

  constructor(opts: PgClusterOptions = {}) {
    this.bin = findPgBinaries();
    this.runAs = serverAccount();
    this.user = opts.user ?? 'segferry';
    this.#opts = opts;
    const base = opts.baseDir ?? defaultBaseDir(this.runAs !== undefined);
    this.dir = mkdtempSync(join(base, 'segferry-pg-'));
    if (this.runAs) chownSync(this.dir, this.runAs.uid, this.runAs.gid);
  }

  #spawnOpts(): { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv } {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
    const o: { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv } = { cwd: this.dir, env };
    if (this.runAs) { o.uid = this.runAs.uid; o.gid = this.runAs.gid; }
    return o;
  }

  /** initdb once; later servers copy the template (copying is ~10× faster than initdb). */
  #ensureTemplate(): string {
    if (this.#template) return this.#template;
    const t = join(this.dir, 'template');
    // 1 MiB WAL segments: each copy of the template is 16 MiB smaller.
    const args = ['-D', t, '-U', this.user, '--no-sync', '--encoding=UTF8', '--locale=C', '--no-instructions', '--wal-segsize=1'];
    if (this.#opts.password !== undefined) {
      const pw = join(this.dir, 'pwfile');
      writeFileSync(pw, this.#opts.password + '\n', { mode: 0o600 });
      if (this.runAs) chownSync(pw, this.runAs.uid, this.runAs.gid);
      args.push(`--pwfile=${pw}`, '--auth-host=scram-sha-256', '--auth-local=scram-sha-256');
    } else {
      args.push('--auth=trust');
    }
    const r = spawnSync(join(this.bin.bindir, 'initdb'), args, { ...this.#spawnOpts(), encoding: 'utf8' });
    if (this.#opts.password !== undefined) rmSync(join(this.dir, 'pwfile'), { force: true });
    if (r.status !== 0) {
      throw new PrerequisiteError(`initdb failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' ')}`, {
        hint: this.runAs ? `the server runs as OS user ${this.runAs.name}: it needs to read ${this.bin.bindir} and write ${this.dir}` : INSTALL_HINT,
      });
    }
    this.#template = t;
    return t;
  }

  /** Copy a data directory as the server account; `cp -a` is several times faster than fs.cp. */
  async #copy(from: string, to: string): Promise<void> {
    const ok = await new Promise<boolean>((res) => {
      const p = spawn('cp', ['-a', from, to], { ...this.#spawnOpts(), stdio: 'ignore' });
      p.once('error', () => res(false));
      p.once('exit', (code) => res(code === 0));
    });
    if (ok) return;
    rmSync(to, { recursive: true, force: true });
    await cp(from, to, { recursive: true });
    if (this.runAs) await chownTree(to, this.runAs);
  }

  /** Create and start a server named `name` (its data directory is `<dir>/<name>`). */
  async start(name: string): Promise<PgServer> {
    if (this.#destroyed) throw new SegferryError('ERR_ABORTED', 'the servers were destroyed');
    const t = this.#ensureTemplate();
    const dataDir = join(this.dir, name);
    await this.#copy(t, dataDir);
    const s = new PgServer(this, name, dataDir);
    this.servers.push(s);
    await s.start();
    return s;
  }

  /** Start several servers at once. */
  async startAll(names: string[]): Promise<PgServer[]> {
    this.#ensureTemplate();
    return Promise.all(names.map((n) => this.start(n)));
  }

  /** @internal Start a postmaster; its output goes to `logFile`. */
  spawnServer(dataDir: string, port: number, logFile: string): ChildProcess {
    const settings = { ...THROWAWAY_SETTINGS, ...this.#opts.settings, port: String(port) };
    const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const fd = openSync(logFile, 'a');
    try {
      // Own process group: a terminal's Ctrl-C reaches only us, and we stop the servers in
      // order. A log file rather than a pipe lets a kept server outlive this process.
      return spawn(join(this.bin.bindir, 'postgres'), args, { ...this.#spawnOpts(), stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
  }

  /** @internal */
  get password(): string | undefined { return this.#opts.password; }

  /** Stop every server (immediate) and remove the temp directory. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(this.servers.map((s) => s.stop('immediate')));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last-resort cleanup (process exit): kill servers, remove the directory. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const s of this.servers) s.kill();
    try { rmSync(this.dir, { recursive: true, force: true }); } catch { /* servers may still hold files */ }
  }
}

/** One running server. */
export class PgServer {
  readonly name: string;
  readonly dataDir: string;
  readonly host = '127.0.0.1';
  port = 0;
  /** The set this server belongs to. */
  readonly #owner: PgServers;
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  constructor(owner: PgServers, name: string, dataDir: string) {
    this.#owner = owner;
    this.name = name;
    this.dataDir = dataDir;
  }

  /** Connection URL (with the password, if any: keep it out of output). */
  url(db = 'postgres'): string {
    const pw = this.#owner.password;
    const auth = encodeURIComponent(this.#owner.user) + (pw !== undefined ? ':' + encodeURIComponent(pw) : '');
    return `postgres://${auth}@${this.host}:${this.port}/${encodeURIComponent(db)}`;
  }

  /** Start the server on a free port and wait until it accepts connections. */
  async start(): Promise<void> {
    let lastErr = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = await freePort();
      const log = `${this.dataDir}.log`;
      writeFileSync(log, '');
      const proc = this.#owner.spawnServer(this.dataDir, this.port, log);
      this.#proc = proc;
      let stderr = '';
      let exited = false;
      this.#exited = new Promise((res) => proc.once('exit', () => { exited = true; res(); }));
      proc.once('error', (e) => { stderr += String(e); });
      const deadline = Date.now() + 60_000;
      while (!exited && Date.now() < deadline) {
        if (await this.#canConnect()) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (!exited) { this.kill(); await this.#exited; }
      try { stderr += readFileSync(log, 'utf8'); } catch { /* none */ }
      lastErr = stderr.trim().split('\n').slice(-2).join(' ');
      // Another process took the port between our probe and the bind: try another.
      if (!/could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(stderr)) break;
    }
    throw new PrerequisiteError(`PostgreSQL server ${this.name} did not start: ${lastErr || 'no output'}`, {
      hint: `see ${this.dataDir}; check that the server binaries in ${this.#owner.bin.bindir} work`,
    });
  }

  async #canConnect(): Promise<boolean> {
    const c = new pg.Client({ connectionString: this.url('postgres'), connectionTimeoutMillis: 2000 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.end();
      return true;
    } catch (e) {
      try { await c.end(); } catch { /* ignore */ }
      // 57P03: the database system is starting up.
      return false;
    }
  }

  /** Run SQL (several statements allowed without params) in database `db`. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], db = 'postgres'): Promise<R[]> {
    const c = new pg.Client({ connectionString: this.url(db) });
    c.on('error', () => {});
    await c.connect();
    try {
      return (await c.query<R>(sql, params)).rows;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /**
   * Stop the server: `fast` (SIGINT: roll back sessions, checkpoint), `immediate` (SIGQUIT:
   * no checkpoint; fine for throwaway data) or `smart` (SIGTERM: wait for sessions).
   */
  async stop(mode: 'fast' | 'immediate' | 'smart' = 'fast'): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(mode === 'fast' ? 'SIGINT' : mode === 'immediate' ? 'SIGQUIT' : 'SIGTERM');
    const timer = setTimeout(() => this.kill(), 20_000);
    await this.#exited;
    clearTimeout(timer);
    this.#proc = undefined;
  }

  /** The superuser's password, when the servers were made with one. */
  get password(): string | undefined { return this.#owner.password; }

  /** Database superuser. */
  get user(): string { return this.#owner.user; }

  /** Process id of the postmaster, while it runs. */
  get pid(): number | undefined { return this.#proc?.pid; }

  /** Let this process exit while the server keeps running (demo --keep). */
  detach(): void {
    this.#proc?.unref();
  }

  /** SIGKILL the postmaster (its backends exit when it is gone). */
  kill(): void {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }

  /** Stop and remove the data directory. */
  async destroy(): Promise<void> {
    await this.stop('immediate');
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Create a directory owned by the server account (for files the servers must read). */
export function ownedDir(parent: string, name: string, who: RunAs | undefined): string {
  const d = join(parent, name);
  mkdirSync(d, { recursive: true });
  if (who) chownSync(d, who.uid, who.gid);
  return d;
}
