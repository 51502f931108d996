import { describe, expect, it } from 'vitest';
import { ProgressModel } from '../../lib/cli/progress.js';
import type { SegferryEvent } from '../../lib/index.js';

const at = '2026-11-30T00:00:00.000Z';
const ev = (e: Record<string, unknown>): SegferryEvent => ({ operation: 'export', at, ...e }) as unknown as SegferryEvent;
const progress = (node: string, bytes: number, rows: number, unit?: string) =>
  ev({ type: 'progress', node, table: 'public.t', segment: 0, bytes, rows, ...(unit ? { unit } : {}) });

describe('ProgressModel: a node read in several streams', () => {
  it('sums the latest figures of each stream (and the node\'s own session), each stream monotonic', () => {
    const m = new ProgressModel(() => 0);
    m.apply(ev({ type: 'start', tables: ['public.t', 'public.u'], nodes: ['dn1', 'dn2'], estimatedBytes: 0 }));
    m.apply(progress('dn1', 100, 10, 't_dn1#0'));
    m.apply(progress('dn1', 300, 30, 't_dn1#1'));
    m.apply(progress('dn1', 250, 25, 't_dn1#0'));
    m.apply(progress('dn1', 50, 5, 't_dn1#1')); // an older event of stream 1 arriving late changes nothing
    m.apply(progress('dn1', 40, 4)); // the node's one session reading another table
    m.apply(progress('dn2', 70, 7));
    m.apply(progress('dn2', 90, 9));
    const s = m.snapshot();
    expect(s.nodes.map((n) => [n.node, n.bytes, n.rows])).toEqual([['dn1', 590, 59], ['dn2', 90, 9]]);
    expect(s.bytes).toBe(680);
    m.apply(ev({ type: 'node-done', node: 'dn1', bytes: 600, rows: 60, objects: 3, elapsedMs: 5 }));
    expect(m.snapshot().nodes[0]).toMatchObject({ bytes: 600, rows: 60, done: true });
  });
});
