// Arrow body compression (lib/format/arrow-codecs.ts): ZSTD and LZ4_FRAME bodies whose 8-byte
// prefixes hold the uncompressed length (Arrow format, Message.fbs BodyCompressionMethod.BUFFER),
// each buffer decoded by the reference CLI, and read back by apache-arrow.
import { execFileSync } from 'node:child_process';
import {
  CompressionType, MessageHeader, MessageReader, RecordBatchStreamWriter, tableFromArrays, tableFromIPC, type RecordBatch as RB,
} from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { registerArrowCodecs } from '../../lib/format/arrow-codecs.js';

const CODECS = [
  ['ZSTD', CompressionType.ZSTD, '/usr/bin/zstd', 0.5],
  ['LZ4_FRAME', CompressionType.LZ4_FRAME, '/usr/bin/lz4', 0.6],
] as const;

describe.each(CODECS)('Arrow %s body compression', (_name, type, cli, ratio) => {
  it('every compressed body buffer starts with its uncompressed length and decodes with the CLI; apache-arrow reads the rows back', async () => {
    await registerArrowCodecs();
    const n = 20000;
    const t = tableFromArrays({
      id: Int32Array.from({ length: n }, (_, i) => i),
      v: Float64Array.from({ length: n }, (_, i) => (i % 17) * 0.5),
      s: Array.from({ length: n }, (_, i) => `row ${i % 100}`),
    });
    const w = new RecordBatchStreamWriter({ compressionType: type });
    w.write(t);
    w.finish();
    const bytes = Buffer.from(await w.toUint8Array());
    const plain = Buffer.from(RecordBatchStreamWriter.writeAll(t).toUint8Array(true));
    expect(bytes.length).toBeLessThan(plain.length * ratio);

    let checked = 0;
    const reader = new MessageReader(bytes);
    for (let m = reader.readMessage(); m; m = reader.readMessage()) {
      const body = reader.readMessageBody(m.bodyLength);
      if (m.headerType !== MessageHeader.RecordBatch) continue;
      const rb = m.header() as unknown as { compression: { type: number } | null; buffers: { offset: number; length: number }[] } & Partial<RB>;
      expect(rb.compression?.type).toBe(type);
      for (const b of rb.buffers) {
        if (b.length === 0) continue;
        const region = body.subarray(b.offset, b.offset + b.length);
        const prefix = Buffer.from(region.buffer, region.byteOffset, 8).readBigInt64LE(0);
        if (prefix === -1n) continue;
        // One frame per buffer, as Message.fbs asks; the reference tool decodes it.
        const raw = execFileSync(cli, ['-dc'], { input: region.subarray(8) });
        expect(prefix).toBe(BigInt(raw.length));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(2);
    const back = tableFromIPC(bytes);
    expect(back.numRows).toBe(n);
    expect(back.getChild('s')!.get(12345)).toBe('row 45');
    expect(back.getChild('id')!.get(n - 1)).toBe(n - 1);
  });
});
