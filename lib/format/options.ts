import { InvalidOptionError } from '../errors.js';
import { quoteIdent, quoteLiteral } from '../pg/sql.js';

/**
 * Segment formats. `arrow` is Apache Arrow IPC (columnar); `binary` is PostgreSQL's COPY BINARY;
 * `parquet` is Apache Parquet (columnar, compressed).
 */
export type FormatKind = 'text' | 'csv' | 'arrow' | 'binary' | 'parquet';

/** Parquet page compression: `zstd` (default), `snappy` or `none`. */
export type ParquetCompressionName = 'zstd' | 'snappy' | 'none';

/** Options of the text formats, as recorded in the manifest. */
export interface FormatOptions {
  kind: FormatKind;
  /** Field delimiter. Default: tab for text, `,` for csv. */
  delimiter?: string;
  /**
   * String that stands for NULL. Default: `\N` for text, empty unquoted for csv. In text it must
   * be no value's text form (so not empty): see {@link textValueCouldEqual}. In csv any string is
   * lossless, since COPY quotes a value equal to it.
   */
  null?: string;
  /** csv only: quote character (default `"`). */
  quote?: string;
  /** csv only: escape character (default: the quote character). */
  escape?: string;
  /** csv only: start every object with a header line of column names (default false). */
  header?: boolean;
  /**
   * binary only, recorded by the export: the source's `server_version` (COPY BINARY forms are
   * those of that server's types). Default: none.
   */
  serverVersion?: string;
  /** parquet only: page compression (default `zstd`). */
  compression?: ParquetCompressionName;
  /**
   * parquet only: COPY BINARY bytes of the rows of one row group (default 32 MiB, at most a
   * quarter of the segment size). Memory per exporter is about four times this (docs/memory.md).
   */
  rowGroupBytes?: number;
}

/**
 * Fill in defaults and check a format's options.
 *
 * @param opts.allowLossyNull accept a text null string some value could equal (default false:
 *   refused, as an export with it loses data). Reading objects another program wrote (bare
 *   import) needs it: their NULLs are written that way already.
 */
export function normalizeFormat(f: Partial<FormatOptions> & { kind?: FormatKind } = {}, opts: { allowLossyNull?: boolean } = {}): FormatOptions {
  const kind = f.kind ?? 'text';
  if (kind !== 'text' && kind !== 'csv' && kind !== 'arrow' && kind !== 'binary' && kind !== 'parquet') {
    throw new InvalidOptionError(`unknown format ${String(kind)}: use text, csv, arrow, binary or parquet`);
  }
  if (kind !== 'parquet' && (f.compression !== undefined || f.rowGroupBytes !== undefined)) {
    throw new InvalidOptionError('Parquet compression and row group size apply to --format parquet only');
  }
  const one = (name: string, v: string | undefined) => {
    if (v !== undefined && (Buffer.byteLength(v) !== 1 || v === '\n' || v === '\r')) {
      throw new InvalidOptionError(`${name} must be a single one-byte character other than newline`);
    }
  };
  if (kind === 'text') {
    if (f.quote !== undefined || f.escape !== undefined || f.header) {
      throw new InvalidOptionError('quote, escape and header apply to csv only');
    }
    const o: FormatOptions = { kind, delimiter: f.delimiter ?? '\t', null: f.null ?? '\\N' };
    one('delimiter', o.delimiter);
    if (o.delimiter === '\\') throw new InvalidOptionError('the text delimiter cannot be a backslash');
    if (!opts.allowLossyNull && textValueCouldEqual(o.null!, o.delimiter!)) {
      throw new InvalidOptionError(`the text null string ${JSON.stringify(o.null)} is what some value looks like in COPY TEXT: those values would come back as NULL`, {
        hint: 'keep the default \\N (COPY TEXT never writes a backslash before N), or use --format csv, where --null \'\' is lossless',
      });
    }
    return o;
  }
  if (kind === 'csv') {
    const o: FormatOptions = {
      kind,
      delimiter: f.delimiter ?? ',',
      null: f.null ?? '',
      quote: f.quote ?? '"',
      escape: f.escape ?? f.quote ?? '"',
      header: f.header ?? false,
    };
    one('delimiter', o.delimiter);
    one('quote', o.quote);
    one('escape', o.escape);
    if (o.delimiter === o.quote) throw new InvalidOptionError('csv delimiter and quote must differ');
    return o;
  }
  if (f.delimiter !== undefined || f.null !== undefined || f.quote !== undefined || f.escape !== undefined || f.header) {
    throw new InvalidOptionError(`delimiter, null, quote, escape and header apply to text and csv, not ${kind}`);
  }
  if (kind === 'binary' && f.serverVersion !== undefined) return { kind, serverVersion: String(f.serverVersion) };
  if (kind === 'parquet') {
    const compression = f.compression ?? 'zstd';
    if (compression !== 'zstd' && compression !== 'snappy' && compression !== 'none') {
      throw new InvalidOptionError(`unknown Parquet compression ${String(compression)}: use zstd, snappy or none`);
    }
    const o: FormatOptions = { kind, compression };
    if (f.rowGroupBytes !== undefined) {
      if (!Number.isSafeInteger(f.rowGroupBytes) || f.rowGroupBytes <= 0) throw new InvalidOptionError('the Parquet row group size must be a positive number of bytes');
      o.rowGroupBytes = f.rowGroupBytes;
    }
    return o;
  }
  return { kind };
}

