/**
 * Throw-away Citus clusters: a coordinator and N workers started with the harness
 * (test/helpers/pg.ts, over lib/launch/postgres.ts) with `shared_preload_libraries = 'citus'`.
 *
 * Citus is not packaged in Debian; {@link citusMissing} says why the Citus tests must skip when
 * the extension is not installed next to the PostgreSQL server binaries (or, with
 * `SEGFERRY_REQUIRE_CITUS=1`, fails them).
 *
 * Node-to-node connections: the harness servers use scram-sha-256 passwords, and Citus
 * connects between nodes as the current role. All servers of a cluster share one password, and
 * every node gets a `pg_dist_authinfo` row (nodeid 0 = any node) carrying it; those rows are not
 * synced, so each node gets its own. `citus.local_hostname` is 127.0.0.1 because `localhost`
 * may resolve to ::1, which the servers do not listen on.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { findPgBinDir, startServers, type PgServer } from './pg.js';

/**
 * Why Citus tests cannot run here (citus.so or citus.control missing), or undefined when they can.
 * With `SEGFERRY_REQUIRE_CITUS=1` (machines where Citus is installed) a missing Citus throws
 * instead, so the suite fails rather than skips.
 */
export function citusMissing(): string | undefined {
  const why = whyCitusMissing();
  if (why !== undefined && process.env.SEGFERRY_REQUIRE_CITUS === '1') {
    throw new Error(`SEGFERRY_REQUIRE_CITUS=1, but the Citus tests cannot run: ${why}`);
  }
  return why;
}

function whyCitusMissing(): string | undefined {
  let bin: string;
  try {
    bin = findPgBinDir();
  } catch (e) {
    return (e as Error).message;
  }
  const pgConfig = fs.existsSync(path.join(bin, 'pg_config')) ? path.join(bin, 'pg_config') : 'pg_config';
  const r = spawnSync(pgConfig, ['--pkglibdir', '--sharedir'], { encoding: 'utf8' });
  if (r.status !== 0) return 'pg_config not found: cannot tell whether the citus extension is installed';
  const [lib, share] = r.stdout.trim().split('\n');
  const so = path.join(lib ?? '', 'citus.so');
  const control = path.join(share ?? '', 'extension', 'citus.control');
  if (!fs.existsSync(so)) return `the citus extension is not installed (${so} is absent); Citus is not packaged in Debian`;
  if (!fs.existsSync(control)) return `the citus extension is not installed (${control} is absent)`;
  return undefined;
}

/** A running Citus cluster. */
export interface CitusCluster {
  coordinator: PgServer;
  workers: PgServer[];
  /** All servers, coordinator first. */
  servers: PgServer[];
  /** The one password of the `segferry` role on every node. */
  password: string;
  /** Run SQL on the coordinator. */
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  destroy(): Promise<void>;
}

/** Options of {@link startCitusCluster}. */
export interface CitusClusterOptions {
  /** Name prefix of the servers (default `citus`): `<name>-coord`, `<name>-w1`, ... */
  name?: string;
  /** Number of workers (default 2). */
  workers?: number;
  /** Extra settings on the coordinator (e.g. statement logging). */
  coordinatorSettings?: Record<string, string>;
  /** Extra settings on the workers. */
  workerSettings?: Record<string, string>;
}

const CITUS_SETTINGS: Record<string, string> = {
  'citus.local_hostname': '127.0.0.1',
  // Keep background work quiet: no telemetry, fewer maintenance connections.
  'citus.enable_statistics_collection': 'off',
  max_connections: '100',
};

/**
 * Start a coordinator and `workers` workers, create the citus extension on each, let the nodes
 * authenticate to each other, then register the coordinator (`citus_set_coordinator_host`) and
 * the workers (`citus_add_node`). The coordinator holds no shards (`shouldhaveshards` false).
 */
export async function startCitusCluster(opts: CitusClusterOptions = {}): Promise<CitusCluster> {
  const name = opts.name ?? 'citus';
  const n = opts.workers ?? 2;
  const password = `sf-${crypto.randomBytes(12).toString('hex')}`;
  const [coordinator] = await startServers([`${name}-coord`], {
    password,
    sharedPreload: ['citus'],
    settings: { ...CITUS_SETTINGS, ...(opts.coordinatorSettings ?? {}) },
  });
  let workers: PgServer[] = [];
  try {
    workers = await startServers(Array.from({ length: n }, (_, i) => `${name}-w${i + 1}`), {
      password,
      sharedPreload: ['citus'],
      settings: { ...CITUS_SETTINGS, ...(opts.workerSettings ?? {}) },
    });
  } catch (e) {
    await coordinator!.destroy();
    throw e;
  }
  const servers = [coordinator!, ...workers];
  const cluster: CitusCluster = {
    coordinator: coordinator!,
    workers,
    servers,
    password,
    query: (sql, params) => coordinator!.query(sql, params),
    destroy: async () => {
      await Promise.all(servers.map((s) => s.destroy().catch(() => {})));
    },
  };
  try {
    await Promise.all(servers.map(async (s) => {
      await s.query('CREATE EXTENSION citus');
      await s.query(`INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, $1, $2)`, [s.user, `password=${password}`]);
    }));
    await coordinator!.query(`SELECT citus_set_coordinator_host('127.0.0.1', $1)`, [coordinator!.port]);
    for (const w of workers) await coordinator!.query(`SELECT citus_add_node('127.0.0.1', $1)`, [w.port]);
    return cluster;
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
}
