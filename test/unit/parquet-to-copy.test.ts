import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DuckDBInstance } from '@duckdb/node-api';
import { ParquetSegmentWriter } from '../../lib/format/parquet/segment-writer.js';
import { openParquetObject, type ParquetOpenOptions } from '../../lib/format/parquet/import.js';
import { footerLength, parseFooter } from '../../lib/format/parquet/reader.js';
import { bin, bool, encodeStruct, i32, i64, list, struct, type TStruct } from '../../lib/format/parquet/thrift.js';
import { writeNumeric } from '../../lib/format/arrow/pgtext.js';
import { COPY_SIGNATURE } from '../../lib/pg/copy-binary.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import type { CopyColumn } from '../../lib/segment/types.js';
import { MemoryStore } from './mem-store.js';

// Parquet import writes COPY BINARY straight from the decoded pages (lib/format/parquet/to-copy.ts).
// Each case checks those bytes against values built independently here, and against the Arrow
// path (`viaArrow`) the direct encoders replace.

const HEADER = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
const TRAILER = Buffer.from([0xff, 0xff]);

/** COPY BINARY of an object: direct (default), through Arrow data, or as it chunks. */
async function copyOf(bytes: Buffer, opts: ParquetOpenOptions = {}): Promise<{ data: Buffer; rows: number; format: string; chunks: number }> {
  const o = await openParquetObject({
    size: bytes.length,
    range: async (s, e) => bytes.subarray(s, e),
    stream: () => Readable.from([bytes.subarray(0, 333), bytes.subarray(333)]),
  }, opts);
  const out: Buffer[] = [];
  for await (const c of o.chunks()) out.push(c);
  return { data: Buffer.concat(out), rows: o.rows, format: o.format, chunks: out.length };
}

const be = (n: number, f: (b: Buffer, v: never) => void, v: unknown) => { const b = Buffer.alloc(n); f(b, v as never); return b; };
const i2 = (v: number) => be(2, (b, x: number) => b.writeInt16BE(x), v);
const i4 = (v: number) => be(4, (b, x: number) => b.writeInt32BE(x), v);
const i8 = (v: bigint) => be(8, (b, x: bigint) => b.writeBigInt64BE(x), v);
const f4 = (v: number) => be(4, (b, x: number) => b.writeFloatBE(x), v);
const f8 = (v: number) => be(8, (b, x: number) => b.writeDoubleBE(x), v);
function numeric(unscaled: bigint, scale: number): Buffer {
  const b = Buffer.alloc(64);
  const neg = unscaled < 0n;
  return b.subarray(0, writeNumeric(b, 0, neg, (neg ? -unscaled : unscaled).toString(), scale));
}
/** A one-dimensional array of `oid` elements (already in binary form). */
function array(oid: number, elems: (Buffer | null)[]): Buffer {
  if (elems.length === 0) return Buffer.concat([i4(0), i4(0), i4(oid)]);
  return Buffer.concat([i4(1), i4(elems.includes(null) ? 1 : 0), i4(oid), i4(elems.length), i4(1), ...elems.map(field)]);
}
const field = (f: Buffer | null) => (f === null ? i4(-1) : Buffer.concat([i4(f.length), f]));
const tuple = (fields: (Buffer | null)[]) => Buffer.concat([i2(fields.length), ...fields.map(field)]);

const COLUMNS: CopyColumn[] = [
  ['id', 'bigint', 20], ['s', 'smallint', 21], ['k', 'integer', 23], ['r', 'real', 700], ['f', 'double precision', 701],
  ['flag', 'boolean', 16], ['day', 'date', 1082], ['ts', 'timestamp without time zone', 1114], ['tz', 'timestamp with time zone', 1184],
  ['t', 'time without time zone', 1083], ['u', 'uuid', 2950], ['amount', 'numeric(14,2)', 1700], ['big', 'numeric(38,10)', 1700],
  ['name', 'text', 25], ['tags', 'text[]', 1009], ['ints', 'integer[]', 1007], ['doc', 'jsonb', 3802], ['raw', 'bytea', 17],
].map(([name, pgType, oid]) => ({
  name: name as string, pgType: pgType as string, oid: oid as number,
  typmod: pgType === 'numeric(14,2)' ? ((14 << 16) | 2) + 4 : pgType === 'numeric(38,10)' ? ((38 << 16) | 10) + 4 : -1,
}));

