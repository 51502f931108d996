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
  /** An idle session of `node`, or a new one (connected, settings applied); give it back with `release` or `drop`. */
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
  /**
   * Run one step on a session of `node`: acquire one, run `work`, give the session back once
   * it succeeds. On failure the session is dropped (its transaction rolls back; a session in an
   * unknown state is never reused) and the error is thrown as `fromDatabaseError` makes it,
   * naming the node, `action` and `where.table`: a `SegferryError` (a failed acquire, or one the
   * step threw) passes as it is. `where` is read when the step fails, so a step may set
   * `where.table` to the table it is working on (default: no table).
   */
  async withSession<T>(node: string, action: string, work: (c: pg.Client) => Promise<T>, where: { table?: string | undefined } = {}): Promise<T> {
    const c = await this.acquire(node);
    let out: T;
    try {
      out = await work(c);
    } catch (e) {
      this.drop(c);
      throw fromDatabaseError(e, { node, action, ...(where.table !== undefined ? { table: where.table } : {}) });
    }
    this.release(node, c);
    return out;
  }
  /** Give back a session in a known state (no transaction open) for the next step on `node`. */
  release(node: string, c: pg.Client): void {
    this.#idle.set(node, [...(this.#idle.get(node) ?? []), c]);
  }
  /** Forget a session that failed (it was destroyed, or is being). */
  drop(c: pg.Client): void {
    this.#all.delete(c);
    destroyClient(c);
  }
  /** Close every session, idle or not (the end of the run). */
  async closeAll(): Promise<void> {
    for (const c of this.#all) await closeQuietly(c);
    this.#all.clear();
    this.#idle.clear();
  }
}
