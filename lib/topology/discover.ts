import type pg from 'pg';
import { InvalidOptionError, TopologyError, fromDatabaseError } from '../errors.js';
import { closeQuietly, connect, describeEndpoint, parseConnection, type NodeEndpoint } from '../pg/conn.js';
import type { QualifiedName } from '../pg/sql.js';
import { discoverCoordinator } from './coordinator.js';
import type { NodeClients } from './clients.js';
import { listCatalogTables, needsCatalog, resolveSelection, type CatalogTable, type Selection } from './select.js';
import { COORDINATOR_NODE, type Discovered, type DiscoverRequest, type StaticTopology, type TopologyKind } from './types.js';

// Where these lived before the split; importers keep their paths.
export { COORDINATOR_NODE, type Discovered, type DiscoveredTable, type DiscoverRequest, type StaticTopology } from './types.js';

/**
 * Where discovery starts: an open client to the coordinator (and, when the caller shares one,
 * its cache of node sessions, which discovery then leaves open), or the caller's node list.
 */
export type DiscoverFrom =
  | { coordinator: NodeEndpoint; client: pg.Client; clients?: NodeClients }
  | { static: StaticTopology };

/** Discovery of one topology kind, for the tables of a request (already parsed and unique). */
export type Discoverer = (from: DiscoverFrom, req: DiscoverRequest, tables: QualifiedName[]) => Promise<Discovered>;

function coordinatorOnly(kind: string, from: DiscoverFrom): { coordinator: NodeEndpoint; client: pg.Client; clients?: NodeClients } {
  if (!('client' in from)) throw new InvalidOptionError(`topology ${kind} is discovered through a coordinator: give its URL`);
  return from;
}

// Citus and static discovery load when a source is of that kind: the modules of a kind a run
// does not use are start-up CPU it does not need (issue 17; test/unit/startup-imports.test.ts).
const citusModule = () => import('./citus.js');
const staticModule = () => import('./static.js');

/**
 * Every topology kind and how it is discovered. `auto` is not a kind: {@link discover} picks
 * `citus` when the coordinator has the citus extension, else `fdw` (which reports `postgres`
 * when no partition is foreign).
 */
export const TOPOLOGY_KINDS: { readonly [K in TopologyKind]: Discoverer } = {
  postgres: async (from, req, tables) => {
    const c = coordinatorOnly('postgres', from);
    return discoverCoordinator(c.client, c.coordinator, 'postgres', req, tables, c.clients);
  },
  fdw: async (from, req, tables) => {
    const c = coordinatorOnly('fdw', from);
    return discoverCoordinator(c.client, c.coordinator, 'fdw', req, tables, c.clients);
  },
  citus: async (from, req, tables) => {
    const c = coordinatorOnly('citus', from);
    return (await citusModule()).discoverCitus(c.client, c.coordinator, req, tables);
  },
  static: async (from, req, tables) => {
    if (!('static' in from)) throw new InvalidOptionError('a static topology is discovered from its node list, not a coordinator');
    return (await staticModule()).discoverStatic(from.static, req, tables);
  },
};

/**
 * Work out nodes and reads for the requested tables. The selection (`all`, `schemas`,
 * `excludeTables`, patterns in `tables`) is resolved first against the catalog of the
 * coordinator, or of a static topology's first node (lib/topology/select.ts).
 *
 * `clients` (default none: discovery opens its own sessions and closes them): a cache of
 * sessions per node that the caller goes on using and closes itself (planning asks the same
 * nodes more questions afterwards; a connection costs more than a catalog query). The
 * coordinator's session is cached under the node name `coordinator`.
 */
export async function discover(req: DiscoverRequest, clients?: NodeClients): Promise<Discovered> {
  const sel: Selection = { tables: req.tables };
  if (req.all !== undefined) sel.all = req.all;
  if (req.schemas !== undefined) sel.schemas = req.schemas;
  if (req.excludeTables !== undefined) sel.excludeTables = req.excludeTables;
  if (req.tables.length === 0 && !req.all && (req.schemas?.length ?? 0) === 0) {
    throw new InvalidOptionError('no tables given: name at least one table, or use --all or --schema');
  }
  const topo = req.topology ?? 'auto';
  if (typeof topo === 'object') {
    const tables = needsCatalog(sel) ? await resolveOnFirstNode(topo, sel) : resolveSelection([], sel);
    return TOPOLOGY_KINDS.static({ static: topo }, req, tables);
  }
  if (!req.source) throw new InvalidOptionError('a source URL is needed unless a static topology names the nodes');
  const coord = parseConnection(req.source);
  const client = clients ? await clients.get({ name: COORDINATOR_NODE, endpoint: coord }) : await connect(coord, { node: COORDINATOR_NODE });
  const from = { coordinator: coord, client, ...(clients ? { clients } : {}) };
  try {
    const tables = resolveSelection(needsCatalog(sel) ? await catalogOf(client, COORDINATOR_NODE) : [], sel);
    if (topo === 'auto' || topo === 'citus') {
      const ext = await client.query<{ extname: string }>(`SELECT extname FROM pg_catalog.pg_extension WHERE extname = 'citus'`);
      if (ext.rows.length > 0) return await TOPOLOGY_KINDS.citus(from, req, tables);
      if (topo === 'citus') throw new TopologyError(`topology citus requested but the citus extension is not installed on ${describeEndpoint(coord)}`);
    }
    return await TOPOLOGY_KINDS[topo === 'postgres' ? 'postgres' : 'fdw'](from, req, tables);
  } finally {
    if (!clients) await closeQuietly(client);
  }
}

async function catalogOf(client: pg.Client, node: string): Promise<CatalogTable[]> {
  try {
    return await listCatalogTables(client);
  } catch (e) {
    throw fromDatabaseError(e, { node, action: 'list tables' });
  }
}

/** A static topology's selection is resolved on its first node (node-local definitions). */
async function resolveOnFirstNode(topo: StaticTopology, sel: Selection): Promise<QualifiedName[]> {
  const first = [...(await staticModule()).parseStaticTopology(topo).nodes.values()][0]!;
  const client = await connect(first.endpoint, { node: first.name });
  try {
    return resolveSelection(await catalogOf(client, first.name), sel);
  } finally {
    await closeQuietly(client);
  }
}
