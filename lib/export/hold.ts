import type pg from 'pg';
import { ManifestInvalidError, SnapshotGoneError, type SegferryError } from '../errors.js';
import { MANIFEST_KEY } from '../manifest/keys.js';
import { closeQuietly, destroyClient } from '../pg/conn.js';
import { checkSnapshotId, exportSnapshot } from '../pg/snapshot.js';
import type { ObjectStore } from '../store/types.js';
import type { ExportPlan } from './plan.js';

// Snapshots handed to the parts of a plan (docs/multi-host.md#consistency):
// `segferry plan --to DEST --out FILE --hold-snapshots` exports one snapshot per node with
// `pg_export_snapshot()`, writes the ids into the plan (`snapshots`), and keeps each exporting
// transaction open until `finish` has written the manifest or the command is interrupted.
// Every part's session on that node then runs `SET TRANSACTION SNAPSHOT` with the node's id
// (PostgreSQL docs 9.27.5: importable only while the exporting transaction is open), so all
// parts read one state per node, whatever host they run on and whenever they start.

/** The held sessions: their snapshot ids per node, and how to end them. */
export interface HeldSnapshots {
  /** Node name → snapshot id, as the plan carries them. */
  snapshots: Record<string, string>;
  /** Resolves (or rejects) when a held session ends by itself: its snapshot is gone. */
  lost: Promise<never>;
  /** End every session (their transactions commit; nothing was written). */
  release(): Promise<void>;
}

/**
 * Export one snapshot on every node of the plan and keep the sessions open. A failure on any
 * node ends the sessions already open and throws. Each session is one idle connection in an
 * open REPEATABLE READ READ ONLY transaction: it holds back VACUUM on that node (rows the
 * snapshot could see are kept) for as long as it stays open.
 */
export async function holdSnapshots(plan: Pick<ExportPlan, 'nodes'>): Promise<HeldSnapshots> {
  const clients: pg.Client[] = [];
  const snapshots: Record<string, string> = {};
  let onLost: (e: SegferryError) => void = () => {};
  const lost = new Promise<never>((_r, reject) => { onLost = reject; });
  lost.catch(() => {}); // observed by whoever waits on it
  let released = false;
  try {
    for (const n of plan.nodes) {
      const s = await exportSnapshot(n.endpoint, { node: n.name, applicationName: 'segferry held snapshot' });
      clients.push(s.client);
      s.client.on('end', () => {
        if (!released) onLost(new SnapshotGoneError(`the session holding the snapshot of node ${n.name} has ended: parts can no longer read it`, { node: n.name }));
      });
      snapshots[n.name] = s.id;
    }
  } catch (e) {
    released = true;
    for (const c of clients) destroyClient(c);
    throw e;
  }
  return {
    snapshots,
    lost,
    release: async () => {
      if (released) return;
      released = true;
      await Promise.all(clients.map(async (c) => {
        await c.query('COMMIT').catch(() => {});
        await closeQuietly(c);
      }));
    },
  };
}

/** Options of {@link holdUntilFinished}. */
export interface HoldOptions {
  /** Where the parts write: the hold ends once `finish` has stored the manifest there. */
  store: ObjectStore;
  /** How often to look for the manifest (default 5000 ms). */
  pollMs?: number;
  /** Ends the hold (default: none), e.g. on SIGINT. */
  signal?: AbortSignal;
}

/**
 * Keep the snapshots until `finish` has written the manifest under the destination (resolves
 * `'finished'`) or the signal aborts (`'interrupted'`); rejects with ERR_SNAPSHOT_GONE when a
 * held session ends by itself first. The sessions are released in every case.
 */
export async function holdUntilFinished(held: HeldSnapshots, o: HoldOptions): Promise<'finished' | 'interrupted'> {
  const pollMs = o.pollMs ?? 5000;
  try {
    for (;;) {
      if (o.signal?.aborted) return 'interrupted';
      if (await o.store.head(MANIFEST_KEY)) return 'finished';
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      try {
        await Promise.race([
          held.lost,
          new Promise<void>((r) => {
            timer = setTimeout(r, pollMs);
            onAbort = () => r();
            o.signal?.addEventListener('abort', onAbort, { once: true });
          }),
        ]);
      } finally {
        clearTimeout(timer);
        if (onAbort) o.signal?.removeEventListener('abort', onAbort);
      }
    }
  } finally {
    await held.release();
  }
}

/** The `snapshots` of a plan file, checked (untrusted: ids reach SQL): known nodes, snapshot-id shape. */
export function checkPlanSnapshots(s: unknown, nodes: readonly string[], where: string): Record<string, string> | undefined {
  if (s === undefined) return undefined;
  const bad = (why: string) => new ManifestInvalidError(`${where}: snapshots ${why}`);
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw bad('must be an object of node name → snapshot id');
  const out: Record<string, string> = {};
  for (const [node, id] of Object.entries(s)) {
    if (!nodes.includes(node)) throw bad(`name a node the plan does not have (${JSON.stringify(node.slice(0, 64))})`);
    if (typeof id !== 'string') throw bad(`of node ${node} is not a string`);
    try {
      out[node] = checkSnapshotId(id);
    } catch {
      throw bad(`of node ${node} is not a snapshot id`);
    }
  }
  return out;
}

