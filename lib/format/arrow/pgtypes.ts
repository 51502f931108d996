import {
  Binary, Bool, DateDay, Decimal, Field, FixedSizeBinary, Float32, Float64, Int16, Int32, Int64,
  Interval, IntervalUnit, List, Schema, Time, TimeUnit, Timestamp, Utf8, type DataType,
} from 'apache-arrow';
import { FormatError } from '../../errors.js';

/**
 * PostgreSQL types as the Arrow format sees them: which base type a column has (from the
 * RowDescription of the export query, which reports a domain's base type and typmod), how
 * its BINARY COPY form is read, and which Arrow type carries it. See docs/formats.md.
 */

/** Type OIDs of the built-in types segferry maps to Arrow (pg_type.dat; stable across versions). */
export const OID = {
  bool: 16, bytea: 17, name: 19, int8: 20, int2: 21, int4: 23, text: 25, json: 114,
  float4: 700, float8: 701, bpchar: 1042, varchar: 1043, date: 1082, time: 1083,
  timestamp: 1114, timestamptz: 1184, interval: 1186, numeric: 1700, uuid: 2950, jsonb: 3802,
} as const;

/** Array type OID → element type OID, for the element types above. */
export const ARRAY_ELEM: ReadonlyMap<number, number> = new Map([
  [1000, OID.bool], [1001, OID.bytea], [1003, OID.name], [1016, OID.int8], [1005, OID.int2],
  [1007, OID.int4], [1009, OID.text], [199, OID.json], [1021, OID.float4], [1022, OID.float8],
  [1014, OID.bpchar], [1015, OID.varchar], [1182, OID.date], [1183, OID.time], [1115, OID.timestamp],
  [1185, OID.timestamptz], [1187, OID.interval], [1231, OID.numeric], [2951, OID.uuid], [3807, OID.jsonb],
]);
const ELEM_ARRAY = new Map([...ARRAY_ELEM].map(([a, e]) => [e, a]));

/** Array type OID of an element type OID handled here (undefined for others). */
export function arrayOidOf(elemOid: number): number | undefined {
  return ELEM_ARRAY.get(elemOid);
}

/**
 * How a value travels. Scalar kinds name the PostgreSQL type family; `numeric` is numeric
 * kept as its exact text form (no declared precision, or precision > 38); `text` is any
 * type whose BINARY form is its UTF-8 text (text, varchar, char, name, json); `fallback`
 * is any other type, read as `expr::text`.
 */
export type ColumnKind =
  | 'bool' | 'int2' | 'int4' | 'int8' | 'float4' | 'float8' | 'decimal' | 'numeric' | 'text'
  | 'jsonb' | 'bytea' | 'date' | 'timestamp' | 'timestamptz' | 'time' | 'interval' | 'uuid'
  | 'list' | 'fallback';

/** A column as the export query's RowDescription reports it, plus its declared type name. */
export interface PgColumn {
  /** Column name in the exported table (Arrow field name). */
  name: string;
  /** Declared type (`format_type`), kept in field metadata; informational. */
  pgType: string;
  /** Base type OID (domains resolved). */
  oid: number;
  /** Base type modifier (-1 when none). */
  typmod: number;
}

/** Everything the converters need about one column. Plain data (can cross a worker boundary). */
export interface ColumnSpec extends PgColumn {
  kind: ColumnKind;
  /**
   * The column holds the exact text form of each value although its type has a native
   * mapping: a value this object met could not be held by the Arrow type (numeric NaN in a
   * Decimal128 column, a timestamp outside Arrow's range, a multi-dimensional array, ...).
   */
  demoted?: boolean;
  /** decimal: precision and scale from the typmod. */
  precision?: number;
  scale?: number;
  /** list: the element's spec (its `name` is `item`). */
  elem?: ColumnSpec;
}

/** Field metadata keys. */
export const META = {
  pgType: 'segferry.pg_type',
  pgOid: 'segferry.pg_oid',
  pgTypmod: 'segferry.pg_typmod',
  /** `text` when the column holds the values' exact PostgreSQL text form. */
  encoding: 'segferry.encoding',
  extName: 'ARROW:extension:name',
  extMeta: 'ARROW:extension:metadata',
} as const;

/** Numeric precision/scale from a typmod, when the column has a declared precision. */
export function numericTypmod(typmod: number): { precision: number; scale: number } | undefined {
  if (typmod < 4) return undefined;
  const t = typmod - 4;
  const precision = (t >> 16) & 0xffff;
  // The scale is an 11-bit signed field since PostgreSQL 15 (negative scales allowed).
  let scale = t & 0x7ff;
  if (scale & 0x400) scale -= 0x800;
  return { precision, scale };
}

