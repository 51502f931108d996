/**
 * Events → figures → text, without servers: the progress model, the TTY and plain renderings,
 * the summary and the error lines.
 */
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ProgressModel, formatCount, formatDuration, printable } from '../../lib/cli/progress.js';
import { Reporter, plainLine, summaryLines, ttyLines, exitCodeOf } from '../../lib/cli/report.js';
import { AuthError, type SegferryEvent } from '../../lib/index.js';
import { registerSecret } from '../../lib/errors.js';
import { ownServerEvents } from '../../lib/demo/demo.js';

const at = '2026-11-22T00:00:00.000Z';
type E = SegferryEvent;
const ev = (e: Record<string, unknown>): E => ({ operation: 'export', at, ...e }) as unknown as E;

function script(): E[] {
  return [
    ev({ type: 'start', tables: ['public.orders', 'public.nation'], nodes: ['dn1', 'dn2'], estimatedBytes: 1000 }),
    ev({ type: 'progress', node: 'dn1', table: 'public.orders', segment: 0, bytes: 100, rows: 10 }),
    ev({ type: 'progress', node: 'dn2', table: 'public.orders', segment: 0, bytes: 300, rows: 30 }),
    ev({ type: 'segment', node: 'dn2', table: 'public.orders', key: 'orders_dn2_segment.0', segment: 0, bytes: 300, rows: 30 }),
    ev({ type: 'retry', node: 'dn1', attempt: 1, reason: 'SlowDown' }),
    ev({ type: 'node-done', node: 'dn2', bytes: 400, rows: 40, objects: 2, elapsedMs: 2000 }),
  ];
}

describe('ProgressModel', () => {
  it('folds events into per-node and total figures, percent and ETA', () => {
    let now = 0;
    const m = new ProgressModel(() => now);
    const [start, ...rest] = script();
    m.apply(start!);
    now = 4000;
    for (const e of rest) m.apply(e);
    const s = m.snapshot();
    expect(s.nodes.map((n) => [n.node, n.bytes, n.rows, n.done])).toEqual([['dn1', 100, 10, false], ['dn2', 400, 40, true]]);
    expect(s.bytes).toBe(500);
    expect(s.rows).toBe(50);
    expect(s.objects).toBe(2);
    expect(s.retries).toBe(1);
    expect(s.percent).toBe(50);
    expect(s.rate).toBe(125); // 500 bytes in 4 s
    expect(s.etaSeconds).toBe(4); // 500 left at 125/s
    expect(s.nodes[1]!.elapsedMs).toBe(2000); // a finished node keeps its own time
    expect(s.nodes[0]!.elapsedMs).toBe(4000);
  });

  it('holds the percentage below 100 until done, and gives no ETA past an estimate that was too small', () => {
    let now = 0;
    const m = new ProgressModel(() => now);
    m.apply(ev({ type: 'start', tables: ['t'], nodes: ['a'], estimatedBytes: 100 }));
    now = 1000;
    m.apply(ev({ type: 'progress', node: 'a', table: 't', segment: 3, bytes: 250, rows: 5 }));
    expect(m.snapshot().percent).toBe(99);
    expect(m.snapshot().etaSeconds).toBeUndefined();
    m.apply(ev({ type: 'table-done', table: 't', rows: 5, bytes: 250, objects: 4 }));
    m.apply(ev({ type: 'done', tables: 1, objects: 4, rows: 5, bytes: 250, elapsedMs: 1200 }));
    const s = m.snapshot();
    expect(s.percent).toBe(100);
    expect(s.done).toBe(true);
    expect(s.tablesDone).toBe(1);
    expect(s.elapsedMs).toBe(1200);
  });

  it('takes per-node estimates from the start event (export: a guide, not exact)', () => {
    const m = new ProgressModel(() => 0);
    m.apply(ev({ type: 'start', tables: ['t'], nodes: ['dn1', 'dn2'], estimatedBytes: 400, nodeBytes: { dn1: 100, dn2: 300 } }));
    m.apply(ev({ type: 'progress', node: 'dn1', table: 't', segment: 0, bytes: 50, rows: 1 }));
    const s = m.snapshot();
    expect(s.exact).toBe(false);
    expect(s.nodes.map((n) => n.expectedBytes)).toEqual([100, 300]);
    expect(ttyLines(s).nodes[0]).toMatch(/ 50%/);
  });

  it('uses per-node expectations when given (exact sizes from a manifest)', () => {
    const m = new ProgressModel(() => 0);
    m.expect({ dn1: 200, dn2: 200 }, true);
    m.apply(ev({ type: 'start', tables: ['t'], nodes: ['dn1', 'dn2'], estimatedBytes: 0 }));
    m.apply(ev({ type: 'progress', node: 'dn1', table: 't', segment: 0, bytes: 100, rows: 1 }));
    const s = m.snapshot();
    expect(s.expectedBytes).toBe(400);
    expect(s.exact).toBe(true);
    expect(s.percent).toBe(25);
    expect(s.nodes[0]!.expectedBytes).toBe(200);
  });
});

