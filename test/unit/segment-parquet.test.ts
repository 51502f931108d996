import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { ParquetSegmentWriter } from '../../lib/format/parquet/segment-writer.js';
import { openParquetObject } from '../../lib/format/parquet/import.js';
import { footerLength, parseFooter } from '../../lib/format/parquet/reader.js';
import { snappyCompress, snappyDecompress } from '../../lib/format/parquet/snappy.js';
import { encodeStruct, ThriftReader, i32, i64, list, struct, bin } from '../../lib/format/parquet/thrift.js';
import { COPY_SIGNATURE } from '../../lib/pg/copy-binary.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import type { CopyColumn } from '../../lib/segment/types.js';
import { codeOf, codeOfAsync } from './error-code.js';
import { MemoryStore } from './mem-store.js';

// id int8, name text, tags int4[], amount numeric(12,2): rows as the server sends them.
const COLUMNS: CopyColumn[] = [
  { name: 'id', pgType: 'bigint', oid: 20, typmod: -1 },
  { name: 'name', pgType: 'text', oid: 25, typmod: -1 },
  { name: 'tags', pgType: 'integer[]', oid: 1007, typmod: -1 },
];

function i4array(v: (number | null)[] | null): Buffer | null {
  if (v === null) return null;
  const parts = [Buffer.alloc(12)];
  parts[0]!.writeInt32BE(v.length === 0 ? 0 : 1, 0);
  parts[0]!.writeInt32BE(v.includes(null) ? 1 : 0, 4);
  parts[0]!.writeInt32BE(23, 8);
  if (v.length > 0) {
    const dim = Buffer.alloc(8);
    dim.writeInt32BE(v.length, 0);
    dim.writeInt32BE(1, 4);
    parts.push(dim);
    for (const x of v) {
      const f = Buffer.alloc(x === null ? 4 : 8);
      f.writeInt32BE(x === null ? -1 : 4, 0);
      if (x !== null) f.writeInt32BE(x, 4);
      parts.push(f);
    }
  }
  return Buffer.concat(parts);
}

interface Row { id: bigint; name: string | null; tags: (number | null)[] | null }

function rowOf(i: number): Row {
  return {
    id: BigInt(i) * 1_000_003n - 7n,
    name: i % 11 === 0 ? null : `name ${i % 37} ${'x'.repeat(i % 13)}`,
    tags: i % 7 === 0 ? null : i % 5 === 0 ? [] : [i, null, -i],
  };
}

function binaryCopy(rows: Row[]): { data: Buffer; rowEnds: Uint32Array } {
  const header = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
  const msgs = rows.map((r) => {
    const fields: (Buffer | null)[] = [Buffer.alloc(8), r.name === null ? null : Buffer.from(r.name), i4array(r.tags)];
    fields[0]!.writeBigInt64BE(r.id, 0);
    const parts: Buffer[] = [Buffer.alloc(2)];
    parts[0]!.writeInt16BE(fields.length, 0);
    for (const f of fields) {
      const l = Buffer.alloc(4);
      l.writeInt32BE(f === null ? -1 : f.length, 0);
      parts.push(l);
      if (f) parts.push(f);
    }
    return Buffer.concat(parts);
  });
  msgs[0] = Buffer.concat([header, msgs[0]!]);
  msgs.push(Buffer.from([0xff, 0xff]));
  const ends = new Uint32Array(msgs.length);
  let at = 0;
  msgs.forEach((m, i) => { at += m.length; ends[i] = at; });
  return { data: Buffer.concat(msgs), rowEnds: ends };
}

/** COPY TEXT lines of an object, read back through the import path. */
async function readBack(bytes: Buffer): Promise<string[]> {
  const o = await openParquetObject({
    size: bytes.length,
    range: async (s, e) => bytes.subarray(s, e),
    stream: () => Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
  }, { format: 'text' });
  const out: Buffer[] = [];
  for await (const c of o.chunks()) out.push(c);
  return Buffer.concat(out).toString().split('\n').filter((l) => l !== '');
}

function textOf(r: Row): string {
  const tags = r.tags === null ? '\\N' : `{${r.tags.map((x) => (x === null ? 'NULL' : String(x))).join(',')}}`;
  return `${r.id}\t${r.name ?? '\\N'}\t${tags}`;
}

