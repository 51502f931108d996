import { createHash } from 'node:crypto';
import type pg from 'pg';
import {
  ChecksumMismatchError, InvalidOptionError, ManifestMissingError, ObjectMissingError, SchemaMismatchError,
  SegferryError, TableNotFoundError, TopologyError, fromDatabaseError,
} from '../errors.js';
import { normalizeFormat, type FormatKind, type FormatOptions } from '../format/options.js';
import { readManifest } from '../manifest/io.js';
import { MANIFEST_KEY, type Manifest, type RowChecksum } from '../manifest/types.js';
import { SESSION_SETTINGS, closeQuietly, connect, parseConnection, type NodeEndpoint } from '../pg/conn.js';
import { displayName, parseTableName, type QualifiedName } from '../pg/sql.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';
import { findRelation, relationColumns, requireRelation, type CatalogColumn } from '../topology/catalog.js';
import { citusNodes } from '../topology/citus.js';
import { COORDINATOR_NODE, discover, type DiscoveredTable, type StaticTopology } from '../topology/discover.js';
import type { ColumnInfo, Distribution, PlanNode, TopologyKind } from '../topology/types.js';
import { citusDestTable, planShardDirect, type CitusDestTable } from './citus.js';
import { LEDGER_TABLE, readLedger } from './ledger.js';

/**
 * How objects reach the destination.
 * - `coordinator`: `COPY <table> FROM STDIN` on the coordinator (or single server); the engine
 *   routes rows, so it works for any destination with a coordinator.
 * - `direct`: each object is loaded straight into the destination node named like its source
 *   node (backup → restore onto the same layout), in parallel.
 * - `auto` (default): direct for a static destination, and for a postgres_fdw destination whose
 *   table has the same layout as the source (see {@link planImport}); coordinator otherwise.
 */
export type ImportRoute = 'auto' | 'coordinator' | 'direct';

/**
 * Objects without a manifest (for example written by GaussDB(DWS)'s own OBS export): every
 * `<objectName>_<node>_segment.<n>` under the prefix belongs to one table. There is no
 * SHA-256 or row count to compare, so the import checks neither, and verify has nothing to
 * compare against.
 */
export interface BareSource {
  /** Destination table the objects hold: `name`, `schema.name` or `"Quoted"`. It must exist. */
  table: string;
  /** Format of the objects: `text` (default) or `csv`, or options (delimiter, null, quote, escape, header). */
  format?: FormatKind | (Partial<FormatOptions> & { kind: FormatKind });
  /** The `<objectName>` part of the keys (default: the table's name without its schema). */
  objectName?: string;
}

/** What to import and where to. */
export interface ImportPlanOptions {
  /** The export: `s3://bucket/prefix`, a directory, a `file://` URL, or an open store. */
  from: string | ObjectStore;
  /** S3 client settings (endpoint, path style, checksum mode, credentials). */
  s3?: S3Options;
  /** Destination coordinator (or single server) URL. Not needed with a static topology. */
  target?: string;
  /**
   * `auto` (default): read the target's catalog (Citus, or postgres_fdw partitions become nodes).
   * `postgres`: everything through the one server. `fdw`: postgres_fdw sharding. `citus`:
   * insist on Citus. Or a {@link StaticTopology} naming the destination nodes (no coordinator).
   */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /** Import only these tables of the export (default: all). */
  tables?: string[];
  /** Routing (default `auto`). */
  route?: ImportRoute;
  /**
   * Loaders running at once (default: number of destination nodes, at least 2). Memory:
   * each loader holds its store read buffer (directory: 1 MiB chunks; S3: socket-sized
   * chunks, typically ≤ 64 KiB), the chunk passing through the hash, and the COPY write
   * buffer (one chunk queued on the socket): at most about 4 MiB per loader with a directory
   * store, well under 1 MiB with S3, so about concurrency × 4 MiB; an object is never held whole.
   */
  concurrency?: number;
  /** Empty each destination table (and forget its ledger rows) before loading (default false). */
  truncate?: boolean;
  /** Create missing destination tables from the manifest's columns and types (default false). */
  create?: boolean;
  /** ANALYZE each table after its last object (default false). */
  analyze?: boolean;
  /** Load every object again even when the ledger records it (default false). Combine with `truncate` to replace. */
  force?: boolean;
  /** Objects without a manifest (default: a manifest is required). */
  bare?: BareSource;
}

