import type pg from 'pg';
import { ColumnNotFoundError, ConnectError, InvalidOptionError, SegferryError, TopologyError, fromDatabaseError } from '../errors.js';
import { closeQuietly, connect, describeEndpoint, parseConnection, rememberPassword, type NodeEndpoint } from '../pg/conn.js';
import { displayName, parseTableName, type QualifiedName } from '../pg/sql.js';
import { findRelation, optionValue, relationColumns, relationSize, requireRelation, type CatalogColumn } from './catalog.js';
import type { ColumnInfo, Distribution, PlanNode, RelationRead, TopologyKind } from './types.js';

/** A cluster described by the caller: every listed node holds a part of each distributed table. */
export interface StaticTopology {
  /** Data nodes, by name and connection URL. Names become part of object keys. */
  nodes: { name: string; url: string }[];
  /** Tables that hold a full copy on every node (exported from one node). */
  replicated?: string[];
}

/** The coordinator's view of the requested tables. */
export interface Discovered {
  kind: TopologyKind;
  coordinator?: NodeEndpoint;
  nodes: PlanNode[];
  tables: DiscoveredTable[];
}

/** A table and where to read it. */
export interface DiscoveredTable {
  table: QualifiedName;
  columns: ColumnInfo[];
  distribution: Distribution;
  reads: RelationRead[];
}

/** What to discover. */
export interface DiscoverRequest {
  /** Coordinator or single server URL (not needed for a static topology). */
  source?: string;
  /** auto (default), postgres, fdw, citus, or a static node list. */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  tables: string[];
  /** Column subset, in order (default: all). */
  columns?: string[];
  /** Tables to treat as replicated (static: in addition to the topology's list). */
  replicated?: string[];
}

/** Name of the coordinator when it holds data itself (single server, fdw local partitions). */
export const COORDINATOR_NODE = 'coordinator';

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Optional engines register their discovery here (Citus). */
export type EngineDiscoverer = (client: pg.Client, coordinator: NodeEndpoint, req: DiscoverRequest, tables: QualifiedName[]) => Promise<Discovered>;
const engines = new Map<string, EngineDiscoverer>();
/** Register discovery for an engine detected by extension name (used by the Citus module). */
export function registerEngine(extension: string, fn: EngineDiscoverer): void {
  engines.set(extension, fn);
}

/** Work out nodes and reads for the requested tables. */
export async function discover(req: DiscoverRequest): Promise<Discovered> {
  if (req.tables.length === 0) throw new InvalidOptionError('no tables given: name at least one table');
  const tables = req.tables.map((t) => {
    try { return parseTableName(t); } catch (e) { throw new InvalidOptionError((e as Error).message); }
  });
  const seen = new Set<string>();
  for (const t of tables) {
    const k = displayName(t);
    if (seen.has(k)) throw new InvalidOptionError(`table ${k} is given twice`);
    seen.add(k);
  }
  const topo = req.topology ?? 'auto';
  if (typeof topo === 'object') return discoverStatic(topo, req, tables);
  if (!req.source) throw new InvalidOptionError('a source URL is needed unless a static topology names the nodes');
  const coord = parseConnection(req.source);
  const client = await connect(coord, { node: COORDINATOR_NODE });
  try {
    if (topo === 'auto' || topo === 'citus') {
      const ext = await client.query<{ extname: string }>(`SELECT extname FROM pg_catalog.pg_extension WHERE extname = 'citus'`);
      if (ext.rows.length > 0) {
        const fn = engines.get('citus');
        if (!fn) throw new TopologyError('the source runs Citus, but this build of segferry has no Citus support loaded');
        return await fn(client, coord, req, tables);
      }
      if (topo === 'citus') throw new TopologyError(`topology citus requested but the citus extension is not installed on ${describeEndpoint(coord)}`);
    }
    return await discoverCoordinator(client, coord, topo === 'postgres' ? 'postgres' : 'fdw', req, tables);
  } finally {
    await closeQuietly(client);
  }
}

/** The requested columns of a relation, in the requested order (default: all). */
export function pickColumns(all: CatalogColumn[], wanted: string[] | undefined, table: string, node: string): CatalogColumn[] {
  if (!wanted || wanted.length === 0) return all;
  return wanted.map((w) => {
    const c = all.find((x) => x.name === w);
    if (!c) {
      throw new ColumnNotFoundError(`column ${JSON.stringify(w)} not found in table ${table} on node ${node}`, { node, table, sqlState: '42703' });
    }
    return c;
  });
}

