import type pg from 'pg';
import { ConnectError, SegferryError, TopologyError, fromDatabaseError } from '../errors.js';
import { rememberPassword, type NodeEndpoint } from '../pg/conn.js';
import { displayName, parseTableName, type QualifiedName } from '../pg/sql.js';
import { findRelation, optionValue, pickColumns, relationColumns, relationSize, requireRelation } from './catalog.js';
import { NodeClients } from './clients.js';
import { COORDINATOR_NODE, type ColumnInfo, type Discovered, type DiscoveredTable, type DiscoverRequest, type Distribution, type PlanNode, type RelationRead } from './types.js';

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

/**
 * Discover through a coordinator (`postgres` and `fdw` kinds): a plain table, or with kind
 * `postgres` any table, is read on the coordinator; a partitioned table's postgres_fdw
 * partitions are read on their foreign servers (one node per server), its local partitions on
 * the coordinator. The result's kind is `postgres` when every read is on the coordinator.
 * `shared` (default none): the caller's cache of data node sessions, left open for it.
 */
export async function discoverCoordinator(
  client: pg.Client,
  coord: NodeEndpoint,
  kind: 'postgres' | 'fdw',
  req: DiscoverRequest,
  tables: QualifiedName[],
  shared?: NodeClients,
): Promise<Discovered> {
  const replicated = new Set((req.replicated ?? []).map((t) => displayName(parseTableName(t))));
  const coordNode: PlanNode = { name: COORDINATOR_NODE, endpoint: coord };
  const nodes = new Map<string, PlanNode>();
  const clients = shared ?? new NodeClients();
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
      // A partitioned table whose partitions are all local is one logical table read through
      // its parent (one COPY, rows of every partition); only foreign partitions make nodes.
      const allLocal = rel.relkind === 'p' && (await client.query<{ local: boolean }>(
        `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree($1::oid) p JOIN pg_catalog.pg_class c ON c.oid = p.relid
                             WHERE p.isleaf AND c.relkind = 'f') AS local`, [rel.oid])).rows[0]!.local;
      if (kind === 'postgres' || allLocal || (rel.relkind !== 'p' && rel.relkind !== 'f')) {
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
    if (!shared) await clients.closeAll();
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
