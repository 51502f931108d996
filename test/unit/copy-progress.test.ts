/**
 * The copy's progress view: both sides of each node (read from it, loaded into it) from the
 * `phase` of its events, totals from the loaded side, without servers.
 */
import { describe, expect, it } from 'vitest';
import { ProgressModel } from '../../lib/cli/progress.js';
import { ttyLines } from '../../lib/cli/report.js';
import type { SegferryEvent } from '../../lib/index.js';

const at = '2026-11-30T00:00:00.000Z';
const ev = (e: Record<string, unknown>): SegferryEvent => ({ operation: 'copy', at, ...e }) as unknown as SegferryEvent;

describe('copy progress, both sides', () => {
  it('shows exported and loaded rows and bytes per node, totals from what is loaded', () => {
    let now = 0;
    const m = new ProgressModel(() => now);
    m.apply(ev({ type: 'start', tables: ['public.orders'], nodes: ['dn1', 'dn2'], objects: 2, estimatedBytes: 2000 }));
    // An earlier run committed dn2's unit: a skipped load moves nothing now.
    m.apply(ev({ type: 'segment', phase: 'import', node: 'dn2', table: 'public.orders', key: 'orders_dn2', segment: 0, bytes: 0, rows: 0, skipped: true }));
    now = 1000;
    m.apply(ev({ type: 'progress', phase: 'export', node: 'dn1', table: 'public.orders', segment: 0, bytes: 600, rows: 60 }));
    m.apply(ev({ type: 'progress', phase: 'export', node: 'dn1', table: 'public.orders', segment: 0, bytes: 1000, rows: 100 }));
    m.apply(ev({ type: 'segment', phase: 'export', node: 'dn1', table: 'public.orders', key: 'orders_dn1', segment: 0, bytes: 1000, rows: 100 }));
    let s = m.snapshot();
    expect(s.nodes.map((n) => [n.node, n.phase, n.bytes, n.rows, n.objects])).toEqual([['dn1 export', 'export', 1000, 100, 1]]);
    // Nothing loaded yet: the totals count the loaded side only.
    expect([s.bytes, s.rows, s.objects]).toEqual([0, 0, 0]);
    now = 2000;
    m.apply(ev({ type: 'segment', phase: 'import', node: 'dn1', table: 'public.orders', key: 'orders_dn1', segment: 0, bytes: 1000, rows: 100 }));
    m.apply(ev({ type: 'progress', phase: 'import', node: 'dn1', table: 'public.orders', segment: 0, bytes: 1000, rows: 100 }));
    s = m.snapshot();
    expect(s.nodes.map((n) => [n.node, n.bytes, n.rows, n.objects])).toEqual([['dn1 export', 1000, 100, 1], ['dn1 import', 1000, 100, 1]]);
    expect([s.bytes, s.rows, s.objects]).toEqual([1000, 100, 1]);
    expect(s.percent).toBe(50);
    const lines = ttyLines(s).nodes;
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ {2}dn1 export/);
    expect(lines[0]).toContain('100 rows');
    expect(lines[1]).toMatch(/^ {2}dn1 import/);
    expect(lines[1]).toContain('100 rows');
  });

  it('leaves events without a phase (export, import) as they were: one line per node', () => {
    const m = new ProgressModel(() => 0);
    m.apply({ ...ev({ type: 'start', tables: ['t'], nodes: ['dn1'], estimatedBytes: 0 }), operation: 'import' } as SegferryEvent);
    m.apply({ ...ev({ type: 'segment', node: 'dn1', table: 't', key: 'k', segment: 0, bytes: 5, rows: 1, skipped: true }), operation: 'import' } as SegferryEvent);
    expect(m.snapshot().nodes.map((n) => [n.node, n.phase, n.objects])).toEqual([['dn1', undefined, 1]]);
  });
});