const UTF8 = ['plain', 'üñíçødé', '✓ done', '漢字かな', '🙂 emoji', ''];

/** Row i of the round trip, as the server would send it. */
function row(i: number): (Buffer | null)[] {
  const nul = (m: number, v: Buffer) => (i % m === 0 ? null : v);
  const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0];
  return [
    i8(BigInt(i) * 1_000_000_007n - 3n),
    i2((i % 65536) - 32768),
    nul(5, i4(i % 3 === 0 ? 42 : -i)), // few distinct: a dictionary
    f4(i % 10 === 0 ? special[(i / 10) % 4]! : i / 8),
    nul(9, f8(i % 11 === 0 ? special[(i / 11) % 4]! : i * 1.5e-3)),
    nul(4, Buffer.from([i % 3 === 0 ? 1 : 0])),
    i4((i % 4000) - 2000), // days around 2000-01-01
    i8(BigInt(i) * 86_400_000_123n - 10n ** 15n),
    nul(6, i8(BigInt(i) * 3_600_000_001n)),
    i8(BigInt(i % 86400) * 1_000_000n + 7n),
    Buffer.from(`${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}0000400080001234${i.toString(16).padStart(8, '0')}`, 'hex'),
    nul(7, numeric(BigInt((i * 7919) % 100_000_000) * (i % 2 ? -1n : 1n), 2)),
    numeric((10n ** 30n + BigInt(i) * 12_345_678_901_234_567n) * (i % 3 ? 1n : -1n), 10), // past 2^53
    nul(8, Buffer.from(`${UTF8[i % UTF8.length]} ${i % 13}`)),
    i % 10 === 0 ? null : array(25, i % 10 === 5 ? [] : [Buffer.from(`a${i % 3}`), null, Buffer.from(UTF8[i % UTF8.length]!)]),
    nul(12, array(23, Array.from({ length: i % 4 }, (_, k) => (k === 1 ? null : i4(i + k))))),
    nul(3, Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify({ i, s: UTF8[i % UTF8.length] }))])),
    nul(2, Buffer.from(Array.from({ length: i % 40 }, (_, k) => (i + k) & 0xff))),
  ];
}

