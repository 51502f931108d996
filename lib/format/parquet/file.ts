import { InternalError } from '../../errors.js';
import type { ColumnSpec } from '../arrow/pgtypes.js';
import { chunkMeta, type EncodedRowGroup } from './encode.js';
import { schemaElements } from './schema.js';
import { bin, encodeStruct, i32, i64, list, struct, type TStruct } from './thrift.js';

/*
 * The frame of a Parquet file (parquet-format README, "File format"): the magic `PAR1`, the
 * row groups' column chunks, the FileMetaData (Thrift compact), its 4-byte little-endian
 * length, and `PAR1` again. Readers start from the end, so the footer is written last.
 */

/** `PAR1`. */
export const MAGIC = Uint8Array.of(0x50, 0x41, 0x52, 0x31);

/** Key-value metadata keys segferry writes. */
export const PARQUET_META = {
  /** The exported table. */
  table: 'segferry.table',
  /** JSON array of each column's PostgreSQL type: `{ name, pgType, oid, typmod, text? }`. */
  columns: 'segferry.columns',
} as const;

/** What the footer records of one column, to give import the exact PostgreSQL type back. */
export interface ParquetColumnMeta {
  name: string;
  pgType: string;
  oid: number;
  typmod: number;
  /** The column holds PostgreSQL text forms (a type without a Parquet mapping, or a value that fell back). */
  text?: true;
}

/** The segferry column metadata of specs. */
export function columnMeta(specs: ColumnSpec[]): ParquetColumnMeta[] {
  return specs.map((s) => {
    const m: ParquetColumnMeta = { name: s.name, pgType: s.pgType, oid: s.oid, typmod: s.typmod };
    if (s.demoted || s.kind === 'numeric' || s.kind === 'fallback' || (s.kind === 'list' && s.elem!.demoted)) m.text = true;
    return m;
  });
}

function varintBytes(n: number): number {
  let b = 1;
  while (n >= 0x80) { n = Math.floor(n / 128); b++; }
  return b;
}

/** A file's row groups, placed: what its footer will say. */
export class FooterBuilder {
  readonly #schema: TStruct[];
  readonly #kv: TStruct[];
  readonly #leaves: number;
  readonly #groups: TStruct[] = [];
  /** Encoded bytes of the groups' footer entries so far (the footer is their concatenation plus a fixed part). */
  #groupBytes = 0;
  #rows = 0;

  constructor(specs: ColumnSpec[], meta: Record<string, string>) {
    this.#schema = schemaElements(specs);
    this.#leaves = specs.length;
    this.#kv = Object.entries(meta).map(([k, v]) => ({ 1: bin(k), 2: bin(v) }));
  }

  /** The row group's footer entry if it were placed at `at`. */
  #group(g: EncodedRowGroup, at: number): TStruct {
    let p = at;
    const cols = g.chunks.map((c) => {
      const m = chunkMeta(c, p);
      p += c.bytes;
      return m;
    });
    return { 1: list('struct', cols), 2: i64(g.uncompressed), 3: i64(g.rows), 5: i64(at), 6: i64(g.bytes) };
  }

  /** Record a row group placed at file offset `at`. */
  add(g: EncodedRowGroup, at: number): void {
    const e = this.#group(g, at);
    this.#groups.push(e);
    this.#groupBytes += encodeStruct(e).length;
    this.#rows += g.rows;
  }

  #encode(groups: TStruct[], rows: number): Uint8Array {
    return encodeStruct({
      1: i32(1),
      2: list('struct', this.#schema),
      3: i64(rows),
      4: list('struct', groups),
      5: this.#kv.length > 0 ? list('struct', this.#kv) : undefined,
      6: bin('segferry'),
      // TypeDefinedOrder for every leaf: readers may use min_value/max_value.
      7: list('struct', Array.from({ length: this.#leaves }, () => ({ 1: struct({}) }))),
    });
  }

  /**
   * Bytes of the footer (metadata, length, magic) with `g` placed at `at` as well (or as is).
   * A Thrift list of structs is its header and the structs one after another, so the size is
   * the footer without groups, plus each group's bytes, plus the list header's growth: no
   * re-encoding of the groups already placed.
   */
  bytesWith(g?: EncodedRowGroup, at = 0): number {
    const n = this.#groups.length + (g ? 1 : 0);
    const extra = g ? encodeStruct(this.#group(g, at)).length : 0;
    const base = this.#encode([], this.#rows + (g?.rows ?? 0)).length; // with a 1-byte empty list header
    const header = n < 15 ? 1 : 1 + varintBytes(n);
    return base - 1 + header + this.#groupBytes + extra + 8;
  }

  /** The footer bytes: FileMetaData, its length, `PAR1`. */
  footer(): Uint8Array {
    const meta = this.#encode(this.#groups, this.#rows);
    if (meta.length + 8 !== this.bytesWith()) throw new InternalError('Parquet footer size differs from its estimate');
    const out = new Uint8Array(meta.length + 8);
    out.set(meta, 0);
    new DataView(out.buffer).setUint32(meta.length, meta.length, true);
    out.set(MAGIC, meta.length + 4);
    return out;
  }
}
