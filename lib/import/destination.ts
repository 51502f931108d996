/**
 * The destination side of an import: its kind, nodes and, per table, what exists where. The
 * result is plain data (no clients): the input of routing (route.ts).
 */
import { InvalidOptionError, fromDatabaseError } from '../errors.js';
import { closeQuietly, connect, parseConnection, type NodeEndpoint } from '../pg/conn.js';
import { displayName, quoteQualified, type QualifiedName } from '../pg/sql.js';
import { findRelation, relationColumns, requireRelation, type CatalogColumn } from '../topology/catalog.js';
import { citusNodes } from '../topology/citus.js';
import { NodeClients } from '../topology/clients.js';
import { discover } from '../topology/discover.js';
import { parseStaticTopology, type ParsedStaticTopology } from '../topology/static.js';
import { COORDINATOR_NODE, type DiscoveredTable, type PlanNode, type StaticTopology, type TopologyKind } from '../topology/types.js';
import { citusDestTable, type CitusDestTable } from './citus.js';

/** Where the destination is, as import and verify options give it. */
export interface DestinationOptions {
  /** Destination coordinator (or single server) URL. Not needed with a static topology. */
  target?: string;
  /** `auto` (default), `postgres`, `fdw`, `citus`, or a {@link StaticTopology} naming the destination nodes. */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
}

/** A destination before any connection: the static node list, or the coordinator to ask. */
export type DestinationAddress =
  | { static: ParsedStaticTopology }
  | { target: string; coordinator: PlanNode };

/**
 * Check the options name exactly one destination: a static topology, or a target URL (an
 * empty URL when PG* variables name the server).
 */
export function destinationAddress(opts: DestinationOptions): DestinationAddress {
  const topo = opts.topology ?? 'auto';
  if (typeof topo === 'object') {
    if (opts.target !== undefined) throw new InvalidOptionError('give either a target URL or a static topology, not both');
    return { static: parseStaticTopology(topo) };
  }
  const target = opts.target ?? (process.env.PGHOST || process.env.PGDATABASE ? '' : undefined);
  if (target === undefined) throw new InvalidOptionError('give a target URL (or PG* variables), or a static topology');
  return { target, coordinator: { name: COORDINATOR_NODE, endpoint: parseConnection(target) } };
}

/** A destination table as found: per node, the relation(s) and columns. */
export interface DestTable {
  /** Discovery of the existing table (URL targets) or per-node relations (static). */
  discovered?: DiscoveredTable;
  /** Static: nodes where the table is missing. */
  missingOn: string[];
  /** Columns of the table as seen on the coordinator or the first node that has it. */
  columns?: CatalogColumn[];
  /** Static: columns per node. */
  nodeColumns: Map<string, CatalogColumn[]>;
  /** Citus destination: the table's Citus metadata (absent when Citus does not manage it). */
  citus?: CitusDestTable;
}

/** The destination as found. */
export interface DestSide {
  kind: TopologyKind;
  coordinator?: PlanNode;
  /** Every destination node known (static nodes; fdw servers of the tables; the coordinator). */
  nodes: Map<string, PlanNode>;
  /** Static: tables the topology declares replicated. */
  replicated: Set<string>;
  tables: Map<string, DestTable | undefined>;
  /** Data nodes (not the coordinator), for the default concurrency. */
  dataNodes: number;
}

/**
 * Find the destination of the given tables. Static: every node's catalog, where each table
 * exists and its columns there. Target URL: which tables exist on the coordinator, then
 * discovery of those (with `replicated` tables treated as such); for Citus also every primary
 * and each table's shards. Tables missing on the coordinator map to undefined.
 */
