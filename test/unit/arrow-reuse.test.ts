import { describe, expect, it } from 'vitest';
import { BatchBuilder } from '../../lib/format/arrow/columns.js';
import { IpcFileEncoder } from '../../lib/format/arrow/ipc.js';
import { columnSpec, OID, type PgColumn } from '../../lib/format/arrow/pgtypes.js';
import { TRAILER, binaryHeader, int4, rowChunk, tuple } from './copy-bytes.js';

const col = (name: string, oid: number): PgColumn => ({ name, pgType: '', oid, typmod: -1 });
const COLUMNS = [col('id', OID.int4), col('big', OID.int8), col('flag', OID.bool), col('d', OID.date), col('t', OID.text), col('a', 1009 /* text[] */)];

function int8(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(v));
  return b;
}
/** text[] as array_send writes it, without NULL elements. */
function textArray(values: string[]): Buffer {
  const parts = [int4(1), int4(0), int4(OID.text), int4(values.length), int4(1)];
  for (const v of values) parts.push(int4(Buffer.byteLength(v)), Buffer.from(v));
  return Buffer.concat(parts);
}

/** Row i: NULLs move from column to column, so a slot that held a value in one batch is NULL in the next. */
function row(i: number): Buffer {
  const nul = (c: number) => (i + c) % 3 === 0;
  return tuple([
    nul(0) ? null : int4(i * 7),
    nul(1) ? null : int8(i * 1_000_003),
    nul(2) ? null : Buffer.from([i % 2]),
    nul(0) ? null : int4(i),
    nul(1) ? null : Buffer.from(`value ${i} ${'x'.repeat(i % 40)}`),
    nul(2) ? null : textArray(Array.from({ length: i % 4 }, (_, k) => `e${i}-${k}`)),
  ]);
}

/** IPC bytes of every batch, each encoded and copied before the next rows are fed (as the segment writer does). */
function batches(reuseBuffers: boolean, rows: number): Buffer[] {
  const b = new BatchBuilder(COLUMNS.map(columnSpec), { maxRows: 301, reuseBuffers });
  const msgs = Array.from({ length: rows }, (_, i) => row(i));
  msgs[0] = Buffer.concat([binaryHeader(), msgs[0]!]);
  const rc = rowChunk([...msgs, TRAILER]);
  const out: Buffer[] = [];
  let enc: IpcFileEncoder | undefined;
  const take = () => {
    const built = b.take();
    if (!built) return;
    enc ??= new IpcFileEncoder(b.schema);
    const e = enc.batch(built.batch);
    out.push(Buffer.concat(e.chunks, e.bytes));
  };
  let i = 0;
  while (i < rc.rowEnds.length) {
    i = b.feed(rc.data, rc.rowEnds, i);
    if (b.full) take();
  }
  take();
  return out;
}

describe('BatchBuilder reuseBuffers', () => {
  // Batches of 301 rows outgrow the 1 KiB initial buffers, so later batches really reuse memory,
  // and shift the NULL pattern (period 3) from batch to batch.
  it('builds the same record batches as fresh buffers, NULL slots included, batch after batch', () => {
    const fresh = batches(false, 1450);
    const reused = batches(true, 1450);
    expect(fresh.length).toBe(5);
    expect(reused.map((x) => x.toString('hex'))).toEqual(fresh.map((x) => x.toString('hex')));
  });
});
