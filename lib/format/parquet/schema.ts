import { isTextForm, OID, type ColumnSpec } from '../arrow/pgtypes.js';
import { bool, i32, i8, list, struct, type TStruct } from './thrift.js';

/*
 * PostgreSQL column specs (lib/format/arrow/pgtypes.ts) as Parquet schema elements
 * (parquet.thrift): physical type, logical type, and the legacy converted type where it
 * means the same, so older readers see the same types. See docs/formats.md.
 */

/** Parquet physical types. */
export const PT = { BOOLEAN: 0, INT32: 1, INT64: 2, INT96: 3, FLOAT: 4, DOUBLE: 5, BYTE_ARRAY: 6, FIXED_LEN_BYTE_ARRAY: 7 } as const;
/** Field repetition. */
export const REP = { REQUIRED: 0, OPTIONAL: 1, REPEATED: 2 } as const;
/** Legacy converted types used here. */
const CT = { UTF8: 0, LIST: 3, DECIMAL: 5, DATE: 6, TIMESTAMP_MICROS: 10, INT_16: 16, INT_32: 17, INT_64: 18, JSON: 19 } as const;

/** How one leaf column is written. */
export interface LeafType {
  physical: number;
  /** FIXED_LEN_BYTE_ARRAY width. */
  width?: number;
  /** Bytes per value in the Arrow buffer the encoder reads (0 for variable width, -1 for bits). */
  arrowWidth: number;
  /** Statistics order: signed integers/floats, unsigned bytes, or big-endian two's complement. */
  order: 'int' | 'float' | 'bytes' | 'signed-bytes' | 'bool';
  /** Schema element fields other than name and repetition. */
  element: TStruct;
  /** Short name for the manifest and docs, e.g. `DECIMAL(12,2)`. */
  name: string;
}

const unit = (u: 'MICROS') => struct({ [u === 'MICROS' ? 2 : 1]: struct({}) });

/** Bytes of a FIXED_LEN_BYTE_ARRAY decimal of precision p (the smallest that holds 10^p - 1, signed). */
export function decimalBytes(p: number): number {
  let n = 1;
  while (2n ** BigInt(8 * n - 1) <= 10n ** BigInt(p) - 1n) n++;
  return n;
}