export async function findDestination(opts: DestinationOptions, tables: QualifiedName[], replicated: string[]): Promise<DestSide> {
  const addr = destinationAddress(opts);
  if ('static' in addr) {
    const nodes = addr.static.nodes;
    const clients = new NodeClients({ nodes, applicationName: 'segferry import' });
    const out = new Map<string, DestTable | undefined>();
    try {
      for (const t of tables) {
        const dt: DestTable = { missingOn: [], nodeColumns: new Map() };
        for (const n of nodes.values()) {
          const c = await clients.get(n.name);
          const rel = await findRelation(c, t).catch((e) => { throw fromDatabaseError(e, { node: n.name, table: displayName(t), action: 'catalog lookup' }); });
          if (!rel) { dt.missingOn.push(n.name); continue; }
          const cols = await relationColumns(c, rel.oid);
          dt.nodeColumns.set(n.name, cols);
          dt.columns ??= cols;
        }
        out.set(displayName(t), dt);
      }
    } finally {
      await clients.closeAll();
    }
    return { kind: 'static', nodes, replicated: addr.static.replicated, tables: out, dataNodes: nodes.size };
  }
  const { target, coordinator } = addr;
  const coordEndpoint = coordinator.endpoint;
  const existing: QualifiedName[] = [];
  const out = new Map<string, DestTable | undefined>();
  const client = await connect(coordEndpoint, { node: COORDINATOR_NODE, applicationName: 'segferry import' });
  try {
    for (const t of tables) {
      const rel = await findRelation(client, t).catch((e) => { throw fromDatabaseError(e, { node: COORDINATOR_NODE, table: displayName(t), action: 'catalog lookup' }); });
      if (rel) existing.push(t);
      else out.set(displayName(t), undefined);
    }
  } finally {
    await closeQuietly(client);
  }
  const nodes = new Map<string, PlanNode>([[COORDINATOR_NODE, coordinator]]);
  let kind: TopologyKind = 'postgres';
  if (existing.length > 0) {
    const d = await discover({
      source: target,
      topology: opts.topology ?? 'auto',
      // Quoted: discovery parses names, and a display name would lose case and dots.
      tables: existing.map((t) => quoteQualified(t)),
      replicated: existing.filter((t) => replicated.includes(displayName(t))).map((t) => quoteQualified(t)),
    });
    kind = d.kind;
    for (const n of d.nodes) if (n.name !== COORDINATOR_NODE) nodes.set(n.name, n);
    for (const t of d.tables) {
      out.set(displayName(t.table), { discovered: t, missingOn: [], columns: t.columns, nodeColumns: new Map() });
    }
    if (kind === 'citus') await findCitusDestination(coordEndpoint, d.tables, out, nodes);
  }
  const dataNodes = [...nodes.keys()].filter((n) => n !== COORDINATOR_NODE).length;
  return { kind, coordinator, nodes, replicated: new Set(), tables: out, dataNodes: Math.max(1, dataNodes) };
}

/**
 * Citus destination: every primary node (a shard may have placements beyond the ones
 * discovery chose to read) and each table's shards with all their placements. Only when the
 * target is the coordinator (group 0): node names are then the same as an export's.
 */
async function findCitusDestination(coord: NodeEndpoint, tables: DiscoveredTable[], out: Map<string, DestTable | undefined>, nodes: Map<string, PlanNode>): Promise<void> {
  const client = await connect(coord, { node: COORDINATOR_NODE, applicationName: 'segferry import' });
  try {
    const groups = await citusNodes(client, coord);
    if (groups.get(0)?.endpoint !== coord) return;
    for (const n of groups.values()) if (n.name !== COORDINATOR_NODE) nodes.set(n.name, { name: n.name, endpoint: n.endpoint });
    for (const t of tables) {
      const name = displayName(t.table);
      const rel = await requireRelation(client, t.table, COORDINATOR_NODE);
      const c = await citusDestTable(client, rel.oid, t.table).catch((e) => { throw fromDatabaseError(e, { node: COORDINATOR_NODE, table: name, action: 'read Citus metadata' }); });
      if (c) out.get(name)!.citus = c;
    }
  } finally {
    await closeQuietly(client);
  }
}
