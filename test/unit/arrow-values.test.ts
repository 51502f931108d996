/**
 * Edge values through the Arrow column builders' fast paths (no BigInt, no strings, no
 * per-value views): each value is written in its COPY BINARY (`send`) form, built into a record
 * batch, and the Arrow buffers are compared with the value computed independently (BigInt from
 * the decimal text, the epoch arithmetic, the UTF-8 bytes).
 */
import { describe, expect, it } from 'vitest';
import type { RecordBatch } from 'apache-arrow';
import { BatchBuilder } from '../../lib/format/arrow/columns.js';
import { putDecimal128 } from '../../lib/format/arrow/decimal.js';
import { writeNumericText } from '../../lib/format/arrow/pgtext.js';
import { IpcFileEncoder } from '../../lib/format/arrow/ipc.js';
import { arrowSchema, columnSpec, OID, type PgColumn } from '../../lib/format/arrow/pgtypes.js';
import { TRAILER, binaryHeader, int4, rowChunk, tuple } from './copy-bytes.js';

const col = (name: string, oid: number, typmod = -1): PgColumn => ({ name, pgType: '', oid, typmod });
/** typmod of numeric(p, s). */
const numericMod = (p: number, s: number) => ((p << 16) | (s & 0x7ff)) + 4;

/** Build one batch from rows of `columns` (every row in one chunk, header and trailer included). */
function build(columns: PgColumn[], rows: (Buffer | null)[][]): { batch: RecordBatch; b: BatchBuilder } {
  const b = new BatchBuilder(columns.map(columnSpec));
  const msgs = rows.map((r) => tuple(r));
  msgs[0] = Buffer.concat([binaryHeader(), msgs[0]!]);
  const rc = rowChunk([...msgs, TRAILER]);
  expect(b.feed(rc.data, rc.rowEnds, 0)).toBe(rc.rowEnds.length);
  return { batch: b.take()!.batch, b };
}

function numericSend(t: string): Buffer {
  const buf = Buffer.alloc(8 + 2 * 64);
  return buf.subarray(0, writeNumericText(buf, 0, t));
}

/** The 128-bit two's complement integer in `u32[4i..4i+4)`. */
function i128(u32: Uint32Array, i: number): bigint {
  let v = 0n;
  for (let k = 3; k >= 0; k--) v = (v << 32n) | BigInt(u32[4 * i + k]!);
  return BigInt.asIntN(128, v);
}

/** The unscaled integer of decimal text `t` at `scale` (its digits below the scale are zero here). */
function unscaled(t: string, scale: number): bigint {
  const neg = t.startsWith('-');
  const [ip, fp = ''] = t.replace(/^[-+]/, '').split('.');
  const v = BigInt((ip || '0') + fp.padEnd(scale, '0').slice(0, scale));
  return neg ? -v : v;
}

/** Pseudo-random decimal text with at most `p` digits, `s` of them after the point. */
function randomDecimal(next: () => number, p: number, s: number): string {
  const digits = 1 + Math.floor(next() * p);
  let d = '';
  for (let i = 0; i < digits; i++) d += String(Math.floor(next() * 10));
  d = d.padStart(s + 1, '0');
  const t = `${d.slice(0, d.length - s)}${s > 0 ? '.' + d.slice(d.length - s) : ''}`;
  return next() < 0.5 ? `-${t}` : t;
}

function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

