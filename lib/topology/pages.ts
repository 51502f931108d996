import type pg from 'pg';
import { fromDatabaseError } from '../errors.js';
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
  /**
   * `shared_buffers` in pages (PostgreSQL's NBuffers: `pg_settings.setting` of shared_buffers
   * counts blocks). lib/export/streams.ts `chooseScan` reads a relation larger than it, which the
   * pool cannot hold, by filtered sequential scans (they read through a bulk-read ring).
   */
  sharedBuffers: number;
  relations: RelationPages[];
}

/**
 * Ask one node, on an open session of it (planning's, lib/topology/clients.ts), for its version,
 * `max_parallel_workers`, `shared_buffers` (pages) and each relation's kind, access method and pages: one query, one
 * round trip, whatever the number of relations (names bound as arrays, never spliced).
 */
export async function probePages(client: pg.Client, node: string, relations: QualifiedName[]): Promise<NodePages> {
  const r = await client.query<{ v: string; w: string; b: string; relkind: string | null; am: string | null; pages: string | null }>(
    `SELECT current_setting('server_version_num') AS v, current_setting('max_parallel_workers') AS w,
            (SELECT s.setting FROM pg_catalog.pg_settings s WHERE s.name = 'shared_buffers') AS b,
            c.relkind::text AS relkind, a.amname::text AS am,
            (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 AS pages
       FROM (SELECT 0::int8 AS i, NULL::text AS schema, NULL::text AS name
             UNION ALL SELECT u.i, u.schema, u.name FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(schema, name, i)) AS q(i, schema, name)
       LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = q.schema
       LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = q.name
       LEFT JOIN pg_catalog.pg_am a ON a.oid = c.relam
      ORDER BY q.i`,
    [relations.map((q) => q.schema), relations.map((q) => q.name)],
  ).catch((e) => { throw fromDatabaseError(e, { node, ...(relations.length === 1 ? { table: displayName(relations[0]!) } : {}), action: 'page count' }); });
  // Row 0 carries the settings alone; row k the k-th relation (all NULL when not found).
  const [first, ...rows] = r.rows;
  return {
    serverVersion: Number(first!.v),
    maxParallelWorkers: Number(first!.w),
    sharedBuffers: Number(first!.b),
    relations: rows.map((row) => (row.relkind !== null ? { relkind: row.relkind, accessMethod: row.am ?? '', pages: Number(row.pages) } : { relkind: '', accessMethod: '', pages: 0 })),
  };
}