describe('Parquet segment writer', () => {
  // The second case puts more than 15 row groups in an object (a longer Thrift list header).
  for (const [compression, cap, rowGroupBytes] of [['none', 16 * 1024, 2048], ['snappy', 24 * 1024, 400]] as const) {
    it(`cuts rows into objects under the cap that read back exactly (${compression}, cap ${cap}, row groups ${rowGroupBytes})`, async () => {
      const store = new MemoryStore();
      const w = new ParquetSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap, table: 'public.t', node: 'dn1', compression, rowGroupBytes });
      const rows = Array.from({ length: 1500 }, (_, i) => rowOf(i));
      await w.begin({ columns: COLUMNS });
      const c = binaryCopy(rows);
      // Feed in two chunks split at a row end, as the COPY reader does.
      const mid = 700;
      await w.write({ data: c.data.subarray(0, c.rowEnds[mid - 1]), rowEnds: c.rowEnds.slice(0, mid) } as never);
      await w.write({ data: c.data.subarray(c.rowEnds[mid - 1]), rowEnds: c.rowEnds.slice(mid).map((e) => e - c.rowEnds[mid - 1]!) } as never);
      const stored = await w.finish();
      expect(stored.length).toBeGreaterThan(2);
      expect(stored.reduce((a, s) => a + s.rows, 0)).toBe(rows.length);
      const lines: string[] = [];
      for (const s of stored) {
        const b = store.objects.get(s.key)!;
        expect(b.length).toBe(s.bytes);
        expect(b.length).toBeLessThanOrEqual(cap);
        expect(b.subarray(0, 4).toString()).toBe('PAR1');
        const got = await readBack(b);
        if (rowGroupBytes === 400 && s.segment === 0) expect(parseFooter(b.subarray(b.length - 8 - b.readUInt32LE(b.length - 8), b.length - 8), b.length).groups.length).toBeGreaterThan(15);
        expect(got.length).toBe(s.rows);
        lines.push(...got);
      }
      expect(lines).toEqual(rows.map(textOf));
      expect(w.summary()).toEqual({ parquet: [
        { name: 'id', pgType: 'bigint', parquetType: 'INT(64,true)' },
        { name: 'name', pgType: 'text', parquetType: 'STRING' },
        { name: 'tags', pgType: 'integer[]', parquetType: 'LIST<INT(32,true)>' },
      ] });
    });
  }

  it('hands each chunk back once, only after the row group holding its rows is taken (deferRelease), also across a rebuild', async () => {
    const store = new MemoryStore();
    const w = new ParquetSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 1 << 20, table: 'public.t', node: 'dn1', compression: 'none', rowGroupBytes: 3000 });
    const rows = Array.from({ length: 400 }, (_, i) => rowOf(i));
    await w.begin({ columns: COLUMNS });
    const c = binaryCopy(rows);
    // Row 250's array has two dimensions: its column falls back to text, and the row group is
    // rebuilt from the rows it kept, some of them in earlier chunks.
    const two = Buffer.alloc(20 + 16 + 32);
    [2, 0, 23, 2, 1, 2, 1].forEach((v, k) => two.writeInt32BE(v, 4 * k));
    [1, 2, 3, 4].forEach((v, k) => { two.writeInt32BE(4, 28 + 8 * k); two.writeInt32BE(v, 32 + 8 * k); });
    const at = c.rowEnds[249]!;
    const old = c.data.subarray(at, c.rowEnds[250]);
    const arrAt = old.length - 4 - i4array(rows[250]!.tags)!.length;
    const row250 = Buffer.concat([old.subarray(0, arrAt), Buffer.from([0, 0, 0, two.length]), two]);
    const data = Buffer.concat([c.data.subarray(0, at), row250, c.data.subarray(c.rowEnds[250])]);
    const ends = Uint32Array.from(c.rowEnds, (e, k) => (k < 250 ? e : e + row250.length - old.length));
    const released: Buffer[] = [];
    // A released chunk is overwritten at once, as a reused block would be.
    expect(w.deferRelease((rc) => { released.push(rc.data); rc.data.fill(0xaa); })).toBe(3000);
    const fed: Buffer[] = [];
    for (let k = 0; k < ends.length; k += 30) {
      const from = k === 0 ? 0 : ends[k - 1]!;
      const part = Uint32Array.from(ends.slice(k, k + 30), (e) => e - from);
      const chunk = Buffer.from(data.subarray(from, from + part[part.length - 1]!)); // a block of its own
      fed.push(chunk);
      await w.write({ data: chunk, rowEnds: part } as never);
      expect(released.length).toBeLessThan(fed.length); // rows of this or an earlier chunk are still kept
    }
    const stored = await w.finish();
    expect(released.length).toBe(fed.length);
    expect(new Set(released).size).toBe(fed.length);
    const lines: string[] = [];
    for (const st of stored) lines.push(...await readBack(store.objects.get(st.key)!));
    expect(lines).toEqual(rows.map((r, i) => (i === 250 ? textOf({ ...r, tags: null }).replace(/\\N$/, '{{1,2},{3,4}}') : textOf(r))));
    expect(w.summary()).toMatchObject({ parquet: [{}, {}, { name: 'tags', demoted: true }] });
  });

  it('refuses a row larger than an empty object with ERR_ROW_TOO_LARGE', async () => {
    const store = new MemoryStore();
    const w = new ParquetSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 2048, table: 'public.t', node: 'dn1', compression: 'none' });
    await w.begin({ columns: COLUMNS });
    const big: Row = { id: 1n, name: 'y'.repeat(4000), tags: null };
    expect(await codeOfAsync(async () => { await w.write(binaryCopy([rowOf(1), big]) as never); await w.finish(); })).toBe('ERR_ROW_TOO_LARGE');
    await w.abort();
  });
});

