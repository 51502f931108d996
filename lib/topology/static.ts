import { InvalidOptionError, SegferryError, TopologyError, fromDatabaseError } from '../errors.js';
import { parseConnection, type NodeEndpoint } from '../pg/conn.js';
import { displayName, parseTableName, type QualifiedName } from '../pg/sql.js';
import { findRelation, pickColumns, relationColumns, relationSize, requireRelation } from './catalog.js';
import { NodeClients } from './clients.js';
import type { ColumnInfo, Discovered, DiscoveredTable, DiscoverRequest, PlanNode, RelationRead, StaticTopology } from './types.js';

/** Node names become part of object keys (`<table>_<node>_segment.<n>`): no underscore first, no slash. */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A {@link StaticTopology} after {@link parseStaticTopology}. */
export interface ParsedStaticTopology {
  /** The nodes by name, in the order given, with parsed endpoints. */
  nodes: Map<string, PlanNode>;
  /** The replicated tables, as `schema.name`. */
  replicated: Set<string>;
}

/**
 * Check a static topology (from the API or a `--topology` JSON file) and parse it: at least one
 * node; every name made of letters, digits, dot, dash and underscore, starting with a letter or
 * digit, and used once; every node with a connection URL that parses; replicated entries valid
 * table names. The one check used by export, import and verify. Throws InvalidOptionError.
 */
export function parseStaticTopology(topo: StaticTopology): ParsedStaticTopology {
  if (!Array.isArray(topo?.nodes) || topo.nodes.length === 0) throw new InvalidOptionError('a static topology needs at least one node');
  const nodes = new Map<string, PlanNode>();
  for (const n of topo.nodes) {
    if (typeof n?.name !== 'string' || !NODE_NAME.test(n.name)) {
      throw new InvalidOptionError(`invalid node name ${JSON.stringify(n?.name)}: use letters, digits, dot, dash and underscore`);
    }
    if (nodes.has(n.name)) throw new InvalidOptionError(`node name ${n.name} is used twice`);
    if (typeof n.url !== 'string' || n.url === '') throw new InvalidOptionError(`node ${n.name} has no url`, { node: n.name });
    let endpoint: NodeEndpoint;
    try {
      endpoint = parseConnection(n.url);
    } catch (e) {
      // parseConnection's message names no node (and must not quote the URL: it may hold a password).
      throw new InvalidOptionError(`node ${n.name}: ${(e as Error).message}`, { node: n.name, cause: e });
    }
    nodes.set(n.name, { name: n.name, endpoint });
  }
  if (topo.replicated !== undefined && !Array.isArray(topo.replicated)) {
    throw new InvalidOptionError('replicated must be a list of table names');
  }
  const replicated = new Set<string>();
  for (const t of topo.replicated ?? []) {
    try {
      replicated.add(displayName(parseTableName(t)));
    } catch (e) {
      throw new InvalidOptionError(`replicated table: ${(e as Error).message}`);
    }
  }
  return { nodes, replicated };
}

/**
 * Discover a static topology: every node holds a part of each distributed table (the same
 * columns on every node), or a full copy of a replicated one.
 */
export async function discoverStatic(topo: StaticTopology, req: DiscoverRequest, tables: QualifiedName[]): Promise<Discovered> {
  const parsed = parseStaticTopology(topo);
  const nodes = [...parsed.nodes.values()];
  const replicated = new Set([...parsed.replicated, ...(req.replicated ?? []).map((t) => displayName(parseTableName(t)))]);
  const clients = new NodeClients();
  const out: DiscoveredTable[] = [];
  try {
    for (const t of tables) {
      const name = displayName(t);
      if (replicated.has(name)) {
        let chosen: { node: PlanNode; columns: ColumnInfo[]; size: number } | undefined;
        const replicas: string[] = [];
        let lastErr: unknown;
        for (const node of nodes) {
          try {
            const c = await clients.get(node);
            const rel = await findRelation(c, t);
            if (!rel) continue;
            replicas.push(node.name);
            if (!chosen) {
              const cols = pickColumns(await relationColumns(c, rel.oid), req.columns, name, node.name);
              chosen = { node, columns: cols.map(({ name: n, type, notNull }) => ({ name: n, type, notNull: notNull ?? false })), size: await relationSize(c, t) };
            }
          } catch (e) {
            lastErr = e;
          }
        }
        if (!chosen) {
          if (lastErr instanceof SegferryError) throw lastErr;
          if (lastErr) throw fromDatabaseError(lastErr, { table: name });
          throw new TopologyError(`replicated table ${name} exists on no node`, { table: name, sqlState: '42P01' });
        }
        out.push({
          table: t,
          columns: chosen.columns,
          distribution: { kind: 'replicated', method: 'static', replicas },
          reads: [{ node: chosen.node.name, relation: t, columns: chosen.columns.map((c) => c.name), estimatedBytes: chosen.size }],
        });
        continue;
      }
      let columns: ColumnInfo[] | undefined;
      const reads: RelationRead[] = [];
      for (const node of nodes) {
        const c = await clients.get(node);
        const rel = await requireRelation(c, t, node.name);
        const cols = pickColumns(await relationColumns(c, rel.oid), req.columns, name, node.name);
        const these = cols.map(({ name: n, type, notNull }) => ({ name: n, type, notNull: notNull ?? false }));
        if (!columns) columns = these;
        else if (these.length !== columns.length || these.some((x, i) => x.name !== columns![i]!.name || x.type !== columns![i]!.type)) {
          throw new TopologyError(`table ${name} has different columns on node ${node.name} than on node ${nodes[0]!.name}`, { node: node.name, table: name });
        }
        reads.push({ node: node.name, relation: t, columns: these.map((x) => x.name), estimatedBytes: await relationSize(c, t) });
      }
      out.push({ table: t, columns: columns!, distribution: { kind: 'distributed', method: 'static' }, reads });
    }
  } finally {
    await clients.closeAll();
  }
  const used = new Set(out.flatMap((t) => [...t.reads.map((r) => r.node), ...(t.distribution.kind === 'replicated' ? t.distribution.replicas ?? [] : [])]));
  return { kind: 'static', nodes: nodes.filter((n) => used.has(n.name)), tables: out };
}
