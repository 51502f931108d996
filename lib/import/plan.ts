/**
 * Import planning composes the parts: the source (source.ts), the destination
 * (destination.ts), each table's route (route.ts) and the preconditions (preconditions.ts).
 */
import { InvalidOptionError } from '../errors.js';
import type { FormatOptions } from '../format/options.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { EncryptOption } from '../crypto/keys.js';
import type { ObjectStore } from '../store/types.js';
import type { PlanNode, StaticTopology, TopologyKind } from '../topology/types.js';
import { findDestination } from './destination.js';
import { checkEmpty, checkObjects, checkTargets, markLoaded, readLedgers } from './preconditions.js';
import { resolveCreateTypes } from './safety.js';
import { routeTable, type ImportRoute, type ImportTablePlan } from './route.js';
import { readSource, type BareSource, type TableSelection } from './source.js';
import { checkImportStreams, planImportStreams, type ImportStreamsOption } from './streams.js';

// Public types keep their import path (lib/index.ts, the CLI).
export type { ImportRoute, ImportTablePlan, ImportTarget, PlannedObject } from './route.js';
export type { BareSource, TableSelection } from './source.js';

/** What to import and where to. */
export interface ImportPlanOptions {
  /** The export: `s3://bucket/prefix`, a directory, a `file://` URL, or an open store. */
  from: string | ObjectStore;
  /** S3 client settings (endpoint, path style, checksum mode, credentials). */
  s3?: S3Options;
  /**
   * Key of an encrypted export (docs/encryption.md; default none): `{ keyFile: PATH }` or
   * `{ kms: true }` (the manifest names the KMS key; `{ kms: KEY-ID }` insists on one). The data
   * key is unwrapped before anything else: a wrong or missing key fails with ERR_ENCRYPTION_KEY
   * before any row is loaded. Import needs it for an encrypted export; verify does not (its
   * figures are in the plaintext manifest) but checks it when given.
   */
  encrypt?: EncryptOption;
  /** Destination coordinator (or single server) URL. Not needed with a static topology. */
  target?: string;
  /**
   * `auto` (default): read the target's catalog (Citus, or postgres_fdw partitions become nodes).
   * `postgres`: everything through the one server. `fdw`: postgres_fdw sharding. `citus`:
   * insist on Citus. Or a {@link StaticTopology} naming the destination nodes (no coordinator).
   */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /**
   * Import only these tables of the export (default: all): `name`, `schema.name` or
   * `"Quoted"."odd.name"` as the CLI's `-t` takes them, or `{ schema, name }` as given.
   */
  tables?: TableSelection[];
  /** Routing (default `auto`). */
  route?: ImportRoute;
  /**
   * Objects loaded at once into one destination node (default `auto`), each still alone in its
   * own transaction with its ledger row: a number N, or `auto`: min(max_parallel_workers, 4,
   * ⌊free connections / 4⌋) of that node, at least 1 (lib/import/streams.ts, docs/streams.md).
   * `concurrency` bounds the total.
   */
  streams?: ImportStreamsOption;
  /**
   * Loaders running at once over all nodes (default: the sum of the streams of the nodes that
   * receive objects, at least the number of destination nodes and at least 2). Memory:
   * each loader holds its store read buffer (directory: 1 MiB chunks; S3: socket-sized
   * chunks, typically ≤ 64 KiB), the chunk passing through the hash, and the COPY write
   * buffer (one chunk queued on the socket): at most about 4 MiB per loader with a directory
   * store, well under 1 MiB with S3, so about concurrency × 4 MiB; an object is never held whole.
   */
  concurrency?: number;
  /** Empty each destination table (and forget its ledger rows) before loading (default false). */
  truncate?: boolean;
  /**
   * Load into destination tables that already hold rows, adding to them (default false). Without
   * it (or `truncate`) a non-empty table is a DestinationNotEmptyError, unless the ledger shows
   * its rows come from this same import (a resumed run).
   */
  append?: boolean;
  /** Create missing destination tables from the manifest's columns and types (default false). */
  create?: boolean;
  /** ANALYZE each table after its last object (default false). */
  analyze?: boolean;
  /** Load every object again even when the ledger records it (default false). Combine with `truncate` to replace. */
  force?: boolean;
  /** Objects without a manifest (default: a manifest is required). */
  bare?: BareSource;
}