describe('Decimal128 from numeric_send without BigInt', () => {
  const edge: [number, number, string[]][] = [
    [38, 0, ['0', '1', '-1', '9999', '10000', '-10000', '4294967296', '-4294967296', '4294967295', '-4294967297',
      '9007199254740991', '-9007199254740993', '18446744073709551616', '-18446744073709551616',
      '9'.repeat(38), '-' + '9'.repeat(38), '1' + '0'.repeat(37), '-1' + '0'.repeat(37)]],
    [38, 10, ['0.0000000001', '-0.0000000001', '1.5', '-123456789.0123456789', '9'.repeat(28) + '.' + '9'.repeat(10),
      '-' + '9'.repeat(28) + '.' + '9'.repeat(10), '0.0001', '-0.0001', '100000000.0000000000']],
    [14, 2, ['0.01', '-0.01', '999999999999.99', '-999999999999.99', '12.30', '-0.50', '10000.00', '-100000000.00']],
    [12, 12, ['0.000000000001', '-0.999999999999', '0.5']],
    [6, 3, ['999.999', '-999.999', '0.001', '-0.001', '1', '-1']],
  ];
  for (const [p, s, values] of edge) {
    it(`numeric(${p}, ${s}): edge values equal the BigInt of their text`, () => {
      const { batch } = build([col('d', OID.numeric, numericMod(p, s))], values.map((v) => [numericSend(v)]));
      const u32 = batch.getChildAt(0)!.data[0]!.values as Uint32Array;
      values.forEach((v, i) => expect([v, i128(u32, i)]).toEqual([v, unscaled(v, s)]));
    });
  }

  it('pseudo-random values of every precision and scale equal the BigInt of their text', () => {
    const next = lcg(42);
    const dv = new DataView(new ArrayBuffer(16));
    for (let n = 0; n < 4000; n++) {
      const p = 1 + Math.floor(next() * 38);
      const s = Math.floor(next() * (p + 1));
      const t = randomDecimal(next, p, s);
      const send = numericSend(t);
      expect(putDecimal128(new DataView(send.buffer, send.byteOffset, send.length), 0, dv, 0, s)).toBe(true);
      const got = i128(new Uint32Array(dv.buffer), 0);
      if (got !== unscaled(t, s)) expect([p, s, t, got]).toEqual([p, s, t, unscaled(t, s)]);
    }
  });

  it('NaN and ±Infinity are refused (the column falls back to text), finite neighbours kept', () => {
    for (const t of ['NaN', 'Infinity', '-Infinity']) {
      const send = numericSend(t);
      const dv = new DataView(new ArrayBuffer(16));
      expect(putDecimal128(new DataView(send.buffer, send.byteOffset, send.length), 0, dv, 0, 2)).toBe(false);
      expect(new Uint8Array(dv.buffer).every((x) => x === 0)).toBe(true);
    }
    const { batch, b } = build([col('d', OID.numeric, numericMod(10, 2))], [[numericSend('1.25')], [numericSend('NaN')], [null], [numericSend('-3.50')]]);
    expect(b.specs[0]!.demoted).toBe(true);
    expect(batch.toArray().map((r) => (r.toJSON() as { d: unknown }).d)).toEqual(['1.25', 'NaN', null, '-3.50']);
  });

  it('a magnitude of 2^127 or more does not fit Decimal128', () => {
    // 10^39 > 2^127 (only reachable through a wrong typmod: numeric(38) holds less).
    const send = numericSend('1' + '0'.repeat(39));
    const dv = new DataView(new ArrayBuffer(16));
    expect(putDecimal128(new DataView(send.buffer, send.byteOffset, send.length), 0, dv, 0, 0)).toBe(false);
  });
});

function int8(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
}

describe('fixed-width values', () => {
  it('int8 extremes and float8 NaN bits pass unchanged', () => {
    const ints = [-(2n ** 63n), 2n ** 63n - 1n, -1n, 0n, 2n ** 32n, -(2n ** 32n) - 1n];
    const nan = Buffer.from([0x7f, 0xf8, 0, 0, 0, 0, 0, 1]); // a NaN with a payload
    const { batch } = build([col('i', OID.int8), col('f', OID.float8)], ints.map((v, k) => [int8(v), k === 0 ? nan : int8(v)]));
    expect([...(batch.getChildAt(0)!.data[0]!.values as BigInt64Array)]).toEqual(ints);
    const f = batch.getChildAt(1)!.data[0]!.values as Float64Array;
    expect(Buffer.from(f.buffer, f.byteOffset, 8).reverse()).toEqual(nan);
  });

  it('timestamps before 1970 and ±infinity; beyond int64 µs since 1970 falls back to text', () => {
    const pgUs = [-946_684_800_000_001n, -1n, 0n, 1_000_000n, -(2n ** 62n), 2n ** 63n - 1n, -(2n ** 63n)];
    const want = [-1n, 946_684_799_999_999n, 946_684_800_000_000n, 946_684_801_000_000n, -(2n ** 62n) + 946_684_800_000_000n, 2n ** 63n - 1n, -(2n ** 63n)];
    const { batch, b } = build([col('t', OID.timestamp), col('z', OID.timestamptz)], pgUs.map((v) => [int8(v), int8(v)]));
    expect(b.specs.map((s) => s.demoted)).toEqual([undefined, undefined]);
    for (const c of [0, 1]) expect([...(batch.getChildAt(c)!.data[0]!.values as BigInt64Array)]).toEqual(want);
    const late = build([col('t', OID.timestamp)], [[int8(0n)], [int8(2n ** 63n - 946_684_800_000_000n)]]);
    expect(late.b.specs[0]!.demoted).toBe(true);
  });

  it('dates before 1970 and ±infinity; time below 24:00 and 24:00 as text', () => {
    const days = [-10958, -10957, -1, 0, 0x7fffffff, -0x80000000];
    const { batch } = build([col('d', OID.date)], days.map((d) => [int4(d)]));
    expect([...(batch.getChildAt(0)!.data[0]!.values as Int32Array)]).toEqual([-1, 0, 10956, 10957, 0x7fffffff, -0x80000000]);
    const t = build([col('t', OID.time)], [[int8(86_399_999_999n)], [int8(0n)]]);
    expect([...(t.batch.getChildAt(0)!.data[0]!.values as BigInt64Array)]).toEqual([86_399_999_999n, 0n]);
    expect(build([col('t', OID.time)], [[int8(0n)], [int8(86_400_000_000n)]]).b.specs[0]!.demoted).toBe(true);
  });

  it('uuids are copied byte for byte, NULL slots stay zero', () => {
    const u = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const v = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
    const { batch } = build([col('u', OID.uuid)], [[u], [null], [v]]);
    const d = batch.getChildAt(0)!.data[0]!;
    expect(Buffer.from(d.values.buffer, d.values.byteOffset, 48)).toEqual(Buffer.concat([u, Buffer.alloc(16), v]));
    expect(d.nullCount).toBe(1);
  });
});

