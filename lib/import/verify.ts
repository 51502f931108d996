import { InvalidOptionError, RowCountMismatchError, SegferryError, TableNotFoundError, fromDatabaseError } from '../errors.js';
import { makeEmitter, type EventListener } from '../events.js';
import { addChecksums, checksumSQL } from '../export/export.js';
import { loadArrowExport } from '../format/arrow/api.js';
import { columnListSQL, copyOptionsSQL, type FormatOptions } from '../format/options.js';
import { RowHasher } from '../format/row-hash.js';
import type { RowChecksum } from '../manifest/types.js';
import { applySettings, closeQuietly, connect, describeEndpoint } from '../pg/conn.js';
import { copyOut, type CopyOutStream } from '../pg/copy-out.js';
import { displayName, quoteQualified, type QualifiedName } from '../pg/sql.js';
import { openStore } from '../store/open.js';
import type { S3Options } from '../store/s3.js';
import type { ObjectStore } from '../store/types.js';
import { COORDINATOR_NODE, type StaticTopology } from '../topology/discover.js';
import type { ColumnInfo, PlanNode } from '../topology/types.js';
import { runPool, throwIfAborted } from '../util/pool.js';
import { destinationAddress, findDestination } from './destination.js';
import { readSource, type BareSource, type TableSelection } from './source.js';
import { readExportKey } from './encryption.js';
import type { EncryptOption } from '../crypto/keys.js';
import { readRejected } from './ledger.js';

/** Options of {@link verifyImport}. */
export interface VerifyOptions {
  /** The export: `s3://bucket/prefix`, a directory, a `file://` URL, or an open store. */
  from: string | ObjectStore;
  /** S3 client settings. */
  s3?: S3Options;
  /** Destination coordinator (or single server) URL. Not needed with a static topology. */
  target?: string;
  /** `auto` (default), `postgres`, `fdw`, `citus`, or a {@link StaticTopology} naming the destination nodes. */
  topology?: 'auto' | 'postgres' | 'fdw' | 'citus' | StaticTopology;
  /**
   * Verify only these tables of the export (default: all): `name`, `schema.name` or
   * `"Quoted"."odd.name"` as the CLI's `-t` takes them, or `{ schema, name }` as given.
   */
  tables?: TableSelection[];
  /** Objects without a manifest: there is nothing recorded to compare; destination figures only. */
  bare?: BareSource;
  /**
   * Where to compute with a target URL: `coordinator` (default for `auto`): one scan through
   * the coordinator; `direct`: one scan per node relation (postgres_fdw), in parallel, summed.
   * A static destination is always scanned per node.
   */
  route?: 'auto' | 'coordinator' | 'direct';
  /** Scans running at once (default: number of scans, at most 8, at least 2). */
  concurrency?: number;
  /** Cancel the scans. */
  signal?: AbortSignal;
  /**
   * Key of an encrypted export (default none): not needed (the figures compared are in the
   * plaintext manifest); when given, the data key must unwrap with it (ERR_ENCRYPTION_KEY).
   */
  encrypt?: EncryptOption;
  /** Events (operation `verify`): start, table-done, done. */
  onEvent?: EventListener;
}

/** Row count and checksum of one scan. */
export interface VerifyNode {
  node: string;
  rows: number;
  sum: string;
  /** Replicated tables on a static destination: this node's copy matches the source. */
  match?: boolean;
}

/** The comparison for one table. */
export interface VerifyTable {
  table: string;
  /** What the manifest recorded; absent for bare objects. `sum` is absent when no checksum was recorded. */
  source?: { rows: number; sum?: string };
  /** The destination's figures (for a replicated table on a static destination: the first node that differs, else the first node). */
  destination: RowChecksum;
  /** Per-node figures when computed per node. */
  nodes?: VerifyNode[];
  /** true: equal; false: different; null: nothing recorded to compare with (bare objects). */
  match: boolean | null;
  /** False when only row counts could be compared (no checksum recorded). */
  checksummed: boolean;
  /**
   * Definition of the `sum` figures: `copy-rowhash64` (computed on this client from a COPY of
   * the destination rows), or absent: the md5 sum computed by the server, for manifests of
   * earlier versions and when nothing was recorded.
   */
  algorithm?: RowChecksum['algorithm'];
  /** Say why a comparison is partial, e.g. "no checksum recorded". */
  note?: string;
  /** Replicated tables on a static destination are compared node by node. */
  replicatedPerNode?: boolean;
  /**
   * Rows an import with a reject limit set aside (the ledgers' `rejected` of this export's
   * objects, issue 18): the destination is then compared with the source minus them (rows, and
   * the checksum when the ledgers know the rejected rows' sum). Absent when none.
   */
  rejected?: { rows: number; sum?: string; nodes?: Record<string, number> };
}

