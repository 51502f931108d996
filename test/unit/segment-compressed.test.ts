// The compressed segment writer (lib/segment/compressed.ts): cap on stored bytes, whole rows,
// every object a complete stream on its own.
import { randomBytes } from 'node:crypto';
import { crc32, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decompressChunks, type Compression } from '../../lib/format/compress.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import { COPY_BINARY_HEADER, COPY_BINARY_TRAILER } from '../../lib/pg/copy-binary.js';
import { BinarySegmentWriter } from '../../lib/segment/binary.js';
import { CompressedSegmentWriter } from '../../lib/segment/compressed.js';
import type { StoredSegment } from '../../lib/segment/types.js';
import { codeOfAsync } from './error-code.js';
import { MemoryStore, chunk } from './mem-store.js';

async function inflate(codec: Compression, b: Buffer): Promise<Buffer> {
  if (codec === 'gzip') return gunzipSync(b);
  const out: Buffer[] = [];
  for await (const c of decompressChunks(codec, [b])) out.push(c);
  return Buffer.concat(out);
}

/** Rows that compress little (hex of random bytes) or well (repeated words). */
function rows(n: number, random: boolean): string[] {
  return Array.from({ length: n }, (_, i) => `${i}\t${random ? randomBytes(24 + (i % 40)).toString('hex') : 'the same words again and again'}\n`);
}

function writer(store: MemoryStore, cap: number, compression: Compression, extra: { header?: Buffer; blockSize?: number } = {}) {
  const seen: StoredSegment[] = [];
  const w = new CompressedSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap, table: 'public.t', node: 'dn1', onStored: (s) => seen.push(s), compression, ...extra });
  return { w, seen };
}

/** Feed rows in chunks of `per` rows. */
async function feed(w: { write(rc: ReturnType<typeof chunk>): Promise<void> }, rs: string[], per: number) {
  for (let i = 0; i < rs.length; i += per) await w.write(chunk(...rs.slice(i, i + per)));
}

describe.each(['gzip', 'zstd'] as const)('compressed segment writer (%s)', (codec) => {
  it('stored objects stay within the cap, decompress alone into whole rows, and add up to the input', async () => {
    for (const random of [true, false]) {
      const store = new MemoryStore();
      const cap = 4096;
      const { w, seen } = writer(store, cap, codec);
      const rs = rows(3000, random);
      await feed(w, rs, 97);
      await w.finish();
      expect(seen.length).toBeGreaterThan(random ? 10 : 1);
      const back: string[] = [];
      let rowsSeen = 0;
      for (const s of seen) {
        const stored = store.objects.get(s.key)!;
        expect(stored.length).toBe(s.bytes);
        expect(s.bytes).toBeLessThanOrEqual(cap);
        expect(s.crc32).toBe(crc32(stored).toString(16).padStart(8, '0')); // the default digest, of the stored (compressed) bytes
        expect(s.compression).toBe(codec);
        const text = (await inflate(codec, stored)).toString();
        expect(text.endsWith('\n')).toBe(true);
        const lines = text.slice(0, -1).split('\n');
        expect(lines.length).toBe(s.rows);
        rowsSeen += s.rows;
        back.push(text);
      }
      expect(rowsSeen).toBe(rs.length);
      expect(w.totalRows).toBe(rs.length);
      expect(w.totalBytes).toBe(seen.reduce((a, s) => a + s.bytes, 0));
      expect(back.join('')).toBe(rs.join(''));
    }
  });

  it('a block over the cap on its own is split by rows', async () => {
    const store = new MemoryStore();
    const { w, seen } = writer(store, 2048, codec, { blockSize: 1024 * 1024 });
    const rs = rows(500, true);
    await feed(w, rs, 500);
    await w.finish();
    expect(seen.length).toBeGreaterThan(5);
    for (const s of seen) expect(s.bytes).toBeLessThanOrEqual(2048);
    const all = await Promise.all(seen.map((s) => inflate(codec, store.objects.get(s.key)!)));
    expect(Buffer.concat(all).toString()).toBe(rs.join(''));
  });

  it('every object starts with the csv header line', async () => {
    const store = new MemoryStore();
    const header = Buffer.from('id,v\n');
    const { w, seen } = writer(store, 2048, codec, { header });
    await feed(w, rows(800, true).map((r) => r.replace('\t', ',')), 50);
    await w.finish();
    expect(seen.length).toBeGreaterThan(2);
    for (const s of seen) {
      const text = (await inflate(codec, store.objects.get(s.key)!)).toString();
      expect(text.startsWith('id,v\n')).toBe(true);
      expect(text.split('\n').length - 2).toBe(s.rows);
    }
  });

  it('a row whose compressed form exceeds the cap is ERR_ROW_TOO_LARGE; nothing is left open', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 1024, codec);
    const big = `1\t${randomBytes(2000).toString('hex')}\n`;
    expect(await codeOfAsync(async () => { await w.write(chunk('0\tsmall\n', big)); await w.finish(); })).toBe('ERR_ROW_TOO_LARGE');
    await w.abort();
    expect(store.open.size).toBe(0);
  });

  it('a row larger than a block spans several members/frames of one object', async () => {
    const store = new MemoryStore();
    const { w, seen } = writer(store, 64 * 1024 * 1024, codec);
    const big = `1\t${'abc'.repeat(1_000_000)}\n`;
    await w.write(chunk('0\tx\n', big, '2\ty\n'));
    await w.finish();
    expect(seen).toHaveLength(1);
    expect((await inflate(codec, store.objects.get(seen[0]!.key)!)).toString()).toBe('0\tx\n' + big + '2\ty\n');
  });

  it('COPY BINARY objects hold header, whole tuples and trailer', async () => {
    const store = new MemoryStore();
    const seen: StoredSegment[] = [];
    const w = new BinarySegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap: 1500, table: 'public.t', node: 'dn1', onStored: (s) => seen.push(s) }, codec);
    // One int4 column per tuple: field count 1, length 4, value.
    const tuple = (i: number) => { const b = Buffer.alloc(10); b.writeInt16BE(1, 0); b.writeInt32BE(4, 2); b.writeInt32BE(i, 6); return b; };
    const tuples = Array.from({ length: 2000 }, (_, i) => tuple(i * 7919));
    const first = Buffer.concat([COPY_BINARY_HEADER, tuples[0]!]);
    const data = Buffer.concat([first, ...tuples.slice(1), COPY_BINARY_TRAILER]);
    const ends = new Uint32Array(tuples.length + 1);
    let at = first.length;
    ends[0] = at;
    for (let i = 1; i < tuples.length; i++) { at += 10; ends[i] = at; }
    ends[tuples.length] = data.length;
    await w.write({ data, rowEnds: ends });
    await w.finish();
    expect(seen.length).toBeGreaterThan(1);
    let n = 0;
    for (const s of seen) {
      expect(s.bytes).toBeLessThanOrEqual(1500);
      const raw = await inflate(codec, store.objects.get(s.key)!);
      expect(raw.subarray(0, COPY_BINARY_HEADER.length).equals(COPY_BINARY_HEADER)).toBe(true);
      expect(raw.subarray(raw.length - 2).equals(COPY_BINARY_TRAILER)).toBe(true);
      expect(raw.length - COPY_BINARY_HEADER.length - 2).toBe(s.rows * 10);
      n += s.rows;
    }
    expect(n).toBe(tuples.length);
  });
});
