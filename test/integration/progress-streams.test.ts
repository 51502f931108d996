import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, type SegferryEvent } from '../../lib/index.js';
import { ProgressModel } from '../../lib/cli/progress.js';
import { startServer, type PgServer } from '../helpers/pg.js';

// The CLI's progress figures for a node read in 4 streams: before its node-done event, the
// node's bytes and rows are the sum of its streams' (each stream reports its own).

let server: PgServer;
let dir: string;

beforeAll(async () => {
  server = await startServer({ name: 'progress-streams' });
  await server.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT g, md5(g::text) || repeat('p', g % 60) FROM generate_series(1, 40000) g`);
  dir = await mkdtemp(join(tmpdir(), 'sf-progress-streams-'));
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('progress of a node read in streams', () => {
  it('the node\'s figures before node-done equal what its 4 streams stored', async () => {
    const events: SegferryEvent[] = [];
    const r = await exportTables({ source: server.url(), tables: ['items'], to: join(dir, 'out'), streams: 4, segmentSize: 256 * 1024, onEvent: (e) => events.push(e) });
    expect(r.plan.tables[0]!.streams![0]!.streams).toBe(4);
    const units = new Set(events.flatMap((e) => (e.type === 'progress' && e.unit ? [e.unit] : [])));
    expect(units.size).toBe(4);
    const m = new ProgressModel(() => 0);
    for (const e of events) if (e.type !== 'node-done' && e.type !== 'done') m.apply(e);
    const node = m.snapshot().nodes[0]!;
    expect(node.done).toBe(false);
    expect(node.rows).toBe(40000);
    expect(node.bytes).toBe(r.manifest.objects.reduce((a, o) => a + o.bytes, 0));
  }, 60_000);
});