/** Where one table's rows go on one destination node. */
export interface ImportTarget {
  node: string;
  /** The relation as named on that node. */
  relation: QualifiedName;
  /** Column names on that node, in the export's column order. */
  columns: string[];
}

/** One object of the export and where it is loaded. */
export interface PlannedObject {
  key: string;
  /** Node of the source cluster it was exported from. */
  sourceNode: string;
  segment: number;
  bytes: number;
  /** Rows the manifest records (absent for bare objects). */
  rows?: number;
  /** SHA-256 the manifest records (absent for bare objects). */
  sha256?: string;
  /** Destination nodes it is loaded into (several for replicated tables and replicated Citus shards). */
  targets: string[];
  /**
   * Citus shard-direct: the destination shard table it is loaded into on each of its target
   * nodes, instead of the table target's relation.
   */
  relation?: QualifiedName;
  /** Target nodes whose ledger already records it: those loads are skipped. */
  loaded: string[];
}

/** One table of an import plan. */
export interface ImportTablePlan {
  /** `schema.name` in the export. */
  table: string;
  /** The table on the destination (same schema and name). */
  destination: QualifiedName;
  columns: ColumnInfo[];
  /** How the source held it. */
  distribution: Distribution;
  route: 'coordinator' | 'direct';
  /** Why this route was chosen. */
  reason: string;
  /** Where rows go, one entry per destination node that receives objects. */
  targets: ImportTarget[];
  /** Nodes where the table is created first (`create`). */
  create: string[];
  /** Nodes where the table (the target relation on target nodes) is truncated first (`truncate`). */
  truncate: string[];
  objects: PlannedObject[];
  /** Source figures from the manifest, when recorded. */
  source: { rows?: number; checksum?: RowChecksum };
}

/**
 * An import plan: plain data, serialisable with JSON.stringify, free of credentials.
 * `segferry import --dry-run` prints it.
 */
export interface ImportPlan {
  version: 1;
  /** Ledger key: the manifest's id, or `bare:<sha256 of location and table>`. */
  importId: string;
  /** Display location of the export (no credentials). */
  location: string;
  /** True for objects without a manifest. */
  bare: boolean;
  topology: TopologyKind;
  /** The destination's coordinator, when it has one. */
  coordinator?: PlanNode;
  /** Destination nodes: where objects go, and every other node whose ledger is kept (coordinator included). */
  nodes: PlanNode[];
  /** Nodes whose ledger is consulted (and, with truncate, cleared for the tables). */
  ledgerNodes: string[];
  format: FormatOptions;
  sessionSettings: Record<string, string>;
  concurrency: number;
  truncate: boolean;
  analyze: boolean;
  force: boolean;
  tables: ImportTablePlan[];
  /** Things the user should know (e.g. no checksums to compare). */
  notes: string[];
}

/** One table of the source (manifest or bare listing). */
interface SourceTable {
  table: QualifiedName;
  name: string;
  columns?: ColumnInfo[];
  distribution: Distribution;
  /** Source node names that hold (held) a part, from the manifest. */
  nodes: string[];
  rows?: number;
  checksum?: RowChecksum;
  objects: { key: string; node: string; segment: number; bytes: number; rows?: number; sha256?: string; shards?: string[] }[];
}

interface SourceSide {
  id: string;
  bare: boolean;
  format: FormatOptions;
  sessionSettings: Record<string, string>;
  tables: SourceTable[];
  notes: string[];
}

