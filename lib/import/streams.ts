import { InvalidOptionError, fromDatabaseError } from '../errors.js';
import { closeQuietly, connect, describeEndpoint } from '../pg/conn.js';
import type { PlanNode } from '../topology/types.js';

// How many objects one destination node loads at once (`import --streams N|auto`,
// docs/streams.md#import). Scheduling only: each object is still loaded alone, in its own
// transaction with its ledger row (load.ts); the pool (lib/util/keyed-pool.ts) keeps at most
// this many per node running, and `concurrency` bounds the total.

/** `--streams` of import: objects loaded at once per destination node, or `auto`. */
export type ImportStreamsOption = number | 'auto';

/** `auto` never gives a node more than this many loaders. */
export const IMPORT_AUTO_STREAMS_MAX = 4;
/** `auto` leaves this share of a node's free connections to others: at most one loader per 4 free. */
export const IMPORT_AUTO_CONNECTION_SHARE = 4;

/** Check an import streams option. */
export function checkImportStreams(s: unknown): ImportStreamsOption {
  if (s === 'auto') return s;
  if (typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 1024) return s;
  throw new InvalidOptionError(`streams must be 'auto' or a whole number from 1 to 1024 (got ${JSON.stringify(s)})`);
}

/** What a destination node says about its room for loaders. */
export interface NodeCapacity {
  /** `max_parallel_workers`: the cores the administrator lets one server use for parallel work. */
  maxParallelWorkers: number;
  /** `max_connections − superuser_reserved_connections − sessions now`. */
  freeConnections: number;
}

/**
 * The `auto` rule: min(max_parallel_workers, 4, ⌊free connections / 4⌋), at least 1. The
 * server's core count is not visible over SQL; `max_parallel_workers` is the setting that
 * states it (8 by default, meant to be at most the cores). COPY FROM uses about one core per
 * loader (FACTS.md: ≈ 40 MB/s per core), and loaders into one table beyond 4 mostly wait on the
 * relation's extension lock. Pure.
 */
export function autoImportStreams(c: NodeCapacity): number {
  return Math.max(1, Math.min(c.maxParallelWorkers, IMPORT_AUTO_STREAMS_MAX, Math.floor(c.freeConnections / IMPORT_AUTO_CONNECTION_SHARE)));
}

/** Ask one node for its {@link NodeCapacity}. */
export async function probeCapacity(node: PlanNode): Promise<NodeCapacity> {
  const ctx = { node: node.name, endpoint: describeEndpoint(node.endpoint) };
  const client = await connect(node.endpoint, { node: node.name, applicationName: 'segferry import plan' }).catch((e) => { throw fromDatabaseError(e, { ...ctx, action: 'connect' }); });
  try {
    const r = await client.query<{ w: string; m: string; r: string; n: string }>(
      `SELECT current_setting('max_parallel_workers') AS w, current_setting('max_connections') AS m,
              current_setting('superuser_reserved_connections') AS r,
              (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend') AS n`,
    ).catch((e) => { throw fromDatabaseError(e, { ...ctx, action: 'read settings' }); });
    const row = r.rows[0]!;
    return { maxParallelWorkers: Number(row.w), freeConnections: Math.max(0, Number(row.m) - Number(row.r) - Number(row.n)) };
  } finally {
    await closeQuietly(client);
  }
}

/** Objects at once per node that receives loads: N for each, or `auto` per node (probed). */
export async function planImportStreams(asked: ImportStreamsOption, nodes: readonly PlanNode[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (asked !== 'auto') {
    for (const n of nodes) out[n.name] = asked;
    return out;
  }
  const caps = await Promise.all(nodes.map((n) => probeCapacity(n)));
  nodes.forEach((n, i) => { out[n.name] = autoImportStreams(caps[i]!); });
  return out;
}
