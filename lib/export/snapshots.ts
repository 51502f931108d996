import type pg from 'pg';
import { InternalError } from '../errors.js';
import { closeQuietly } from '../pg/conn.js';
import { exportSnapshot } from '../pg/snapshot.js';
import type { PlanNode } from '../topology/types.js';

// One snapshot per node for its streams (docs/streams.md): a session per node runs
// `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot()` and stays
// open, idle in its transaction, until the node's last stream has finished; each stream's
// session adopts the snapshot with `SET TRANSACTION SNAPSHOT` (PostgreSQL docs, 9.27.5:
// the snapshot can be imported only while the exporting transaction is open).

interface Held {
  node: PlanNode;
  /** Streams of the node not finished yet. */
  left: number;
  session?: Promise<{ client: pg.Client; id: string }>;
}

/** The snapshot sessions of one export run, one per node whose units share a snapshot. */
export class SnapshotSessions {
  readonly #held = new Map<string, Held>();

  /** `units`: how many pool items of each node will use the snapshot (each calls release once). */
  constructor(nodes: readonly PlanNode[], units: ReadonlyMap<string, number>) {
    for (const n of nodes) {
      const left = units.get(n.name) ?? 0;
      if (left > 0) this.#held.set(n.name, { node: n, left });
    }
  }

  /** The node's snapshot id, opening its session on first use. */
  acquire(node: string): Promise<string> {
    const h = this.#held.get(node);
    if (!h) throw new InternalError(`no snapshot session planned for node ${node}`);
    h.session ??= exportSnapshot(h.node.endpoint, { node: h.node.name, applicationName: 'segferry snapshot' });
    return h.session.then((s) => s.id);
  }

  /** One of the node's items has finished (or failed): the last one ends the session. */
  async release(node: string): Promise<void> {
    const h = this.#held.get(node);
    if (!h || --h.left > 0) return;
    this.#held.delete(node);
    await end(h);
  }

  /** End every session still open (after a failure: items not started never release). */
  async closeAll(): Promise<void> {
    const all = [...this.#held.values()];
    this.#held.clear();
    await Promise.all(all.map(end));
  }
}

async function end(h: Held): Promise<void> {
  if (!h.session) return;
  const s = await h.session.catch(() => undefined);
  if (!s) return;
  await s.client.query('COMMIT').catch(() => {});
  await closeQuietly(s.client);
}
