/**
 * Whether an export runs its exporters in worker threads (`threads: 'auto'`): the rule alone,
 * without the worker machinery of lib/export/threads.ts, which loads only when workers start
 * (start-up CPU of every export, issue 17).
 */
import { availableParallelism } from 'node:os';
import type { NodeEndpoint } from '../pg/conn.js';
import type { FormatKind } from '../format/options.js';

/** Cores this process may use (os.availableParallelism: affinity and cgroup aware). */
export function cores(): number {
  return Math.max(1, availableParallelism());
}

/** What {@link autoThreads} decides from. */
export interface AutoThreadsInput {
  /** The export's format kind. */
  format: FormatKind;
  /** Objects or Arrow bodies compressed (`compress`, `arrowCompression`). */
  compressed: boolean;
  /** Objects encrypted (`encrypt`). */
  encrypted: boolean;
  /** Exporters that run at once (the units' nodes, bounded by `concurrency`). */
  exportersAtOnce: number;
  /** Cores this process may use ({@link cores}). */
  cores: number;
  /** Every node's server runs on this host ({@link onThisHost}): its COPY takes this host's cores too. */
  localServers: boolean;
}

/**
 * Whether `threads: 'auto'` runs the exporters in worker threads: where the bottleneck is.
 * Never with fewer than 2 exporters at once or 2 cores. From 4 cores on, always: the client's
 * one event loop would be the limit of any format. On 2–3 cores, only when the client is the
 * bottleneck, i.e. it converts or seals every byte (Arrow, Parquet, compressed or encrypted
 * objects: one event loop then keeps ≈ 1.2 cores busy and is the limit) and the servers run
 * elsewhere. TEXT, CSV and COPY BINARY pass bytes through (≈ 1 CPU-s per million rows of the
 * bench table against ≈ 3 for the servers' COPY): a second event loop gains nothing. With
 * the servers on the same 2 cores, they take the second core: measured (bench/threads.ts,
 * docs/benchmarks.md) threads on / off gave TEXT 0.64–0.94×, Arrow 0.91–0.96× and Parquet
 * 1.00× the rows/s for 1.1–1.5× the client CPU, so threads stay off there.
 */
export function autoThreads(i: AutoThreadsInput): boolean {
  if (i.exportersAtOnce < 2 || i.cores < 2) return false;
  if (i.cores >= 4) return true;
  const clientBound = i.format === 'arrow' || i.format === 'parquet' || i.compressed || i.encrypted;
  return clientBound && !i.localServers;
}

/** Whether a server is on this host: a loopback address, `localhost` or a Unix socket directory. */
export function onThisHost(e: Pick<NodeEndpoint, 'host' | 'hostaddr'>): boolean {
  const h = (e.hostaddr ?? e.host).toLowerCase().replace(/^\[|\]$/g, '');
  return h.startsWith('/') || h === 'localhost' || h.endsWith('.localhost') || /^127\./.test(h) || h === '::1';
}
