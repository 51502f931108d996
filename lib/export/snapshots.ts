import type pg from 'pg';
import { InternalError } from '../errors.js';
import { closeAllQuietly, closeQuietly, connect } from '../pg/conn.js';
import { exportSnapshot, snapshotOn } from '../pg/snapshot.js';
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

  /**
   * Start exporting the node's snapshot now, before its first stream asks (its errors reach
   * that stream through {@link acquire}).
   */
  start(node: string): void {
    this.acquire(node).catch(() => {});
  }

  /**
   * Export the node's snapshot now on a session already open to it (the export's planning
   * session, idle outside a transaction), instead of connecting a new one; false, and nothing
   * taken, when the node has no snapshot session planned or it is already started.
   */
  adopt(node: string, client: Promise<pg.Client>): boolean {
    const h = this.#held.get(node);
    if (!h || h.session) return false;
    h.session = client.then((c) => snapshotOn(c, h.node.endpoint, { node: h.node.name, applicationName: 'segferry snapshot' }));
    this.acquire(node).catch(() => {});
    return true;
  }

  /**
   * One of the node's items has finished (or failed): the last one ends the session. Its
   * COMMIT and disconnect are not awaited here (the streams have committed; the manifest need
   * not wait for a read-only session's end): {@link closeAll} awaits them.
   */
  release(node: string): void {
    const h = this.#held.get(node);
    if (!h || --h.left > 0) return;
    this.#held.delete(node);
    this.#ending.push(end(h));
  }

  readonly #ending: Promise<void>[] = [];

  /** End every session still open (after a failure: items not started never release), and wait for every end. */
  async closeAll(): Promise<void> {
    const all = [...this.#held.values()];
    this.#held.clear();
    await Promise.all([...all.map(end), ...this.#ending.splice(0)]);
  }
}

/**
 * Sessions of streams opened ahead (issue 17): their connects (TCP, start-up, SCRAM: ≈ 5–20 ms
 * each on this machine, bench/streams-timeline.ts) run while the node's snapshot is exported
 * instead of after it. Each is taken once by the stream that starts first; closeAll closes what
 * no stream took. Session closes handed to {@link closeLater} are awaited by closeAll too.
 */
export class OpenedSessions {
  readonly #idle = new Map<string, Promise<pg.Client>[]>();
  readonly #closing: Promise<void>[] = [];

  /** Start `count` connects to the node. A failed one is reported to the stream that takes it. */
  open(node: PlanNode, count: number): void {
    const list = this.#idle.get(node.name) ?? [];
    for (let i = 0; i < count; i++) {
      const p = connect(node.endpoint, { node: node.name, applicationName: 'segferry export' });
      p.catch(() => {});
      list.push(p);
    }
    this.#idle.set(node.name, list);
  }

  /**
   * Sessions to the node opened elsewhere (while the export planned, lib/export/export.ts), taken
   * before those {@link open} starts. One that failed to connect is replaced by a new connect
   * when taken: it was opened on a guess, so its error is not the export's.
   */
  adopt(node: PlanNode, sessions: readonly Promise<pg.Client>[]): void {
    const list = this.#idle.get(node.name) ?? [];
    for (const s of sessions) {
      const p = s.catch(() => connect(node.endpoint, { node: node.name, applicationName: 'segferry export' }));
      p.catch(() => {});
      list.unshift(p);
    }
    this.#idle.set(node.name, list);
  }

  /** How many sessions to the node are open or opening and not taken yet. */
  idle(node: string): number {
    return this.#idle.get(node)?.length ?? 0;
  }

  /** A session to the node opened ahead, or undefined (then the stream connects itself). */
  take(node: string): Promise<pg.Client> | undefined {
    return this.#idle.get(node)?.shift();
  }

  /** A session's close, awaited by {@link closeAll} rather than by the stream that ends it. */
  closeLater(done: Promise<void>): void {
    this.#closing.push(done);
  }

  /** Close every session not taken and wait for every close handed over. */
  async closeAll(): Promise<void> {
    const idle = [...this.#idle.values()].flat();
    this.#idle.clear();
    await Promise.all([closeAllQuietly(idle), ...this.#closing.splice(0)]);
  }
}

async function end(h: Held): Promise<void> {
  if (!h.session) return;
  const s = await h.session.catch(() => undefined);
  if (!s) return;
  await s.client.query('COMMIT').catch(() => {});
  await closeQuietly(s.client);
}
