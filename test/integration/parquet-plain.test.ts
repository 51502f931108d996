import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordBatch } from 'apache-arrow';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { BatchBuilder } from '../../lib/format/arrow/columns.js';
import type { ColumnSpec, PgColumn } from '../../lib/format/arrow/pgtypes.js';
import { encodePlainRowGroup, EncoderScratch, encodeRowGroup, type EncodedRowGroup } from '../../lib/format/parquet/encode.js';
import { columnSpec } from '../../lib/format/arrow/pgtypes.js';
import { parquetSpec } from '../../lib/format/parquet/schema.js';
import { ParquetSegmentWriter, type ParquetSegmentWriterOptions } from '../../lib/format/parquet/segment-writer.js';
import { pageCodec, type PageCodec, type ParquetCompression } from '../../lib/format/parquet/codecs.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import type { RowChunk } from '../../lib/pg/copy-out.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { DDL, DEMOTING_ROWS, EDGE_ROWS, GEN_SELECT } from '../helpers/arrow-types.js';
import { MemoryStore } from '../unit/mem-store.js';

// The Parquet writer builds its columns in the `plain` layout (values already PLAIN) and
// encodes them with encodePlainRowGroup; before, it built Arrow columns and encoded them with
// encodeRowGroup. Objects must stay byte for byte the same: this writes real COPY BINARY of
// every mapped type (edge values, values that fall back to text, a fallback type, lists) and of
// dictionaries given up mid-group, through both, at one object and at a small cap (row groups
// split by rows, several objects), and compares the stored objects.

let server: PgServer;

