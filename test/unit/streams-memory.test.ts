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
  it('a stream holds its COPY blocks and what its open object keeps of its own: 256 KiB on S3 (the parts it fills are the store\'s shared pool), 1 MiB for a directory', () => {
    expect(STREAM_BASE_MEMORY).toBe(8 * MiB);
    expect(streamMemory({ s3: false })).toBe(9 * MiB);
    expect(streamMemory({ s3: true })).toBe(8 * MiB + 256 * 1024);
    expect(AUTO_STREAMS_MEMORY).toBe(256 * MiB);
    // 31 S3 streams at once fit the ceiling, whatever the part size.
    expect(Math.floor(AUTO_STREAMS_MEMORY / streamMemory({ s3: true }))).toBe(31);
  });

  it('within the ceiling nothing changes', () => {
    const t = plans([['dn1', 8], ['dn2', 8]]);
    expect(capAutoStreams(t, 16 * MiB)).toBe(16); // 16 × 16 MiB = 256 MiB exactly
    expect(t[0]!.streams.map((s) => [s.streams, s.note])).toEqual([[8, undefined], [8, undefined]]);
  });

  it('over it, the node with the most streams gives one up first, and every table of a node keeps at most its count, with a note', () => {
    // 3 nodes × 8 streams of 28 MiB (S3, 20 MiB parts) = 672 MiB: 9 streams fit in 256 MiB.
    const t = plans([['dn1', 8], ['dn2', 8], ['dn3', 8]], [['dn1', 2], ['dn2', 5], ['dn3', 1]]);
    const open = capAutoStreams(t, 28 * MiB);
    expect(open).toBe(9);
    expect(t[0]!.streams.map((s) => s.streams)).toEqual([3, 3, 3]);
    expect(t[1]!.streams.map((s) => s.streams)).toEqual([2, 3, 1]);
    expect(t[0]!.streams[0]!.note).toBe('--streams auto gave 8 streams, lowered to 3: the streams reading at once may hold at most 256 MiB of client memory, 28 MiB each (docs/memory.md)');
    expect(t[1]!.streams[0]!.note).toBeUndefined();
    // The default concurrency (the streams reading at once) now fits the ceiling.
    expect(defaultConcurrency(t, nodes('dn1', 'dn2', 'dn3')) * 28 * MiB).toBeLessThanOrEqual(AUTO_STREAMS_MEMORY);
  });

  it('ties go to the last node; never below one stream per node, even when one stream is over the ceiling', () => {
    const t = plans([['dn1', 3], ['dn2', 3]]);
    expect(capAutoStreams(t, 50 * MiB)).toBe(5);
    expect(t[0]!.streams.map((s) => s.streams)).toEqual([3, 2]);
    const big = plans([['dn1', 4], ['dn2', 2], ['dn3', 1]]);
    expect(capAutoStreams(big, 300 * MiB)).toBe(3);
    expect(big[0]!.streams.map((s) => s.streams)).toEqual([1, 1, 1]);
  });
});
