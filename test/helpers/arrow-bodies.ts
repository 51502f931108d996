/**
 * The compressed body buffers of an Arrow IPC stream or file, as the Arrow format lays them out
 * (Message.fbs BodyCompressionMethod.BUFFER: an 8-byte little-endian uncompressed length, then
 * the codec's bytes; -1 when stored uncompressed): for tests that decode each buffer with the
 * codec's reference CLI.
 */
import { execFileSync } from 'node:child_process';
import { MessageHeader, MessageReader } from 'apache-arrow';

export interface BodyBuffer {
  /** Compression type of the record batch (apache-arrow's CompressionType), or null. */
  type: number | null;
  /** The length prefix: the uncompressed length, or -1n. */
  prefix: bigint;
  /** The bytes after the prefix: one frame of the codec, or the raw buffer when prefix is -1. */
  data: Uint8Array;
}

/** Every non-empty body buffer of every record batch in `ipc` (a stream, or a file with its magic). */
export function bodyBuffers(ipc: Uint8Array): BodyBuffer[] {
  const file = Buffer.from(ipc.buffer, ipc.byteOffset, Math.min(6, ipc.byteLength)).toString('latin1') === 'ARROW1';
  const reader = new MessageReader(file ? ipc.subarray(8) : ipc);
  const out: BodyBuffer[] = [];
  for (let m = reader.readMessage(); m; m = reader.readMessage()) {
    const body = reader.readMessageBody(m.bodyLength);
    if (m.headerType !== MessageHeader.RecordBatch) continue;
    const rb = m.header() as unknown as { compression: { type: number } | null; buffers: { offset: number; length: number }[] };
    for (const b of rb.buffers) {
      if (b.length === 0) continue;
      const region = body.subarray(b.offset, b.offset + b.length);
      if (!rb.compression) {
        out.push({ type: null, prefix: -1n, data: region });
        continue;
      }
      out.push({ type: rb.compression.type, prefix: Buffer.from(region.buffer, region.byteOffset, 8).readBigInt64LE(0), data: region.subarray(8) });
    }
  }
  return out;
}

/**
 * Checks each compressed buffer with the reference CLI (`/usr/bin/zstd` or `/usr/bin/lz4`,
 * `-dc`): returns how many were compressed, and throws when one does not decode to its prefix's length.
 */
export function checkBodiesWithCli(ipc: Uint8Array, cli: '/usr/bin/zstd' | '/usr/bin/lz4'): number {
  let n = 0;
  for (const b of bodyBuffers(ipc)) {
    if (b.prefix === -1n) continue;
    const raw = execFileSync(cli, ['-dc'], { input: b.data, maxBuffer: 1 << 28 });
    if (BigInt(raw.length) !== b.prefix) throw new Error(`${cli} -dc decoded a body buffer to ${raw.length} bytes, its prefix says ${b.prefix}`);
    n++;
  }
  return n;
}