describe('Parquet import: COPY BINARY straight from the pages', () => {
  it('gives back the exact COPY BINARY rows segferry exported (every type, NULLs, dictionaries, several row groups and windows)', async () => {
    const store = new MemoryStore();
    const w = new ParquetSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 64 << 20, table: 'public.t', node: 'dn1', compression: 'zstd', rowGroupBytes: 40_000 });
    const rows = Array.from({ length: 2500 }, (_, i) => tuple(row(i)));
    const input = Buffer.concat([HEADER, ...rows, TRAILER]);
    // Row ends as the COPY reader gives them: the header in the first row, the trailer its own.
    let at = HEADER.length;
    const rowEnds = Uint32Array.from([...rows, TRAILER], (r) => (at += r.length));
    await w.begin({ columns: COLUMNS });
    await w.write({ data: input, rowEnds } as never);
    const [stored] = await w.finish();
    const obj = store.objects.get(stored!.key)!;
    const meta = parseFooter(obj.subarray(obj.length - 8 - footerLength(obj.subarray(obj.length - 8), obj.length), obj.length - 8), obj.length);
    expect(meta.groups.length).toBeGreaterThan(3);
    // Small windows: a row group's rows go out in many chunks, the encoders resuming mid-column.
    const direct = await copyOf(obj, { chunkBytes: 4096 });
    expect(direct.format).toBe('binary');
    expect(direct.rows).toBe(rows.length);
    expect(direct.chunks).toBeGreaterThan(50);
    expect(direct.data.equals(input)).toBe(true);
    expect((await copyOf(obj, { viaArrow: true })).data.equals(input)).toBe(true);
  });

  it('reads a dictionary page, dictionary-encoded pages, a fall back to PLAIN mid-chunk and a data page v2, with NULLs and multi-byte UTF-8', async () => {
    const file = handMadeFile();
    const expected = Buffer.concat([HEADER, ...HAND_ROWS.map(([k, s]) => tuple([k === null ? null : i4(k), s === null ? null : Buffer.from(s)])), TRAILER]);
    const direct = await copyOf(file, { foreign: true, format: 'binary', chunkBytes: 64 });
    expect(direct.rows).toBe(HAND_ROWS.length);
    expect(direct.data.equals(expected)).toBe(true);
    expect((await copyOf(file, { foreign: true, format: 'binary', viaArrow: true })).data.equals(expected)).toBe(true);
  });

  it('reads Parquet written by DuckDB (bare objects: decimals, lists, dictionaries, several pages) as the Arrow path does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sf-pq-duck-'));
    const inst = await DuckDBInstance.create(':memory:');
    const duck = await inst.connect();
    try {
      const f = join(dir, 'duck.parquet');
      await duck.run(`COPY (SELECT i AS id, i::BIGINT * 1000003 AS big, (i / 100)::DECIMAL(12,2) AS amount, (i::BIGINT * 1000003)::DECIMAL(18,3) AS wide,
        (i % 1000)::DECIMAL(4,1) AS small, CASE WHEN i % 9 = 0 THEN NULL ELSE ['plain', 'üñíçødé', '漢字', '🙂'][i % 4 + 1] || (i % 5) END AS few,
        CASE WHEN i % 7 = 0 THEN NULL ELSE 'row ' || i || ' ✓' END AS many, DATE '2000-01-01' + i AS day, TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND AS ts,
        i % 2 = 0 AS flag, i / 3 AS ratio, CASE WHEN i % 11 = 0 THEN NULL ELSE [i, NULL, i + 1] END AS ints, ['a' || (i % 3), NULL] AS texts
        FROM (SELECT i::INTEGER AS i FROM range(1, 30001) t(i))) TO '${f}' (FORMAT parquet, ROW_GROUP_SIZE 10000)`);
      const file = await readFile(f);
      const direct = await copyOf(file, { foreign: true, format: 'binary', chunkBytes: 100_000 });
      expect(direct.rows).toBe(30000);
      const arrow = await copyOf(file, { foreign: true, format: 'binary', viaArrow: true });
      expect(direct.data.equals(arrow.data)).toBe(true);
      // An independent spot check: the tuple of row 7 (few = 'üñíçødé2', many NULL).
      const seven = tuple([i4(7), i8(7n * 1000003n), numeric(7n, 2), numeric(7000021000n, 3), numeric(70n, 1), Buffer.from('🙂2'), null,
        i4(7 + 10957 - 10957), i8(BigInt(20 * 365 + 5) * 86_400_000_000n + 7_000_000n), Buffer.from([0]), f8(2.3333333333333335),
        array(23, [i4(7), null, i4(8)]), array(25, [Buffer.from('a1'), null])]);
      expect(direct.data.includes(seven)).toBe(true);
    } finally {
      duck.closeSync();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---- A Parquet file built page by page (parquet.thrift, Encodings.md) ----

/** Rows of the hand-made file: an optional INT32 and an optional UTF-8 column. */
const HAND_ROWS: [number | null, string | null][] = [
  [7, 'äöü'], [null, '✓ ok'], [-1, null], [7, 'äöü'], [100000, ''], [7, '✓ ok'], // dictionary page + RLE_DICTIONARY
  [5, 'plain ü'], [null, null], [-2147483648, '漢字'], [2147483647, 'x'], [0, '🙂'], // PLAIN after the dictionary
  [1, 'v2 page'], [null, 'ß'], [2, null], [3, 'end ✓'], // data page v2, PLAIN
];

/** RLE/bit-packed hybrid, all bit-packed. */
function hybrid(v: number[], width: number): Buffer {
  const groups = Math.ceil(v.length / 8);
  const out = Buffer.alloc(1 + groups * width);
  out[0] = (groups << 1) | 1;
  let bit = 8;
  for (let k = 0; k < groups * 8; k++, bit += width) {
    const x = v[k] ?? 0;
    for (let b = 0; b < width; b++) if ((x >> b) & 1) out[(bit + b) >> 3]! |= 1 << ((bit + b) & 7);
  }
  return out;
}
const u32le = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const plain = (v: (number | string)[]) => Buffer.concat(v.map((x) => (typeof x === 'number' ? be(4, (b, y: number) => b.writeInt32LE(y), x) : Buffer.concat([u32le(Buffer.byteLength(x)), Buffer.from(x)]))));

function handMadeFile(): Buffer {
  const parts: Buffer[] = [Buffer.from('PAR1')];
  let at = 4;
  const push = (b: Buffer) => { parts.push(b); at += b.length; };
  const page = (header: TStruct, body: Buffer) => push(Buffer.concat([Buffer.from(encodeStruct(header)), body]));
  const v1 = (values: (number | string | null)[], body: Buffer, enc: number) => {
    const def = hybrid(values.map((x) => (x === null ? 0 : 1)), 1);
    const b = Buffer.concat([u32le(def.length), def, body]);
    page({ 1: i32(0), 2: i32(b.length), 3: i32(b.length), 5: struct({ 1: i32(values.length), 2: i32(enc), 3: i32(3), 4: i32(3) }) }, b);
  };
  const chunks: TStruct[] = [];
  for (const c of [0, 1]) {
    const vals = HAND_ROWS.map((r) => r[c]);
    const dict = c === 0 ? [7, -1, 100000] : ['äöü', '✓ ok', ''];
    const start = at;
    const d = plain(dict);
    page({ 1: i32(2), 2: i32(d.length), 3: i32(d.length), 7: struct({ 1: i32(dict.length), 2: i32(0) }) }, d);
    const dataStart = at;
    const first = vals.slice(0, 6);
    const ids = first.filter((x) => x !== null).map((x) => dict.indexOf(x as never));
    v1(first, Buffer.concat([Buffer.from([2]), hybrid(ids, 2)]), 8);
    const second = vals.slice(6, 11);
    v1(second, plain(second.filter((x) => x !== null) as (number | string)[]), 0);
    const third = vals.slice(11);
    const def = hybrid(third.map((x) => (x === null ? 0 : 1)), 1);
    const body = plain(third.filter((x) => x !== null) as (number | string)[]);
    page({ 1: i32(3), 2: i32(def.length + body.length), 3: i32(def.length + body.length),
      8: struct({ 1: i32(third.length), 2: i32(third.filter((x) => x === null).length), 3: i32(third.length), 4: i32(0), 5: i32(def.length), 6: i32(0), 7: bool(false) }) },
    Buffer.concat([def, body]));
    chunks.push({ 2: i64(start), 3: struct({ 1: i32(c === 0 ? 1 : 6), 2: list('i32', [0, 3, 8]), 3: list('bin', [c === 0 ? 'k' : 's']), 4: i32(0),
      5: i64(vals.length), 6: i64(at - start), 7: i64(at - start), 9: i64(dataStart), 11: i64(start) }) });
  }
  const footer = Buffer.from(encodeStruct({
    1: i32(1),
    2: list('struct', [{ 4: bin('schema'), 5: i32(2) }, { 1: i32(1), 3: i32(1), 4: bin('k') }, { 1: i32(6), 3: i32(1), 4: bin('s'), 6: i32(0) }]),
    3: i64(HAND_ROWS.length),
    4: list('struct', [{ 1: list('struct', chunks), 2: i64(at - 4), 3: i64(HAND_ROWS.length) }]),
  }));
  push(footer);
  push(u32le(footer.length));
  push(Buffer.from('PAR1'));
  return Buffer.concat(parts);
}