/** text[] as array_send writes it; `null` elements are NULL. */
function textArray(values: (string | null)[]): Buffer {
  const parts = [int4(1), int4(values.includes(null) ? 1 : 0), int4(OID.text), int4(values.length), int4(1)];
  for (const v of values) parts.push(int4(v === null ? -1 : Buffer.byteLength(v)), ...(v === null ? [] : [Buffer.from(v)]));
  return Buffer.concat(parts);
}
const EMPTY_ARRAY = Buffer.concat([int4(0), int4(0), int4(OID.text)]);

describe('text, jsonb and arrays as bytes', () => {
  it('empty strings, multi-byte UTF-8, long values and NULLs keep their bytes', () => {
    const texts = ['', 'üñíçødé ✓', '𝄞 clef', 'x'.repeat(500), null, 'a\0b'.replace('\0', '\t')];
    const { batch } = build([col('t', OID.text), col('j', OID.jsonb)], texts.map((t) => [
      t === null ? null : Buffer.from(t), t === null ? null : Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(t))]),
    ]));
    expect(batch.toArray().map((r) => (r.toJSON() as { t: unknown }).t)).toEqual(texts);
    expect(batch.toArray().map((r) => (r.toJSON() as { j: unknown }).j)).toEqual(texts.map((t) => (t === null ? null : JSON.stringify(t))));
  });

  it('NULL arrays, empty arrays, NULL and empty elements, multi-byte elements', () => {
    const arrays: ((string | null)[] | null)[] = [['a', null, ''], null, [], ['üñí', '✓✓'], [null], ['x'.repeat(300)]];
    const { batch } = build([col('a', 1009 /* text[] */), col('n', OID.int4)], arrays.map((a, i) => [
      a === null ? null : a.length === 0 ? EMPTY_ARRAY : textArray(a), int4(i),
    ]));
    const got = batch.toArray().map((r) => {
      const v = (r.toJSON() as { a: Iterable<string | null> | null }).a;
      return v === null ? null : [...v];
    });
    expect(got).toEqual(arrays);
    expect(batch.getChildAt(0)!.nullCount).toBe(1);
  });

  it('int4[] elements go through the fixed-width path; a two-dimensional array falls back to text', () => {
    const ints = (vs: (number | null)[]) => Buffer.concat([int4(1), int4(1), int4(OID.int4), int4(vs.length), int4(1),
      ...vs.flatMap((v) => (v === null ? [int4(-1)] : [int4(4), int4(v)]))]);
    const { batch } = build([col('a', 1007)], [[ints([1, null, -3])], [ints([])], [null], [ints([2 ** 31 - 1])]]);
    expect(batch.toArray().map((r) => { const v = (r.toJSON() as { a: Iterable<number> | null }).a; return v && [...v]; }))
      .toEqual([[1, null, -3], [], null, [2 ** 31 - 1]]);
    const twoDim = Buffer.concat([int4(2), int4(0), int4(OID.int4), int4(1), int4(1), int4(1), int4(1), int4(4), int4(5)]);
    expect(build([col('a', 1007)], [[ints([1])], [twoDim]]).b.specs[0]!.demoted).toBe(true);
  });
});

describe('IPC footer size', () => {
  it('footerBytes(n) equals the size of the footer encoded for n batches, for every n up to 300', () => {
    const schemas = [
      [OID.int8, OID.int4, OID.numeric, OID.float8, OID.bool, OID.timestamptz, OID.date, OID.text, OID.text, 1009, OID.jsonb, OID.uuid],
      [OID.int4],
      [OID.text, OID.bytea],
    ];
    for (const oids of schemas) {
      const specs = oids.map((oid, i) => columnSpec(col(`c${i}`, oid, oid === OID.numeric ? numericMod(14, 2) : -1)));
      const enc = new IpcFileEncoder(arrowSchema(specs, { 'segferry.table': 'public.t' }));
      for (let n = 1; n <= 300; n++) {
        const blocks = Array.from({ length: n }, (_, i) => ({ offset: 8 + i * 5_000_000_017, metaDataLength: 1000 + i, bodyLength: 4_000_000_000 + i }));
        expect([n, enc.footerBytes(n)]).toEqual([n, enc.footer(blocks).bytes]);
      }
    }
  });
});
