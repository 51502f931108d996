import { fromDatabaseError } from '../errors.js';
import { closeQuietly, connect, type NodeEndpoint } from '../pg/conn.js';
import { displayName, type QualifiedName } from '../pg/sql.js';

// What a node says about splitting a relation into ctid page ranges (lib/export/streams.ts
// decides the number of streams from it).

/** One relation as a page-range reader sees it. */
export interface RelationPages {
  /** pg_class.relkind (r table, p partitioned, f foreign, v view, m matview); '' when not found. */
  relkind: string;
  /** Table access method (`heap`, `columnar`…); '' when none (views, foreign tables). */
  accessMethod: string;
  /** `pg_relation_size / block_size`: heap pages now. */
  pages: number;
}

/** A node's answers for the relations it was asked about. */
export interface NodePages {
  /** `server_version_num` (TID range scans need 140000). */
  serverVersion: number;
  /** `max_parallel_workers` (the auto rule's ceiling). */
  maxParallelWorkers: number;
  relations: RelationPages[];
}

/** Ask one node for its version, `max_parallel_workers` and each relation's kind, access method and pages. */
export async function probePages(endpoint: NodeEndpoint, node: string, relations: QualifiedName[]): Promise<NodePages> {
  const client = await connect(endpoint, { node, applicationName: 'segferry plan' });
  try {
    const s = await client.query<{ v: string; w: string }>(`SELECT current_setting('server_version_num') AS v, current_setting('max_parallel_workers') AS w`);
    const out: NodePages = { serverVersion: Number(s.rows[0]!.v), maxParallelWorkers: Number(s.rows[0]!.w), relations: [] };
    for (const q of relations) {
      const r = await client.query<{ relkind: string; am: string | null; pages: string }>(
        `SELECT c.relkind::text AS relkind, a.amname::text AS am,
                (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 AS pages
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_catalog.pg_am a ON a.oid = c.relam
          WHERE n.nspname = $1 AND c.relname = $2`,
        [q.schema, q.name],
      ).catch((e) => { throw fromDatabaseError(e, { node, table: displayName(q), action: 'page count' }); });
      const row = r.rows[0];
      out.relations.push(row ? { relkind: row.relkind, accessMethod: row.am ?? '', pages: Number(row.pages) } : { relkind: '', accessMethod: '', pages: 0 });
    }
    return out;
  } finally {
    await closeQuietly(client);
  }
}
