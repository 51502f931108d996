import { describe, expect, it } from 'vitest';
import { workItems } from '../../lib/export/export.js';
import { parsePlanFile, planFile, planParts } from '../../lib/export/parts.js';
import type { ExportPlan } from '../../lib/export/plan.js';
import { MAX_RANGES, MIN_RANGE_PAGES, checkMinRangePages, cutRanges, pageStarts, rangeCut, validRangeStarts } from '../../lib/export/streams.js';
import { planUnits, rangeStarts, UnitQueue } from '../../lib/export/units.js';
import type { RelationRead, TablePlan } from '../../lib/topology/types.js';

// Ranges handed out while a node's streams run (issue 17): a (table, node) read in N streams is
// cut into more, shrinking page ranges (guided self-scheduling), taken in order from one queue.

/** The sizes of the ranges the starts give over `pages` pages (the last open-ended range up to `pages`). */
const sizes = (starts: number[], pages: number) => starts.map((s, i) => (starts[i + 1] ?? pages) - s);

/** The pages each range of the starts covers, in order: every page once means exactly 0..pages-1. */
function covered(starts: number[], pages: number): number[] {
  const out: number[] = [];
  starts.forEach((s, i) => { for (let p = s; p < (starts[i + 1] ?? pages); p++) out.push(p); });
  return out;
}

const cases: [number, number][] = [];
for (const pages of [2, 3, 7, 10, 100, 700, 701, 2047, 4096, 5000, 18_600, 69_600, 130_000, 1_000_003, 134_217_728]) {
  for (const streams of [2, 3, 4, 8, 16]) cases.push([pages, streams]);
}

describe('rangeCut: guided self-scheduling of page ranges', () => {
  it('covers every page exactly once, starts strictly increasing from 0', () => {
    for (const [pages, streams] of cases) {
      const s = rangeCut(pages, streams);
      expect(validRangeStarts(s), `${pages}/${streams}`).toBe(true);
      expect(s[s.length - 1]!, `${pages}/${streams}`).toBeLessThan(pages);
      if (pages <= 20_000) expect(covered(s, pages)).toEqual(Array.from({ length: pages }, (_, i) => i));
      else expect(sizes(s, pages).reduce((a, b) => a + b, 0)).toBe(pages);
    }
  });

  it('sizes never grow (equal ranges under streams × the floor); at least one range per stream; at most MAX_RANGES', () => {
    for (const [pages, streams] of cases) {
      const z = sizes(rangeCut(pages, streams), pages);
      if (pages < Math.min(streams, pages) * MIN_RANGE_PAGES) expect(Math.max(...z) - Math.min(...z), `${pages}/${streams}`).toBeLessThanOrEqual(1);
      else for (let i = 1; i < z.length; i++) expect(z[i]!, `${pages}/${streams} range ${i}`).toBeLessThanOrEqual(z[i - 1]!);
      expect(z.length, `${pages}/${streams}`).toBeGreaterThanOrEqual(Math.min(streams, pages));
      expect(z.length).toBeLessThanOrEqual(MAX_RANGES);
    }
  });

  it('each range ≈ remaining / (2 × streams), never under the floor but for the last two (≥ half of it)', () => {
    // The bench table (570 MB, 69,600 pages) in 2 streams.
    const s = rangeCut(69_600, 2);
    expect(sizes(s, 69_600)).toEqual([17_400, 13_050, 9788, 7341, 5506, 4129, 3097, 2323, 1742, 1306, 980, 735, 551, 512, 512, 314, 314]);
    for (const [pages, streams] of cases) {
      if (pages < streams * MIN_RANGE_PAGES) continue;
      const z = sizes(rangeCut(pages, streams), pages);
      const floor = Math.max(MIN_RANGE_PAGES, Math.ceil(pages / (MAX_RANGES - 1)));
      expect(z.length, `${pages}/${streams}`).toBeGreaterThanOrEqual(streams);
      let left = pages;
      z.forEach((size, i) => {
        if (i < z.length - 2) {
          expect(size, `${pages}/${streams} range ${i}`).toBe(Math.max(Math.ceil(left / (2 * Math.min(streams, pages))), floor));
        } else {
          expect(size, `${pages}/${streams} range ${i}`).toBeGreaterThanOrEqual(Math.floor(floor / 2));
        }
        left -= size;
      });
    }
    // A lower floor: more, shorter ranges at the end.
    const low = rangeCut(69_600, 2, 128);
    expect(low.length).toBeGreaterThan(s.length);
    expect(Math.min(...sizes(low, 69_600))).toBeGreaterThanOrEqual(64);
    expect(rangeCut(69_600, 2, 2048)).toHaveLength(12);
  });

  it('small tables (under streams × the floor): equal ranges, one per stream, as before; one stream or one page: one range', () => {
    expect(rangeCut(700, 4)).toEqual([0, 175, 350, 525]);
    expect(rangeCut(10, 4)).toEqual(pageStarts(10, 4));
    expect(rangeCut(3, 4)).toEqual([0, 1, 2]);
    expect(rangeCut(1023, 2)).toEqual([0, 511]);
    expect(rangeCut(1024, 2)).toEqual([0, 512]);
    expect(rangeCut(1536, 2)).toEqual([0, 512, 1024]);
    // Many streams: at most 2 × streams ranges when that is more than MAX_RANGES.
    expect(rangeCut(10_000_000, 300).length).toBeLessThanOrEqual(600);
    expect(rangeCut(10_000_000, 300).length).toBeGreaterThanOrEqual(300);
    expect(rangeCut(100_000, 1)).toEqual([0]);
    expect(rangeCut(1, 4)).toEqual([0]);
    expect(rangeCut(0, 4)).toEqual([0]);
    // Deterministic: the same plan cuts the same way.
    expect(rangeCut(69_600, 2)).toEqual(rangeCut(69_600, 2));
  });

  it('the plan records the cut per (table, node); a bad floor is refused', () => {
    const tables: Pick<TablePlan, 'streams'>[] = [{ streams: [{ node: 'a', streams: 2, pages: 69_600 }, { node: 'b', streams: 1, pages: 5 }, { node: 'c', streams: 3 }] }];
    cutRanges(tables);
    expect(tables[0]!.streams![0]!.ranges).toEqual(rangeCut(69_600, 2));
    expect(tables[0]!.streams![1]!.ranges).toBeUndefined();
    expect(tables[0]!.streams![2]!.ranges).toBeUndefined(); // Citus shards: no pages, no ranges
    for (const bad of [0, -1, 1.5, '8', Number.NaN]) expect(() => checkMinRangePages(bad)).toThrow(/minRangePages/);
    expect(checkMinRangePages(16)).toBe(16);
  });
});

