import { describe, expect, it } from 'vitest';
import { ArrowSegmentWriter } from '../../lib/format/arrow/segment-writer.js';
import { COPY_SIGNATURE } from '../../lib/pg/copy-binary.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import type { CopyColumn } from '../../lib/segment/types.js';
import { MemoryStore } from './mem-store.js';

const COLUMNS: CopyColumn[] = [{ name: 'id', pgType: 'bigint', oid: 20, typmod: -1 }];

/** A COPY BINARY stream of int8 rows as the server frames it: header with the first row, one message per row, the trailer. */
function binaryCopy(values: bigint[]): { data: Buffer; rowEnds: Uint32Array } {
  const header = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
  const row = (v: bigint) => {
    const b = Buffer.alloc(2 + 4 + 8);
    b.writeInt16BE(1, 0);
    b.writeInt32BE(8, 2);
    b.writeBigInt64BE(v, 6);
    return b;
  };
  const msgs = values.map(row);
  msgs[0] = Buffer.concat([header, msgs[0]!]);
  const trailer = Buffer.alloc(2);
  trailer.writeInt16BE(-1, 0);
  msgs.push(trailer);
  const ends = new Uint32Array(msgs.length);
  let at = 0;
  msgs.forEach((m, i) => { at += m.length; ends[i] = at; });
  return { data: Buffer.concat(msgs), rowEnds: ends };
}

function writer(store: MemoryStore, batchRows?: number) {
  return new ArrowSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 1 << 20, table: 'public.t', node: 'dn1', ...(batchRows ? { batchRows } : {}) });
}

describe('Arrow segment writer through the SegmentWriter interface', () => {
  it('needs the columns of each read', async () => {
    await expect(writer(new MemoryStore()).begin({})).rejects.toThrow(/columns/);
  });

  it('a change of source starts a new Arrow file; each lists its source; the summary names the types', async () => {
    const store = new MemoryStore();
    const w = writer(store);
    await w.begin({ columns: COLUMNS, source: '101' });
    await w.write(binaryCopy([1n, 2n]));
    await w.begin({ columns: COLUMNS, source: '102' });
    await w.write(binaryCopy([3n]));
    const stored = await w.finish();
    expect(stored.map((s) => [s.key, s.rows, s.sources])).toEqual([['t_dn1_segment.0', 2, ['101']], ['t_dn1_segment.1', 1, ['102']]]);
    for (const s of stored) {
      const b = store.objects.get(s.key)!;
      expect(b.length).toBe(s.bytes);
      // An Arrow IPC file starts and ends with its magic.
      expect(b.subarray(0, 6).toString()).toBe('ARROW1');
      expect(b.subarray(b.length - 6).toString()).toBe('ARROW1');
    }
    expect(w.totalRows).toBe(3);
    expect(w.summary()).toEqual({ arrow: [{ name: 'id', pgType: 'bigint', arrowType: 'Int64' }] });
  });

  it('abort leaves no object', async () => {
    const store = new MemoryStore();
    const w = writer(store, 1); // one row per batch: the file is open after the first row
    await w.begin({ columns: COLUMNS });
    await w.write(binaryCopy([1n, 2n, 3n]));
    await w.abort();
    expect(store.log).toEqual(['open t_dn1_segment.0', 'abort t_dn1_segment.0']);
    expect(store.objects.size).toBe(0);
    expect(store.open.size).toBe(0);
  });
});
