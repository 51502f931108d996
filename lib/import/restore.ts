import { DdlUnsupportedError, InvalidOptionError, fromDatabaseError } from '../errors.js';
import { applyDataExtras, applySequences, compareTables, decide, ensurePhases, phasesDone, readCheckedDdl, refreshMatviews, runPhase, type CheckedDdl } from '../ddl/restore.js';
import { readManifest } from '../manifest/io.js';
import type { Manifest, ManifestDdl } from '../manifest/types.js';
import { closeQuietly, connect, parseConnection } from '../pg/conn.js';
import { quoteQualified } from '../pg/sql.js';
import type { ObjectStore } from '../store/types.js';
import { COORDINATOR_NODE } from '../topology/types.js';
import type { ImportOptions } from './import.js';

/** `import --create` with the export's DDL: what ran before the data, and what is left after it. */
export interface DdlRestore {
  /** `run`: this run created the schema; `adopt`: the tables existed as exported; `resume`: an earlier run did. */
  mode: 'run' | 'adopt' | 'resume';
  /** Post-data, sequences, materialized views, ANALYZE (unless `analyze` is false). Returns what it did. */
  afterData(analyze: boolean): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * Before any data: when `create` is set and the manifest carries DDL (and `ddl` is not false),
 * check both DDL objects (SHA-256, allowlist), compare the destination's tables with the
 * export's (ERR_DDL_CONFLICT on any difference), then run pre-data in one transaction. Only a
 * single destination server (`target` URL, not Citus) for now: ERR_DDL_UNSUPPORTED otherwise.
 * Returns undefined when there is nothing to restore.
 */
export async function startDdlRestore(store: ObjectStore, opts: ImportOptions): Promise<DdlRestore | undefined> {
  if (opts.schemaOnly && opts.dataOnly) throw new InvalidOptionError('give schemaOnly (--schema-only) or dataOnly (--data-only), not both');
  if (opts.bare !== undefined) {
    if (opts.schemaOnly || opts.dataOnly) throw new InvalidOptionError('--schema-only and --data-only need a manifest: not with --bare');
    return undefined;
  }
  const manifest: Manifest | undefined = opts.create || opts.schemaOnly ? await readManifest(store) : undefined;
  if (opts.schemaOnly && (!opts.create || opts.ddl === false || !manifest?.ddl)) {
    throw new InvalidOptionError('schemaOnly (--schema-only) restores the export\'s DDL: it needs create (--create), DDL on, and an export that carries DDL');
  }
  if (!opts.create || opts.ddl === false || opts.dataOnly || opts.plan !== undefined || !manifest) return undefined;
  const ddl: ManifestDdl | undefined = manifest.ddl;
  if (!ddl) return undefined;
  if (opts.tables !== undefined && opts.tables.length > 0) {
    throw new InvalidOptionError('import --create restores the export\'s whole schema: leave out --table, or import with ddl off (--no-ddl)');
  }
  if (typeof opts.topology === 'object' || !opts.target) {
    throw new DdlUnsupportedError('the export\'s DDL is restored into one destination server (--target URL) for now; a static topology: create the tables on each node, then import with --no-ddl');
  }
  // Checked before anything runs: a tampered or refused object stops the import here.
  const checked: CheckedDdl = await readCheckedDdl(store, ddl);
  const node = COORDINATOR_NODE;
  const c = await connect(parseConnection(opts.target), { node, applicationName: 'segferry import ddl' });
  const fail = (e: unknown, action: string) => fromDatabaseError(e, { node, action });
  try {
    const citus = await c.query(`SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'`).catch((e) => { throw fail(e, 'catalog lookup'); });
    if (citus.rows.length > 0) {
      throw new DdlUnsupportedError('restoring the export\'s DDL into a Citus cluster is not supported yet (distribution is not replayed): create the tables, then import with --no-ddl');
    }
    await ensurePhases(c).catch((e) => { throw fail(e, 'DDL ledger'); });
    const done = await phasesDone(c, manifest.id);
    let mode: DdlRestore['mode'];
    if (done.has('pre') || done.has('adopted')) {
      mode = 'resume';
    } else {
      const cmp = await compareTables(c, manifest.tables).catch((e) => { throw fail(e, 'compare tables'); });
      mode = decide(cmp);
      await runPhase(c, manifest.id, mode === 'run' ? 'pre' : 'adopted', mode === 'run' ? checked.pre : [], node);
    }
    const created = mode === 'run' || (mode === 'resume' && done.has('pre'));
    return {
      mode,
      afterData: async (analyze: boolean) => {
        const did: string[] = [];
        if (created && !(await phasesDone(c, manifest.id)).has('post')) {
          await runPhase(c, manifest.id, 'post', checked.post, node);
          did.push(`post-data: ${checked.post.length} statements`);
        }
        try {
          if (created) {
            did.push(`sequences: ${await applySequences(c, ddl)} set`);
            await refreshMatviews(c, ddl);
          }
          if (analyze) {
            for (const t of manifest.tables) await c.query(`ANALYZE ${quoteQualified(t)}`);
            did.push(`ANALYZE: ${manifest.tables.length} tables`);
          }
        } catch (e) {
          throw fail(e, 'after the data (sequences, materialized views, ANALYZE)');
        }
        return did;
      },
      close: () => closeQuietly(c),
    };
  } catch (e) {
    await closeQuietly(c);
    throw e;
  }
}


/**
 * Whether this import loads rows: not with `schemaOnly`, nor from a schema-only export (which
 * then needs `create` with its DDL: ERR_INVALID_OPTION otherwise, as there is nothing to load).
 */
export function loadsData(manifest: Manifest | undefined, opts: ImportOptions, restoring: boolean): boolean {
  if (opts.schemaOnly) return false;
  if (manifest?.schemaOnly) {
    if (!restoring) throw new InvalidOptionError('the export holds only the schema (export --schema-only): import it with --create (and without --data-only or --no-ddl)');
    return false;
  }
  return true;
}

/**
 * The sequences and materialized views an import sets after the data when no DDL restore
 * does: with `dataOnly` those of the export's `ddl`, and always those a data-only export
 * recorded (`manifest.sequences`, `manifest.matviews`). Undefined when there are none.
 */
export function dataExtras(manifest: Manifest | undefined, opts: ImportOptions, restoring: boolean): Pick<ManifestDdl, 'sequences' | 'matviews'> | undefined {
  if (!manifest || restoring || opts.schemaOnly) return undefined;
  if (manifest.sequences !== undefined) return { sequences: manifest.sequences, ...(manifest.matviews ? { matviews: manifest.matviews } : {}) };
  if (opts.dataOnly && manifest.ddl) return { sequences: manifest.ddl.sequences, ...(manifest.ddl.matviews ? { matviews: manifest.ddl.matviews } : {}) };
  return undefined;
}

export { applyDataExtras };