/**
 * True when some non-NULL value's COPY TEXT form could equal `nul`, so that a NULL and that
 * value would be written the same (`--null ''` makes empty strings NULL). COPY TEXT writes a
 * backslash only in the escapes `\\\\ \\b \\f \\n \\r \\t \\v` and before the delimiter, and never
 * writes raw newline, CR, the delimiter or the control characters it escapes; a string that
 * breaks these rules (like the default `\\N`) is no value's text form.
 */
export function textValueCouldEqual(nul: string, delimiter: string): boolean {
  const escaped = new Set(['\\', 'b', 'f', 'n', 'r', 't', 'v', delimiter]);
  for (let i = 0; i < nul.length; i++) {
    const c = nul[i]!;
    if (c === '\\') {
      if (i + 1 >= nul.length || !escaped.has(nul[i + 1]!)) return false;
      i++;
      continue;
    }
    if (c === delimiter || c === '\n' || c === '\r' || c === '\b' || c === '\f' || c === '\t' || c === '\v') return false;
  }
  return true;
}

/** The `(FORMAT …)` option list of a COPY statement for text or csv. Header lines are handled by segferry. */
export function copyOptionsSQL(f: FormatOptions): string {
  // COPY BINARY takes no text options (and no ENCODING: values travel in their binary forms).
  if (f.kind === 'binary') return 'FORMAT binary';
  const parts = [`FORMAT ${f.kind === 'csv' ? 'csv' : 'text'}`];
  if (f.delimiter !== undefined) parts.push(`DELIMITER ${quoteLiteral(f.delimiter)}`);
  if (f.null !== undefined) parts.push(`NULL ${quoteLiteral(f.null)}`);
  if (f.kind === 'csv') {
    if (f.quote !== undefined) parts.push(`QUOTE ${quoteLiteral(f.quote)}`);
    if (f.escape !== undefined) parts.push(`ESCAPE ${quoteLiteral(f.escape)}`);
  }
  parts.push(`ENCODING 'UTF8'`);
  return parts.join(', ');
}

/** The header line a csv object starts with: column names quoted as csv. */
export function csvHeaderLine(f: FormatOptions, columns: string[]): Buffer {
  const q = f.quote ?? '"';
  const esc = f.escape ?? q;
  const d = f.delimiter ?? ',';
  const cell = (s: string) => {
    if (s === '' || s.includes(d) || s.includes(q) || s.includes('\n') || s.includes('\r') || s.includes(esc) || s === f.null) {
      return q + s.split(q).join(esc + q) + q;
    }
    return s;
  };
  return Buffer.from(columns.map(cell).join(d) + '\n');
}

/** Column list for SQL. */
export function columnListSQL(columns: string[]): string {
  return columns.map(quoteIdent).join(', ');
}
