import { describe, expect, it } from 'vitest';
import { SegmentNumbers, hasGap } from '../../lib/export/numbering.js';
import { deleteUnitObjects } from '../../lib/export/resume.js';
import { checkStreams, decideStreams, pageStarts, streamsWithoutProbe } from '../../lib/export/streams.js';
import { planUnits, rangeStarts } from '../../lib/export/units.js';
import { defaultConcurrency } from '../../lib/export/plan.js';
import { segmentKey } from '../../lib/manifest/keys.js';
import { ctidRangeSQL, whereSQL } from '../../lib/pg/sql.js';
import { TextSegmentWriter } from '../../lib/segment/text.js';
import type { RelationRead, TablePlan } from '../../lib/topology/types.js';
import { MemoryStore } from './mem-store.js';

const MiB = 1024 * 1024;
const read = (node: string, bytes = 100): RelationRead => ({ node, relation: { schema: 'public', name: 't' }, estimatedBytes: bytes });
const table = (reads: RelationRead[], streams?: TablePlan['streams']): TablePlan => ({
  table: { schema: 'public', name: 't' }, objectName: 't', columns: [{ name: 'id', type: 'int' }],
  distribution: { kind: 'distributed' }, reads, estimatedBytes: 0, expectedSegments: 1, ...(streams ? { streams } : {}),
});
const heap = { relkind: 'r', accessMethod: 'heap', pages: 1000 };
const pg15 = { serverVersion: 150018, maxParallelWorkers: 8 };

describe('streams: how many, and where ranges do not apply', () => {
  it('auto: one per 256 MiB, at most min(max_parallel_workers, 8); N: at most the pages', () => {
    expect(decideStreams('n', read('n', 100 * MiB), pg15, heap, 'auto').streams).toBe(1);
    expect(decideStreams('n', read('n', 300 * MiB), pg15, heap, 'auto').streams).toBe(1);
    expect(decideStreams('n', read('n', 600 * MiB), pg15, heap, 'auto').streams).toBe(2);
    expect(decideStreams('n', read('n', 1024 * MiB), pg15, heap, 'auto').streams).toBe(4);
    expect(decideStreams('n', read('n', 4096 * MiB), pg15, heap, 'auto').streams).toBe(8);
    expect(decideStreams('n', read('n', 100 * 1024 * MiB), pg15, heap, 'auto').streams).toBe(8);
    expect(decideStreams('n', read('n', 100 * 1024 * MiB), { ...pg15, maxParallelWorkers: 3 }, heap, 'auto').streams).toBe(3);
    expect(decideStreams('n', read('n', 100 * 1024 * MiB), { ...pg15, maxParallelWorkers: 0 }, heap, 'auto').streams).toBe(1);
    expect(decideStreams('n', read('n'), pg15, { ...heap, pages: 3 }, 6)).toEqual({ node: 'n', streams: 3, pages: 3 });
  });

  it('one stream, with a note, for old servers, views, foreign/partitioned/columnar tables, tiny tables', () => {
    const note = (p: Partial<typeof pg15>, r: Partial<typeof heap>) => decideStreams('n', read('n'), { ...pg15, ...p }, { ...heap, ...r }, 4);
    expect(note({ serverVersion: 130000 }, {}).note).toMatch(/PostgreSQL 14/);
    expect(note({}, { relkind: 'v', accessMethod: '' }).note).toMatch(/a view/);
    expect(note({}, { relkind: 'f', accessMethod: '' }).note).toMatch(/foreign table/);
    expect(note({}, { relkind: 'p', accessMethod: '' }).note).toMatch(/partitioned/);
    expect(note({}, { accessMethod: 'columnar' }).note).toMatch(/columnar/);
    expect(note({}, { pages: 1 }).note).toMatch(/too small for ranges \(1 page\)/);
    for (const r of [note({ serverVersion: 130000 }, {}), note({}, { pages: 1 })]) expect(r.streams).toBe(1);
  });

  it('settles without asking the node when it can', () => {
    const t = table([read('n')]);
    expect(streamsWithoutProbe(t, 'n', t.reads, 1)).toEqual({ node: 'n', streams: 1 });
    expect(streamsWithoutProbe(t, 'n', t.reads, 'auto')).toEqual({ node: 'n', streams: 1 });
    expect(streamsWithoutProbe(t, 'n', [read('n', 500 * MiB)], 'auto')).toEqual({ node: 'n', streams: 1 });
    expect(streamsWithoutProbe(t, 'n', [read('n', 600 * MiB)], 'auto')).toBeUndefined();
    expect(streamsWithoutProbe(t, 'n', t.reads, 4)).toBeUndefined();
    expect(streamsWithoutProbe(t, 'n', [{ ...read('n'), shardId: '7' }], 4)!.note).toMatch(/Citus/);
    expect(streamsWithoutProbe({ distribution: { kind: 'replicated' } }, 'n', t.reads, 4)!.note).toMatch(/replicated/);
    expect(() => checkStreams(0)).toThrow(/streams/);
    expect(() => checkStreams('4')).toThrow(/streams/);
  });

  it('default concurrency sums the nodes\' streams', () => {
    const nodes = ['a', 'b'].map((name) => ({ name, endpoint: { host: 'h', port: 1, database: 'd', user: 'u' } }));
    expect(defaultConcurrency([table([], [{ node: 'a', streams: 4 }, { node: 'b', streams: 1 }])], nodes)).toBe(5);
    expect(defaultConcurrency([table([])], nodes)).toBe(2);
  });
});