/** The writer as it was: Arrow columns, encodeRowGroup (the protected steps overridden). */
class ArrowPathWriter extends ParquetSegmentWriter {
  readonly #compression: ParquetCompression;
  #codec: PageCodec | undefined;
  /** Kept per writer, as the writer keeps its own: both choose each column's codec from the same history. */
  readonly #scratch = new EncoderScratch();
  constructor(o: ParquetSegmentWriterOptions) {
    super(o);
    this.#compression = o.compression ?? 'zstd';
  }
  protected override async prepare(): Promise<void> {
    await super.prepare();
    this.#codec ??= await pageCodec(this.#compression);
  }
  protected override newBuilder(columns: PgColumn[]): BatchBuilder {
    const b = super.newBuilder(columns);
    return new BatchBuilder(b.specs, { maxRows: b.maxRows, maxBytes: b.maxBytes, reuseBuffers: true });
  }
  protected override takePart(b: BatchBuilder, specs: ColumnSpec[]): never {
    const built = b.take();
    return (built && { part: { batch: built.batch, specs, from: 0, to: built.rows }, generation: built.generation }) as never;
  }
  protected override encode(p: never): never {
    const q = p as { batch: RecordBatch; specs: ColumnSpec[]; from: number; to: number };
    return { ...encodeRowGroup(q.batch, q.specs, q.from, q.to, this.#codec!, this.#scratch), specs: q.specs } as never;
  }
}

/** COPY BINARY of a query, with its columns, cut into chunks of `perChunk` rows (header in the first, trailer in the last). */
async function copyOf(table: string, select: string): Promise<{ columns: PgColumn[]; chunks: RowChunk[] }> {
  const c = new pg.Client({ connectionString: server.url() });
  await c.connect();
  try {
    await c.query("SET TimeZone = 'UTC'");
    const desc = await c.query(`SELECT * FROM ${table} LIMIT 0`);
    const columns = desc.fields.map((f) => ({ name: f.name, pgType: '', oid: f.dataTypeID, typmod: f.dataTypeModifier }));
    const parts: Buffer[] = [];
    for await (const b of c.query(pgCopy.to(`COPY (${select}) TO STDOUT (FORMAT binary)`))) parts.push(b as Buffer);
    return { columns, chunks: cut(Buffer.concat(parts), 97) };
  } finally {
    await c.end();
  }
}

function cut(copy: Buffer, perChunk: number): RowChunk[] {
  const out: RowChunk[] = [];
  let p = 19 + copy.readUInt32BE(15);
  let start = 0;
  let ends: number[] = [];
  for (;;) {
    const nf = copy.readInt16BE(p);
    p += 2;
    if (nf === -1) break;
    for (let f = 0; f < nf; f++) p += 4 + Math.max(0, copy.readInt32BE(p));
    ends.push(p);
    if (ends.length === perChunk) {
      out.push({ data: copy.subarray(start, p), rowEnds: Uint32Array.from(ends, (e) => e - start) });
      start = p;
      ends = [];
    }
  }
  ends.push(p);
  out.push({ data: copy.subarray(start, p), rowEnds: Uint32Array.from(ends, (e) => e - start) });
  return out;
}

async function objects(W: typeof ParquetSegmentWriter, src: { columns: PgColumn[]; chunks: RowChunk[] }, cap: number, rowGroupBytes: number, compression: ParquetCompression): Promise<Map<string, Buffer>> {
  const store = new MemoryStore();
  const w = new W({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap, table: 'public.t', node: 'dn1', compression, rowGroupBytes });
  await w.begin({ columns: src.columns });
  for (const c of src.chunks) await w.write(c);
  await w.finish();
  return store.objects;
}

beforeAll(async () => {
  [server] = await startServers(['pqplain']);
  await server.query(`${DDL('alltypes', true)}; CREATE TABLE dict (id int4, s text, big text)`);
  await server.query(`INSERT INTO alltypes VALUES ${EDGE_ROWS.map((r) => r.replace(/\)\s*$/, ', NULL)')).join(',\n')}`);
  await server.query(`INSERT INTO alltypes SELECT *, NULL FROM (${GEN_SELECT} FROM generate_series(100, 2099) g) x`);
  await server.query(`UPDATE alltypes SET inet_col = ('10.' || (id % 250) || '.0.1/24')::inet WHERE id % 5 <> 0`);
  await server.query(`INSERT INTO alltypes VALUES ${DEMOTING_ROWS.map((r) => r.replace(/\)\s*$/, ", '::1')")).join(',\n')}`);
  await server.query(`INSERT INTO alltypes SELECT *, NULL FROM (${GEN_SELECT} FROM generate_series(3000, 3999) g) x`);
  // s: ten values, then all distinct past half the values (the dictionary given up after the
  // probe); big: distinct values past 1 MiB (given up part-way); NULLs among them.
  await server.query(`INSERT INTO dict SELECT g, CASE WHEN g % 11 = 0 THEN NULL WHEN g < 6000 THEN 'k' || (g % 10) ELSE 'd' || g END,
    CASE WHEN g % 13 = 0 THEN NULL ELSE repeat('ü', 150) || (g % 5000) END FROM generate_series(1, 20000) g`);
});

afterAll(async () => {
  await server?.destroy();
});

describe('Parquet objects from the plain layout', () => {
  it('encode any row range of a group as the Arrow path does (split groups: ranges not on byte boundaries, NULLs before them)', async () => {
    const src = await copyOf('alltypes', 'SELECT id, i2, i4, i8, f4, f8, n, n12, n38, n40, b, t, vc, ch, nm, by, d, ts, tstz, tm, iv, u, j, jb, a_i4, a_t, a_n, a_ts, a_f8, a_b, a_u, a_by, a_jb, a_d, a_iv, a_i8, inet_col::text FROM alltypes WHERE id < 600');
    const codec = await pageCodec('none');
    const build = (layout: 'arrow' | 'plain') => {
      const b = new BatchBuilder(src.columns.map((c) => parquetSpec(columnSpec(c))), { maxRows: 1 << 20, maxBytes: 1 << 30, layout });
      for (const c of src.chunks) for (let i = 0; i < c.rowEnds.length;) i = b.feed(c.data, c.rowEnds, i);
      return b;
    };
    const a = build('arrow');
    const p = build('plain');
    const specs = a.specs;
    expect(p.specs).toEqual(specs);
    const arrow = a.take()!;
    const plain = p.takePlain()!;
    const n = arrow.rows;
    expect(plain.rows).toBe(n);
    const pages = (g: EncodedRowGroup) => Buffer.concat(g.chunks.flatMap((c) => c.pages));
    for (const [from, to] of [[0, n], [1, n], [0, n - 3], [3, 11], [5, 6], [Math.floor(n / 3), Math.floor(n / 2) + 7], [n - 1, n]] as const) {
      const x = encodeRowGroup(arrow.batch, specs, from, to, codec);
      const y = encodePlainRowGroup(plain.columns, specs, from, to, codec);
      expect(pages(y).equals(pages(x)), `rows ${from}..${to}`).toBe(true);
      expect(y.chunks.map((c) => c.stats)).toEqual(x.chunks.map((c) => c.stats));
    }
  });

  for (const [table, select] of [
    ['alltypes', 'SELECT id, i2, i4, i8, f4, f8, n, n12, n38, n40, b, t, vc, ch, nm, by, d, ts, tstz, tm, iv, u, j, jb, a_i4, a_t, a_n, a_ts, a_f8, a_b, a_u, a_by, a_jb, a_d, a_iv, a_i8, inet_col::text FROM alltypes'],
    ['dict', 'SELECT * FROM dict'],
  ] as const) {
    it(`are byte-identical to the Arrow path's: ${table}, one object and a small cap, zstd and none`, async () => {
      const src = await copyOf(table, select);
      for (const [cap, groupBytes, compression] of [[64 << 20, 32 << 20, 'zstd'], [96 << 10, 24 << 10, 'none'], [40 << 10, 40 << 10, 'zstd']] as const) {
        const a = await objects(ParquetSegmentWriter, src, cap, groupBytes, compression);
        const b = await objects(ArrowPathWriter, src, cap, groupBytes, compression);
        expect([...a.keys()]).toEqual([...b.keys()]);
        for (const [k, v] of a) expect(v.equals(b.get(k)!), `${table} ${cap} ${compression} ${k}`).toBe(true);
        if (cap < 1 << 20) expect(a.size).toBeGreaterThan(1);
      }
    });
  }
});
