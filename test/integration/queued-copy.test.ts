import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, SegferryError, type SegferryEvent } from '../../lib/index.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { exported, expectContiguous, expectResumed, gatedStore, itemsTable } from '../helpers/streams.js';

// A stream sends its next range's COPY behind the running one (lib/pg/copy-out.ts copyOutAfter,
// issue 17): the server starts it as soon as the first ends. These tests hold the client's
// writes of the first ranges and look at what the server runs meanwhile, then fail the queued
// COPY, kill a session during a COPY with one queued, abort while one is queued, and kill the
// sessions while one is queued.

const ROWS = 6000;
/** Ranges of a few pages: a range's rows fit in the socket's buffers, so the server can end it while the client holds it. */
const FLOOR = 4;

let server: PgServer;
let source: string[];
let base = '';
let made = 0;
const tmp = () => join(base, `out${made++}`);

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'sf-queued-copy-'));
  server = await startServer({ name: 'queued-copy' });
  source = await itemsTable(server, ROWS, 'q', 50);
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  if (base) await rm(base, { recursive: true, force: true });
});

const opts = { topology: 'postgres' as const, tables: ['items'], streams: 2, minRangePages: FLOOR };
/** Objects of 8 KiB: a range's rows are written while its COPY is read, so a held write holds the stream's reading. */
const SMALL = { segmentSize: 8 * 1024 };
const RANGE = /ctid >= '\((\d+),0\)'/;

/** The export's sessions: what each last ran and whether it is still running it. */
async function sessions(): Promise<{ start: number; state: string }[]> {
  const rows = await server.query<{ query: string; state: string }>(`SELECT query, state FROM pg_stat_activity WHERE application_name = 'segferry export' AND query ~ '^COPY'`);
  return rows.map((r) => ({ start: Number(RANGE.exec(r.query)?.[1] ?? -1), state: r.state }));
}

