/**
 * The columnar writers' assembly buffers (lib/format/columnar-writer.ts): where the store is
 * done with a chunk once its write resolves (`releasesWrites`, as a directory), each unit is
 * assembled into one of two buffers used in turn instead of a new one. A store here reads each
 * chunk only when its write resolves (as an asynchronous file write does), so a buffer refilled
 * while its write is in flight would store wrong bytes. Parquet's row groups are encoded
 * straight into one of two output buffers filled in turn (lib/format/parquet/encode.ts) and
 * stored from there without a copy: the same store checks that no group is encoded into the
 * bytes of the write in flight.
 */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ArrowSegmentWriter } from '../../lib/format/arrow/segment-writer.js';
import { ParquetSegmentWriter } from '../../lib/format/parquet/segment-writer.js';
import type { ParquetCompression } from '../../lib/format/parquet/codecs.js';
import { OID, type PgColumn } from '../../lib/format/arrow/pgtypes.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import type { ObjectWriter } from '../../lib/store/types.js';
import { MemoryStore } from './mem-store.js';
import { TRAILER, binaryHeader, int4, rowChunk, tuple } from './copy-bytes.js';
import { pickDigest, type ObjectDigest } from '../../lib/manifest/digest.js';

/** Takes each chunk's bytes only when its write resolves, a turn of the event loop later. */
class LateStore extends MemoryStore {
  readonly releasesWrites = true;
  /** The ArrayBuffers whose bytes were handed to write(), and the number of writes. */
  readonly buffers = new Set<ArrayBufferLike>();
  writes = 0;
  override createWriter(key: string): ObjectWriter {
    const inner = super.createWriter(key);
    return {
      write: async (chunk) => {
        this.buffers.add(chunk.buffer);
        this.writes++;
        await new Promise<void>((r) => setImmediate(r));
        await inner.write(chunk);
      },
      finish: () => inner.finish(),
      abort: () => inner.abort(),
    };
  }
}

const COLUMNS: PgColumn[] = [{ name: 'id', pgType: 'integer', oid: OID.int4, typmod: -1 }, { name: 't', pgType: 'text', oid: OID.text, typmod: -1 }];

function copyStream(n: number): { data: Buffer; rowEnds: Uint32Array } {
  const msgs = Array.from({ length: n }, (_, i) => tuple([int4(i), Buffer.from(`row ${i} ${'x'.repeat(i % 50)}`)]));
  msgs[0] = Buffer.concat([binaryHeader(), msgs[0]!]);
  return rowChunk([...msgs, TRAILER]);
}

async function exportTo(store: MemoryStore): Promise<({ key: string; rows: number } & ObjectDigest)[]> {
  const w = new ArrowSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 32 * 1024, table: 'public.t', node: 'dn1', batchRows: 100 });
  await w.begin({ columns: COLUMNS });
  await w.write(copyStream(3000));
  return (await w.finish()).map((s) => ({ key: s.key, ...pickDigest(s), rows: s.rows }));
}

async function parquetTo(store: MemoryStore, compression: ParquetCompression): Promise<({ key: string; rows: number } & ObjectDigest)[]> {
  const w = new ParquetSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 16 * 1024, table: 'public.t', node: 'dn1', rowGroupBytes: 4096, compression });
  await w.begin({ columns: COLUMNS });
  await w.write(copyStream(6000));
  return (await w.finish()).map((s) => ({ key: s.key, ...pickDigest(s), rows: s.rows }));
}

describe('columnar writer assembly buffers', () => {
  for (const compression of ['zstd', 'none', 'snappy'] as const) {
    it(`Parquet (${compression}): row groups stored from the encoder's two output buffers give a releasing store the same objects as a copying one`, async () => {
      const fresh = new MemoryStore(); // does not release writes: each group is copied
      const late = new LateStore();
      const a = await parquetTo(fresh, compression);
      const b = await parquetTo(late, compression);
      expect(a.length).toBeGreaterThan(2);
      expect(b).toEqual(a);
      for (const s of b) expect(late.objects.get(s.key)!.equals(fresh.objects.get(s.key)!)).toBe(true);
      // Dozens of row groups, each written while the next one was encoded.
      expect(late.writes).toBeGreaterThan(40);
    });
  }

  it('a releasing store gets the same objects from two buffers used in turn', async () => {
    const fresh = new MemoryStore();
    const late = new LateStore();
    const a = await exportTo(fresh);
    const b = await exportTo(late);
    expect(a.length).toBeGreaterThan(3);
    expect(b).toEqual(a);
    for (const s of b) {
      const bytes = late.objects.get(s.key)!;
      expect(bytes.equals(fresh.objects.get(s.key)!)).toBe(true);
      // The default digest: CRC-32 of the stored bytes, as zlib computes it.
      expect(s.crc32).toBe(crc32(bytes).toString(16).padStart(8, '0'));
      expect(s.sha256).toBeUndefined();
    }
    // Thirty batches and the objects' headers and footers went through two buffers (one of
    // them replaced once it outgrew the first object's small header).
    expect(late.writes).toBeGreaterThan(30);
    expect(late.buffers.size).toBeLessThanOrEqual(3);
  });
});
