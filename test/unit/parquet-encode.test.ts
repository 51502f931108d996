import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { Bool, Decimal, FixedSizeBinary, Float32, Float64, Int16, Int64, List, Field, makeData, RecordBatch, Schema, Struct, Utf8, vectorFromArray, type Data, type DataType } from 'apache-arrow';
import { columnSpec, type ColumnSpec } from '../../lib/format/arrow/pgtypes.js';
import { pageCodec, type ParquetCompression } from '../../lib/format/parquet/codecs.js';
import { encodeHybrid, encodeRowGroup, Out } from '../../lib/format/parquet/encode.js';
import { columnMeta, FooterBuilder, MAGIC, PARQUET_META } from '../../lib/format/parquet/file.js';
import { openParquetObject } from '../../lib/format/parquet/import.js';
import { footerLength } from '../../lib/format/parquet/reader.js';
import { parquetSpec } from '../../lib/format/parquet/schema.js';
import { ThriftReader, type RStruct, type RValue } from '../../lib/format/parquet/thrift.js';

// The encoder's fast paths (word-wise copies, comparisons and hashing, whole-group bit-packing,
// dictionaries given up part-way) checked against plain references: a bit-by-bit decoder of
// the hybrid encoding, and rows and statistics read back from whole files.

/** RLE/bit-packed hybrid decoder written from Encodings.md, bit by bit: the reference. */
function decodeHybrid(u8: Uint8Array, n: number, width: number): number[] {
  const out: number[] = [];
  let p = 0;
  while (out.length < n) {
    let h = 0;
    for (let s = 0; ; s += 7) { const b = u8[p++]!; h += (b & 0x7f) * 2 ** s; if (!(b & 0x80)) break; }
    if (h % 2 === 0) {
      let v = 0;
      for (let b = 0; b < Math.ceil(width / 8); b++) v += u8[p++]! * 2 ** (8 * b);
      for (let k = 0; k < h / 2; k++) out.push(v);
    } else {
      const groups = (h - 1) / 2;
      for (let k = 0; k < groups * 8; k++) {
        let v = 0;
        for (let b = 0; b < width; b++) {
          const bit = k * width + b;
          v += ((u8[p + (bit >> 3)]! >> (bit & 7)) & 1) * 2 ** b;
        }
        out.push(v);
      }
      p += groups * width;
    }
  }
  expect(p).toBe(u8.length); // nothing after the last run
  return out.slice(0, n);
}

/** A column of `n` values as Data of `type`. */
function col(type: DataType, values: unknown[]): Data {
  return vectorFromArray(values, type).data[0]!;
}

/** A one-row-group Parquet file of these columns (rows [from, to)), its bytes. */
async function file(specs: ColumnSpec[], cols: Data[], compression: ParquetCompression = 'none', from = 0, to = cols[0]!.length): Promise<Uint8Array> {
  const fields = specs.map((s, i) => new Field(s.name, cols[i]!.type, true));
  const batch = new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: cols[0]!.length, children: cols }));
  const codec = await pageCodec(compression);
  const g = encodeRowGroup(batch, specs, from, to, codec);
  const footer = new FooterBuilder(specs, { [PARQUET_META.table]: 't', [PARQUET_META.columns]: JSON.stringify(columnMeta(specs)) });
  footer.add(g, MAGIC.length);
  return Buffer.concat([MAGIC, ...g.chunks.flatMap((c) => c.pages), footer.footer()]);
}

/** COPY TEXT lines of a file, read back through the import path. */
async function rows(bytes: Uint8Array): Promise<string[]> {
  const b = Buffer.from(bytes);
  const o = await openParquetObject({ size: b.length, range: async (s, e) => b.subarray(s, e), stream: () => Readable.from([b]) }, { format: 'text' });
  const out: Buffer[] = [];
  for await (const c of o.chunks()) out.push(c);
  return Buffer.concat(out).toString().split('\n').slice(0, -1);
}

/** Each column chunk's encodings and statistics, from the footer (FileMetaData → RowGroup → ColumnChunk → ColumnMetaData). */
function chunks(bytes: Uint8Array): { encodings: number[]; nulls: number; min?: Buffer; max?: Buffer }[] {
  const len = footerLength(bytes.subarray(bytes.length - 8), bytes.length);
  const meta = new ThriftReader(bytes, bytes.length - 8 - len, bytes.length - 8).struct();
  const group = (meta.get(4) as RValue[])[0] as RStruct;
  return (group.get(1) as RStruct[]).map((c) => {
    const m = c.get(3) as RStruct;
    const st = m.get(12) as RStruct;
    const r: { encodings: number[]; nulls: number; min?: Buffer; max?: Buffer } = { encodings: m.get(2) as number[], nulls: Number(st.get(3)) };
    if (st.has(6)) r.min = Buffer.from(st.get(6) as Uint8Array);
    if (st.has(5)) r.max = Buffer.from(st.get(5) as Uint8Array);
    return r;
  });
}