function scalarKind(oid: number, typmod: number): Pick<ColumnSpec, 'kind' | 'precision' | 'scale'> {
  switch (oid) {
    case OID.bool: return { kind: 'bool' };
    case OID.int2: return { kind: 'int2' };
    case OID.int4: return { kind: 'int4' };
    case OID.int8: return { kind: 'int8' };
    case OID.float4: return { kind: 'float4' };
    case OID.float8: return { kind: 'float8' };
    case OID.numeric: {
      const n = numericTypmod(typmod);
      if (n && n.precision >= 1 && n.precision <= 38 && n.scale >= 0 && n.scale <= n.precision) {
        return { kind: 'decimal', precision: n.precision, scale: n.scale };
      }
      return { kind: 'numeric' };
    }
    case OID.text: case OID.varchar: case OID.bpchar: case OID.name: case OID.json:
      return { kind: 'text' };
    case OID.jsonb: return { kind: 'jsonb' };
    case OID.bytea: return { kind: 'bytea' };
    case OID.date: return { kind: 'date' };
    case OID.timestamp: return { kind: 'timestamp' };
    case OID.timestamptz: return { kind: 'timestamptz' };
    case OID.time: return { kind: 'time' };
    case OID.interval: return { kind: 'interval' };
    case OID.uuid: return { kind: 'uuid' };
    default: return { kind: 'fallback' };
  }
}

/** Work out how a column is converted. Unknown types (and arrays of them) become `fallback`. */
export function columnSpec(c: PgColumn): ColumnSpec {
  const elemOid = ARRAY_ELEM.get(c.oid);
  if (elemOid !== undefined) {
    // An array column's typmod is its element's (e.g. numeric(10,2)[]).
    const elem: ColumnSpec = { name: 'item', pgType: '', oid: elemOid, typmod: c.typmod, ...scalarKind(elemOid, c.typmod) };
    return { ...c, kind: 'list', elem };
  }
  return { ...c, ...scalarKind(c.oid, c.typmod) };
}

/** True when the column's values are carried as PostgreSQL text forms in a Utf8 column. */
export function isTextForm(s: ColumnSpec): boolean {
  return s.demoted === true || s.kind === 'numeric' || s.kind === 'fallback';
}

/** The Arrow type of a column. */
export function arrowType(s: ColumnSpec): DataType {
  if (isTextForm(s)) return new Utf8();
  switch (s.kind) {
    case 'bool': return new Bool();
    case 'int2': return new Int16();
    case 'int4': return new Int32();
    case 'int8': return new Int64();
    case 'float4': return new Float32();
    case 'float8': return new Float64();
    case 'decimal': return new Decimal(s.scale!, s.precision!, 128);
    case 'text': case 'jsonb': return new Utf8();
    case 'bytea': return new Binary();
    case 'date': return new DateDay();
    case 'timestamp': return new Timestamp(TimeUnit.MICROSECOND);
    case 'timestamptz': return new Timestamp(TimeUnit.MICROSECOND, 'UTC');
    case 'time': return new Time(TimeUnit.MICROSECOND, 64);
    case 'interval': return new Interval(IntervalUnit.MONTH_DAY_NANO);
    case 'uuid': return new FixedSizeBinary(16);
    case 'list': return new List(arrowField(s.elem!));
    default: return new Utf8();
  }
}

/** The Arrow field of a column, with metadata that lets import restore the exact PostgreSQL type. */
export function arrowField(s: ColumnSpec): Field {
  const m = new Map<string, string>();
  if (s.pgType) m.set(META.pgType, s.pgType);
  m.set(META.pgOid, String(s.oid));
  if (s.typmod !== -1) m.set(META.pgTypmod, String(s.typmod));
  if (isTextForm(s)) {
    m.set(META.encoding, 'text');
  } else if (s.kind === 'uuid') {
    m.set(META.extName, 'arrow.uuid');
    m.set(META.extMeta, '');
  } else if (s.oid === OID.json || s.oid === OID.jsonb) {
    m.set(META.extName, 'arrow.json');
    m.set(META.extMeta, '');
  }
  return new Field(s.name, arrowType(s), true, m);
}

/** Schema metadata keys. */
export const SCHEMA_META = { table: 'segferry.table', writer: 'segferry.writer' } as const;

/** The Arrow schema of an object. */
export function arrowSchema(specs: ColumnSpec[], meta: Record<string, string> = {}): Schema {
  return new Schema(specs.map(arrowField), new Map(Object.entries(meta)));
}

/** A short, stable text of an Arrow type for manifests and docs (e.g. `Decimal128(12, 2)`). */
export function arrowTypeName(t: DataType): string {
  return String(t).replace(/Decimal\[(\d+)e\+?(-?\d+)\]/g, 'Decimal128($1, $2)');
}

/** Read specs back from an Arrow field (import side). */
export function specFromField(f: Field): ColumnSpec {
  const md = f.metadata;
  const oidText = md.get(META.pgOid);
  if (oidText === undefined || !/^\d+$/.test(oidText)) throw new FormatError(`Arrow field ${f.name} has no valid ${META.pgOid} metadata`);
  const c: PgColumn = {
    name: f.name,
    pgType: md.get(META.pgType) ?? '',
    oid: Number(oidText),
    typmod: md.has(META.pgTypmod) ? Number(md.get(META.pgTypmod)) : -1,
  };
  const s = columnSpec(c);
  if (md.get(META.encoding) === 'text') {
    if (s.kind !== 'numeric' && s.kind !== 'fallback') s.demoted = true;
  }
  return s;
}
