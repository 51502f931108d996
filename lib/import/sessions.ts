import type pg from 'pg';
import { InternalError, fromDatabaseError } from '../errors.js';
import { applySettings, closeQuietly, connect, describeEndpoint, destroyClient } from '../pg/conn.js';
import type { PlanNode } from '../topology/types.js';

/**
 * Idle sessions per node, each with the session settings applied: the importer's and the
 * copy's loaders take one, use it for one object or unit, and give it back (or drop it after a
 * failure, which rolls back its transaction).
 */
export class Sessions {
  #idle = new Map<string, pg.Client[]>();
  #all = new Set<pg.Client>();
  constructor(readonly nodes: Map<string, PlanNode>, readonly settings: Record<string, string>, readonly app: string) {}
  async acquire(node: string): Promise<pg.Client> {
    const c = this.#idle.get(node)?.pop();
    if (c) return c;
    const n = this.nodes.get(node);
    if (!n) throw new InternalError(`no endpoint for node ${node}`);
    const client = await connect(n.endpoint, { node, applicationName: this.app }).catch((e) => { throw fromDatabaseError(e, { node, endpoint: describeEndpoint(n.endpoint), action: 'connect' }); });
    this.#all.add(client);
    try {
      await applySettings(client, this.settings);
    } catch (e) {
      this.drop(client);
      throw fromDatabaseError(e, { node, action: 'set session' });
    }
    return client;
  }
  release(node: string, c: pg.Client): void {
    this.#idle.set(node, [...(this.#idle.get(node) ?? []), c]);
  }
  /** Forget a session that failed (it was destroyed, or is being). */
  drop(c: pg.Client): void {
    this.#all.delete(c);
    destroyClient(c);
  }
  async closeAll(): Promise<void> {
    for (const c of this.#all) await closeQuietly(c);
    this.#all.clear();
    this.#idle.clear();
  }
}