/** The Parquet type of a (non-list) column spec. */
export function leafType(s: ColumnSpec): LeafType {
  const str = (json: boolean): LeafType => ({
    physical: PT.BYTE_ARRAY, arrowWidth: 0, order: 'bytes', name: json ? 'JSON' : 'STRING',
    element: json ? { 6: i32(CT.JSON), 10: struct({ 12: struct({}) }) } : { 6: i32(CT.UTF8), 10: struct({ 1: struct({}) }) },
  });
  if (isTextForm(s)) return str(false);
  switch (s.kind) {
    case 'bool': return { physical: PT.BOOLEAN, arrowWidth: -1, order: 'bool', name: 'BOOLEAN', element: {} };
    case 'int2': return { physical: PT.INT32, arrowWidth: 2, order: 'int', name: 'INT(16,true)', element: { 6: i32(CT.INT_16), 10: struct({ 10: struct({ 1: i8(16), 2: bool(true) }) }) } };
    case 'int4': return { physical: PT.INT32, arrowWidth: 4, order: 'int', name: 'INT(32,true)', element: { 6: i32(CT.INT_32), 10: struct({ 10: struct({ 1: i8(32), 2: bool(true) }) }) } };
    case 'int8': return { physical: PT.INT64, arrowWidth: 8, order: 'int', name: 'INT(64,true)', element: { 6: i32(CT.INT_64), 10: struct({ 10: struct({ 1: i8(64), 2: bool(true) }) }) } };
    case 'float4': return { physical: PT.FLOAT, arrowWidth: 4, order: 'float', name: 'FLOAT', element: {} };
    case 'float8': return { physical: PT.DOUBLE, arrowWidth: 8, order: 'float', name: 'DOUBLE', element: {} };
    case 'decimal': {
      const p = s.precision!;
      const sc = s.scale!;
      const dec = { 6: i32(CT.DECIMAL), 7: i32(sc), 8: i32(p), 10: struct({ 5: struct({ 1: i32(sc), 2: i32(p) }) }) };
      const name = `DECIMAL(${p},${sc})`;
      // INT32/INT64 for small precisions, as the format recommends; the bytes otherwise.
      if (p <= 9) return { physical: PT.INT32, arrowWidth: 16, order: 'int', name, element: dec };
      if (p <= 18) return { physical: PT.INT64, arrowWidth: 16, order: 'int', name, element: dec };
      const w = decimalBytes(p);
      return { physical: PT.FIXED_LEN_BYTE_ARRAY, width: w, arrowWidth: 16, order: 'signed-bytes', name, element: { 2: i32(w), ...dec } };
    }
    case 'text': return str(s.oid === OID.json);
    case 'jsonb': return str(true);
    case 'bytea': return { physical: PT.BYTE_ARRAY, arrowWidth: 0, order: 'bytes', name: 'BYTE_ARRAY', element: {} };
    case 'date': return { physical: PT.INT32, arrowWidth: 4, order: 'int', name: 'DATE', element: { 6: i32(CT.DATE), 10: struct({ 6: struct({}) }) } };
    case 'timestamp':
      return { physical: PT.INT64, arrowWidth: 8, order: 'int', name: 'TIMESTAMP(MICROS,false)', element: { 10: struct({ 8: struct({ 1: bool(false), 2: unit('MICROS') }) }) } };
    case 'timestamptz':
      return { physical: PT.INT64, arrowWidth: 8, order: 'int', name: 'TIMESTAMP(MICROS,true)', element: { 6: i32(CT.TIMESTAMP_MICROS), 10: struct({ 8: struct({ 1: bool(true), 2: unit('MICROS') }) }) } };
    case 'time':
      return { physical: PT.INT64, arrowWidth: 8, order: 'int', name: 'TIME(MICROS,false)', element: { 10: struct({ 7: struct({ 1: bool(false), 2: unit('MICROS') }) }) } };
    case 'uuid': return { physical: PT.FIXED_LEN_BYTE_ARRAY, width: 16, arrowWidth: 16, order: 'bytes', name: 'UUID', element: { 2: i32(16), 10: struct({ 14: struct({}) }) } };
    default: return str(false);
  }
}

/**
 * The specs a Parquet object is built from: interval has no exact Parquet type (Parquet's
 * INTERVAL holds milliseconds), so it is carried as its text form, like any other type
 * without a mapping.
 */
export function parquetSpec(s: ColumnSpec): ColumnSpec {
  if (s.kind === 'interval') return { ...s, demoted: true };
  if (s.kind === 'list' && s.elem!.kind === 'interval') return { ...s, elem: { ...s.elem!, demoted: true } };
  return s;
}

/** True when a spec is written as a Parquet LIST (a one-dimensional array that fits its element type). */
export function isList(s: ColumnSpec): boolean {
  return s.kind === 'list' && !s.demoted;
}

/** The schema elements of one column (a leaf, or a 3-level LIST group and its leaf). */
export function columnElements(s: ColumnSpec): TStruct[] {
  if (!isList(s)) {
    const t = leafType(s);
    return [{ ...t.element, 3: i32(REP.OPTIONAL), 4: { t: 'bin', v: s.name }, 1: i32(t.physical) }];
  }
  const t = leafType(s.elem!);
  return [
    { 3: i32(REP.OPTIONAL), 4: { t: 'bin', v: s.name }, 5: i32(1), 6: i32(CT.LIST), 10: struct({ 3: struct({}) }) },
    { 3: i32(REP.REPEATED), 4: { t: 'bin', v: 'list' }, 5: i32(1) },
    { ...t.element, 3: i32(REP.OPTIONAL), 4: { t: 'bin', v: 'element' }, 1: i32(t.physical) },
  ];
}

/** The whole schema list of a file: the root, then every column. */
export function schemaElements(specs: ColumnSpec[]): TStruct[] {
  return [{ 4: { t: 'bin', v: 'schema' }, 5: i32(specs.length) }, ...specs.flatMap(columnElements)];
}

/** A short text of a column's Parquet type for manifests (e.g. `LIST<DATE>`). */
export function parquetTypeName(s: ColumnSpec): string {
  return isList(s) ? `LIST<${leafType(s.elem!).name}>` : leafType(s).name;
}

export { list };
