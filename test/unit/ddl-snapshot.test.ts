import { describe, expect, it } from 'vitest';
import { coordinatorSnapshotNode } from '../../lib/export/ddl-snapshot.js';
import type { ExportPlan } from '../../lib/export/plan.js';

const ep = (host: string, port: number, database = 'shop') => ({ host, port, database, user: 'u' });
const plan = (topology: string, reads: string[], extra: Partial<ExportPlan> = {}): ExportPlan => ({
  topology,
  nodes: [{ name: 'coordinator', endpoint: ep('db0', 5432) }, { name: 'worker-1', endpoint: ep('db1', 5432) }],
  tables: [{ reads: reads.map((node) => ({ node })) }],
  ...extra,
} as unknown as ExportPlan);
const coord = { name: 'coordinator', endpoint: ep('db0', 5432) };

describe('the DDL snapshot on a Citus or postgres_fdw coordinator (lib/export/ddl-snapshot.ts)', () => {
  it('the coordinator\'s own reads share it when it is the same server and database', () => {
    expect(coordinatorSnapshotNode(plan('citus', ['worker-1', 'coordinator']), coord, false)).toBe('coordinator');
    expect(coordinatorSnapshotNode(plan('fdw', ['coordinator']), coord, false)).toBe('coordinator');
  });

  it('not when the coordinator reads nothing, is another server or database, a snapshot is held already, the run resumes, or the topology is another', () => {
    expect(coordinatorSnapshotNode(plan('citus', ['worker-1']), coord, false)).toBeUndefined();
    expect(coordinatorSnapshotNode(plan('citus', ['coordinator']), { name: 'coordinator', endpoint: ep('db0', 5433) }, false)).toBeUndefined();
    expect(coordinatorSnapshotNode(plan('citus', ['coordinator']), { name: 'coordinator', endpoint: ep('db0', 5432, 'other') }, false)).toBeUndefined();
    expect(coordinatorSnapshotNode(plan('citus', ['coordinator'], { snapshots: { coordinator: '00000003-0000001B-1' } }), coord, false)).toBeUndefined();
    expect(coordinatorSnapshotNode(plan('citus', ['coordinator']), coord, true)).toBeUndefined();
    expect(coordinatorSnapshotNode(plan('static', ['coordinator']), coord, false)).toBeUndefined();
  });
});