/** What {@link verifyImport} returns. A mismatch is a result, not an error. */
export interface VerifyResult {
  location: string;
  /** True when no table differs (tables with nothing to compare do not count as different). */
  ok: boolean;
  tables: VerifyTable[];
}

interface Scan {
  table: string;
  node: PlanNode;
  relation: QualifiedName;
  /** Column names on that node, or undefined for all columns (bare). */
  columns?: string[];
  /** The manifest's columns (names and types), for an Arrow export's read. */
  info?: ColumnInfo[];
  /** The recorded checksum's algorithm: computed from a COPY on this client; absent: the md5 SQL. */
  algorithm?: RowChecksum['algorithm'];
}

/**
 * Compare the destination with what the export recorded: per table, the row count and the
 * order-independent checksum of the exported columns, under the manifest's session settings.
 * Through the coordinator for a postgres or postgres_fdw destination (or per node with route
 * `direct`), per node and summed for a static destination; a replicated table on a static
 * destination must match on every node by itself.
 *
 * A `copy-rowhash64` checksum (the default since it exists) is computed on this client: each
 * scan runs `COPY (SELECT <columns> FROM <table>) TO STDOUT` in the manifest's format (Arrow:
 * the Arrow export's SELECT, in binary) and hashes every row, so verify reads all the data over
 * the network and costs client CPU in proportion to it (the COPY framing plus about 0.35 CPU-s
 * per GB of hashing, on the one JS thread for all scans). Memory: one COPY reader per scan (≈ 3.75 MiB).
 * Checksums of earlier manifests (no algorithm: count and sum of 60-bit md5 prefixes of each
 * row's text) and tables with nothing recorded are computed by the server, as before.
 *
 * Rows an import set aside under a reject limit are read from the ledgers of every node the
 * destination has (through the coordinator: also its foreign servers or Citus workers, where a
 * node-direct import recorded them; when reachable, else a `ledger-unreadable` warning).
 *
 * Returns the comparison; it does not throw on a mismatch (the CLI turns one into
 * VerifyMismatchError and exit code 3). Extra rows already in a destination table count.
 */
