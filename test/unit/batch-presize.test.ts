import { describe, expect, it } from 'vitest';
import { BatchBuilder, type PlainColumn } from '../../lib/format/arrow/columns.js';
import { columnSpec, OID, type PgColumn } from '../../lib/format/arrow/pgtypes.js';
import { parquetSpec } from '../../lib/format/parquet/schema.js';
import { TRAILER, binaryHeader, int4, rowChunk, tuple } from './copy-bytes.js';

// A builder's first batch is presized from its first 1/16 of maxBytes once maxBytes ≥ 1 MiB
// (BatchBuilder#presize). The columns must be the same as when they grow by doubling.
const col = (name: string, oid: number): PgColumn => ({ name, pgType: '', oid, typmod: -1 });
const COLUMNS = [col('id', OID.int4), col('flag', OID.bool), col('t', OID.text), col('a', 1009 /* text[] */)];

/** text[] with a NULL element, as array_send writes it. */
function textArray(values: (string | null)[]): Buffer {
  const parts = [int4(1), int4(values.includes(null) ? 1 : 0), int4(OID.text), int4(values.length), int4(1)];
  for (const v of values) parts.push(v === null ? int4(-1) : int4(Buffer.byteLength(v)), v === null ? Buffer.alloc(0) : Buffer.from(v));
  return Buffer.concat(parts);
}

/** Rows whose values grow longer as they go (so the extrapolation falls short and doubling must take over). */
function row(i: number): Buffer {
  return tuple([
    i % 5 === 0 ? null : int4(i),
    i % 7 === 0 ? null : Buffer.from([i % 2]),
    i % 3 === 0 ? null : Buffer.from(`v${i}`.repeat(1 + Math.floor(i / 1500))),
    i % 11 === 0 ? null : textArray([`a${i % 10}`, null, 'c'.repeat(i % 4)]),
  ]);
}

/** Every batch's plain columns, flattened to bytes, fed in chunks of 50 rows. */
function build(maxBytes: number, rows: number): Buffer[] {
  const b = new BatchBuilder(COLUMNS.map((c) => parquetSpec(columnSpec(c))), { maxBytes, maxRows: 1 << 20, layout: 'plain', reuseBuffers: true });
  const msgs = Array.from({ length: rows }, (_, i) => row(i));
  msgs[0] = Buffer.concat([binaryHeader(), msgs[0]!]);
  msgs.push(TRAILER);
  const out: Buffer[] = [];
  const flat = (c: PlainColumn): Buffer[] => [
    Buffer.from(`${c.length}/${c.nulls}`), Buffer.from(c.validity ?? []), Buffer.from(c.values),
    Buffer.from(c.offsets ? new Uint8Array(c.offsets.buffer, c.offsets.byteOffset, c.offsets.byteLength) : []), ...(c.child ? flat(c.child) : []),
  ];
  const take = () => {
    const t = b.takePlain();
    if (t) out.push(Buffer.concat(t.columns.flatMap(flat)));
  };
  for (let s = 0; s < msgs.length; s += 50) {
    const rc = rowChunk(msgs.slice(s, s + 50));
    for (let i = 0; i < rc.rowEnds.length;) {
      i = b.feed(rc.data, rc.rowEnds, i);
      if (b.full) take();
    }
  }
  take();
  return out;
}

describe('BatchBuilder first-batch presizing', () => {
  it('builds the same columns as a builder that grows by doubling', () => {
    // ≈ 390 KB of COPY: one batch under either limit; only the 1 MiB one is presized (at 64 KiB).
    const presized = build(1 << 20, 9000);
    const doubled = build((1 << 20) - 1, 9000);
    expect(presized).toHaveLength(1);
    expect(presized[0]!.length).toBeGreaterThan(300_000);
    expect(presized[0]!.equals(doubled[0]!)).toBe(true);
  });

  it('keeps later batches (in the first batch\'s buffers) the same', () => {
    // Three batches of ≈ 1 MiB: the first presized, the next ones in its reused buffers.
    const presized = build(1 << 20, 60000);
    const doubled = build((1 << 20) - 1, 60000);
    expect(presized.length).toBeGreaterThanOrEqual(3);
    // The limits differ by a byte: no row of these ends the batch between them.
    expect(presized.length).toBe(doubled.length);
    presized.forEach((p, k) => expect(p.equals(doubled[k]!), `batch ${k}`).toBe(true));
  });
});
