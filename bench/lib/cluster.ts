import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { DEFAULT_SUPERUSER, PgServers, findPgBinaries, serverAccount, type PgServer } from '../../lib/launch/postgres.js';

export { freePort } from '../../lib/launch/postgres.js';

/** One password for every benchmark server, so psql child processes can share PGPASSWORD. */
export const BENCH_PASSWORD = 'bench';

/**
 * Settings on top of the launcher's (fsync, synchronous_commit and full_page_writes off):
 * room for the data, no WAL archiving work, no autovacuum running into a measurement.
 */
// shared_buffers: SF_BENCH_SHARED_BUFFERS overrides it, for diagnostics (bench/streams-server.ts).
const BENCH_SETTINGS: Record<string, string> = {
  max_connections: '100',
  shared_buffers: process.env.SF_BENCH_SHARED_BUFFERS ?? '256MB',
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_wal_size: '16GB',
  checkpoint_timeout: '1h',
  autovacuum: 'off',
  log_min_messages: 'warning',
};

const groups = new Set<PgServers>();

/** A throwaway PostgreSQL server (lib/launch: 127.0.0.1, run as an unprivileged OS user when root) with a `bench` database. */
export class BenchServer {
  readonly name: string;
  readonly #s: PgServer;

  private constructor(s: PgServer) {
    this.name = s.name;
    this.#s = s;
  }

  static async start(name: string): Promise<BenchServer> {
    // On disk, as before: the data sets are larger than a memory file system should hold.
    // 16 MiB WAL segments (initdb's default) keep bulk loads as they were measured.
    if (groups.size === 0) process.once('exit', () => { for (const g of groups) g.destroySync(); });
    const g = await PgServers.create({ baseDir: serverAccount() ? '/tmp' : os.tmpdir(), label: name, password: BENCH_PASSWORD, settings: BENCH_SETTINGS, walSegmentMiB: 16 });
    groups.add(g);
    const s = await g.start(name);
    await s.query('CREATE DATABASE bench');
    return new BenchServer(s);
  }

  get port(): number {
    return this.#s.port;
  }

  url(db = 'bench'): string {
    return this.#s.url(db);
  }

  /** psql arguments reaching this server; the password comes from {@link psqlEnv}. */
  psqlArgs(db = 'bench'): string[] {
    return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', DEFAULT_SUPERUSER, '-d', db];
  }

  /** Postmaster pid: its reaped-children CPU (cutime) includes every finished backend. */
  get pid(): number {
    return this.#s.pid ?? Number(readFileSync(path.join(this.#s.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, db = 'bench'): Promise<R[]> {
    return this.#s.query<R>(sql, [], db);
  }

  /**
   * Wait until no backend of a finished client is left: none connected, and every exited one
   * reaped by the postmaster. Its reaped children's CPU (cutime, what {@link pid} is read for)
   * grows only when it reaps them: a backend leaves pg_stat_activity before it exits, so
   * waiting for pg_stat_activity alone charged the last backends of one run to the next run
   * (measured: a whole COPY's 2.4 CPU-s moved from one contestant to another).
   */
  async quiesce(): Promise<void> {
    let aux = new Set<number>();
    for (let i = 0; i < 100; i++) {
      // The long-lived processes (checkpointer, writers, launchers) are never reaped.
      const r = await this.query<{ pid: number; backend_type: string }>(`SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()`);
      aux = new Set(r.filter((x) => !TRANSIENT_BACKENDS.has(x.backend_type)).map((x) => x.pid));
      if (r.every((x) => !TRANSIENT_BACKENDS.has(x.backend_type))) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    // Then until the postmaster's children are those alone (the query's own backend included).
    const children = `/proc/${this.pid}/task/${this.pid}/children`;
    for (let i = 0; i < 200; i++) {
      let kids: number[];
      try {
        kids = readFileSync(children, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return; // no /proc children file (CONFIG_PROC_CHILDREN): pg_stat_activity only, as before
      }
      if (kids.every((k) => aux.has(k))) return;
      await new Promise((res) => setTimeout(res, 10));
    }
  }
}

/** Backend types that end with their client or query; every other kind lives as long as the server. */
const TRANSIENT_BACKENDS = new Set(['client backend', 'parallel worker', 'autovacuum worker', 'walsender']);

/** Environment for psql child processes. */
export function psqlEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: BENCH_PASSWORD };
}

/** Stop and remove every server started here. */
export async function stopAll(): Promise<void> {
  const all = [...groups];
  groups.clear();
  await Promise.all(all.map((g) => g.destroy().catch(() => {})));
}

/** PostgreSQL version string of the server binary. */
export function pgVersion(): string {
  return spawnSync(path.join(findPgBinaries().bindir, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout.trim();
}