describe('range units', () => {
  it('n units per (table, node), covering every page once, the last open-ended', () => {
    expect(pageStarts(10, 4)).toEqual([0, 2, 5, 7]);
    const t = table([read('a'), read('b')], [{ node: 'a', streams: 4, pages: 10 }, { node: 'b', streams: 1 }]);
    const units = planUnits({ tables: [t] });
    expect(units.map((u) => u.id)).toEqual(['t_a#0', 't_a#1', 't_a#2', 't_a#3', 't_b']);
    expect(units.map((u) => u.group)).toEqual(['t_a', 't_a', 't_a', 't_a', 't_b']);
    expect(units.slice(0, 4).map((u) => u.reads[0]!.pages)).toEqual([[0, 2], [2, 5], [5, 7], [7, null]]);
    expect(units[4]!.reads[0]!.pages).toBeUndefined();
    expect(rangeStarts(units)).toEqual({ t_a: [0, 2, 5, 7] });
    // A resume cuts the ranges as the first run did, whatever the new plan says.
    const again = planUnits({ tables: [table(t.reads, [{ node: 'a', streams: 2, pages: 50 }, { node: 'b', streams: 1 }])] }, { t_a: [0, 2, 5, 7] });
    expect(again.filter((u) => u.group === 't_a').map((u) => u.reads[0]!.pages)).toEqual([[0, 2], [2, 5], [5, 7], [7, null]]);
  });

  it('page range SQL', () => {
    expect(ctidRangeSQL(5, 9)).toBe(`ctid >= '(5,0)'::tid AND ctid < '(9,0)'::tid`);
    expect(ctidRangeSQL(7, null)).toBe(`ctid >= '(7,0)'::tid`);
    expect(whereSQL('a > 1', [0, 3])).toBe(` WHERE (a > 1) AND ctid >= '(0,0)'::tid AND ctid < '(3,0)'::tid`);
    expect(whereSQL(null)).toBe('');
    expect(() => ctidRangeSQL(3, 3)).toThrow();
    expect(() => ctidRangeSQL(-1, null)).toThrow();
  });
});

/** Rows of `n` bytes each (`n - 1` letters and a newline). */
function rows(count: number, n: number, ch: string) {
  const data = Buffer.from((ch.repeat(n - 1) + '\n').repeat(count));
  return { data, rowEnds: Uint32Array.from({ length: count }, (_, i) => (i + 1) * n) };
}

/** A stream's writer drawing numbers from the shared counter. */
function streamWriter(store: MemoryStore, numbers: SegmentNumbers) {
  const num = numbers.stream();
  return new TextSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', num(n)), cap: 100, table: 't', node: 'dn1' });
}

const numbersIn = (store: MemoryStore) => [...store.objects.keys()].map((k) => Number(/\.(\d+)$/.exec(k)![1])).sort((a, b) => a - b);

