import { describe, expect, it } from 'vitest';
import { citusShardStreams, dealShards, streamsWithoutProbe } from '../../lib/export/streams.js';
import { planUnits, rangeStarts } from '../../lib/export/units.js';
import type { RelationRead, TablePlan } from '../../lib/topology/types.js';

const MiB = 1024 * 1024;
const shard = (node: string, id: number, bytes: number): RelationRead => ({
  node, relation: { schema: 'public', name: `t_${id}` }, estimatedBytes: bytes, shardId: String(id),
});
const table = (reads: RelationRead[], streams?: TablePlan['streams']): TablePlan => ({
  table: { schema: 'public', name: 't' }, objectName: 't', columns: [{ name: 'id', type: 'int' }],
  distribution: { kind: 'distributed' }, reads, estimatedBytes: 0, expectedSegments: 1, ...(streams ? { streams } : {}),
});

describe('Citus: several shards of one worker at once', () => {
  it('N streams, never more than shards; auto one per 256 MiB, at most 8; one stream keeps its note', () => {
    const four = [1, 2, 3, 4].map((i) => shard('w1', i, 10 * MiB));
    expect(citusShardStreams('w1', four, 2)).toEqual({ node: 'w1', streams: 2 });
    expect(citusShardStreams('w1', four, 16)).toEqual({ node: 'w1', streams: 4 });
    expect(citusShardStreams('w1', four, 'auto').streams).toBe(1);
    expect(citusShardStreams('w1', four, 'auto').note).toMatch(/Citus/);
    const big = Array.from({ length: 32 }, (_, i) => shard('w1', i, 100 * MiB));
    expect(citusShardStreams('w1', big, 'auto').streams).toBe(8);
    expect(citusShardStreams('w1', [1, 2].map((i) => shard('w1', i, 300 * MiB)), 'auto').streams).toBe(2);
    expect(citusShardStreams('w1', [1, 2].map((i) => shard('w1', i, 100 * MiB)), 'auto').streams).toBe(1);
    // Decided without asking the worker; a reference table stays on one stream.
    expect(streamsWithoutProbe(table(four), 'w1', four, 3)).toEqual({ node: 'w1', streams: 3 });
    expect(streamsWithoutProbe({ distribution: { kind: 'replicated' } }, 'w1', [shard('w1', 9, 1)], 3)!.streams).toBe(1);
  });

  it('shards are dealt whole, biggest first to the lightest stream, plan order inside a stream', () => {
    const reads = [shard('w1', 1, 5), shard('w1', 2, 40), shard('w1', 3, 30), shard('w1', 4, 20), shard('w1', 5, 10)];
    // 40 → s0, 30 → s1, 20 → s1 (30 < 40), 10 → s0 (40 < 50), 5 → s0 (tie: the lowest).
    expect(dealShards(reads, 2)).toEqual([[0, 1, 4], [2, 3]]);
    expect(dealShards(reads, 9)).toHaveLength(5);
    expect(dealShards(reads, 2)).toEqual(dealShards(reads, 2));
  });

  it('planUnits gives each stream a unit of whole shards (ids #k, one group per worker); no range starts', () => {
    const reads = [1, 2, 3, 4].map((i) => shard('w1', i, 10)).concat([5, 6].map((i) => shard('w2', i, 10)));
    const t = table(reads, [{ node: 'w1', streams: 2 }, { node: 'w2', streams: 1 }]);
    const units = planUnits({ tables: [t] });
    expect(units.map((u) => [u.id, u.group, u.stream?.index, u.reads.map((r) => r.shardId)])).toEqual([
      ['t_w1#0', 't_w1', 0, ['1', '3']],
      ['t_w1#1', 't_w1', 1, ['2', '4']],
      ['t_w2', 't_w2', undefined, ['5', '6']],
    ]);
    expect(rangeStarts(units)).toEqual({});
  });
});
