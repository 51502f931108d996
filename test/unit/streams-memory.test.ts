// The memory ceiling of `--streams auto` (issue 17): the streams reading at once hold at most
// AUTO_STREAMS_MEMORY of client memory.
import { describe, expect, it } from 'vitest';
import { defaultConcurrency } from '../../lib/export/plan.js';
import { AUTO_STREAMS_MEMORY, STREAM_BASE_MEMORY, capAutoStreams, streamMemory } from '../../lib/export/streams.js';
import type { StreamPlan } from '../../lib/topology/types.js';

const MiB = 1024 * 1024;
const plans = (...rows: [string, number][][]) => rows.map((r) => ({ streams: r.map(([node, streams]): StreamPlan => ({ node, streams, pages: 1000 })) }));
const nodes = (...names: string[]) => names.map((name) => ({ name, endpoint: { host: '127.0.0.1', port: 5432, database: 'x', user: 'u' } }));

describe('auto streams memory ceiling', () => {
  it('a stream holds its COPY blocks and its upload buffers: (queueSize + 1) × partSize on S3, 1 MiB for a directory', () => {
    expect(STREAM_BASE_MEMORY).toBe(8 * MiB);
    expect(streamMemory({ s3: false })).toBe(9 * MiB);
    expect(streamMemory({ s3: true })).toBe(32 * MiB); // 3 × 8 MiB parts + 8 MiB
    expect(streamMemory({ s3: true, partSize: 16 * MiB })).toBe(56 * MiB);
    expect(streamMemory({ s3: true, partSize: 1 * MiB, queueSize: 4 })).toBe(33 * MiB); // parts are at least 5 MiB
    expect(AUTO_STREAMS_MEMORY).toBe(512 * MiB);
  });

  it('within the ceiling nothing changes', () => {
    const t = plans([['dn1', 8], ['dn2', 8]]);
    expect(capAutoStreams(t, 32 * MiB)).toBe(16); // 16 × 32 MiB = 512 MiB exactly
    expect(t[0]!.streams.map((s) => [s.streams, s.note])).toEqual([[8, undefined], [8, undefined]]);
  });

  it('over it, the node with the most streams gives one up first, and every table of a node keeps at most its count, with a note', () => {
    // 3 nodes × 8 streams of 56 MiB (S3, 16 MiB parts) = 1344 MiB: 9 streams fit in 512 MiB.
    const t = plans([['dn1', 8], ['dn2', 8], ['dn3', 8]], [['dn1', 2], ['dn2', 5], ['dn3', 1]]);
    const open = capAutoStreams(t, 56 * MiB);
    expect(open).toBe(9);
    expect(t[0]!.streams.map((s) => s.streams)).toEqual([3, 3, 3]);
    expect(t[1]!.streams.map((s) => s.streams)).toEqual([2, 3, 1]);
    expect(t[0]!.streams[0]!.note).toBe('--streams auto gave 8 streams, lowered to 3: the streams reading at once may hold at most 512 MiB of client memory, 56 MiB each (docs/memory.md)');
    expect(t[1]!.streams[0]!.note).toBeUndefined();
    // The default concurrency (the streams reading at once) now fits the ceiling.
    expect(defaultConcurrency(t, nodes('dn1', 'dn2', 'dn3')) * 56 * MiB).toBeLessThanOrEqual(AUTO_STREAMS_MEMORY);
  });

  it('ties go to the last node; never below one stream per node, even when one stream is over the ceiling', () => {
    const t = plans([['dn1', 3], ['dn2', 3]]);
    expect(capAutoStreams(t, 100 * MiB)).toBe(5);
    expect(t[0]!.streams.map((s) => s.streams)).toEqual([3, 2]);
    const big = plans([['dn1', 4], ['dn2', 2], ['dn3', 1]]);
    expect(capAutoStreams(big, 600 * MiB)).toBe(3);
    expect(big[0]!.streams.map((s) => s.streams)).toEqual([1, 1, 1]);
  });
});
