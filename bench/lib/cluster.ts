import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { PG_SUPERUSER, destroyAllServers, findPgBinDir, startServer, type PgServer } from '../../test/helpers/pg.js';

export { freePort } from '../../test/helpers/pg.js';

/** One password for every benchmark server, so psql child processes can share PGPASSWORD. */
export const BENCH_PASSWORD = 'bench';

/**
 * Settings on top of the test harness's (fsync, synchronous_commit and full_page_writes off):
 * room for the data, no WAL archiving work, no autovacuum running into a measurement.
 */
const BENCH_SETTINGS: Record<string, string> = {
  shared_buffers: '256MB',
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_wal_size: '16GB',
  checkpoint_timeout: '1h',
  autovacuum: 'off',
  log_min_messages: 'warning',
};

/** A test-harness PostgreSQL server (127.0.0.1, run as an unprivileged OS user) with a `bench` database. */
export class BenchServer {
  readonly name: string;
  readonly #s: PgServer;

  private constructor(s: PgServer) {
    this.name = s.name;
    this.#s = s;
  }

  static async start(name: string): Promise<BenchServer> {
    const s = await startServer({ name, password: BENCH_PASSWORD, settings: BENCH_SETTINGS });
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
    return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', PG_SUPERUSER, '-d', db];
  }

  /** Postmaster pid: its reaped-children CPU (cutime) includes every finished backend. */
  get pid(): number {
    return Number(readFileSync(path.join(this.#s.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, db = 'bench'): Promise<R[]> {
    return this.#s.query<R>(sql, [], db);
  }

  /** Wait until no other client backend is connected (finished backends have been reaped). */
  async quiesce(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = await this.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`);
      if (Number(r[0]!.n) === 0) return;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

/** Environment for psql child processes. */
export function psqlEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: BENCH_PASSWORD };
}

/** Stop and remove every server started here. */
export async function stopAll(): Promise<void> {
  await destroyAllServers();
}

/** PostgreSQL version string of the server binary. */
export function pgVersion(): string {
  return spawnSync(path.join(findPgBinDir(), 'postgres'), ['--version'], { encoding: 'utf8' }).stdout.trim();
}