const spec = (name: string, oid: number, typmod = -1): ColumnSpec => parquetSpec(columnSpec({ name, pgType: '', oid, typmod }));
const TEXT = 25;
const RLE_DICTIONARY = 8;

/** Byte-order min and max of strings (what Parquet's unsigned lexicographic order says). */
function bounds(xs: (string | null)[]): [Buffer, Buffer] {
  const b = xs.filter((x): x is string => x !== null).map((x) => Buffer.from(x)).sort(Buffer.compare);
  return [b[0]!, b[b.length - 1]!];
}

describe('Parquet encoder fast paths', () => {
  it('bit-packs and run-length encodes every width from 1 to 20 as the format says', () => {
    let seed = 7;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let w = 1; w <= 20; w++) {
      const max = 2 ** w - 1;
      for (const n of [1, 7, 8, 9, 64, 1003]) {
        const v = new Uint32Array(n);
        let i = 0;
        while (i < n) {
          // Runs of 1, 7, 8, 9 or 40 equal values, the width's extremes among them.
          const run = [1, 1, 7, 8, 9, 40][Math.floor(rand() * 6)]!;
          const x = rand() < 0.2 ? max : rand() < 0.2 ? 0 : Math.floor(rand() * (max + 1));
          v.fill(x, i, Math.min(n, i + run));
          i += run;
        }
        const out = new Out(16);
        encodeHybrid(out, v, n, w);
        expect(decodeHybrid(out.take(), n, w), `width ${w}, ${n} values`).toEqual([...v]);
        if (w <= 8) {
          // Levels come as bytes: the same encoding.
          const o8 = new Out(16);
          encodeHybrid(o8, Uint8Array.from(v), n, w);
          expect(Buffer.from(o8.take())).toEqual(Buffer.from(out.take()));
        }
      }
    }
  });

  it('writes an all-null column as levels alone: no values, null count only', async () => {
    const n = 100;
    const nulls = Array.from({ length: n }, () => null);
    const specs = [spec('t', TEXT), spec('i', 20), spec('f', 701), spec('b', 16)];
    const bytes = await file(specs, [col(new Utf8(), nulls), col(new Int64(), nulls), col(new Float64(), nulls), col(new Bool(), nulls)], 'zstd');
    expect(await rows(bytes)).toEqual(Array.from({ length: n }, () => '\\N\t\\N\t\\N\t\\N'));
    for (const c of chunks(bytes)) {
      expect(c.nulls).toBe(n);
      expect(c.min).toBeUndefined();
      expect(c.max).toBeUndefined();
    }
  });

  it('drops the dictionary when values are all distinct, or its distinct values outgrow it part-way, and reads back the same', async () => {
    const distinct = Array.from({ length: 5000 }, (_, i) => `key-${i * 7919}`);
    // Few distinct values for the first 4096 (the probe passes), then all distinct: the
    // dictionary fills past half the values and is given up at the end of the group.
    const late = Array.from({ length: 9000 }, (_, i) => (i < 4096 ? `v${i % 3}` : `late-${i}`));
    // 1200 distinct values of 1000 bytes, each twice: past the 1 MiB dictionary bound.
    const big = Array.from({ length: 2400 }, (_, i) => `${i % 1200}`.padEnd(1000, 'x'));
    // Few distinct values, some with nulls: a dictionary, as a control.
    const few = Array.from({ length: 5000 }, (_, i) => (i % 10 === 0 ? null : `few-${i % 5}`));
    for (const xs of [distinct, late, big, few]) {
      const bytes = await file([spec('t', TEXT)], [col(new Utf8(), xs)]);
      expect(await rows(bytes)).toEqual(xs.map((x) => x ?? '\\N'));
      const [c] = chunks(bytes);
      expect(c!.encodings.includes(RLE_DICTIONARY)).toBe(xs === few);
      const [mi, ma] = bounds(xs);
      if (ma.length <= 64) {
        expect(c!.min).toEqual(mi);
        expect(c!.max).toEqual(ma);
      } else {
        expect(c!.max).toBeUndefined(); // a bound past 64 bytes is left out
      }
    }
  });

  it('tells apart every short value (up to 4 bytes, matched by hash and length alone) and longer ones sharing prefixes in a dictionary', async () => {
    // 3000 distinct values of 0 to 4 bytes (and a few longer), each three times in a scrambled
    // order, with NULLs: a dictionary, and enough values for hash positions to collide.
    const alpha = 'abcdefghijklmnopqrstuvwxyz';
    const values = ['', 'ü', 'üü', 'aaaaa', 'aaaab', 'aaaa\u00e9', 'üüü'];
    for (let i = 0; values.length < 3000; i++) values.push(`${alpha[i % 26]}${alpha[Math.floor(i / 26) % 26]}${i >= 676 ? alpha[Math.floor(i / 676) % 26] : ''}${i >= 2000 ? '!' : ''}`);
    const xs = Array.from({ length: 3 * values.length }, (_, i) => (i % 13 === 0 ? null : values[(i * 7919) % values.length]!));
    const bytes = await file([spec('t', TEXT)], [col(new Utf8(), xs)]);
    expect(chunks(bytes)[0]!.encodings.includes(RLE_DICTIONARY)).toBe(true);
    expect(await rows(bytes)).toEqual(xs.map((x) => x ?? '\\N'));
  });

  it('gives byte-order bounds of empty strings, shared prefixes and multi-byte UTF-8, with and without a dictionary', async () => {
    const words = ['', 'abcd', 'abcde', 'abce', 'abc', 'z', 'é', 'ü✓', '✓', 'ab\u007f', 'abcdefgh', 'abcdefgi', '日本語'];
    for (const xs of [
      words, // under 16 values: PLAIN
      Array.from({ length: 200 }, (_, i) => words[i % words.length]!), // a dictionary
      Array.from({ length: 5000 }, (_, i) => (i === 2500 ? '' : i === 17 ? '\u{10FFFF}' : `m${i}`)), // all distinct: PLAIN
      Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? null : words[(i * 5) % words.length]!)),
      // Extremes decided inside a 4-byte word, where a little-endian word order would be wrong.
      ['baaa', 'azzz', 'zaaa', 'yzzz'],
      Array.from({ length: 30 }, (_, i) => ['baaaa', 'azzzz', 'zaaaa', 'yzzzz', 'zaaa'][i % 5]!),
    ]) {
      const bytes = await file([spec('t', TEXT)], [col(new Utf8(), xs)], 'snappy');
      expect(await rows(bytes)).toEqual(xs.map((x) => (x === null ? '\\N' : x)));
      const [c] = chunks(bytes);
      const [mi, ma] = bounds(xs);
      expect(c!.min).toEqual(mi);
      expect(c!.max).toEqual(ma);
    }
  });

  it('keeps NaN, infinities and signed zeros in floats, and leaves NaN out of their bounds', async () => {
    const le = (w: 4 | 8, x: number) => { const b = Buffer.alloc(w); if (w === 4) b.writeFloatLE(x); else b.writeDoubleLE(x); return b; };
    for (const [type, oid, w] of [[new Float64(), 701, 8], [new Float32(), 700, 4]] as const) {
      const cases: [(number | null)[], number | undefined, number | undefined][] = [
        [[NaN, 1.5, null, -2, Infinity, NaN], -2, Infinity],
        [[NaN, NaN, null], undefined, undefined],
        [[0, -0, 0], -0, 0],
        [Array.from({ length: 50 }, (_, i) => (i % 7 === 0 ? null : i % 5 === 0 ? NaN : -Infinity)), -Infinity, -Infinity],
      ];
      for (const [xs, mi, ma] of cases) {
        const bytes = await file([spec('f', oid)], [col(type, xs)]);
        const text = (x: number | null) => (x === null ? '\\N' : Number.isNaN(x) ? 'NaN' : Object.is(x, -0) ? '-0' : x === Infinity ? 'Infinity' : x === -Infinity ? '-Infinity' : String(x));
        expect(await rows(bytes)).toEqual(xs.map(text));
        const [c] = chunks(bytes);
        expect(c!.min).toEqual(mi === undefined ? undefined : le(w, mi));
        expect(c!.max).toEqual(ma === undefined ? undefined : le(w, ma));
      }
    }
  });

  it('orders 64-bit integers, int2, unsigned and signed fixed-length bytes word by word', async () => {
    const ints = [5n, -1n, 0n, 2n ** 32n, -(2n ** 32n) - 1n, 2n ** 33n + 5n, -(2n ** 63n), 2n ** 63n - 1n, 4294967295n];
    const withNull = [...ints.slice(0, 4), null, ...ints.slice(4)];
    const i8 = (x: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64LE(x); return b; };
    const bytes = await file([spec('i', 20), spec('s', 21)], [col(new Int64(), withNull), col(new Int16(), withNull.map((x) => (x === null ? null : Number(BigInt.asIntN(16, x)))))]);
    const [c, s] = chunks(bytes);
    expect(c!.min).toEqual(i8(-(2n ** 63n)));
    expect(c!.max).toEqual(i8(2n ** 63n - 1n));
    const small = withNull.filter((x): x is bigint => x !== null).map((x) => Number(BigInt.asIntN(16, x)));
    expect(s!.min!.readInt32LE()).toBe(Math.min(...small));
    expect(s!.max!.readInt32LE()).toBe(Math.max(...small));
    expect(await rows(bytes)).toEqual(withNull.map((x) => (x === null ? '\\N\t\\N' : `${x}\t${BigInt.asIntN(16, x)}`)));

    // uuid: 16 unsigned bytes; values differing in each word, and with the top bit set.
    const uuids = ['80000000-0000-0000-0000-000000000000', '7fffffff-ffff-ffff-ffff-ffffffffffff', '00000000-0000-0000-0000-000000000001',
      '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-fffffffffffe', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '12345678-9abc-def0-1234-56789abcdef0'];
    const raw = uuids.map((u) => Buffer.from(u.replace(/-/g, ''), 'hex'));
    const ub = await file([spec('u', 2950)], [makeData({ type: new FixedSizeBinary(16), length: raw.length, nullCount: 0, data: Buffer.concat(raw) })]);
    const [u] = chunks(ub);
    const sorted = [...raw].sort(Buffer.compare);
    expect(u!.min).toEqual(sorted[0]);
    expect(u!.max).toEqual(sorted[sorted.length - 1]);
    expect(await rows(ub)).toEqual(uuids);

    // numeric(30,2): FIXED_LEN_BYTE_ARRAY two's complement, big-endian (13 bytes: a word, two more, a tail byte).
    const decs = [0n, -1n, 1n, 10n ** 29n, -(10n ** 29n), 2n ** 64n, -(2n ** 64n), 255n, -256n, 2n ** 31n, -(2n ** 31n) - 1n];
    const words = new Uint32Array(decs.length * 4);
    decs.forEach((x, i) => { for (let k = 0; k < 4; k++) words[4 * i + k] = Number(BigInt.asUintN(32, x >> BigInt(32 * k))); });
    const db = await file([spec('d', 1700, ((30 << 16) | 2) + 4)], [makeData({ type: new Decimal(2, 30, 128), length: decs.length, nullCount: 0, data: words })]);
    const [d] = chunks(db);
    const be = (x: bigint) => { const b = Buffer.alloc(13); let y = BigInt.asUintN(104, x); for (let k = 12; k >= 0; k--) { b[k] = Number(y & 0xffn); y >>= 8n; } return b; };
    expect(d!.min).toEqual(be(-(10n ** 29n)));
    expect(d!.max).toEqual(be(10n ** 29n));
    const dec = (x: bigint) => { const neg = x < 0n; const a = (neg ? -x : x).toString().padStart(3, '0'); return `${neg ? '-' : ''}${a.slice(0, -2)}.${a.slice(-2)}`; };
    expect(await rows(db)).toEqual(decs.map(dec));
  });

  it('copies boolean bits whole from a byte boundary and bit by bit elsewhere', async () => {
    const xs = Array.from({ length: 45 }, (_, i) => i % 3 === 0 || i % 7 === 0);
    for (const [from, to] of [[0, 45], [8, 45], [3, 21], [16, 24], [0, 13]] as const) {
      const bytes = await file([spec('b', 16)], [col(new Bool(), xs)], 'none', from, to);
      expect(await rows(bytes)).toEqual(xs.slice(from, to).map((x) => (x ? 't' : 'f')));
      const [c] = chunks(bytes);
      expect(c!.min).toEqual(Buffer.of(xs.slice(from, to).every((x) => x) ? 1 : 0));
      expect(c!.max).toEqual(Buffer.of(xs.slice(from, to).some((x) => x) ? 1 : 0));
    }
  });

  it('writes lists with and without null elements, empty and null lists, whole and from a row range', async () => {
    const lists: ((string | null)[] | null)[][] = [
      Array.from({ length: 300 }, (_, i) => ['a' + (i % 10), 'b,' + (i % 7), 'c"d']),
      Array.from({ length: 300 }, (_, i) => (i % 11 === 0 ? null : i % 13 === 0 ? [] : ['x' + (i % 4), null, 'y'])),
    ];
    for (const xs of lists) {
      const type = new List(new Field('item', new Utf8(), true));
      const text = (l: (string | null)[] | null) => (l === null ? '\\N' : `{${l.map((e) => (e === null ? 'NULL' : /[,"]/.test(e) ? `"${e.replace(/"/g, '\\\\"')}"` : e)).join(',')}}`);
      // The element slots that hold values are found with the levels (leafOf): a range starts mid-column.
      for (const [from, to] of [[0, 300], [7, 251], [143, 144]] as const) {
        const bytes = await file([spec('l', 1009)], [col(type, xs)], 'zstd', from, to);
        expect(await rows(bytes)).toEqual(xs.slice(from, to).map(text));
      }
    }
  });
});