export async function verifyImport(opts: VerifyOptions): Promise<VerifyResult> {
  const t0 = Date.now();
  const emit = makeEmitter('verify', opts.onEvent);
  const store = typeof opts.from === 'string' ? openStore(opts.from, opts.s3) : opts.from;
  try {
    throwIfAborted(opts.signal);
    if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
      throw new InvalidOptionError('concurrency must be a whole number of at least 1');
    }
    if (opts.encrypt !== undefined) await readExportKey(store, opts.encrypt, opts.s3, opts.bare !== undefined);
    const src = await readSource(store, opts);
    const scans: Scan[] = [];
    const perNodeReplicated = new Set<string>();
    const route = opts.route ?? 'auto';
    // The same destination as an import of these options finds.
    const addr = destinationAddress(opts);
    // Where the import's ledgers are read for rejected rows: the nodes verify reaches anyway.
    let ledgerNodes: PlanNode[] = [];
    // Ledgers read when reachable: nodes verify does not scan (an unreachable one is a warning).
    const optionalLedgers = new Set<string>();
    if ('static' in addr) {
      ledgerNodes = [...addr.static.nodes.values()];
      for (const t of src.tables) {
        if (t.distribution.kind === 'replicated' || addr.static.replicated.has(t.name)) perNodeReplicated.add(t.name);
        for (const n of addr.static.nodes.values()) {
          const s: Scan = { table: t.name, node: n, relation: t.table };
          if (t.columns) s.columns = t.columns.map((c) => c.name);
          scans.push(s);
        }
      }
    } else if (route === 'direct') {
      const dest = await findDestination(opts, src.tables.map((t) => t.table), []);
      ledgerNodes = [...dest.nodes.values()];
      for (const t of src.tables) {
        if (t.distribution.kind === 'replicated') {
          const s: Scan = { table: t.name, node: addr.coordinator, relation: t.table };
          if (t.columns) s.columns = t.columns.map((c) => c.name);
          scans.push(s);
          continue;
        }
        const dt = dest.tables.get(t.name)?.discovered;
        if (!dt) {
          throw new TableNotFoundError(`table ${t.name} not found on node ${COORDINATOR_NODE}`, {
            node: COORDINATOR_NODE, table: t.name, sqlState: '42P01',
            hint: 'check the name (schema.table; quote mixed case as "Name") and that it exists on this node',
          });
        }
        for (const r of dt.reads) {
          const s: Scan = { table: t.name, node: dest.nodes.get(r.node)!, relation: r.relation };
          if (t.columns) {
            s.columns = t.columns.map((c) => {
              const i = dt.columns.findIndex((x) => x.name === c.name);
              return i >= 0 ? r.columns?.[i] ?? c.name : c.name;
            });
          }
          scans.push(s);
        }
      }
    } else {
      // Through the coordinator. The import may still have loaded node-direct (a postgres_fdw
      // destination's foreign servers, Citus workers) and recorded its rejects in those nodes'
      // ledgers: read every destination node's, as the import reads them (lib/import/plan.ts).
      const dest = await findDestination(opts, src.tables.map((t) => t.table), []);
      ledgerNodes = [addr.coordinator, ...[...dest.nodes.values()].filter((n) => n.name !== COORDINATOR_NODE)];
      for (const n of ledgerNodes.slice(1)) optionalLedgers.add(n.name);
      for (const t of src.tables) {
        const s: Scan = { table: t.name, node: addr.coordinator, relation: t.table };
        if (t.columns) s.columns = t.columns.map((c) => c.name);
        scans.push(s);
      }
    }
    for (const s of scans) {
      const t = src.tables.find((x) => x.name === s.table)!;
      if (t.checksum?.algorithm) {
        s.algorithm = t.checksum.algorithm;
        if (t.columns) s.info = t.columns;
      }
    }
    emit({ type: 'start', tables: src.tables.map((t) => t.name), nodes: [...new Set(scans.map((s) => s.node.name))].sort(), estimatedBytes: 0 });

    const rejected = await readRejectedRows(ledgerNodes, src.id, opts.signal, optionalLedgers, (message) => emit({ type: 'warning', code: 'ledger-unreadable', message }));
    const figures = new Map<Scan, RowChecksum>();
    await runPool(scans, opts.concurrency ?? Math.min(8, Math.max(2, scans.length)), async (s, signal) => {
      throwIfAborted(signal);
      figures.set(s, await scan(s, src.sessionSettings, src.format, signal));
    }, opts.signal);

    const tables: VerifyTable[] = src.tables.map((t) => {
      const mine = scans.filter((s) => s.table === t.name);
      const nodes: VerifyNode[] = mine.map((s) => ({ node: s.node.name, rows: figures.get(s)!.rows, sum: figures.get(s)!.sum }));
      const algorithm = mine[0]?.algorithm;
      const source = src.bare ? undefined : { rows: t.rows ?? 0, ...(t.checksum ? { sum: t.checksum.sum } : {}) };
      const rej = rejected.get(t.name);
      const perNode = perNodeReplicated.has(t.name);
      // Rows set aside on import: the destination should hold the source minus them. A per-node
      // replicated table loses each node's own; otherwise they add up over the nodes.
      const minus = (node?: string) => {
        const es = [...(rej?.entries() ?? [])].filter(([n]) => !perNode || n === node).map(([, e]) => e);
        const rows = es.reduce((a, e) => a + e.rows, 0);
        const sums = es.map((e) => e.sum);
        return { rows, sum: sums.includes(null) ? null : (sums as bigint[]).reduce((a, x) => (a + x) & MASK64, 0n) };
      };
      let partial = false;
      const same = (f: RowChecksum, node?: string) => {
        if (source === undefined) return false;
        const m = minus(node);
        if (f.rows !== source.rows - m.rows) return false;
        if (source.sum === undefined) return true;
        if (m.rows === 0) return f.sum === source.sum;
        // The rejected rows' sum is known only for copy-rowhash64 checksums of TEXT, CSV and binary objects.
        if (m.sum === null || !algorithm) { partial = true; return true; }
        return BigInt(f.sum) === ((BigInt(source.sum) - m.sum) & MASK64);
      };
      let destination: RowChecksum;
      let match: boolean | null;
      const vt = {} as VerifyTable;
      if (rej && rej.size > 0) {
        const m = minus();
        vt.rejected = { rows: m.rows, ...(m.sum !== null ? { sum: m.sum.toString() } : {}) };
        if (rej.size > 1 || perNode) vt.rejected.nodes = Object.fromEntries([...rej].map(([n, e]) => [n, e.rows]));
      }
      if (perNode) {
        for (const n of nodes) n.match = same(n, n.node);
        destination = nodes.find((n) => !n.match) ?? nodes[0]!;
        destination = { rows: destination.rows, sum: destination.sum };
        match = source === undefined ? null : nodes.every((n) => n.match);
        vt.replicatedPerNode = true;
      } else {
        const total = nodes.reduce<RowChecksum>((a, n) => addChecksums(a, { rows: n.rows, sum: n.sum, ...(algorithm ? { algorithm } : {}) }), { rows: 0, sum: '0', ...(algorithm ? { algorithm } : {}) });
        destination = { rows: total.rows, sum: total.sum };
        match = source === undefined ? null : same(destination);
      }
      Object.assign(vt, { table: t.name, destination, match, checksummed: source?.sum !== undefined });
      if (algorithm) vt.algorithm = algorithm;
      if (source) vt.source = source;
      if (nodes.length > 1 || mine[0]?.node.name !== COORDINATOR_NODE) vt.nodes = nodes;
      if (source === undefined) vt.note = 'no checksum recorded: objects without a manifest';
      else if (source.sum === undefined) vt.note = 'no checksum recorded: row counts compared only';
      else if (partial) vt.note = 'rows rejected on import whose checksum is unknown (Arrow or Parquet objects, or an older checksum): row counts compared only';
      if (vt.rejected && source !== undefined) {
        const r = `${vt.rejected.rows} rows rejected on import (set aside in rejects objects): compared as destination + rejected = source`;
        vt.note = vt.note ? `${r}; ${vt.note}` : r;
      }
      emit({ type: 'table-done', table: t.name, rows: destination.rows, bytes: 0, objects: 0 });
      return vt;
    });
    const ok = tables.every((t) => t.match !== false);
    emit({ type: 'done', tables: tables.length, objects: 0, rows: tables.reduce((a, t) => a + t.destination.rows, 0), bytes: 0, elapsedMs: Date.now() - t0 });
    return { location: store.url, ok, tables };
  } finally {
    if (typeof opts.from === 'string') store.close();
  }
}

