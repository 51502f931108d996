import { describe, expect, it } from 'vitest';
import { parsePlanFile, planFile } from '../../lib/export/parts.js';
import type { ExportPlan } from '../../lib/export/plan.js';
import { scanSettingsSQL } from '../../lib/export/exporter.js';
import { SEQ_FILTER_MAX_STREAMS, checkStreamScan, chooseScan, cutRanges, decideStreams, pageStarts, rangeCut, validStreamScan } from '../../lib/export/streams.js';
import { planUnits } from '../../lib/export/units.js';
import type { RelationRead, StreamPlan, TablePlan } from '../../lib/topology/types.js';

// How a (table, node)'s streams read their page ranges (issue 17, docs/streams.md): filtered
// sequential scans above shared_buffers with at most 4 streams, else TID range scans.

const read = (node: string): RelationRead => ({ node, relation: { schema: 'public', name: 't' }, estimatedBytes: 100 });
const table = (streams: StreamPlan[]): TablePlan => ({
  table: { schema: 'public', name: 't' }, objectName: 't', columns: [{ name: 'id', type: 'int' }],
  distribution: { kind: 'distributed' }, reads: streams.map((s) => read(s.node)), estimatedBytes: 0, expectedSegments: 1, streams,
});

describe('chooseScan: the rule', () => {
  it('auto: seq-filter above NBuffers pages with at most 4 streams; tid-range otherwise or when NBuffers is unknown', () => {
    const nb = 32768; // 256MB of 8 KiB pages
    expect(chooseScan(32769, 2, nb)).toBe('seq-filter');
    expect(chooseScan(32768, 2, nb)).toBe('tid-range'); // fits in the pool: TID ranges find it there
    expect(chooseScan(18_517, 2, nb)).toBe('tid-range'); // over NBuffers / 4 (a sequential scan's ring) but inside the pool
    expect(chooseScan(69_600, SEQ_FILTER_MAX_STREAMS, nb)).toBe('seq-filter');
    expect(chooseScan(69_600, SEQ_FILTER_MAX_STREAMS + 1, nb)).toBe('tid-range');
    expect(chooseScan(69_600, 2, undefined)).toBe('tid-range');
    expect(chooseScan(69_600, 2, 0)).toBe('tid-range');
    expect(SEQ_FILTER_MAX_STREAMS).toBe(4);
  });

  it('a forced option is taken as is', () => {
    expect(chooseScan(10, 8, 32768, 'seq-filter')).toBe('seq-filter');
    expect(chooseScan(69_600, 2, 32768, 'tid-range')).toBe('tid-range');
    expect(chooseScan(10, 2, undefined, 'seq-filter')).toBe('seq-filter');
  });

  it('checkStreamScan and validStreamScan refuse anything else', () => {
    for (const ok of ['auto', 'seq-filter', 'tid-range'] as const) expect(checkStreamScan(ok)).toBe(ok);
    for (const bad of ['seq', 'SEQ-FILTER', '', 1, null, undefined]) {
      let code: string | undefined;
      try { checkStreamScan(bad); } catch (e) { code = (e as { code?: string }).code; }
      expect(code).toBe('ERR_INVALID_OPTION');
    }
    expect(validStreamScan(undefined)).toBe(true);
    expect(validStreamScan('seq-filter')).toBe(true);
    expect(validStreamScan('tid-range')).toBe(true);
    for (const bad of ['auto', 'x', 0, null, {}, "seq-filter'; DROP TABLE t"]) expect(validStreamScan(bad)).toBe(false);
  });

  it('decideStreams records NBuffers with more than one stream', () => {
    const probe = { serverVersion: 150018, maxParallelWorkers: 8, sharedBuffers: 256 };
    const heap = { relkind: 'r', accessMethod: 'heap', pages: 1000 };
    expect(decideStreams('n', read('n'), probe, heap, 2)).toEqual({ node: 'n', streams: 2, pages: 1000, sharedBuffers: 256 });
    expect(decideStreams('n', read('n'), probe, heap, 1)).toEqual({ node: 'n', streams: 1, pages: 1000 });
  });
});