/**
 * An import plan: plain data, serialisable with JSON.stringify, free of credentials.
 * `segferry import --dry-run` prints it.
 */
export interface ImportPlan {
  version: 1;
  /** Ledger key: the manifest's id, or `bare:<sha256 of location, table and every object's key, size, ETag and mtime>`. */
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
  /** Objects loaded at once per node that receives objects (the `streams` option's outcome). */
  streams: Record<string, number>;
  truncate: boolean;
  /** Loading into tables that hold other rows was allowed (`append`). */
  append: boolean;
  analyze: boolean;
  force: boolean;
  tables: ImportTablePlan[];
  /** Things the user should know (e.g. no checksums to compare). */
  notes: string[];
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
  const streamsAsked = checkImportStreams(opts.streams ?? 'auto');
  const store = typeof opts.from === 'string' ? openStore(opts.from, opts.s3) : opts.from;
  try {
    const src = await readSource(store, opts);
    const replicatedNames = src.tables.filter((t) => t.distribution.kind === 'replicated').map((t) => t.name);
    const dest = await findDestination(opts, src.tables.map((t) => t.table), replicatedNames);
    const tables: ImportTablePlan[] = [];
    for (const st of src.tables) tables.push(routeTable(st, dest, route, opts.create === true));

    // A table without columns loads its rows as empty lines (TEXT, CSV); Arrow cannot hold it.
    for (const tp of tables) {
      if (tp.columns.length === 0 && (src.format.kind === 'arrow' || src.format.kind === 'parquet')) throw new InvalidOptionError(`table ${tp.table} has no columns to load from ${src.format.kind === 'arrow' ? 'Arrow' : 'Parquet'} objects`);
    }
    await checkTargets(tables, dest, src.format.kind);
    // Types from the manifest are resolved on the destination before anything changes there.
    await resolveCreateTypes(tables, dest.nodes);

    const used = new Set(tables.flatMap((t) => [...t.targets.map((x) => x.node), ...t.create, ...t.truncate]));
    // Every destination node's ledger is consulted: a load recorded on a node that is not the
    // object's target means an earlier run routed it differently. Ledgers of nodes that
    // receive nothing are read when reachable (the coordinator route does not need them).
    const ledgerNodes = new Set([...dest.nodes.keys()]);
    const importId = src.id;
    const truncate = opts.truncate === true;
    const force = opts.force === true;
    const notes = [...src.notes];
    const append = opts.append === true;
    if (append && truncate) throw new InvalidOptionError('give append or truncate, not both: truncate empties the tables first');
    if (!truncate) {
      const ledgers = await readLedgers(dest.nodes, used, importId, notes);
      if (!force) markLoaded(tables, ledgers);
      if (!append) await checkEmpty(tables, dest, ledgers);
    }
    await checkObjects(store, tables);

    // Nodes with loads left: their streams (auto asks each of them once).
    const loading = new Set(tables.flatMap((t) => t.objects.flatMap((o) => o.targets.filter((n) => !o.loaded.includes(n)))));
    const streams = await planImportStreams(streamsAsked, [...loading].sort().map((n) => dest.nodes.get(n) ?? (n === dest.coordinator?.name ? dest.coordinator : undefined)).filter((n) => n !== undefined));
    const concurrency = opts.concurrency ?? Math.max(2, dest.dataNodes, Object.values(streams).reduce((a, n) => a + n, 0));
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
      streams,
      truncate,
      append,
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
