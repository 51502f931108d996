/**
 * Throw-away PostgreSQL servers for integration tests: a thin adapter over the launcher the demo
 * and the benchmarks use (lib/launch/postgres.ts).
 *
 * Servers listen on 127.0.0.1 only, on a free port kept across stop/start, with scram-sha-256
 * password authentication for the superuser role `segferry`, no Unix socket, and the log in
 * `<dataDir>/server.log`. As root, they run as the `postgres` OS user (or `nobody`).
 * {@link startServers} makes one group (one temp directory `<tmp>/segferry-pg-<name>-XXXXXX`,
 * one initdb, a copy per server); {@link startServer} a group of one.
 *
 * Every group is remembered in a module-level registry: {@link destroyAllServers} tears them all
 * down, and the emergency-exit hook (cleanup.ts: process `exit`, and SIGINT/SIGTERM/SIGHUP in
 * the main thread) sends the remaining postmasters SIGQUIT and leaves deleting their directories
 * to a detached shell, because vitest SIGKILLs a worker 500 ms after its SIGTERM. Directories
 * of test processes that died without running any handler (SIGKILL) are swept, by their
 * `owner.pid`, on this process's first start.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_SUPERUSER,
  PgServers,
  findPgBinaries,
  freePort,
  serverAccount,
  sweepStaleServers,
  type PgServer as LaunchedServer,
  type RunAs,
} from '../../lib/launch/postgres.js';
import { onEmergencyExit } from './cleanup.js';

export { freePort };

/**
 * A running (or stopped) throw-away server: `url(db)`, `query(sql, params, db)`,
 * `stop('fast' | 'immediate')` (data kept), `start()` (same port), `destroy()` (idempotent), its
 * `name`, `port`, `dataDir`, `user` and — always set here — `password`.
 */
export type PgServer = LaunchedServer & { readonly password: string };

/** Options for {@link startServer}. */
export interface StartServerOptions {
  /** Server name, used in the temp directory name and error messages. */
  name: string;
  /** Password of the `segferry` role (default: random). */
  password?: string;
  /** Extra postgresql.conf settings (`key = value`); values are quoted as needed. */
  settings?: Record<string, string>;
  /** Libraries for `shared_preload_libraries`. */
  sharedPreload?: string[];
}

/** Superuser role created by initdb. */
export const PG_SUPERUSER = DEFAULT_SUPERUSER;

/** Settings of test servers on top of the launcher's base (loopback, no fsync, C, UTC). */
const TEST_SETTINGS: Record<string, string> = {
  max_connections: '100',
  max_wal_size: '1GB',
  log_line_prefix: '%m [%p] %q%u@%d ',
  password_encryption: 'scram-sha-256',
};

/**
 * Directory holding the PostgreSQL server binaries (initdb, postgres, pg_config): see
 * `findPgBinaries` (SEGFERRY_PG_BINDIR, PATH, pg_config, /usr/lib/postgresql/N/bin).
 * @throws PrerequisiteError naming what to install when none is found.
 */
export function findPgBinDir(): string {
  return findPgBinaries().bindir;
}

/** A temp root the server account can traverse (os.tmpdir(), or /tmp when that is not reachable). */
function tempRoot(runAs: RunAs | undefined): string {
  const t = os.tmpdir();
  if (!runAs) return t;
  let dir = path.resolve(t);
  for (;;) {
    try {
      const st = fs.statSync(dir);
      if ((st.mode & 0o001) === 0 && st.uid !== runAs.uid) return '/tmp';
    } catch {
      return '/tmp';
    }
    const parent = path.dirname(dir);
    if (parent === dir) return t;
    dir = parent;
  }
}

const registry = new Set<PgServers>();
let prepared: string | undefined;

/** Once per process: the emergency hook, and a sweep of what dead test processes left. */
function prepare(): string {
  if (prepared) return prepared;
  const root = tempRoot(serverAccount());
  onEmergencyExit(() => {
    for (const g of registry) g.abandon();
    registry.clear();
  });
  sweepStaleServers(root);
  prepared = root;
  return prepared;
}

function randomPassword(): string {
  // URL-unsafe characters on purpose: callers must use url(), which encodes them.
  return `sf-${crypto.randomBytes(9).toString('base64url')}/+@:`;
}

/**
 * Starts servers `names` in parallel, in one group (one initdb, same options and password for
 * each). If one fails, all are destroyed.
 * @throws when binaries are missing, initdb fails, or a server does not start (the message
 *   includes the tail of its log).
 */
export async function startServers(names: string[], opts: Omit<StartServerOptions, 'name'> & { label?: string } = {}): Promise<PgServer[]> {
  const root = prepare();
  const group = await PgServers.create({
    baseDir: root,
    label: opts.label ?? names[0] ?? 'pg',
    password: opts.password ?? randomPassword(),
    settings: { ...TEST_SETTINGS, ...opts.settings },
    ...(opts.sharedPreload ? { sharedPreload: opts.sharedPreload } : {}),
  });
  registry.add(group);
  try {
    // The group made with a password: every server has it.
    return (await group.startAll(names)) as PgServer[];
  } catch (e) {
    await group.destroy();
    registry.delete(group);
    throw e;
  }
}

/** initdb + start one server in a group of its own. */
export async function startServer(opts: StartServerOptions): Promise<PgServer> {
  const { name, ...rest } = opts;
  const [s] = await startServers([name], rest);
  return s!;
}

/** Destroys every server this process started and has not destroyed yet. */
export async function destroyAllServers(): Promise<void> {
  const groups = [...registry];
  registry.clear();
  await Promise.all(groups.map((g) => g.destroy().catch(() => {})));
}