/**
 * One checksum scan in a read-only transaction under the export's session settings: a COPY
 * hashed here for a `copy-rowhash64` checksum, else the md5 query on the server.
 */
async function scan(s: Scan, settings: Record<string, string>, format: FormatOptions, signal: AbortSignal): Promise<RowChecksum> {
  const node = s.node.name;
  const c = await connect(s.node.endpoint, { node, applicationName: 'segferry verify' });
  let stream: CopyOutStream | undefined;
  const onAbort = () => {
    // Mid-COPY only dropping the socket stops the server's stream.
    stream?.destroy();
    c.end().catch(() => {});
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await applySettings(c, settings);
    const cols = s.columns ? columnListSQL(s.columns) : '*';
    let out: RowChecksum;
    if (s.algorithm) {
      let sql: string;
      if (format.kind === 'arrow' || format.kind === 'parquet') {
        // The SELECT the Arrow (and Parquet) export ran: columns without an Arrow type are read as text. A
        // manifest always lists its columns.
        const table = { columns: s.info! };
        const read = { node, relation: s.relation, columns: s.columns ?? s.info!.map((x) => x.name), estimatedBytes: 0 };
        const { describeRead, arrowSelectSQL } = await loadArrowExport();
        const types = await describeRead(c, read, table, null);
        sql = `COPY (${arrowSelectSQL(read, table, null, types)}) TO STDOUT (FORMAT binary)`;
      } else {
        sql = `COPY (SELECT ${cols} FROM ${quoteQualified(s.relation)}) TO STDOUT (${copyOptionsSQL(format)})`;
      }
      const h = new RowHasher(format.kind === 'arrow' || format.kind === 'binary' || format.kind === 'parquet');
      stream = copyOut(c, sql);
      for await (const rc of stream) h.update(rc);
      if (h.rows !== stream.rowCount || h.inCopy) {
        throw new RowCountMismatchError(`table ${s.table} on node ${node}: COPY reported ${stream.rowCount} rows but ${h.rows} were checksummed`, { node, table: s.table });
      }
      stream = undefined;
      out = h.result();
    } else {
      const r = await c.query<{ rows: string; sum: string }>(checksumSQL(`SELECT ${cols} FROM ${quoteQualified(s.relation)}`));
      const row = r.rows[0]!;
      out = { rows: Number(row.rows), sum: row.sum };
    }
    await c.query('COMMIT');
    return out;
  } catch (e) {
    stream?.destroy();
    if (signal.aborted) throw signal.reason instanceof SegferryError ? signal.reason : e;
    if (e instanceof SegferryError) throw e;
    const err = fromDatabaseError(e, { node, table: s.table, endpoint: describeEndpoint(s.node.endpoint), action: 'verify scan' });
    if (err instanceof TableNotFoundError) {
      throw new TableNotFoundError(`table ${displayName(s.relation)} not found on node ${node}`, { node, table: s.table, sqlState: '42P01', cause: e });
    }
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await closeQuietly(c);
  }
}

