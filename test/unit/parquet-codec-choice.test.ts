import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Field, FixedSizeBinary, makeData, RecordBatch, Schema, Struct, Utf8, vectorFromArray } from 'apache-arrow';
import { columnSpec, type ColumnSpec } from '../../lib/format/arrow/pgtypes.js';
import { CODEC, pageCodec } from '../../lib/format/parquet/codecs.js';
import { EncoderScratch, encodeRowGroup, type EncodedRowGroup } from '../../lib/format/parquet/encode.js';
import { columnMeta, FooterBuilder, MAGIC, PARQUET_META } from '../../lib/format/parquet/file.js';
import { openParquetObject, readParquetFooter } from '../../lib/format/parquet/import.js';
import { parquetSpec } from '../../lib/format/parquet/schema.js';

// Statistics of byte arrays: every value longer than 64 bytes leaves both bounds out without
// comparing values; one short value among them makes the bounds computed (and kept when short).
// A writer's EncoderScratch chooses each column chunk's codec from what compression gained on
// that column's last measured chunk: a column zstd does not shrink is written UNCOMPRESSED,
// measured again every 16th chunk, and a file mixing codecs reads back the same rows.

const ROWS = 8192; // 128 KiB of uuids per chunk: above the 64 KiB a measurement needs
const spec = (name: string, oid: number): ColumnSpec => parquetSpec(columnSpec({ name, pgType: '', oid, typmod: -1 }));
const specs = [spec('u', 2950), spec('t', 25)];

/** Row group `g`: random uuids (or, with `compressible`, repeats of one) and a text column zstd shrinks. */
function batch(g: number, compressible = false): { batch: RecordBatch; uuids: Buffer; texts: string[] } {
  const uuids = compressible ? Buffer.alloc(16 * ROWS, g) : randomBytes(16 * ROWS);
  const texts = Array.from({ length: ROWS }, (_, i) => `row ${g}-${i} of a text column that compresses well`);
  const cols = [makeData({ type: new FixedSizeBinary(16), length: ROWS, nullCount: 0, data: uuids }), vectorFromArray(texts, new Utf8()).data[0]!];
  const fields = specs.map((s, i) => new Field(s.name, cols[i]!.type, true));
  return { batch: new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: ROWS, children: cols })), uuids, texts };
}

const hex = (b: Buffer) => b.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');

describe('Parquet per-column codec choice', () => {
  it('writes a column zstd does not shrink uncompressed from its next chunk on, retries every 16th chunk, and reads back every row', async () => {
    const codec = await pageCodec('zstd');
    const sc = new EncoderScratch();
    const groups: EncodedRowGroup[] = [];
    const expected: string[] = [];
    for (let g = 0; g < 20; g++) {
      // From group 18 on the uuids compress: the retry at group 17 sees random ones still, so
      // 18–19 stay uncompressed until the next retry (group 33).
      const b = batch(g, g >= 18);
      // Pages are views of the scratch's arena until the next group: keep copies, as a writer stores them.
      const e = encodeRowGroup(b.batch, specs, 0, ROWS, codec, sc);
      groups.push({ ...e, chunks: e.chunks.map((c) => ({ ...c, pages: c.pages.map((p) => p.slice()) })) });
      for (let i = 0; i < ROWS; i++) expected.push(`${hex(b.uuids.subarray(16 * i, 16 * i + 16))}\t${b.texts[i]}`);
    }
    const codecs = groups.map((g) => g.chunks.map((c) => c.codec));
    expect(codecs.map((c) => c[1])).toEqual(Array(20).fill(CODEC.ZSTD)); // text always pays
    expect(codecs.map((c) => c[0])).toEqual([CODEC.ZSTD, ...Array(15).fill(CODEC.UNCOMPRESSED), CODEC.ZSTD, CODEC.UNCOMPRESSED, CODEC.UNCOMPRESSED, CODEC.UNCOMPRESSED]);
    expect(groups[1]!.chunks[0]!.storedBodyBytes).toBe(groups[1]!.chunks[0]!.bodyBytes);

    // One file of all groups: the footer records each chunk's codec and its size is the estimate.
    const footer = new FooterBuilder(specs, { [PARQUET_META.table]: 't', [PARQUET_META.columns]: JSON.stringify(columnMeta(specs)) });
    let at = MAGIC.length;
    for (const g of groups) { footer.add(g, at); at += g.bytes; }
    const bytes = Buffer.concat([MAGIC, ...groups.flatMap((g) => g.chunks.flatMap((c) => c.pages)), footer.footer()]);
    const range = async (s: number, e: number) => bytes.subarray(s, e);
    const meta = await readParquetFooter({ size: bytes.length, range });
    expect(meta.groups.map((g) => g.chunks.map((c) => c.codec))).toEqual(codecs);
    const o = await openParquetObject({ size: bytes.length, range, stream: () => Readable.from([bytes]) }, { format: 'text' });
    const out: Buffer[] = [];
    for await (const c of o.chunks()) out.push(c);
    expect(Buffer.concat(out).toString().split('\n').slice(0, -1)).toEqual(expected);
  });

  it('keeps compressing when a chunk is too small to judge, and never compresses with none', async () => {
    const zstd = await pageCodec('zstd');
    const none = await pageCodec('none');
    const sc = new EncoderScratch();
    const small = batch(0);
    // 100 rows of random uuids: 1.6 KB, too few bytes to say anything.
    for (let g = 0; g < 3; g++) expect(encodeRowGroup(small.batch, specs, 0, 100, zstd, sc).chunks[0]!.codec).toBe(CODEC.ZSTD);
    const sc2 = new EncoderScratch();
    for (let g = 0; g < 2; g++) expect(encodeRowGroup(small.batch, specs, 0, ROWS, none, sc2).chunks.map((c) => c.codec)).toEqual([CODEC.UNCOMPRESSED, CODEC.UNCOMPRESSED]);
  });

  it('leaves byte-array bounds out when every value is longer than 64 bytes, and computes them otherwise', async () => {
    const none = await pageCodec('none');
    const long = (i: number) => `${String(i).padStart(6, '0')} ${'x'.repeat(70)}`;
    const cases: [string[], [string, string] | undefined][] = [
      [Array.from({ length: 40 }, (_, i) => long(i)), undefined],
      // One short value: the smallest, but the largest is long, so still no bounds.
      [Array.from({ length: 40 }, (_, i) => (i === 7 ? '0' : long(i))), undefined],
      // Short values only: both bounds.
      [Array.from({ length: 40 }, (_, i) => `v${String(39 - i).padStart(2, '0')}`), ['v00', 'v39']],
    ];
    for (const [xs, want] of cases) {
      const t = [spec('t', 25)];
      const cols = [vectorFromArray(xs, new Utf8()).data[0]!];
      const fields = [new Field('t', cols[0]!.type, true)];
      const b = new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: xs.length, children: cols }));
      const st = encodeRowGroup(b, t, 0, xs.length, none).chunks[0]!.stats;
      const got = st[6] === undefined ? undefined : [Buffer.from((st[6] as { v: Uint8Array }).v).toString(), Buffer.from((st[5] as { v: Uint8Array }).v).toString()];
      expect(got).toEqual(want);
    }
  });
});