/** Until `ok` holds of the export's sessions, at most `ms`. */
async function waitSessions(ok: (s: { start: number; state: string }[]) => boolean, ms = 10_000): Promise<{ start: number; state: string }[]> {
  const until = Date.now() + ms;
  for (;;) {
    const s = await sessions();
    if (ok(s) || Date.now() > until) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A store whose first objects of the first two ranges to write (one per stream: a held write
 * holds its stream's reading) wait until `release()`.
 */
function holdFirstTwo(dir: string): { store: ReturnType<typeof gatedStore>; gated: string[]; release: () => void } {
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const gated: string[] = [];
  const store = gatedStore(dir, async (key) => {
    if (gated.length < 2 && !gated.includes(key)) gated.push(key);
    if (gated.includes(key)) await held;
  });
  return { store, gated, release };
}

/** Both sessions idle in their transaction with two writes held. */
const bothHeld = (gated: string[]) => (s: { state: string }[]) => s.length === 2 && s.every((x) => x.state === 'idle in transaction') && gated.length === 2;

/** No half-written object is left, and every object file is one the checkpoint records. */
function expectClean(dir: string): void {
  const files = readdirSync(dir);
  expect(files.filter((f) => f.includes('segferry-partial'))).toEqual([]);
  expect(files).not.toContain('manifest.json');
  const cp = JSON.parse(readFileSync(join(dir, 'segferry-checkpoint.json'), 'utf8')) as { units: { objects: { key: string }[] }[] };
  const recorded = new Set(cp.units.flatMap((u) => u.objects.map((o) => o.key)));
  expect(files.filter((f) => f.includes('_segment.') && !recorded.has(f))).toEqual([]);
}

describe('the next range\'s COPY sent behind the running one', () => {
  it('while the client still holds each stream\'s first range, the server has already run the range the stream took next', async () => {
    const dir = tmp();
    const { store, gated, release } = holdFirstTwo(dir);
    const unitOf = new Map<string, string>();
    const run = exportTables({ ...opts, ...SMALL, source: server.url(), to: store, onEvent: (e: SegferryEvent) => { if (e.type === 'segment') unitOf.set(e.key, e.unit!); } });
    // Both sessions idle in their transaction, each having run a COPY after the one held.
    const seen = await waitSessions(bothHeld(gated));
    release();
    const r = await run;
    const ranges = r.plan.tables[0]!.streams![0]!.ranges!;
    expect(ranges.length).toBeGreaterThanOrEqual(6);
    const heldStarts = gated.map((k) => ranges[Number(unitOf.get(k)!.split('#')[1])]!);
    expect(seen.length).toBe(2);
    // Without the queued COPY each session would still show the range the client holds.
    for (const s of seen) {
      expect(ranges).toContain(s.start);
      expect(heldStarts).not.toContain(s.start);
    }
    const { lines, manifest } = await exported(dir);
    expect(lines).toEqual(source);
    expectContiguous(manifest);
  }, 60_000);

  for (const [where, id] of [['the queued COPY (the last range)', ROWS], ['the running COPY (the first range), with one queued behind it', 1]] as const) {
    it(`an error in ${where}: the export fails with its SQLSTATE, nothing half-written is left`, async () => {
      const dir = tmp();
      // Division by zero on one row only: the range that holds it fails (22012).
      const err = await exportTables({ ...opts, source: server.url(), to: dir, where: `1 / (id - ${id}) IS NOT NULL` }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SegferryError);
      expect((err as SegferryError).sqlState).toBe('22012');
      expectClean(dir);
      // The session is gone: no backend of the export is left.
      expect(await waitSessions((s) => s.length === 0)).toEqual([]);
    }, 60_000);
  }

  it('the session killed (pg_terminate_backend) during a COPY with one queued behind it: the export fails with the FATAL\'s SQLSTATE 57P01, nothing half-written is left', async () => {
    const dir = tmp();
    // The first range's COPY sleeps on its first row, so its session is killed while that COPY
    // runs and the next range's is queued behind it: the server sends the FATAL ErrorResponse
    // (it is not blocked writing), then closes, and no ReadyForQuery follows.
    const run = exportTables({ ...opts, source: server.url(), to: dir, where: 'id <> 1 OR pg_sleep(60) IS NULL' }).then(() => undefined, (e: unknown) => e);
    const until = Date.now() + 20_000;
    let pids: { pid: number }[] = [];
    while (pids.length === 0 && Date.now() < until) {
      pids = await server.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'segferry export' AND wait_event = 'PgSleep'`);
      if (pids.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(pids.length).toBe(1);
    await server.query(`SELECT pg_terminate_backend(${Number(pids[0]!.pid)})`);
    const err = await run;
    expect(err).toBeInstanceOf(SegferryError);
    expect((err as SegferryError).sqlState).toBe('57P01');
    expectClean(dir);
    expect(await waitSessions((s) => s.length === 0)).toEqual([]);
  }, 60_000);

  it('an abort while a COPY is queued leaves nothing half-written and no session', async () => {
    const dir = tmp();
    const ac = new AbortController();
    let first: string | undefined;
    const err = await exportTables({
      ...opts, ...SMALL, source: server.url(), signal: ac.signal,
      to: gatedStore(dir, async (key) => {
        if (first !== undefined && key !== first) return;
        first = key;
        // Hold the first object until its session has run the COPY queued behind it, then abort.
        await waitSessions((s) => s.some((x) => x.state === 'idle in transaction' && x.start > 0));
        ac.abort();
      }),
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SegferryError);
    expect((err as SegferryError).code).toBe('ERR_ABORTED');
    expectClean(dir);
    expect(await waitSessions((s) => s.length === 0)).toEqual([]);
  }, 60_000);

  it('the sessions killed while COPYs are queued: the export fails, and a resume gives every row once', async () => {
    const dir = tmp();
    const { store, gated, release } = holdFirstTwo(dir);
    const run = exportTables({ ...opts, ...SMALL, source: server.url(), to: store }).then(() => undefined, (e: unknown) => e);
    await waitSessions(bothHeld(gated));
    await server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segferry export'`);
    release();
    const err = await run;
    expect(err).toBeInstanceOf(SegferryError);
    expectClean(dir);
    const cp = JSON.parse(readFileSync(join(dir, 'segferry-checkpoint.json'), 'utf8')) as { units: { unit: string; objects: { key: string; crc32: string }[] }[] };
    const kept = cp.units.flatMap((u) => u.objects);
    const r = await exportTables({ ...opts, ...SMALL, source: server.url(), to: dir, resume: true });
    expect(existsSync(join(dir, 'manifest.json'))).toBe(true);
    await expectResumed(dir, source, kept);
    expect(r.manifest.tables[0]!.rows).toBe(ROWS);
  }, 60_000);
});