describe('Parquet pieces', () => {
  it('snappy round-trips empty, repetitive, random and multi-block data, and refuses corrupt blocks', () => {
    const rnd = Buffer.alloc(200_000);
    for (let i = 0; i < rnd.length; i++) rnd[i] = (i * 2654435761) >>> 24;
    const rep = Buffer.from('abcabcabc-'.repeat(30_000));
    for (const b of [Buffer.alloc(0), Buffer.from('a'), rep, rnd]) {
      const c = snappyCompress(b);
      expect(Buffer.from(snappyDecompress(c, b.length)).equals(b)).toBe(true);
    }
    expect(snappyCompress(rep).length).toBeLessThan(rep.length / 10);
    const c = Buffer.from(snappyCompress(rep));
    expect(codeOf(() => snappyDecompress(c.subarray(0, c.length - 3)))).toBe('ERR_FORMAT');
    expect(codeOf(() => snappyDecompress(c, rep.length + 1))).toBe('ERR_FORMAT');
  });

  it('Thrift compact structs round-trip (ids far apart, lists, long values, i64 past 2^53)', () => {
    const u = encodeStruct({ 1: i32(-5), 2: i64(2n ** 60n + 1n), 4: bin('name'), 20: list('i32', [1, 2, 300]), 21: struct({ 1: i32(7) }), 22: list('bin', Array.from({ length: 20 }, (_, i) => `s${i}`)) });
    const r = new ThriftReader(u).struct();
    expect(r.get(1)).toBe(-5);
    expect(r.get(2)).toBe(2n ** 60n + 1n);
    expect(Buffer.from(r.get(4) as Uint8Array).toString()).toBe('name');
    expect(r.get(20)).toEqual([1, 2, 300]);
    expect((r.get(21) as Map<number, unknown>).get(1)).toBe(7);
    expect((r.get(22) as Uint8Array[]).length).toBe(20);
  });

  it('refuses files that are not Parquet, truncated footers and chunks outside the file', () => {
    expect(codeOf(() => footerLength(Buffer.from('12345678'), 100))).toBe('ERR_FORMAT');
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(1000, 0);
    Buffer.from('PAR1').copy(tail, 4);
    expect(codeOf(() => footerLength(tail, 100))).toBe('ERR_FORMAT');
    expect(codeOf(() => parseFooter(Buffer.from([0x15, 0x02, 0x19]), 100))).toBe('ERR_FORMAT');
    const meta = encodeStruct({
      1: i32(1), 2: list('struct', [{ 4: bin('schema'), 5: i32(1) }, { 1: i32(1), 3: i32(1), 4: bin('a') }]), 3: i64(1),
      4: list('struct', [{ 1: list('struct', [{ 2: i64(4), 3: struct({ 1: i32(1), 4: i32(0), 5: i64(1), 7: i64(5000), 9: i64(4) }) }]), 3: i64(1) }]),
    });
    expect(codeOf(() => parseFooter(meta, 100))).toBe('ERR_FORMAT');
    expect(parseFooter(meta, 5000 + 8 + meta.length + 4).rows).toBe(1);
  });
});