/** Open clients to nodes lazily during planning and close them all at the end. */
export class NodeClients {
  #clients = new Map<string, Promise<pg.Client>>();
  async get(node: PlanNode): Promise<pg.Client> {
    let p = this.#clients.get(node.name);
    if (!p) {
      p = connect(node.endpoint, { node: node.name });
      this.#clients.set(node.name, p);
    }
    return p;
  }
  async closeAll(): Promise<void> {
    for (const p of this.#clients.values()) await closeQuietly(await p.catch(() => undefined));
  }
}

interface ForeignInfo {
  server: string;
  fdw: string;
  srvoptions: string[] | null;
  ftoptions: string[] | null;
  umoptions: string[] | null;
}

async function foreignInfo(client: pg.Client, oid: number): Promise<ForeignInfo | undefined> {
  const r = await client.query<ForeignInfo>(
    `SELECT s.srvname AS server, w.fdwname AS fdw, s.srvoptions, ft.ftoptions,
            (SELECT um.umoptions FROM pg_catalog.pg_user_mappings um
              WHERE um.srvid = s.oid AND (um.umuser = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) OR um.umuser = 0)
              ORDER BY um.umuser DESC LIMIT 1) AS umoptions
       FROM pg_catalog.pg_foreign_table ft
       JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
       JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
      WHERE ft.ftrelid = $1::oid`,
    [oid],
  );
  return r.rows[0];
}

async function discoverCoordinator(
  client: pg.Client,
  coord: NodeEndpoint,
  kind: 'postgres' | 'fdw',
  req: DiscoverRequest,
  tables: QualifiedName[],
): Promise<Discovered> {
  const replicated = new Set((req.replicated ?? []).map((t) => displayName(parseTableName(t))));
  const coordNode: PlanNode = { name: COORDINATOR_NODE, endpoint: coord };
  const nodes = new Map<string, PlanNode>();
  const clients = new NodeClients();
  const currentUser = (await client.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u;
  const serverNode = (info: ForeignInfo): PlanNode => {
    let n = nodes.get(info.server);
    if (n) return n;
    if (info.fdw !== 'postgres_fdw') {
      throw new TopologyError(`foreign server ${info.server} uses ${info.fdw}; only postgres_fdw servers can be read directly`);
    }
    const endpoint: NodeEndpoint = {
      host: optionValue(info.srvoptions, 'host') ?? optionValue(info.srvoptions, 'hostaddr') ?? coord.host,
      port: Number(optionValue(info.srvoptions, 'port') ?? 5432),
      database: optionValue(info.srvoptions, 'dbname') ?? optionValue(info.umoptions, 'user') ?? currentUser,
      user: optionValue(info.umoptions, 'user') ?? currentUser,
    };
    const sslmode = optionValue(info.srvoptions, 'sslmode');
    if (sslmode) endpoint.sslmode = sslmode;
    const rc = optionValue(info.srvoptions, 'sslrootcert');
    if (rc) endpoint.sslrootcert = rc;
    rememberPassword(endpoint, optionValue(info.umoptions, 'password'));
    n = { name: info.server, endpoint };
    nodes.set(info.server, n);
    return n;
  };
  const out: DiscoveredTable[] = [];
  try {
    for (const t of tables) {
      const name = displayName(t);
      const rel = await requireRelation(client, t, COORDINATOR_NODE);
      const cols = pickColumns(await relationColumns(client, rel.oid), req.columns, name, COORDINATOR_NODE);
      const columns: ColumnInfo[] = cols.map(({ name: n, type, notNull }) => ({ name: n, type, notNull: notNull ?? false }));
      if (kind === 'postgres' || (rel.relkind !== 'p' && rel.relkind !== 'f')) {
        nodes.set(COORDINATOR_NODE, coordNode);
        out.push({
          table: t,
          columns,
          distribution: { kind: replicated.has(name) ? 'replicated' : 'single', replicas: [COORDINATOR_NODE] },
          reads: [{ node: COORDINATOR_NODE, relation: t, columns: columns.map((c) => c.name), estimatedBytes: await relationSize(client, t) }],
        });
        continue;
      }
      const leaves: { oid: number; schema: string; name: string; relkind: string }[] = rel.relkind === 'p'
        ? (await client.query(
            `SELECT c.oid::int8::float8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
               FROM pg_catalog.pg_partition_tree($1::oid) p
               JOIN pg_catalog.pg_class c ON c.oid = p.relid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE p.isleaf ORDER BY n.nspname, c.relname`, [rel.oid])).rows
        : [{ oid: rel.oid, schema: t.schema, name: t.name, relkind: rel.relkind }];
      const reads: RelationRead[] = [];
      for (const leaf of leaves) {
        const leafQ = { schema: leaf.schema, name: leaf.name };
        if (leaf.relkind === 'f') {
          const info = await foreignInfo(client, Number(leaf.oid));
          if (!info) throw new TopologyError(`foreign table ${displayName(leafQ)} has no server`, { table: name });
          const node = serverNode(info);
          const remote: QualifiedName = {
            schema: optionValue(info.ftoptions, 'schema_name') ?? leaf.schema,
            name: optionValue(info.ftoptions, 'table_name') ?? leaf.name,
          };
          const leafCols = await relationColumns(client, Number(leaf.oid));
          const remoteCols = columns.map((c) => leafCols.find((l) => l.name === c.name)?.remoteName ?? c.name);
          const dn = await clients.get(node);
          const found = await findRelation(dn, remote).catch((e) => { throw fromDatabaseError(e, { node: node.name, table: name, action: 'catalog lookup' }); });
          if (!found) {
            throw new TopologyError(`table ${name}: partition ${displayName(leafQ)} points to ${displayName(remote)} on node ${node.name}, which does not exist there`, {
              node: node.name, table: name, sqlState: '42P01',
            });
          }
          reads.push({ node: node.name, relation: remote, columns: remoteCols, estimatedBytes: await relationSize(dn, remote) });
        } else {
          nodes.set(COORDINATOR_NODE, coordNode);
          reads.push({ node: COORDINATOR_NODE, relation: leafQ, columns: columns.map((c) => c.name), estimatedBytes: await relationSize(client, leafQ) });
        }
      }
      let distribution: Distribution;
      if (rel.relkind === 'p') {
        const pk = await client.query<{ strat: string; key: string }>(
          `SELECT pt.partstrat::text AS strat, pg_catalog.pg_get_partkeydef(pt.partrelid) AS key FROM pg_catalog.pg_partitioned_table pt WHERE pt.partrelid = $1::oid`,
          [rel.oid],
        );
        const strat = pk.rows[0]?.strat;
        distribution = { kind: 'distributed', method: strat === 'h' ? 'hash' : strat === 'r' ? 'range' : strat === 'l' ? 'list' : 'partition' };
        const key = pk.rows[0]?.key;
        if (key) distribution.column = key.replace(/^[A-Z]+\s*\((.*)\)$/, '$1');
      } else {
        distribution = { kind: 'single', replicas: reads.map((r) => r.node) };
      }
      if (replicated.has(name)) {
        // A replicated table: every candidate node holds all rows; read it from the first that
        // answers and has it. Candidates: where the coordinator points, then every other
        // postgres_fdw server the coordinator knows, in name order.
        const first = reads[0]!;
        const all = (await client.query<ForeignInfo>(
          `SELECT s.srvname AS server, w.fdwname AS fdw, s.srvoptions, NULL::text[] AS ftoptions,
                  (SELECT um.umoptions FROM pg_catalog.pg_user_mappings um
                    WHERE um.srvid = s.oid AND (um.umuser = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) OR um.umuser = 0)
                    ORDER BY um.umuser DESC LIMIT 1) AS umoptions
             FROM pg_catalog.pg_foreign_server s JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
            WHERE w.fdwname = 'postgres_fdw' ORDER BY s.srvname`)).rows;
        const candidates = [first.node, ...all.map((i) => i.server).filter((s) => s !== first.node)];
        const replicas: string[] = [];
        let chosen: RelationRead | undefined;
        let lastErr: unknown;
        for (const cand of candidates) {
          const info = all.find((i) => i.server === cand);
          const node = cand === COORDINATOR_NODE ? coordNode : nodes.get(cand) ?? (info ? serverNode(info) : undefined);
          if (!node) continue;
          try {
            const c = cand === COORDINATOR_NODE ? client : await clients.get(node);
            if (!(await findRelation(c, first.relation))) continue;
            replicas.push(cand);
            if (!chosen) chosen = { ...first, node: cand, estimatedBytes: await relationSize(c, first.relation) };
          } catch (e) {
            lastErr = e;
          }
        }
        if (!chosen) {
          if (lastErr instanceof SegferryError) throw lastErr;
          throw new ConnectError(`no replica of ${name} could be reached`, { table: name, cause: lastErr });
        }
        distribution = { kind: 'replicated', replicas };
        out.push({ table: t, columns, distribution, reads: [chosen] });
        continue;
      }
      out.push({ table: t, columns, distribution, reads });
    }
  } finally {
    await clients.closeAll();
  }
  const used = new Set(out.flatMap((t) => [...t.reads.map((r) => r.node), ...(t.distribution.kind === 'replicated' ? t.distribution.replicas ?? [] : [])]));
  const planNodes = [...nodes.values()].filter((n) => used.has(n.name));
  const res: Discovered = {
    kind: kind === 'postgres' || planNodes.every((n) => n.name === COORDINATOR_NODE) ? 'postgres' : 'fdw',
    coordinator: coord,
    nodes: planNodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    tables: out,
  };
  return res;
}

async function discoverStatic(topo: StaticTopology, req: DiscoverRequest, tables: QualifiedName[]): Promise<Discovered> {
  if (!Array.isArray(topo.nodes) || topo.nodes.length === 0) throw new InvalidOptionError('a static topology needs at least one node');
  const nodes: PlanNode[] = [];
  for (const n of topo.nodes) {
    if (typeof n?.name !== 'string' || !NODE_NAME.test(n.name)) {
      throw new InvalidOptionError(`invalid node name ${JSON.stringify(n?.name)}: use letters, digits, dot, dash and underscore`);
    }
    if (nodes.some((x) => x.name === n.name)) throw new InvalidOptionError(`node name ${n.name} is used twice`);
    if (typeof n.url !== 'string') throw new InvalidOptionError(`node ${n.name} has no url`);
    nodes.push({ name: n.name, endpoint: parseConnection(n.url) });
  }
  const replicated = new Set([...(topo.replicated ?? []), ...(req.replicated ?? [])].map((t) => displayName(parseTableName(t))));
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
