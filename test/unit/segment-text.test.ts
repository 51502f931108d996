import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { AbortedError, RowTooLargeError } from '../../lib/errors.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import { TextSegmentWriter } from '../../lib/segment/text.js';
import type { StoredSegment } from '../../lib/segment/types.js';
import { MemoryStore, chunk } from './mem-store.js';

function writer(store: MemoryStore, cap: number, extra: { header?: Buffer; signal?: AbortSignal } = {}) {
  const seen: StoredSegment[] = [];
  const w = new TextSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap, table: 'public.t', node: 'dn1', onStored: (s) => seen.push(s), ...extra });
  return { w, seen };
}

const text = (store: MemoryStore) => Object.fromEntries([...store.objects].map(([k, v]) => [k, v.toString()]));

describe('TEXT segment writer', () => {
  it('rows exactly filling the cap stay in one object; one more byte starts the next', async () => {
    const store = new MemoryStore();
    const { w, seen } = writer(store, 12);
    await w.begin({});
    await w.write(chunk('aaa\n', 'bbb\n', 'ccc\n')); // 12 bytes: exactly the cap
    await w.write(chunk('d\n'));
    const stored = await w.finish();
    expect(text(store)).toEqual({ 't_dn1_segment.0': 'aaa\nbbb\nccc\n', 't_dn1_segment.1': 'd\n' });
    expect(stored.map((s) => [s.key, s.segment, s.bytes, s.rows])).toEqual([['t_dn1_segment.0', 0, 12, 3], ['t_dn1_segment.1', 1, 2, 1]]);
    expect(seen).toEqual(stored);
    // Default: CRC-32 of the stored bytes (zlib's), no SHA-256.
    expect(stored[0]!.crc32).toBe(crc32('aaa\nbbb\nccc\n').toString(16).padStart(8, '0'));
    expect(stored[0]!.sha256).toBeUndefined();
    expect([w.totalBytes, w.totalRows]).toEqual([14, 4]);
  });

  it('a row that would cross the cap starts a new object, also inside one chunk; rows under the cap share one', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 10);
    await w.begin({});
    await w.write(chunk('12345\n', '1234\n', 'ab\n', 'cd\n', 'efghij\n'));
    await w.finish();
    expect(text(store)).toEqual({ 't_dn1_segment.0': '12345\n', 't_dn1_segment.1': '1234\nab\n', 't_dn1_segment.2': 'cd\nefghij\n' });
  });

  it('the first row over the cap is RowTooLargeError, with nothing stored', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 8);
    await w.begin({});
    const err = await w.write(chunk('123456789\n')).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RowTooLargeError);
    expect((err as RowTooLargeError).code).toBe('ERR_ROW_TOO_LARGE');
    expect((err as RowTooLargeError).rowBytes).toBe(10);
    await w.abort();
    expect(store.objects.size).toBe(0);
    expect(store.open.size).toBe(0);
  });

  it('a csv header starts every object and counts against the cap', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 10, { header: Buffer.from('h,i\n') });
    await w.begin({});
    await w.write(chunk('1,2\n', '3,4\n', '5,6\n'));
    const stored = await w.finish();
    expect(text(store)).toEqual({ 't_dn1_segment.0': 'h,i\n1,2\n', 't_dn1_segment.1': 'h,i\n3,4\n', 't_dn1_segment.2': 'h,i\n5,6\n' });
    expect(stored.map((s) => [s.bytes, s.rows])).toEqual([[8, 1], [8, 1], [8, 1]]);
    // A row that fits the cap but not the cap minus the header is too large.
    const { w: w2 } = writer(new MemoryStore(), 10, { header: Buffer.from('h,i\n') });
    await w2.begin({});
    await expect(w2.write(chunk('1234567\n'))).rejects.toBeInstanceOf(RowTooLargeError);
    await w2.abort();
  });

  it('a change of source (Citus shard) starts a new object and each object lists its sources', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 100);
    await w.begin({ source: '101' });
    await w.write(chunk('a\n', 'b\n'));
    await w.begin({ source: '101' }); // same shard again: same object
    await w.write(chunk('c\n'));
    await w.begin({ source: '102' });
    await w.write(chunk('d\n'));
    const stored = await w.finish();
    expect(text(store)).toEqual({ 't_dn1_segment.0': 'a\nb\nc\n', 't_dn1_segment.1': 'd\n' });
    expect(stored.map((s) => s.sources)).toEqual([['101'], ['102']]);
  });

  it('reads without a source share objects and record no sources; a unit without rows stores nothing', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 100);
    await w.begin({});
    await w.write(chunk('a\n'));
    await w.begin({});
    await w.write(chunk('b\n'));
    const stored = await w.finish();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.sources).toBeUndefined();
    const empty = new MemoryStore();
    const { w: w2 } = writer(empty, 100);
    await w2.begin({});
    expect(await w2.finish()).toEqual([]);
    expect(empty.log).toEqual([]);
    expect(w2.summary()).toEqual({});
  });

  it('abort drops the open object and keeps the stored ones', async () => {
    const store = new MemoryStore();
    const { w } = writer(store, 6);
    await w.begin({});
    await w.write(chunk('aaaa\n', 'bb\n'));
    await w.abort();
    expect(text(store)).toEqual({ 't_dn1_segment.0': 'aaaa\n' });
    expect(store.log).toEqual(['open t_dn1_segment.0', 'finish t_dn1_segment.0', 'open t_dn1_segment.1', 'abort t_dn1_segment.1']);
  });

  it('the signal cuts short a write blocked on the store; abort then leaves no object', async () => {
    const store = new MemoryStore();
    const ac = new AbortController();
    const { w } = writer(store, 1 << 30, { signal: ac.signal });
    store.stall = new Promise(() => {}); // never drains
    await w.begin({});
    const big = 'x'.repeat(1 << 20) + '\n'; // one full write batch: the write goes to the store at once
    const pending = w.write(chunk(big));
    ac.abort(new AbortedError());
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    await w.abort();
    expect(store.objects.size).toBe(0);
    expect(store.open.size).toBe(0);
  });
});