const MASK64 = (1n << 64n) - 1n;

/**
 * Rows set aside by imports of this export with a reject limit, per table and node, from the
 * ledgers of the given nodes (a node without a ledger has none). `sum` is null when unknown.
 * A node whose database another node already is (a loopback foreign server) is read once.
 * Nodes in `optional` are read when reachable within 5 s, else `warn` says so: rejects recorded
 * only there would then show as a row count mismatch, never as a false match.
 */
async function readRejectedRows(
  nodes: PlanNode[], importId: string, signal: AbortSignal | undefined,
  optional: ReadonlySet<string> = new Set(), warn: (message: string) => void = () => {},
): Promise<Map<string, Map<string, { rows: number; sum: bigint | null }>>> {
  const out = new Map<string, Map<string, { rows: number; sum: bigint | null }>>();
  const seen = new Set<string>();
  for (const n of nodes) {
    throwIfAborted(signal);
    const db = `${n.endpoint.hostaddr ?? n.endpoint.host}:${n.endpoint.port}/${n.endpoint.database}`;
    if (seen.has(db)) continue;
    seen.add(db);
    let rows: Awaited<ReturnType<typeof readRejected>>;
    let c: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      c = await connect(n.endpoint, { node: n.name, applicationName: 'segferry verify', ...(optional.has(n.name) ? { connectTimeoutMs: 5000 } : {}) });
      rows = await readRejected(c, importId).catch((e: unknown) => {
        throw fromDatabaseError(e, { node: n.name, endpoint: describeEndpoint(n.endpoint), action: 'reading the import ledger' });
      });
    } catch (e) {
      if (!optional.has(n.name)) throw e;
      warn(`node ${n.name}: its ledger is not readable (${(e as SegferryError).code ?? 'error'}): rows an import set aside there are not accounted for`);
      continue;
    } finally {
      await closeQuietly(c);
    }
    for (const r of rows) {
      let t = out.get(r.table);
      if (!t) out.set(r.table, t = new Map());
      const e = t.get(n.name) ?? { rows: 0, sum: 0n };
      e.rows += r.rejected;
      e.sum = e.sum === null || r.sum === null ? null : (e.sum + BigInt(r.sum)) & MASK64;
      t.set(n.name, e);
    }
  }
  return out;
}