describe('cutRanges: scan and ranges', () => {
  it('seq-filter gets one equal range per stream, tid-range the guided cut; one stream and shards get no scan', () => {
    const big: StreamPlan = { node: 'a', streams: 2, pages: 100_000, sharedBuffers: 32768 };
    const small: StreamPlan = { node: 'b', streams: 2, pages: 5000, sharedBuffers: 32768 };
    const many: StreamPlan = { node: 'c', streams: 8, pages: 100_000, sharedBuffers: 32768 };
    const old: StreamPlan = { node: 'd', streams: 2, pages: 100_000 };
    const one: StreamPlan = { node: 'e', streams: 1, pages: 100_000, sharedBuffers: 32768 };
    const shards: StreamPlan = { node: 'f', streams: 2 };
    cutRanges([table([big, small, many, old, one, shards])]);
    expect(big.scan).toBe('seq-filter');
    expect(big.ranges).toEqual([0, 50_000]);
    expect(small.scan).toBe('tid-range');
    expect(small.ranges).toEqual(rangeCut(5000, 2));
    expect(many.scan).toBe('tid-range');
    expect(many.ranges).toEqual(rangeCut(100_000, 8));
    expect(old.scan).toBe('tid-range');
    expect(one.scan).toBeUndefined();
    expect(one.ranges).toBeUndefined();
    expect(shards.scan).toBeUndefined();
  });

  it('the option forces either way', () => {
    const a: StreamPlan = { node: 'a', streams: 8, pages: 5000, sharedBuffers: 32768 };
    cutRanges([table([a])], undefined, 'seq-filter');
    expect([a.scan, a.ranges]).toEqual(['seq-filter', pageStarts(5000, 8)]);
    const b: StreamPlan = { node: 'b', streams: 2, pages: 100_000, sharedBuffers: 32768 };
    cutRanges([table([b])], undefined, 'tid-range');
    expect([b.scan, b.ranges]).toEqual(['tid-range', rangeCut(100_000, 2)]);
    expect(() => cutRanges([table([b])], undefined, 'seq' as never)).toThrow(/streamScan/);
  });
});

describe('planUnits: the units carry the scan', () => {
  it('seq-filter units, one per stream; a plan without scan, or a resumed cut of more ranges than streams, reads TID ranges', () => {
    const t = table([{ node: 'a', streams: 2, pages: 1000, scan: 'seq-filter', ranges: [0, 500] }]);
    const units = planUnits({ tables: [t] });
    expect(units.map((u) => [u.id, u.scan, u.reads[0]!.pages])).toEqual([['t_a#0', 'seq-filter', [0, 500]], ['t_a#1', 'seq-filter', [500, null]]]);
    // A plan file written before the field: TID ranges.
    const older = table([{ node: 'a', streams: 2, pages: 1000, ranges: [0, 500] }]);
    expect(planUnits({ tables: [older] }).every((u) => u.scan === undefined)).toBe(true);
    // A checkpoint's first run cut 4 ranges (TID ranges then): they stay TID ranges.
    const resumed = planUnits({ tables: [t] }, { t_a: [0, 100, 300, 600] });
    expect(resumed.map((u) => u.scan)).toEqual([undefined, undefined, undefined, undefined]);
    // …and a first run's 2 equal ranges under a plan now saying seq-filter: seq-filter.
    expect(planUnits({ tables: [t] }, { t_a: [0, 500] }).every((u) => u.scan === 'seq-filter')).toBe(true);
  });
});

describe('plan files: the scan is checked', () => {
  it('refuses an unknown scan before it reaches the exporter', () => {
    const node = { name: 'a', endpoint: { host: '127.0.0.1', port: 5432, database: 'd', user: 'u' } };
    const mk = (scan: unknown) => {
      const t = table([{ node: 'a', streams: 2, pages: 1000, ranges: [0, 500], scan } as StreamPlan]);
      const plan = { version: 1, topology: 'postgres', nodes: [node], tables: [t], format: { kind: 'text' }, segmentSize: 1 << 20, filter: null, sessionSettings: {}, concurrency: 2, checksums: true } as unknown as ExportPlan;
      return JSON.stringify(planFile(plan, '/tmp/x'));
    };
    expect(parsePlanFile(mk('seq-filter'), 'p.json').plan.tables[0]!.streams![0]!.scan).toBe('seq-filter');
    expect(parsePlanFile(mk(undefined), 'p.json').plan.tables[0]!.streams![0]!.scan).toBeUndefined();
    for (const bad of ['auto', 'SEQ', 1, null]) {
      let code: string | undefined;
      try { parsePlanFile(mk(bad), 'p.json'); } catch (e) { code = (e as { code?: string }).code; }
      expect(code).toBe('ERR_MANIFEST_INVALID');
    }
  });
});

describe('scanSettingsSQL', () => {
  it('seq-filter: no TID scan, no parallel workers, no synchronized start, all LOCAL; tid-range: the defaults back', () => {
    expect(scanSettingsSQL('seq-filter')).toBe('SET LOCAL enable_tidscan = off; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL synchronize_seqscans = off');
    expect(scanSettingsSQL('tid-range')).toBe('SET LOCAL enable_tidscan TO DEFAULT; SET LOCAL max_parallel_workers_per_gather TO DEFAULT; SET LOCAL synchronize_seqscans TO DEFAULT');
  });
});
