import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, appendFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import * as path from 'node:path';
import pg from 'pg';

/** PostgreSQL refuses to run as root: servers run as this OS user when we are root. */
const PG_USER = 'postgres';

function pgBin(name: string): string {
  for (const d of ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/local/bin', '/usr/bin']) {
    const p = path.join(d, name);
    if (existsSync(p)) return p;
  }
  return name;
}

function osUser(name: string): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(name + ':'));
  if (!line) throw new Error(`running as root needs an OS user ${name} to run PostgreSQL`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** A free TCP port on loopback (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], as: { uid: number; gid: number } | undefined, what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(as ?? {}), env: { ...process.env, LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Settings for throwaway benchmark servers: durability off (the data is generated), loopback only. */
const BENCH_CONF = `
listen_addresses = '127.0.0.1'
max_connections = 40
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 16GB
checkpoint_timeout = 1h
autovacuum = off
log_min_messages = warning
`;

/** One PostgreSQL server started with initdb/pg_ctl on 127.0.0.1. */
export class BenchServer {
  readonly name: string;
  readonly dir: string;
  readonly port: number;
  #as: { uid: number; gid: number } | undefined;

  private constructor(name: string, dir: string, port: number, as: { uid: number; gid: number } | undefined) {
    this.name = name;
    this.dir = dir;
    this.port = port;
    this.#as = as;
  }

  static async start(base: string, name: string): Promise<BenchServer> {
    const as = osUser(PG_USER);
    const dir = path.join(base, 'pg-' + name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (as) chownSync(dir, as.uid, as.gid);
    run(pgBin('initdb'), ['-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N'], as, `initdb ${name}`);
    const port = await freePort();
    appendFileSync(path.join(dir, 'postgresql.conf'), BENCH_CONF + `port = ${port}\nunix_socket_directories = '${dir}'\n`);
    const s = new BenchServer(name, dir, port, as);
    run(pgBin('pg_ctl'), ['-D', dir, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', 'start'], as, `pg_ctl start ${name}`);
    await s.query('CREATE DATABASE bench', 'postgres');
    return s;
  }

  url(db = 'bench'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  /** psql arguments reaching this server (no password: trust on loopback). */
  psqlArgs(db = 'bench'): string[] {
    return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', db];
  }

  /** Postmaster pid: its cumulative children's CPU (cutime) includes every finished backend. */
  get pid(): number {
    return Number(readFileSync(path.join(this.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, db = 'bench'): Promise<R[]> {
    const c = new pg.Client({ connectionString: this.url(db) });
    await c.connect();
    try {
      return (await c.query<R>(sql)).rows;
    } finally {
      await c.end();
    }
  }

  /** Wait until no other client backend is connected (finished backends have been reaped). */
  async quiesce(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = await this.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`);
      if (Number(r[0]!.n) === 0) return;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  stop(): void {
    try {
      run(pgBin('pg_ctl'), ['-D', this.dir, '-m', 'immediate', '-w', 'stop'], this.#as, `pg_ctl stop ${this.name}`);
    } catch {
      /* already down */
    }
  }
}

/** PostgreSQL version string of a server binary. */
export function pgVersion(): string {
  return run(pgBin('postgres'), ['--version'], undefined, 'postgres --version').trim();
}