const MiB = 1024 * 1024;
const read = (node: string, name = 't', bytes = 570 * MiB): RelationRead => ({ node, relation: { schema: 'public', name }, estimatedBytes: bytes });
const table = (name: string, reads: RelationRead[], streams?: TablePlan['streams']): TablePlan => ({
  table: { schema: 'public', name }, objectName: name, columns: [{ name: 'id', type: 'int' }],
  distribution: { kind: 'distributed' }, reads, estimatedBytes: 0, expectedSegments: 1, ...(streams ? { streams } : {}),
});
const node = (name: string) => ({ name, endpoint: { host: '127.0.0.1', port: 1, database: 'd', user: 'u' } });

describe('range units and their queue', () => {
  const ranges = rangeCut(69_600, 2);
  const t = table('t', [read('a'), read('b', 't', 10 * MiB)], [{ node: 'a', streams: 2, pages: 69_600, ranges }, { node: 'b', streams: 1 }]);

  it('one unit per range (ids #k), each read by one of the pair\'s 2 sessions; the checkpoint records the starts', () => {
    const units = planUnits({ tables: [t] });
    const a = units.filter((u) => u.group === 't_a');
    expect(a.map((u) => u.id)).toEqual(ranges.map((_, k) => `t_a#${k}`));
    expect(a.map((u) => u.reads[0]!.pages)).toEqual(ranges.map((s, k) => [s, ranges[k + 1] ?? null]));
    expect(new Set(a.map((u) => u.sessions))).toEqual(new Set([2]));
    expect(a.every((u) => u.stream!.of === ranges.length)).toBe(true);
    expect(rangeStarts(units)).toEqual({ t_a: ranges });
    // A plan written before the ranges (no `ranges`): one equal range per stream, as then.
    const old = table('t', t.reads, [{ node: 'a', streams: 2, pages: 69_600 }, { node: 'b', streams: 1 }]);
    expect(rangeStarts(planUnits({ tables: [old] }))).toEqual({ t_a: pageStarts(69_600, 2) });
    // A resume keeps the first run's cut (here an old checkpoint's two ranges) whatever the plan says.
    const resumed = planUnits({ tables: [t] }, { t_a: [0, 34_800] }).filter((u) => u.group === 't_a');
    expect(resumed.map((u) => [u.id, u.reads[0]!.pages, u.sessions])).toEqual([['t_a#0', [0, 34_800], 2], ['t_a#1', [34_800, null], 2]]);
  });

  it('the pool gets one item per stream, sharing one queue that hands the ranges out in order, once each', () => {
    const plan = { nodes: [node('a'), node('b')] };
    const units = planUnits({ tables: [t, table('u', [read('a', 'u', 1 * MiB)])] });
    const items = workItems(plan, units);
    // Nodes take turns: a's first stream, b's queue, a's second stream, then a's other table.
    expect(items.map((w) => [w.node.name, w.shared, w.queue ? 'queue' : w.units.map((u) => u.id).join()])).toEqual([
      ['a', true, 'queue'], ['b', false, 't_b'], ['a', true, 'queue'], ['a', true, 'u_a'],
    ]);
    const q = items[0]!.queue!;
    expect(items[2]!.queue).toBe(q);
    expect(q.left).toBe(ranges.length);
    const taken: string[] = [];
    for (let u = q.take(); u; u = items[2]!.queue!.take()) taken.push(u.id);
    expect(taken).toEqual(ranges.map((_, k) => `t_a#${k}`));
    expect(q.left).toBe(0);
    expect(q.take()).toBeUndefined();
    // A resume with one range left: one stream, not two.
    const left = workItems(plan, units.filter((u) => u.id === 't_a#11'));
    expect(left).toHaveLength(1);
    expect(new UnitQueue([]).left).toBe(0);
  });

  it('plan parts keep a pair\'s ranges together, cover every unit once and balance by estimated bytes', () => {
    const tables = ['t1', 't2', 't3', 't4', 't5'].map((name, i) => {
      const pages = 10_000 * (i + 1);
      return table(name, [read('a', name, pages * 8192), read('b', name, 100 * MiB)], [
        { node: 'a', streams: 2, pages, ranges: rangeCut(pages, 2, 512) }, { node: 'b', streams: 1 },
      ]);
    });
    const all = planUnits({ tables });
    expect(all.filter((u) => u.stream).length).toBeGreaterThan(30);
    const parts = planParts({ tables }, 3);
    const ids = parts.flat().map((u) => u.id);
    expect(ids.sort()).toEqual(all.map((u) => u.id).sort());
    for (const g of new Set(all.map((u) => u.group))) expect(parts.filter((p) => p.some((u) => u.group === g))).toHaveLength(1);
    const bytes = parts.map((p) => p.reduce((a, u) => a + u.reads.reduce((b, r) => b + (r.pages ? ((r.pages[1] ?? 10_000 * (Number(u.table.objectName[1]))) - r.pages[0]) * 8192 : r.estimatedBytes), 0), 0));
    // Groups of 81.9–409.6 MB and 100 MB each, biggest first to the lightest part: within the largest group.
    expect(Math.max(...bytes) - Math.min(...bytes)).toBeLessThanOrEqual(10_000 * 5 * 8192);
    expect(bytes.reduce((a, b) => a + b, 0)).toBe(tables.reduce((a, x, i) => a + 10_000 * (i + 1) * 8192 + 100 * MiB, 0));
  });

  it('a plan file with bad ranges is refused before they reach SQL', () => {
    const plan = { version: 1, topology: 'postgres', nodes: [node('a')], tables: [t], format: { kind: 'text' }, segmentSize: 1 << 20, filter: null, sessionSettings: {}, concurrency: 2, checksums: true } as unknown as ExportPlan;
    expect(parsePlanFile(JSON.stringify(planFile(plan, '/tmp/x')), 'p.json').plan.tables[0]!.streams![0]!.ranges).toEqual(ranges);
    for (const bad of [[0], [1, 5], [0, 5, 5], [0, 5.5], ['0', '5'], "0; DROP TABLE t"]) {
      const tt = { ...t, streams: [{ node: 'a', streams: 2, pages: 10, ranges: bad }] };
      expect(() => parsePlanFile(JSON.stringify(planFile({ ...plan, tables: [tt as TablePlan] }, '/tmp/x')), 'p.json')).toThrow(/bad page ranges/);
    }
  });
});
