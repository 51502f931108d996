// Arrow body compression (lib/format/arrow-codecs.ts): ZSTD and LZ4_FRAME bodies whose 8-byte
// prefixes hold the uncompressed length (Arrow format, Message.fbs BodyCompressionMethod.BUFFER),
// each buffer decoded by the reference CLI, and read back by apache-arrow.
import { CompressionType, RecordBatchStreamWriter, tableFromArrays, tableFromIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { registerArrowCodecs } from '../../lib/format/arrow-codecs.js';
import { bodyBuffers, checkBodiesWithCli } from '../helpers/arrow-bodies.js';

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

    const bodies = bodyBuffers(bytes);
    expect(bodies.length).toBeGreaterThan(0);
    expect(bodies.every((b) => b.type === type)).toBe(true);
    // One frame per buffer (Message.fbs), decoded by the reference tool to the prefix's length.
    expect(checkBodiesWithCli(bytes, cli)).toBeGreaterThanOrEqual(2);
    const back = tableFromIPC(bytes);
    expect(back.numRows).toBe(n);
    expect(back.getChild('s')!.get(12345)).toBe('row 45');
    expect(back.getChild('id')!.get(n - 1)).toBe(n - 1);
  });
});