describe('segment numbers shared by the streams of one (table, node)', () => {
  it('interleaved streams store 0..n-1, each object with one stream\'s rows, no empty object', async () => {
    const store = new MemoryStore();
    const numbers = new SegmentNumbers();
    const [a, b, c] = [streamWriter(store, numbers), streamWriter(store, numbers), streamWriter(store, numbers)];
    for (const w of [a, b, c]) await w.begin({});
    for (let i = 0; i < 3; i++) {
      await a.write(rows(5, 10, 'a')); // 50 bytes: two writes per object
      await b.write(rows(10, 10, 'b')); // one object each
    }
    await Promise.all([a.finish(), b.finish(), c.finish()]); // c stored nothing
    // a: 150 bytes in objects of ≤ 100 → 2; b: 300 → 3; c: none.
    expect(numbersIn(store)).toEqual([0, 1, 2, 3, 4]);
    expect(c.stored).toHaveLength(0);
    for (const [k, v] of store.objects) expect(new Set(v.toString().replace(/\n/g, '')).size, k).toBe(1);
  });

  it('a resume fills the holes of a failed stream lowest first, keeping the other streams\' objects', async () => {
    const store = new MemoryStore();
    const first = new SegmentNumbers();
    const [a, b] = [streamWriter(store, first), streamWriter(store, first)];
    await a.begin({});
    await b.begin({});
    for (let i = 0; i < 3; i++) {
      await a.write(rows(10, 10, 'a'));
      await b.write(rows(10, 10, 'b'));
    }
    await a.finish();
    await b.write(rows(10, 10, 'b'));
    await b.abort(); // b fails: its stored objects stay behind, its open one is dropped
    const keyNum = (k: string) => Number(/\.(\d+)$/.exec(k)![1]);
    const kept = a.stored.map((s) => s.key);
    const keptNums = kept.map(keyNum);
    expect(hasGap(keptNums)).toBe(true); // b's numbers sit between a's

    // Resume: b's leftovers go, a's objects stay; b's redo takes the free numbers lowest first.
    await deleteUnitObjects(store, [{ objectName: 't', node: 'dn1' }], new Set(kept));
    expect([...store.objects.keys()].sort()).toEqual([...kept].sort());
    const free = Array.from({ length: 10 }, (_, i) => i).filter((n) => !keptNums.includes(n));
    const again = new SegmentNumbers(keptNums);
    const redo = streamWriter(store, again);
    await redo.begin({});
    for (let i = 0; i < 4; i++) await redo.write(rows(10, 10, 'b'));
    await redo.finish();
    expect(redo.stored.map((s) => keyNum(s.key))).toEqual(free.slice(0, 4));
    expect(hasGap(numbersIn(store))).toBe(false);
    expect(numbersIn(store)).toEqual(Array.from({ length: kept.length + 4 }, (_, i) => i));
  });

  it('a redo that stores fewer objects than the holes leaves a gap, which the export detects', () => {
    const again = new SegmentNumbers([0, 2, 4]);
    const redo = again.stream();
    expect(redo(0)).toBe(1);
    expect(redo(0)).toBe(1); // asked again when stored: same number
    expect(hasGap([0, 2, 4, 1])).toBe(true); // 3 is missing: the (table, node) is redone whole
    expect(hasGap([0, 1, 2])).toBe(false);
    expect(hasGap([0, 0, 1])).toBe(true);
  });
});

describe('checkpoint page ranges are untrusted', () => {
  it('a checkpoint whose ranges are not whole increasing page numbers is refused', async () => {
    const { readCheckpoint } = await import('../../lib/export/checkpoint.js');
    const { CHECKPOINT_KEY } = await import('../../lib/manifest/keys.js');
    const store = new MemoryStore();
    const cp = (ranges: unknown) => JSON.stringify({ kind: 'segferry-checkpoint', version: 1, planDigest: 'x', createdAt: '', updatedAt: '', units: [], ranges });
    await store.putBytes(CHECKPOINT_KEY, cp({ t_a: [0, 5, 9] }));
    expect((await readCheckpoint(store))!.ranges).toEqual({ t_a: [0, 5, 9] });
    for (const bad of [{ t_a: [0, "5'::tid; DROP TABLE t; --"] }, { t_a: [0, 5, 5] }, { t_a: [1, 5] }, { t_a: [0, 1.5] }, [0, 1]]) {
      await store.putBytes(CHECKPOINT_KEY, cp(bad));
      await expect(readCheckpoint(store)).rejects.toMatchObject({ code: 'ERR_MANIFEST_INVALID' });
    }
  });
});
