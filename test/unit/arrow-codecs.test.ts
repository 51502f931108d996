// Arrow body compression (lib/format/arrow-codecs.ts): ZSTD bodies whose 8-byte prefixes hold the
// uncompressed length (Arrow format, Message.fbs BodyCompressionMethod.BUFFER), read back by
// apache-arrow.
import {
  CompressionType, MessageHeader, MessageReader, RecordBatchStreamWriter, tableFromArrays, tableFromIPC, type RecordBatch as RB,
} from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { registerArrowCodecs } from '../../lib/format/arrow-codecs.js';
import { loadZstd, ZstdFrameSplitter } from '../../lib/format/zstd.js';

describe('Arrow ZSTD body compression', () => {
  it('every compressed body buffer starts with its uncompressed length; apache-arrow reads the rows back', async () => {
    await registerArrowCodecs();
    const n = 20000;
    const t = tableFromArrays({
      id: Int32Array.from({ length: n }, (_, i) => i),
      v: Float64Array.from({ length: n }, (_, i) => (i % 17) * 0.5),
      s: Array.from({ length: n }, (_, i) => `row ${i % 100}`),
    });
    const w = new RecordBatchStreamWriter({ compressionType: CompressionType.ZSTD });
    w.write(t);
    w.finish();
    const bytes = Buffer.from(await w.toUint8Array());
    const plain = Buffer.from(RecordBatchStreamWriter.writeAll(t).toUint8Array(true));
    expect(bytes.length).toBeLessThan(plain.length / 2);

    const z = await loadZstd();
    let checked = 0;
    const reader = new MessageReader(bytes);
    for (let m = reader.readMessage(); m; m = reader.readMessage()) {
      const body = reader.readMessageBody(m.bodyLength);
      if (m.headerType !== MessageHeader.RecordBatch) continue;
      const rb = m.header() as unknown as { compression: unknown; buffers: { offset: number; length: number }[] } & Partial<RB>;
      expect(rb.compression).toBeTruthy();
      for (const b of rb.buffers) {
        if (b.length === 0) continue;
        const region = body.subarray(b.offset, b.offset + b.length);
        const prefix = Buffer.from(region.buffer, region.byteOffset, 8).readBigInt64LE(0);
        if (prefix === -1n) continue;
        const frames = new ZstdFrameSplitter().push(Buffer.from(region.subarray(8)));
        const raw = Buffer.concat(frames.map((f) => z.decompressFrame(f)));
        expect(prefix).toBe(BigInt(raw.length));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(2);
    const back = tableFromIPC(bytes);
    expect(back.numRows).toBe(n);
    expect(back.getChild('s')!.get(12345)).toBe('row 45');
    expect(back.getChild('id')!.get(n - 1)).toBe(n - 1);
  });
});
