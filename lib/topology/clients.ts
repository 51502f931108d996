import type pg from 'pg';
import { TopologyError } from '../errors.js';
import { closeAllQuietly, connect, type ConnectOptions, type NodeEndpoint } from '../pg/conn.js';
import type { PlanNode } from './types.js';

/** Options of {@link NodeClients}. */
export interface NodeClientsOptions {
  /** Nodes that {@link NodeClients.get} may be asked for by name (default: none; pass nodes themselves). */
  nodes?: ReadonlyMap<string, PlanNode>;
  /** `application_name` of the sessions (default `segferry`). */
  applicationName?: string;
  /** Connect timeout in milliseconds (default: {@link connect}'s, 15 s). */
  connectTimeoutMs?: number;
}

/**
 * One client per node, opened on first use and kept until {@link NodeClients.closeAll}: planning
 * and discovery ask the same node several catalog questions, and a connection costs more than a
 * catalog query.
 */
export class NodeClients {
  #clients = new Map<string, Promise<pg.Client>>();
  readonly #endpoints = new Map<string, NodeEndpoint>();
  #opts: NodeClientsOptions;

  constructor(opts: NodeClientsOptions = {}) {
    this.#opts = opts;
  }

  /** The client of a node (a {@link PlanNode}, or a name among the constructor's `nodes`). */
  get(node: PlanNode | string): Promise<pg.Client> {
    const name = typeof node === 'string' ? node : node.name;
    let p = this.#clients.get(name);
    if (!p) {
      const n = typeof node === 'string' ? this.#opts.nodes?.get(node) : node;
      if (!n) return Promise.reject(new TopologyError(`unknown destination node ${name}`));
      const o: ConnectOptions = { node: name };
      if (this.#opts.applicationName !== undefined) o.applicationName = this.#opts.applicationName;
      if (this.#opts.connectTimeoutMs !== undefined) o.connectTimeoutMs = this.#opts.connectTimeoutMs;
      p = connect(n.endpoint, o);
      // A failed connect is reported to whoever awaits it; the cached copy must not be unhandled.
      p.catch(() => {});
      this.#clients.set(name, p);
      this.#endpoints.set(name, n.endpoint);
    }
    return p;
  }

  /**
   * Hand the node's client over to the caller, who closes it, if one was opened to that node
   * under its name and to the same endpoint (every field alike); else undefined.
   */
  take(node: PlanNode): Promise<pg.Client> | undefined {
    const p = this.#clients.get(node.name);
    const e = this.#endpoints.get(node.name);
    if (!p || !e || !sameEndpoint(e, node.endpoint)) return undefined;
    this.#clients.delete(node.name);
    this.#endpoints.delete(node.name);
    return p;
  }

  /** Close every client opened so far, all at once (failed connects are skipped); the cache is empty afterwards. */
  async closeAll(): Promise<void> {
    const all = [...this.#clients.values()];
    this.#clients.clear();
    this.#endpoints.clear();
    await closeAllQuietly(all);
  }
}

/** Whether two endpoints name the same server, database, user and connection settings. */
export function sameEndpoint(a: NodeEndpoint, b: NodeEndpoint): boolean {
  if (a === b) return true;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof NodeEndpoint)[]);
  return [...keys].every((k) => a[k] === b[k]);
}