/** Import id of a bare prefix: stable for one location and table. */
export function bareImportId(location: string, table: string): string {
  return 'bare:' + createHash('sha256').update(`${location}\n${table}`).digest('hex').slice(0, 32);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Read the manifest, or list the bare objects, and pick the requested tables. */
export async function readSource(store: ObjectStore, opts: Pick<ImportPlanOptions, 'tables' | 'bare'>): Promise<SourceSide & { manifest?: Manifest }> {
  if (opts.bare) {
    if (await store.head(MANIFEST_KEY)) {
      throw new InvalidOptionError(`${store.url} holds a manifest: import it as an export, without bare options`);
    }
    const b = opts.bare;
    let table: QualifiedName;
    try { table = parseTableName(b.table); } catch (e) { throw new InvalidOptionError((e as Error).message); }
    if (opts.tables && opts.tables.some((t) => displayName(parseTableName(t)) !== displayName(table))) {
      throw new InvalidOptionError('a bare import loads exactly one table: the one named in its bare options');
    }
    const format = normalizeFormat(typeof b.format === 'string' ? { kind: b.format } : b.format ?? { kind: 'text' }, { allowLossyNull: true });
    if (format.kind === 'arrow') throw new InvalidOptionError('bare objects must be text or csv');
    const objectName = b.objectName ?? table.name;
    const re = new RegExp(`^${escapeRegExp(objectName)}_(.+)_segment\\.(\\d+)$`);
    const objects: SourceTable['objects'] = [];
    for await (const o of store.list(`${objectName}_`)) {
      const m = re.exec(o.key);
      if (m) objects.push({ key: o.key, node: m[1]!, segment: Number(m[2]), bytes: o.size });
    }
    if (objects.length === 0) {
      throw new ObjectMissingError(`no objects named ${objectName}_<node>_segment.<n> under ${store.url}`, {
        hint: 'check the location and the object name (bare objectName / --object-name)',
      });
    }
    objects.sort((a, b) => (a.node === b.node ? a.segment - b.segment : a.node < b.node ? -1 : 1));
    const name = displayName(table);
    return {
      id: bareImportId(store.url, name),
      bare: true,
      format,
      sessionSettings: { ...SESSION_SETTINGS },
      tables: [{
        table, name, distribution: { kind: 'distributed' }, nodes: [...new Set(objects.map((o) => o.node))], objects,
      }],
      notes: [`${name}: objects without a manifest: no SHA-256, row count or checksum to compare`],
    };
  }
  let m: Manifest;
  try {
    m = await readManifest(store);
  } catch (e) {
    if (e instanceof ManifestMissingError) {
      throw new ManifestMissingError(e.message, {
        key: MANIFEST_KEY,
        hint: 'check the location; for objects written without a manifest (e.g. GaussDB(DWS) export) give the table and format (bare, --bare)',
      });
    }
    throw e;
  }
  let wanted = m.tables;
  if (opts.tables && opts.tables.length > 0) {
    const names = opts.tables.map((t) => {
      try { return displayName(parseTableName(t)); } catch (e) { throw new InvalidOptionError((e as Error).message); }
    });
    for (const n of names) {
      if (!m.tables.some((t) => `${t.schema}.${t.name}` === n)) {
        throw new TableNotFoundError(`table ${n} is not in the export at ${store.url}`, {
          table: n, hint: `the export holds ${m.tables.map((t) => `${t.schema}.${t.name}`).join(', ')}`,
        });
      }
    }
    wanted = m.tables.filter((t) => names.includes(`${t.schema}.${t.name}`));
  }
  const notes: string[] = [];
  const tables = wanted.map((t): SourceTable => {
    const name = `${t.schema}.${t.name}`;
    const st: SourceTable = {
      table: { schema: t.schema, name: t.name },
      name,
      columns: t.columns,
      distribution: t.distribution,
      nodes: t.nodes.map((n) => n.node),
      rows: t.rows,
      // Only objects the manifest lists are ever read.
      objects: m.objects.filter((o) => o.table === name).map((o) => ({
        key: o.key, node: o.node, segment: o.segment, bytes: o.bytes, rows: o.rows, sha256: o.sha256, ...(o.shards ? { shards: o.shards } : {}),
      })),
    };
    if (t.checksum) st.checksum = t.checksum;
    else notes.push(`${name}: the export recorded no checksum; verify can compare row counts only`);
    return st;
  });
  return { id: m.id, bare: false, format: m.format, sessionSettings: m.sessionSettings, tables, notes, manifest: m };
}

/** Connections opened while planning, one per node, closed at the end. */
export class ClientCache {
  #clients = new Map<string, Promise<pg.Client>>();
  constructor(readonly nodes: Map<string, PlanNode>, readonly timeoutMs?: number) {}
  get(name: string): Promise<pg.Client> {
    let p = this.#clients.get(name);
    if (!p) {
      const n = this.nodes.get(name);
      if (!n) return Promise.reject(new TopologyError(`unknown destination node ${name}`));
      const o: { node: string; applicationName: string; connectTimeoutMs?: number } = { node: name, applicationName: 'segferry import' };
      if (this.timeoutMs !== undefined) o.connectTimeoutMs = this.timeoutMs;
      p = connect(n.endpoint, o);
      p.catch(() => {});
      this.#clients.set(name, p);
    }
    return p;
  }
  async closeAll(): Promise<void> {
    for (const p of this.#clients.values()) await closeQuietly(await p.catch(() => undefined));
    this.#clients.clear();
  }
}

/** A destination table as found: per node, the relation(s) and columns. */
interface DestTable {
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

interface DestSide {
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

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The nodes of a static topology, checked: names are safe for keys and unique; every node has a URL. */
export function parseStaticNodes(topo: StaticTopology): Map<string, PlanNode> {
  if (!Array.isArray(topo.nodes) || topo.nodes.length === 0) throw new InvalidOptionError('a static topology needs at least one node');
  const nodes = new Map<string, PlanNode>();
  for (const n of topo.nodes) {
    if (typeof n?.name !== 'string' || !NODE_NAME.test(n.name)) {
      throw new InvalidOptionError(`invalid node name ${JSON.stringify(n?.name)}: use letters, digits, dot, dash and underscore`);
    }
    if (nodes.has(n.name)) throw new InvalidOptionError(`node name ${n.name} is used twice`);
    if (typeof n.url !== 'string') throw new InvalidOptionError(`node ${n.name} has no url`);
    nodes.set(n.name, { name: n.name, endpoint: parseConnection(n.url) });
  }
  return nodes;
}

async function findDestination(opts: ImportPlanOptions, tables: QualifiedName[], replicated: string[]): Promise<DestSide> {
  const topo = opts.topology ?? 'auto';
  if (typeof topo === 'object') {
    if (opts.target !== undefined) throw new InvalidOptionError('give either a target URL or a static topology, not both');
    const nodes = parseStaticNodes(topo);
    const clients = new ClientCache(nodes);
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
    const rep = new Set([...(topo.replicated ?? [])].map((t) => displayName(parseTableName(t))));
    return { kind: 'static', nodes, replicated: rep, tables: out, dataNodes: nodes.size };
  }
  const target = opts.target ?? (process.env.PGHOST || process.env.PGDATABASE ? '' : undefined);
  if (target === undefined) throw new InvalidOptionError('give a target URL (or PG* variables), or a static topology');
  const coordEndpoint = parseConnection(target);
  const coordinator: PlanNode = { name: COORDINATOR_NODE, endpoint: coordEndpoint };
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
      topology: topo,
      tables: existing.map((t) => displayName(t)),
      replicated: replicated.filter((r) => existing.some((t) => displayName(t) === r)),
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

/** Check that a destination relation has every exported column with the same type. */
export function checkColumns(exported: ColumnInfo[], dest: CatalogColumn[], names: string[], table: string, node: string): void {
  exported.forEach((c, i) => {
    const want = names[i] ?? c.name;
    const d = dest.find((x) => x.name === want);
    if (!d) {
      throw new SchemaMismatchError(`table ${table} on node ${node} has no column ${JSON.stringify(want)} (exported as ${c.type})`, {
        node, table, hint: 'create the column, or let segferry create missing tables (create, --create) in an empty schema',
      });
    }
    if (d.type !== c.type) {
      throw new SchemaMismatchError(`table ${table} on node ${node}: column ${JSON.stringify(want)} is ${d.type}, but was exported as ${c.type}`, {
        node, table, hint: 'the destination column must have the exported type so every value reads back the same',
      });
    }
  });
}

/**
 * Plan an import: read the manifest (only the objects it lists are trusted), check every
 * object to load is present with its recorded size, find the destination tables and how to
 * route each, check their columns fit, and read the ledgers to see what is loaded already.
 * Nothing is changed anywhere.
 *
 * Routing rule for postgres_fdw destinations (auto): a table goes node-direct when its
 * destination partitions sit on foreign servers named exactly as the source's nodes, one
 * relation per node, with the same partitioning method; rows are then loaded into each
 * node's remote relation, which assumes the same partition bounds (restore onto the same
 * layout). Otherwise, and for replicated tables, rows go through the coordinator, which
 * routes them itself; with route `direct` a replicated table is loaded into every foreign
 * server that holds a copy instead (and `truncate` empties each). A static destination has no coordinator: its nodes must be named as
 * the source's, and replicated tables are loaded into every node.
 */
export async function planImport(opts: ImportPlanOptions): Promise<ImportPlan> {
  const route = opts.route ?? 'auto';
  if (route !== 'auto' && route !== 'coordinator' && route !== 'direct') throw new InvalidOptionError(`unknown route ${String(route)}: use auto, coordinator or direct`);
  if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
    throw new InvalidOptionError('concurrency must be a whole number of at least 1');
  }
  const store = typeof opts.from === 'string' ? openStore(opts.from, opts.s3) : opts.from;
  try {
    const src = await readSource(store, opts);
    const replicatedNames = src.tables.filter((t) => t.distribution.kind === 'replicated').map((t) => t.name);
    const dest = await findDestination(opts, src.tables.map((t) => t.table), replicatedNames);
    const isStatic = dest.kind === 'static';
    if (isStatic && route === 'coordinator') {
      throw new InvalidOptionError('a static destination has no coordinator: use route direct (or auto), or give the coordinator as target');
    }
    const tables: ImportTablePlan[] = [];
    for (const st of src.tables) tables.push(routeTable(st, dest, route, opts.create === true));

    // Bare objects take their columns from the destination.
    for (const tp of tables) {
      if (tp.columns.length === 0) throw new InvalidOptionError(`table ${tp.table} has no columns to load`);
    }
    await checkTargets(tables, dest);

    const used = new Set(tables.flatMap((t) => [...t.targets.map((x) => x.node), ...t.create, ...t.truncate]));
    // Every destination node's ledger is consulted: a load recorded on a node that is not the
    // object's target means an earlier run routed it differently. Ledgers of nodes that
    // receive nothing are read when reachable (the coordinator route does not need them).
    const ledgerNodes = new Set([...dest.nodes.keys()]);
    const importId = src.id;
    const truncate = opts.truncate === true;
    const force = opts.force === true;
    const notes = [...src.notes];
    if (!truncate && !force) {
      const ledgers = new Map<string, Map<string, string>>();
      const cache = new ClientCache(dest.nodes);
      // Nodes that receive nothing may be out of the importer's reach: do not wait long for them.
      const optional = new ClientCache(dest.nodes, 5000);
      try {
        for (const n of ledgerNodes) {
          try {
            const c = await (used.has(n) ? cache : optional).get(n);
            ledgers.set(n, await readLedger(c, importId).catch((e) => { throw fromDatabaseError(e, { node: n, action: `reading ${LEDGER_TABLE}` }); }));
          } catch (e) {
            if (used.has(n)) throw e;
            notes.push(`node ${n}: ledger not readable (${(e as SegferryError).code ?? 'error'}); it receives nothing in this import`);
          }
        }
      } finally {
        await cache.closeAll();
        await optional.closeAll();
      }
      for (const tp of tables) {
        for (const o of tp.objects) {
          o.loaded = o.targets.filter((n) => ledgers.get(n)?.has(o.key));
          for (const [n, l] of ledgers) {
            if (!o.targets.includes(n) && l.has(o.key)) {
              throw new InvalidOptionError(`object ${o.key} of this import was loaded into node ${n} by an earlier run that routed ${tp.table} differently`, {
                table: tp.table, key: o.key, node: n,
                hint: 'rerun with the same route (--route), or reload the table with truncate (--truncate)',
              });
            }
          }
        }
      }
    }
    await checkObjects(store, tables);

    const concurrency = opts.concurrency ?? Math.max(2, dest.dataNodes);
    const planNodes = [...dest.nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const plan: ImportPlan = {
      version: 1,
      importId,
      location: store.url,
      bare: src.bare,
      topology: dest.kind,
      nodes: planNodes,
      ledgerNodes: [...ledgerNodes].sort(),
      format: src.format,
      sessionSettings: src.sessionSettings,
      concurrency,
      truncate,
      analyze: opts.analyze === true,
      force,
      tables,
      notes,
    };
    if (dest.coordinator) plan.coordinator = dest.coordinator;
    return plan;
  } finally {
    if (typeof opts.from === 'string') store.close();
  }
}

function routeTable(st: SourceTable, dest: DestSide, route: ImportRoute, create: boolean): ImportTablePlan {
  const dt = dest.tables.get(st.name);
  const names = (cols: ColumnInfo[]) => cols.map((c) => c.name);
  const base = (r: 'coordinator' | 'direct', reason: string, columns: ColumnInfo[]): ImportTablePlan => {
    const tp: ImportTablePlan = {
      table: st.name,
      destination: st.table,
      columns,
      distribution: st.distribution,
      route: r,
      reason,
      targets: [],
      create: [],
      truncate: [],
      objects: st.objects.map((o) => {
        const p: PlannedObject = { key: o.key, sourceNode: o.node, segment: o.segment, bytes: o.bytes, targets: [], loaded: [] };
        if (o.rows !== undefined) p.rows = o.rows;
        if (o.sha256 !== undefined) p.sha256 = o.sha256;
        return p;
      }),
      source: {},
    };
    if (st.rows !== undefined) tp.source.rows = st.rows;
    if (st.checksum) tp.source.checksum = st.checksum;
    return tp;
  };
  const bareColumns = (cols: CatalogColumn[] | undefined): ColumnInfo[] => {
    if (!cols) {
      throw new TableNotFoundError(`table ${st.name} not found on the destination; bare objects carry no column list, so it must exist`, {
        table: st.name, sqlState: '42P01',
      });
    }
    return cols.map((c) => ({ name: c.name, type: c.type, notNull: c.notNull ?? false }));
  };
  const srcNodes = [...new Set(st.objects.map((o) => o.node))];

  if (dest.kind === 'static') {
    const all = [...dest.nodes.keys()];
    const missing = dt?.missingOn ?? all;
    const columns = st.columns ?? bareColumns(dt?.columns);
    const replicated = st.distribution.kind === 'replicated' || dest.replicated.has(st.name);
    const tp = base('direct', replicated ? 'replicated: loaded into every node' : 'static destination: each object into the node of its name', columns);
    const targetNodes = replicated ? all : srcNodes;
    for (const n of targetNodes) {
      if (!dest.nodes.has(n)) {
        throw new TopologyError(`objects of ${st.name} come from node ${n}, which the static destination does not have (it has ${all.join(', ')})`, {
          node: n, table: st.name,
          hint: 'a static destination is loaded node-direct: name its nodes as the source\'s, or load through a coordinator (target URL)',
        });
      }
    }
    if (missing.length > 0) {
      if (create && st.columns) {
        // Created on every node that lacks it, so the table exists cluster-wide.
        tp.create = missing;
      } else {
        const where = missing.find((n) => targetNodes.includes(n));
        if (where !== undefined) {
          throw new TableNotFoundError(`table ${st.name} not found on node ${where}`, {
            node: where, table: st.name, sqlState: '42P01', hint: st.columns ? 'create it, or pass create (--create)' : 'create it first',
          });
        }
      }
    }
    tp.targets = targetNodes.map((n) => ({ node: n, relation: st.table, columns: names(columns) }));
    for (const o of tp.objects) o.targets = replicated ? [...all] : [o.sourceNode];
    tp.truncate = all.filter((n) => !missing.includes(n) || tp.create.includes(n));
    return tp;
  }

  // A destination reached through its coordinator.
  if (!dt || !dt.discovered) {
    if (!create || !st.columns) {
      throw new TableNotFoundError(`table ${st.name} not found on the destination coordinator`, {
        node: COORDINATOR_NODE, table: st.name, sqlState: '42P01',
        hint: st.columns ? 'create it, or pass create (--create) to create it from the manifest\'s columns' : 'create it first',
      });
    }
    if (route === 'direct') {
      throw new TopologyError(`table ${st.name} does not exist on the destination, so it has no nodes to load directly; it can be created on the coordinator (route auto or coordinator)`, { table: st.name });
    }
    const tp = base('coordinator', 'created on the coordinator', st.columns);
    tp.create = [COORDINATOR_NODE];
    tp.truncate = [COORDINATOR_NODE];
    tp.targets = [{ node: COORDINATOR_NODE, relation: st.table, columns: names(st.columns) }];
    for (const o of tp.objects) o.targets = [COORDINATOR_NODE];
    return tp;
  }
  const d = dt.discovered;
  const columns = st.columns ?? bareColumns(dt.columns);
  const coordinatorPlan = (reason: string) => {
    const tp = base('coordinator', reason, columns);
    tp.targets = [{ node: COORDINATOR_NODE, relation: d.table, columns: names(columns) }];
    tp.truncate = [COORDINATOR_NODE];
    for (const o of tp.objects) o.targets = [COORDINATOR_NODE];
    return tp;
  };
  if (route === 'coordinator') return coordinatorPlan('requested');
  const replicated = st.distribution.kind === 'replicated';
  if (replicated) {
    if (route === 'auto') return coordinatorPlan('replicated: loaded once through the coordinator');
    // Forced direct: into every node holding a copy.
    const replicas = d.distribution.replicas ?? d.reads.map((r) => r.node);
    const first = d.reads[0]!;
    const tp = base('direct', 'replicated: loaded into every replica', columns);
    tp.targets = replicas.map((n) => ({ node: n, relation: first.relation, columns: remoteNames(columns, d, first.columns) }));
    // The coordinator reaches one copy only: empty each.
    tp.truncate = [...replicas];
    for (const o of tp.objects) o.targets = [...replicas];
    return tp;
  }
  if (dest.kind === 'citus') {
    const sd = planShardDirect({ table: d.table, columns: d.columns, citus: dt.citus }, st, new Set(dest.nodes.keys()));
    if (!sd.ok) {
      if (route === 'direct') throw new TopologyError(`table ${st.name} cannot be loaded shard-direct: ${sd.reason}`, { table: st.name, hint: 'use route coordinator (or auto)' });
      return coordinatorPlan(sd.reason);
    }
    const tp = base('direct', 'same distribution column type and shard hash ranges as the source: each object into its shard on the workers', columns);
    for (const o of tp.objects) {
      const t = sd.targets.get(o.key)!;
      o.targets = [...t.nodes];
      o.relation = t.relation;
    }
    // Shard tables have the distributed table's columns; loads name each object's shard table.
    tp.targets = [...new Set(tp.objects.flatMap((o) => o.targets))].sort().map((n) => ({ node: n, relation: d.table, columns: names(columns) }));
    // TRUNCATE through the coordinator empties every shard.
    tp.truncate = [COORDINATOR_NODE];
    return tp;
  }
  // Node-direct needs: one relation per destination node, node names equal to the source's,
  // and (when both are known) the same partitioning method.
  const perNode = new Map<string, typeof d.reads>();
  for (const r of d.reads) perNode.set(r.node, [...(perNode.get(r.node) ?? []), r]);
  const srcAll = [...new Set([...st.nodes, ...srcNodes])].sort();
  const destAll = [...perNode.keys()].sort();
  let why = '';
  if (dest.kind !== 'fdw' && route === 'auto') why = 'the destination is a single server';
  else if ([...perNode.values()].some((rs) => rs.length > 1)) why = `a destination node holds several partitions of ${st.name}`;
  else if (srcAll.join(',') !== destAll.join(',')) why = `source nodes (${srcAll.join(', ')}) and destination nodes (${destAll.join(', ')}) differ`;
  else if (st.distribution.method && d.distribution.method && st.distribution.method !== d.distribution.method) {
    why = `partitioned by ${d.distribution.method} on the destination but ${st.distribution.method} on the source`;
  } else if (st.distribution.column && d.distribution.column && st.distribution.column !== d.distribution.column) {
    why = `partition keys differ (${st.distribution.column} / ${d.distribution.column})`;
  }
  if (why) {
    if (route === 'direct') {
      throw new TopologyError(`table ${st.name} cannot be loaded node-direct: ${why}`, { table: st.name, hint: 'use route coordinator (or auto)' });
    }
    return coordinatorPlan(why);
  }
  const tp = base('direct', 'same nodes and layout as the source: each object into its node', columns);
  tp.targets = destAll.map((n) => {
    const r = perNode.get(n)![0]!;
    return { node: n, relation: r.relation, columns: remoteNames(columns, d, r.columns) };
  });
  tp.truncate = [COORDINATOR_NODE];
  for (const o of tp.objects) o.targets = [o.sourceNode];
  return tp;
}

/** Column names on a node's relation for the exported columns (postgres_fdw `column_name`). */
function remoteNames(columns: ColumnInfo[], d: DiscoveredTable, readColumns: string[] | undefined): string[] {
  return columns.map((c) => {
    const i = d.columns.findIndex((x) => x.name === c.name);
    if (i < 0) {
      throw new SchemaMismatchError(`table ${displayName(d.table)} on the destination has no column ${JSON.stringify(c.name)} (exported as ${c.type})`, {
        table: displayName(d.table), node: COORDINATOR_NODE,
      });
    }
    return readColumns?.[i] ?? c.name;
  });
}

/** Check the columns of every existing target relation (tables to be created are skipped). */
async function checkTargets(tables: ImportTablePlan[], dest: DestSide): Promise<void> {
  const cache = new ClientCache(dest.nodes);
  try {
    for (const tp of tables) {
      for (const t of tp.targets) {
        if (tp.create.includes(t.node)) continue;
        let cols: CatalogColumn[] | undefined;
        const dt = dest.tables.get(tp.table);
        if (dest.kind === 'static') cols = dt?.nodeColumns.get(t.node);
        else if (t.node === COORDINATOR_NODE && dt?.discovered && displayName(dt.discovered.table) === displayName(t.relation)) cols = dt.columns;
        // Citus shard tables are hidden from catalog queries on workers; they have the table's columns.
        else if (dest.kind === 'citus' && tp.route === 'direct' && dt?.citus) cols = dt.columns;
        if (!cols) {
          const c = await cache.get(t.node);
          try {
            const rel = await findRelation(c, t.relation);
            if (!rel) {
              throw new TableNotFoundError(`relation ${displayName(t.relation)} of ${tp.table} not found on node ${t.node}`, { node: t.node, table: tp.table, sqlState: '42P01' });
            }
            cols = await relationColumns(c, rel.oid);
          } catch (e) {
            throw e instanceof SegferryError ? e : fromDatabaseError(e, { node: t.node, table: tp.table, action: 'catalog lookup' });
          }
        }
        checkColumns(tp.columns, cols, t.columns, tp.table, t.node);
      }
    }
  } finally {
    await cache.closeAll();
  }
}

/** Every object still to load must be in storage with the size the manifest records. */
async function checkObjects(store: ObjectStore, tables: ImportTablePlan[]): Promise<void> {
  const want = tables.flatMap((t) => t.objects.filter((o) => o.loaded.length < o.targets.length).map((o) => ({ t, o })));
  if (want.length === 0) return;
  const sizes = new Map<string, number>();
  for await (const o of store.list('')) sizes.set(o.key, o.size);
  const missing = want.filter(({ o }) => !sizes.has(o.key));
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new ObjectMissingError(`object ${first.o.key} of ${first.t.table} is listed in the manifest but missing from ${store.url}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`, {
      key: first.o.key, table: first.t.table, hint: 'the export is incomplete or objects were removed; export again',
    });
  }
  for (const { t, o } of want) {
    const size = sizes.get(o.key)!;
    if (o.sha256 !== undefined && size !== o.bytes) {
      throw new ChecksumMismatchError(`object ${o.key} of ${t.table} is ${size} bytes, but the manifest records ${o.bytes}: it is corrupt or truncated`, {
        key: o.key, table: t.table,
      });
    }
  }
}
