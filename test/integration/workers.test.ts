import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  AbortedError, ConnectError, WorkerError, exportTables, importTables, planExport, verifyImport, openStore,
  AuthError, SegferryError, type ExportPlan, type Manifest, type S3Options, type SegferryEvent,
} from '../../lib/index.js';
import { ExporterThreads, runningWorkers } from '../../lib/export/threads.js';
import { nodeQueues, planUnits } from '../../lib/export/units.js';
import { makeEmitter } from '../../lib/events.js';
import { startStaticCluster, rowMultiset, mergeMultisets, sameMultiset, type SourceCluster } from '../helpers/fixtures.js';
import { startS3, type S3Harness } from '../helpers/s3.js';
import { startFaultyProxy } from '../helpers/faulty-proxy.js';
import type { PgServer } from '../helpers/pg.js';

// Exporters in worker threads (`threads: true`) against the same exporters in this thread.
const ROWS = 30_000;
const CAP = 256 * 1024;
let cl: SourceCluster;
let dst: SourceCluster;
let s3: S3Harness;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-workers-'));
  dirs.push(d);
  return d;
}

function s3opts(endpoint = s3.endpoint): S3Options {
  return { endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle, checksum: s3.checksum, credentials: s3.credentials };
}

beforeAll(async () => {
  [cl, dst, s3] = await Promise.all([
    startStaticCluster({ rows: ROWS }),
    startStaticCluster({ rows: ROWS, nodes: 1, withData: false }),
    startS3(),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([cl?.destroy(), dst?.destroy(), s3?.stop()]);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** What identifies an export's content: every object's key, rows, bytes and digest, and per-table figures. */
function content(m: Manifest) {
  return {
    objects: m.objects.map((o) => ({ key: o.key, rows: o.rows, bytes: o.bytes, crc32: o.crc32, sha256: o.sha256 })),
    tables: m.tables.map((t) => ({ name: t.name, rows: t.rows, bytes: t.bytes, checksum: t.checksum, nodes: t.nodes, arrow: t.arrow })),
  };
}

/** Hold an ACCESS EXCLUSIVE lock on `orders` on a node until released: its exporter's COPY waits. */
async function lockOrders(node: PgServer): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: node.url() });
  c.on('error', () => {});
  await c.connect();
  await c.query('BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
  return { release: async () => { await c.query('ROLLBACK').catch(() => {}); await c.end().catch(() => {}); } };
}

/** Wait until the node's export session waits for the lock (the exporter is mid-export). */
async function waitForBlockedExport(node: PgServer): Promise<void> {
  for (let i = 0; ; i++) {
    if (i > 1200) throw new Error(`no export session waits for the lock on ${node.name}`);
    const r = await node.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'segferry export' AND wait_event_type = 'Lock'`,
    );
    if (Number(r[0]!.n) > 0) return;
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function sessions(node: PgServer): Promise<number> {
  const r = await node.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'segferry%'`);
  return Number(r[0]!.n);
}

describe('exporters in worker threads', () => {
  // parquet: its zstd modules load once per worker thread (lib/format/zstd.ts).
  for (const format of ['text', 'arrow', 'parquet'] as const) {
    it(`${format}: the same objects, byte for byte, as in this thread; events arrive; import and verify match`, async () => {
      const plan: ExportPlan = await planExport({
        topology: cl.staticTopology(), tables: ['orders', 'nation'], replicated: ['nation'], format, segmentSize: CAP,
      });
      const here = await exportTables({ tables: [], plan, to: await tmp(), threads: false });
      const events: SegferryEvent[] = [];
      const loc = await tmp();
      const threaded = await exportTables({ tables: [], plan, to: loc, threads: true, onEvent: (e) => events.push(e) });
      expect(runningWorkers()).toBe(0);
      // Deterministic for a table that does not change: same keys, rows, bytes and digest (CRC-32 by default).
      expect(here.manifest.objects.every((o) => o.crc32 !== undefined)).toBe(true);
      expect(content(threaded.manifest)).toEqual(content(here.manifest));
      expect(threaded.manifest.objects.length).toBeGreaterThan(6);
      expect(threaded.manifest.tables.find((t) => t.name === 'orders')!.rows).toBe(ROWS);

      // Every node's progress and segment events, re-emitted with operation and time.
      for (const n of ['dn1', 'dn2', 'dn3']) {
        expect(events.some((e) => e.type === 'progress' && e.node === n), `progress from ${n}`).toBe(true);
      }
      const segs = events.filter((e) => e.type === 'segment');
      expect(segs.map((e) => (e as { key: string }).key).sort()).toEqual(threaded.manifest.objects.map((o) => o.key).sort());
      expect(segs.every((e) => e.operation === 'export' && typeof e.at === 'string')).toBe(true);
      expect(events.filter((e) => e.type === 'node-done').length).toBe(3);
      expect(events.filter((e) => e.type === 'table-done').length).toBe(2);
      expect(events.at(-1)!.type).toBe('done');

      const target = dst.nodes[0]!.url();
      const imp = await importTables({ from: loc, target, truncate: true, verify: true });
      expect(imp.verify?.ok).toBe(true);
      const v = await verifyImport({ from: loc, target });
      expect(v.ok).toBe(true);
      const want = mergeMultisets(...(await Promise.all(cl.nodes.map((n) => rowMultiset(n, 'SELECT * FROM orders')))));
      expect(sameMultiset(await rowMultiset(dst.nodes[0]!, 'SELECT * FROM orders'), want)).toBe(true);
    });
  }

  it('to S3 through injected failures: retries inside the workers become retry events; objects are whole', async () => {
    const proxy = await startFaultyProxy(s3.endpoint, { rate: 0.1, seed: 11 });
    try {
      const events: SegferryEvent[] = [];
      const plan = await planExport({ topology: cl.staticTopology(), tables: ['orders'], segmentSize: CAP });
      const here = await exportTables({ tables: [], plan, to: await tmp(), threads: false });
      const loc = `s3://${s3.bucket}/threads-faulty/`;
      const res = await exportTables({ tables: [], plan, to: loc, s3: s3opts(proxy.endpoint), threads: true, onEvent: (e) => events.push(e) });
      expect(events.some((e) => e.type === 'retry')).toBe(true);
      expect(content(res.manifest)).toEqual(content(here.manifest));
      const store = openStore(loc, s3opts());
      try {
        for (const o of res.manifest.objects) expect((await store.getBytes(o.key))!.length, o.key).toBe(o.bytes);
      } finally {
        store.close();
      }
    } finally {
      await proxy.close();
    }
  });

  it('a node lost mid-export: the same typed error as in this thread, no manifest; resume completes', async () => {
    const dn2 = cl.nodes[1]!;
    const plan = await planExport({ topology: cl.staticTopology(), tables: ['orders'], segmentSize: CAP });
    const errors: Record<string, SegferryError> = {};
    const locs: Record<string, string> = {};
    for (const threads of [false, true]) {
      const loc = await tmp();
      locs[String(threads)] = loc;
      const lock = await lockOrders(dn2);
      const p = exportTables({ tables: [], plan, to: loc, threads }).then(() => undefined, (e: unknown) => e);
      try {
        await waitForBlockedExport(dn2);
        await dn2.stop('immediate');
      } finally {
        await lock.release();
      }
      const err = await p;
      await dn2.start();
      expect(err).toBeInstanceOf(ConnectError);
      errors[String(threads)] = err as SegferryError;
      expect(await readdir(loc)).not.toContain('manifest.json');
      expect(await readdir(loc)).toContain('segferry-checkpoint.json');
    }
    expect(runningWorkers()).toBe(0);
    const pick = (e: SegferryError) => ({ name: e.name, code: e.code, node: e.node, table: e.table, sqlState: e.sqlState, hint: e.hint });
    expect(pick(errors.true!)).toEqual(pick(errors.false!));
    expect(errors.true!.node).toBe('dn2');

    // Resume the threaded one: kept units stay, dn2 is redone, every row once.
    const res = await exportTables({ tables: [], plan, to: locs.true!, threads: true, resume: true });
    expect(res.manifest.tables[0]!.rows).toBe(ROWS);
    expect(res.manifest.tables[0]!.checksum?.rows).toBe(ROWS);
    const files = (await readdir(locs.true!)).filter((f) => f !== 'manifest.json').sort();
    expect(files).toEqual(res.manifest.objects.map((o) => o.key).sort());
    const target = dst.nodes[0]!.url();
    await importTables({ from: locs.true!, target, truncate: true });
    const want = mergeMultisets(...(await Promise.all(cl.nodes.map((n) => rowMultiset(n, 'SELECT * FROM orders')))));
    expect(sameMultiset(await rowMultiset(dst.nodes[0]!, 'SELECT * FROM orders'), want)).toBe(true);
  });

  it('a replicated table whose node is lost after planning is read from the next replica', async () => {
    const plan = await planExport({ topology: cl.staticTopology(), tables: ['nation'], replicated: ['nation'] });
    const chosen = plan.tables[0]!.reads[0]!.node;
    const victim = cl.nodes.find((n) => n.name === chosen)!;
    await victim.stop('immediate');
    try {
      const events: SegferryEvent[] = [];
      const res = await exportTables({ tables: [], to: await tmp(), plan, threads: true, onEvent: (e) => events.push(e) });
      const nodes = new Set(res.manifest.objects.map((o) => o.node));
      expect(nodes.size).toBe(1);
      expect(nodes.has(chosen)).toBe(false);
      expect(events.some((e) => e.type === 'retry' && e.reason.includes(`node ${chosen} lost`))).toBe(true);
      expect(res.manifest.tables[0]!.rows).toBe(cl.replicatedRows);
      expect(res.manifest.tables[0]!.checksum?.rows).toBe(cl.replicatedRows);
    } finally {
      await victim.start();
    }
  });

  for (const threads of [false, true]) {
    it(`abort (${threads ? 'worker threads' : 'this thread'}): ERR_ABORTED, no manifest, no exporter left running`, async () => {
      const dn2 = cl.nodes[1]!;
      const loc = await tmp();
      // Planning reads the catalog of every node: plan before the lock.
      const plan = await planExport({ topology: cl.staticTopology(), tables: ['orders'], segmentSize: CAP });
      const lock = await lockOrders(dn2);
      const ac = new AbortController();
      const p = exportTables({ tables: [], plan, to: loc, threads, signal: ac.signal })
        .then(() => undefined, (e: unknown) => e);
      let err: unknown;
      try {
        await waitForBlockedExport(dn2);
        // A plain abort(), as most callers write it.
        ac.abort();
        err = await p;
      } finally {
        await lock.release();
      }
      expect(err).toBeInstanceOf(AbortedError);
      expect((err as SegferryError).code).toBe('ERR_ABORTED');
      expect(runningWorkers()).toBe(0);
      expect(await readdir(loc)).not.toContain('manifest.json');
      // The aborted sessions end once the lock no longer holds them.
      for (let i = 0; i < 200 && (await sessions(dn2)) > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await sessions(dn2)).toBe(0);
    });
  }

  it('a wrong password fails as ERR_AUTH from the worker, with no secret in the error or its stack', async () => {
    const pw = cl.nodes[0]!.password;
    const bad = 'Wr0ng-Secret-Pw';
    const good = { nodes: [{ name: 'dn1', url: cl.nodes[0]!.url() }] };
    const wrongTopo = { nodes: [{ name: 'dn1', url: cl.nodes[0]!.url().replace(encodeURIComponent(pw), bad) }] };
    const plan = await planExport({ topology: good, tables: ['orders'] });
    // Planning with the wrong URL fails here, but leaves its password remembered for dn1's
    // endpoint: the worker is handed that one and the server refuses it there.
    await expect(planExport({ topology: wrongTopo, tables: ['orders'] })).rejects.toBeInstanceOf(AuthError);
    const events: SegferryEvent[] = [];
    const err = await exportTables({ tables: [], plan, to: await tmp(), threads: true, onEvent: (e) => events.push(e) })
      .then(() => undefined, (e: unknown) => e);
    await planExport({ topology: good, tables: ['orders'] });
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).node).toBe('dn1');
    expect((err as AuthError).sqlState).toBe('28P01');
    const text = [JSON.stringify(err), String((err as Error).stack), JSON.stringify(events)].join('\n');
    expect(text).toContain('dn1');
    for (const s of [pw, encodeURIComponent(pw), bad]) expect(text.includes(s), `a secret of ${s.length} chars in the error`).toBe(false);
  });

  it('a worker that crashes becomes ERR_WORKER naming the node of each exporter on it', async () => {
    const plan = await planExport({ topology: cl.staticTopology(), tables: ['orders'], segmentSize: CAP });
    const workOf = (i: number) => nodeQueues(plan, planUnits(plan))[i]!;
    const threads = new ExporterThreads({
      plan, location: await tmp(), size: 1, emit: makeEmitter('export'), entry: new URL('../helpers/crashing-worker.ts', import.meta.url),
    });
    try {
      const signal = new AbortController().signal;
      // Both exporters share the one thread.
      const errs = await Promise.all([0, 1].map((i) => threads.run(workOf(i), signal, async () => {}).then(() => undefined, (e: unknown) => e)));
      for (const [i, err] of errs.entries()) {
        expect(err).toBeInstanceOf(WorkerError);
        expect((err as WorkerError).code).toBe('ERR_WORKER');
        expect((err as WorkerError).node).toBe(plan.nodes[i]!.name);
        expect((err as WorkerError).message).toMatch(/boom/);
      }
    } finally {
      await threads.close();
    }
    expect(runningWorkers()).toBe(0);
  });
});