describe('renderings', () => {
  it('TTY lines: one per node and a total with percentage and ETA', () => {
    let now = 0;
    const m = new ProgressModel(() => now);
    for (const e of script()) m.apply(e);
    now = 4000;
    const l = ttyLines(m.snapshot());
    expect(l.nodes).toHaveLength(2);
    expect(l.nodes[0]).toMatch(/^ {2}dn1\s+public\.orders\s+seg\s+0 /);
    expect(l.nodes[1]).toMatch(/done$/);
    expect(l.total).toMatch(/0\/2 tables {2}2 objects {2}\[█+░+\] +50% {2}500 B \/ ~1000 B {2}50 rows .* ETA 4s$/);
  });

  it('TTY for verify: one line with tables checked and rows, no per-node bars', () => {
    const m = new ProgressModel(() => 2000);
    m.apply({ ...ev({ type: 'start', tables: ['a', 'b'], nodes: ['dn1', 'dn2'], estimatedBytes: 0 }), operation: 'verify' } as E);
    m.apply({ ...ev({ type: 'table-done', table: 'a', rows: 1234, bytes: 0, objects: 0 }), operation: 'verify' } as E);
    const l = ttyLines(m.snapshot());
    expect(l.nodes).toEqual([]);
    expect(l.total).toMatch(/^ {2}verify {2}1\/2 tables checked {2}1,234 rows {2}0s$/);
  });

  it('plain line: figures, no control characters even from hostile names', () => {
    const m = new ProgressModel(() => 1000);
    m.apply(ev({ type: 'start', tables: ['t'], nodes: ['dn1'], estimatedBytes: 0 }));
    m.apply(ev({ type: 'progress', node: 'dn1', table: 'evil\x1b[2Jname\n', segment: 2, bytes: 2048, rows: 7 }));
    const line = plainLine(m.snapshot());
    expect(line).toContain('dn1: evil?[2Jname? seg 2 2.0 KiB');
    // eslint-disable-next-line no-control-regex
    expect(line).not.toMatch(/[\x00-\x1f\x7f]/);
  });

  it('summary: totals, per-node table with share, skew', () => {
    const lines = summaryLines({
      operation: 'export', title: 'Export complete: file:///x/', tablesDone: 2, tablesTotal: 2, objects: 5, rows: 1234, bytes: 3 * 1024 * 1024, elapsedMs: 3000,
      nodes: [
        { node: 'dn1', objects: 2, rows: 600, bytes: 2 * 1024 * 1024, elapsedMs: 3000 },
        { node: 'dn2', objects: 3, rows: 634, bytes: 1024 * 1024, elapsedMs: 1500 },
      ],
    });
    const text = lines.join('\n');
    expect(text).toMatch(/^ {2}tables {4}2\/2$/m);
    expect(text).toMatch(/^ {2}rows {6}1234$/m);
    expect(text).toMatch(/^ {2}bytes {5}3145728 \(3\.0 MiB\)$/m);
    expect(text).toMatch(/^ {2}rate {6}1\.0 MiB\/s$/m);
    expect(text).toMatch(/^ {2}dn1 .* 66\.7%$/m);
    expect(text).toMatch(/slowest node dn1 took 2\.00x the time of the fastest \(dn2\)/);
  });

  it('helpers', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatDuration(59.6)).toBe('1m00s');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(printable('a\x1bb\x07c')).toBe('a?b?c');
  });
});

