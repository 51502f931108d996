import { quoteIdent } from '../../pg/sql.js';
import type { ArrowCopySource, ArrowDecodeOptions } from './decoder.js';

/*
 * The Arrow entry points the rest of segferry (and its public API) uses. apache-arrow costs
 * ≈ 0.15 CPU-s and ≈ 15 MB to load, so it is loaded on first use: TEXT and CSV work never
 * pays for it.
 */

/** `COPY "s"."t" ("a", "b") FROM STDIN (FORMAT …)` for a source. */
export function arrowCopyFromSQL(qualifiedTable: string, src: Pick<ArrowCopySource, 'columns' | 'copyOptions'>): string {
  return `COPY ${qualifiedTable} (${src.columns.map(quoteIdent).join(', ')}) FROM STDIN (${src.copyOptions})`;
}

/**
 * Open an Arrow IPC object (as written by segferry) for COPY FROM. Reads the schema message
 * only; {@link ArrowCopySource.chunks} streams the rest. The whole object is read, footer
 * included, so a hash computed on the way covers every byte. Memory: one record batch, 4 bytes
 * per row of it, its decimal/numeric/list/interval columns in COPY form, and one output window
 * of about `chunkBytes` (default 1 MiB, at least one row).
 */
export async function openArrowObject(source: AsyncIterable<Uint8Array>, opts: ArrowDecodeOptions = {}): Promise<ArrowCopySource> {
  const { openArrowObject: open } = await import('./decoder.js');
  return open(source, opts);
}

/**
 * Register the Arrow body codecs (lib/format/arrow-codecs.ts), loading apache-arrow on first
 * use: a static import of that module from the importer once loaded apache-arrow into every
 * CLI run, ≈ 0.2 CPU-s per process even for TEXT (test/unit/startup-imports.test.ts).
 */
export async function registerArrowCodecs(): Promise<void> {
  const { registerArrowCodecs: register } = await import('../arrow-codecs.js');
  await register();
}

/** The Arrow export pieces, loaded on first use. */
export interface ArrowExport {
  ArrowSegmentWriter: typeof import('./segment-writer.js').ArrowSegmentWriter;
  describeRead: typeof import('./export-sql.js').describeRead;
  arrowSelectSQL: typeof import('./export-sql.js').arrowSelectSQL;
}

/** Load the Arrow export pieces (and apache-arrow). */
export async function loadArrowExport(): Promise<ArrowExport> {
  const [w, q] = await Promise.all([import('./segment-writer.js'), import('./export-sql.js')]);
  return { ArrowSegmentWriter: w.ArrowSegmentWriter, describeRead: q.describeRead, arrowSelectSQL: q.arrowSelectSQL };
}