/** A writable that records what is written, optionally posing as a terminal. */
function sink(tty: boolean): Writable & { text: string; isTTY?: boolean; columns?: number } {
  const w = new Writable({ write(chunk, _enc, cb) { (w as unknown as { text: string }).text += chunk.toString(); cb(); } }) as Writable & { text: string; isTTY?: boolean; columns?: number; cursorTo?: unknown; moveCursor?: unknown; clearLine?: unknown; clearScreenDown?: unknown };
  w.text = '';
  if (tty) {
    w.isTTY = true;
    w.columns = 160;
    // The readline helpers cli-progress uses on a terminal stream.
    w.cursorTo = (x: number, y?: number) => { w.write(`\x1b[${(y ?? 0) + 1};${x + 1}H`); return true; };
    w.moveCursor = (dx: number, dy: number) => { w.write(`\x1b[${dy}A\x1b[${dx}C`); return true; };
    w.clearLine = () => { w.write('\x1b[2K'); return true; };
    w.clearScreenDown = () => { w.write('\x1b[0J'); return true; };
  }
  return w;
}

describe('Reporter', () => {
  it('plain mode: start, node and done lines, summary on stdout, no escape codes', () => {
    const out = sink(false);
    const err = sink(false);
    const r = new Reporter({ stdout: out as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure('plain', false);
    for (const e of script()) r.event(e);
    r.event(ev({ type: 'done', tables: 2, objects: 2, rows: 50, bytes: 500, elapsedMs: 4000 }));
    r.summary({ operation: 'export', title: 'Export complete', tablesDone: 2, tablesTotal: 2, objects: 2, rows: 50, bytes: 500, elapsedMs: 4000, nodes: [] });
    expect(err.text).toMatch(/^export: 2 table\(s\) on 2 node\(s\) \[dn1, dn2\]/m);
    expect(err.text).toMatch(/^export: retry 1 on dn1: SlowDown$/m);
    expect(err.text).toMatch(/^export: node dn2 done: 2 objects, 40 rows/m);
    expect(out.text).toMatch(/^Export complete$/m);
    expect(out.text + err.text).not.toContain('\x1b');
  });

  it('warnings: one stderr line in plain mode, none with --quiet', () => {
    const w = ev({ type: 'warning', code: 'claim-best-effort', message: 'this store may ignore If-None-Match', key: 'segferry-claim.json' });
    const err = sink(false);
    const plain = new Reporter({ stdout: sink(false) as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure('plain', false);
    plain.event(w);
    expect(err.text).toBe('export: warning (claim-best-effort): this store may ignore If-None-Match\n');
    const qerr = sink(false);
    const quiet = new Reporter({ stdout: sink(false) as unknown as NodeJS.WriteStream, stderr: qerr as unknown as NodeJS.WriteStream }).configure('quiet', false);
    quiet.event(w);
    expect(qerr.text).toBe('');
  });

  it('info-level warnings (the demo\'s own S3 server): printed only with -v, always in --json; other warnings unchanged', () => {
    const w = ev({ type: 'warning', code: 'claim-best-effort', message: 's3rver cannot promise conditional writes', key: 'segferry-claim.json' });
    const seen: SegferryEvent[] = [];
    const own = ownServerEvents((e) => seen.push(e));
    own(w);
    own(ev({ type: 'warning', code: 'left-alone', message: 'x' }));
    own(ev({ type: 'retry', attempt: 1, reason: 'SlowDown' }));
    expect(seen.map((e) => [e.type, (e as { level?: string }).level])).toEqual([['warning', 'info'], ['warning', undefined], ['retry', undefined]]);
    const info = seen[0]!;
    // The safety meaning stays in the event: same type, code and message, with the reason it is no concern here.
    expect(info).toMatchObject({ type: 'warning', code: 'claim-best-effort', key: 'segferry-claim.json' });
    expect((info as { message: string }).message).toMatch(/^s3rver cannot promise conditional writes; this is the demo's own local S3 server/);
    const run = (mode: 'plain' | 'tty' | 'json' | 'quiet', verbose: boolean) => {
      const out = sink(mode === 'tty');
      const err = sink(mode === 'tty');
      new Reporter({ stdout: out as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure(mode, verbose).event(info);
      return { out: out.text, err: err.text };
    };
    expect(run('plain', false)).toEqual({ out: '', err: '' });
    expect(run('tty', false)).toEqual({ out: '', err: '' });
    expect(run('plain', true).err).toMatch(/^export: info \(claim-best-effort\): s3rver cannot promise conditional writes; this is the demo's own/);
    expect(run('tty', true).err).toMatch(/^export: info \(claim-best-effort\): /);
    expect(JSON.parse(run('json', false).out)).toMatchObject({ type: 'warning', code: 'claim-best-effort', level: 'info' });
    expect(run('quiet', true)).toEqual({ out: '', err: '' });
    // Any other store's warning still prints without -v.
    const err = sink(false);
    new Reporter({ stdout: sink(false) as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure('plain', false).event(w);
    expect(err.text).toBe('export: warning (claim-best-effort): s3rver cannot promise conditional writes\n');
  });

  it('tty mode: cli-progress draws a line per node and a total, then the summary', async () => {
    const out = sink(true);
    const err = sink(true);
    const r = new Reporter({ stdout: out as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure('tty', false);
    for (const e of script()) r.event(e);
    await new Promise((res) => setTimeout(res, 300));
    r.event(ev({ type: 'done', tables: 2, objects: 2, rows: 50, bytes: 500, elapsedMs: 4000 }));
    expect(err.text).toMatch(/dn1\s+public\.orders/);
    expect(err.text).toMatch(/total\s+0\/2 tables/);
    expect(err.text).toContain('\x1b'); // a terminal gets cursor movement
  });

  it('json mode: one event per line on stdout, and an error event', () => {
    const out = sink(false);
    const err = sink(false);
    const r = new Reporter({ stdout: out as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure('json', false);
    for (const e of script()) r.event(e);
    const code = r.failure(new AuthError('authentication failed on node dn1', { sqlState: '28P01', hint: 'check the password' }));
    expect(code).toBe(1);
    const lines = out.text.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(lines.map((l) => l.type)).toEqual(['start', 'progress', 'progress', 'segment', 'retry', 'node-done', 'error']);
    expect(err.text).toBe('segferry: error ERR_AUTH: authentication failed on node dn1 [SQLSTATE 28P01]\n  hint: check the password\n');
  });

  it('failure: masks registered secrets, one line per message, stack only when verbose, exit codes', () => {
    registerSecret('hunter2-secret');
    const err = sink(false);
    const r = new Reporter({ stdout: sink(false) as unknown as NodeJS.WriteStream, stderr: err as unknown as NodeJS.WriteStream }).configure('plain', false);
    r.failure(new Error('boom with hunter2-secret\nsecond line'));
    expect(err.text).toBe('segferry: internal error: boom with *** second line\n  hint: run again with --verbose for the stack trace, and report it\n');
    const err2 = sink(false);
    const v = new Reporter({ stdout: sink(false) as unknown as NodeJS.WriteStream, stderr: err2 as unknown as NodeJS.WriteStream }).configure('plain', true);
    v.failure(new Error('x'));
    expect(err2.text).toMatch(/^\s+at /m);
    expect(exitCodeOf({ code: 'ERR_INVALID_OPTION' })).toBe(2);
    expect(exitCodeOf({ code: 'ERR_VERIFY_MISMATCH' })).toBe(3);
    expect(exitCodeOf({ code: 'ERR_ABORTED' })).toBe(130);
    expect(exitCodeOf(new Error('x'))).toBe(1);
  });
});
