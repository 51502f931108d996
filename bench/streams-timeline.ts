// Where a `--streams` export's wall time goes (issue 17): `node --import tsx bench/streams-timeline.ts
// -- [--rows N] [--reps N] [--streams N] [--base DIR] [--quick] [--verbose]`.
// A diagnostic beside bench/streams.ts (not a section of `npm run bench`): one table on one server,
// `segferry export --streams N` of the built CLI (bin/segferry.js, as the section runs it), and
// `psql \copy (SELECT …) TO file` alternating. Every run gets a timeline in milliseconds from
// its spawn, from two clocks of one machine:
//   - the server's log (log_min_duration_statement = 0, log_connections, log_disconnections,
//     millisecond timestamps): each session's connection, authentication, every statement's
//     start and end (end − duration) and its disconnection;
//   - the client, through bench/lib/timeline-preload.mjs (node --import): the process's time
//     origin, each pg connect, objects renamed into place, the manifest and claim written,
//     the checkpoint and claim removed, the 'exit' event; the parent sees the process end.
// With `--base DIR` (another checkout with its dist/ built) the two builds alternate in one run.
// Prints the phases per contestant as medians with min–max (with the client's and the server's CPU
// seconds of the run), then (--verbose) every run's events. A stream whose session runs several
// COPYs (ranges taken from its pair's queue) is one "stream k"; "streams' ends apart" is the gap
// between the sessions' last COPY ends.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchServer, psqlEnv, stopAll } from './lib/cluster.js';
import { TABLE, growNode, nodeSelectSQL, rowCount, warmTable } from './lib/data.js';
import { runSection, sectionFlags } from './lib/common.js';
import { median, procCpu } from './lib/measure.js';
import { ctidRangeSQL } from '../lib/pg/sql.js';

const { rows, reps, values } = sectionFlags({
  usage: 'node --import tsx bench/streams-timeline.ts [--rows N (default 1500000; --quick 400000)] [--reps N (default 5; --quick 1)] [--streams N (default 2)] [--base DIR: a second segferry checkout, dist/ built, alternated with this one] [--halves: also two psql processes at once, one ctid half each] [--verbose] [--quick]',
  rows: { full: 1_500_000, quick: 400_000 },
  reps: { full: 5, quick: 1 },
  options: { streams: { type: 'string' }, base: { type: 'string' }, halves: { type: 'boolean' }, verbose: { type: 'boolean' } },
});
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const PRELOAD = path.join(ROOT, 'bench/lib/timeline-preload.mjs');
const streams = String(values.streams ?? '2');
const log = (s: string) => process.stderr.write(`[streams-timeline] ${s}\n`);

/** A client mark (bench/lib/timeline-preload.mjs). */
interface Mark { t: number; what: string; app?: string; pid?: number; file?: string }
/** One statement as the server logged it. */
interface Stmt { start: number; end: number; text: string }
/** One backend's session. */
interface Session { pid: number; app: string; received?: number; authorized?: number; stmts: Stmt[]; gone?: number }

// A page range as segferry writes it, or as psql's \copy re-spaces it.
const RANGE = /ctid\s*>=\s*'\((\d+),0\)'\s*::\s*tid(?:\s+AND\s+ctid\s*<\s*'\((\d+),0\)'\s*::\s*tid)?/;

const LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[(\d+)\] ([^|]*)\|(\w+):\s+(.*)$/;

/** Sessions of the server log text (log_line_prefix '%m [%p] %a|'). */
function parseLog(text: string): Map<number, Session> {
  const out = new Map<number, Session>();
  let last: { s: Session; stmt?: Stmt } | undefined;
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) {
      if (last?.stmt && line.startsWith('\t')) last.stmt.text += ' ' + line.trim();
      continue;
    }
    const t = Date.parse(m[1]!.replace(' ', 'T') + 'Z');
    const pid = Number(m[2]);
    const s = out.get(pid) ?? { pid, app: '', stmts: [] };
    out.set(pid, s);
    if (m[3]) s.app = m[3];
    const msg = m[5]!;
    last = { s };
    if (msg.startsWith('connection received')) s.received = t;
    else if (msg.startsWith('connection authorized')) { s.authorized = t; s.app ||= /application_name=(.*)$/.exec(msg)?.[1] ?? ''; }
    else if (msg.startsWith('disconnection')) s.gone = t;
    else {
      const d = /^duration: ([\d.]+) ms\s+(statement|execute [^:]*|parse [^:]*|bind [^:]*):\s*(.*)$/.exec(msg);
      if (d) {
        const stmt = { start: t - Number(d[1]), end: t, text: `${d[2]!.split(' ')[0] === 'statement' ? '' : d[2]!.split(' ')[0] + ' '}${d[3]}` };
        s.stmts.push(stmt);
        last.stmt = stmt;
      }
    }
  }
  return out;
}

interface Run {
  contestant: string;
  /** CPU seconds of the client process(es) (/usr/bin/time) and of the server's backends (postmaster's reaped children). */
  clientCpu: number;
  serverCpu: number;
  spawn: number;
  close: number;
  marks: Mark[];
  sessions: Session[];
}

/** Phases of one run, in ms from its spawn. */
function phases(r: Run): Record<string, number> {
  const rel = (t: number | undefined) => (t === undefined ? NaN : t - r.spawn);
  const ph: Record<string, number> = {};
  const mk = (what: string, file?: RegExp) => r.marks.filter((m) => m.what === what && (!file || file.test(m.file ?? '')));
  const copies = r.sessions.flatMap((s) => s.stmts.filter((x) => /^COPY /.test(x.text)).map((x) => ({ s, x })));
  const origin = mk('process')[0]?.t;
  ph['node started (time origin)'] = rel(origin);
  const firstConnect = r.marks.find((m) => m.what === 'connect')?.t ?? Math.min(...r.sessions.map((s) => s.received ?? Infinity));
  ph['first connect'] = rel(firstConnect);
  const planning = r.sessions.filter((s) => s.app === 'segferry' || s.app === 'segferry plan');
  if (planning.length > 0) {
    ph['planning sessions'] = planning.length;
    ph['planning statements'] = planning.reduce((a, s) => a + s.stmts.filter((x) => !x.text.startsWith('parse ') && !x.text.startsWith('bind ')).length, 0);
    ph['planning done (last one gone)'] = rel(Math.max(...planning.map((s) => s.gone ?? NaN)));
    // A planning session that then exports the snapshot (issue 17) is gone only at the end: its last planning statement.
    const planned = planning.map((s) => s.stmts.filter((x, i) => !s.stmts.slice(0, i + 1).some((y) => /^BEGIN/.test(y.text))).at(-1)?.end ?? NaN);
    ph['planning: last statement'] = rel(Math.max(...planned));
  }
  const claim = mk('link', /segferry-claim/)[0]?.t;
  if (claim !== undefined) ph['claim written'] = rel(claim);
  // The snapshot's session: its own ('segferry snapshot'), or the planning session that exported it.
  const snap = r.sessions.find((s) => s.app === 'segferry snapshot') ?? r.sessions.find((s) => s.stmts.some((x) => /pg_export_snapshot/.test(x.text)));
  if (snap) {
    ph['snapshot: connection received'] = rel(snap.received);
    ph['snapshot exported'] = rel(snap.stmts.find((x) => /pg_export_snapshot/.test(x.text))?.end);
  }
  const ends: number[] = [];
  const starts: number[] = [];
  // A session running several COPYs (a stream taking ranges from its queue) is reported as one stream.
  const perSession = new Map<Session, Stmt[]>();
  for (const { s, x } of copies) perSession.set(s, [...(perSession.get(s) ?? []), x]);
  const queued = [...perSession.values()].some((xs) => xs.length > 1);
  if (queued) {
    [...perSession].sort((a, b) => a[1][0]!.start - b[1][0]!.start).forEach(([s, xs], i) => {
      const p = `stream ${i + 1}: `;
      ph[p + 'connection received'] = rel(s.received);
      ph[p + 'ranges (COPYs)'] = xs.length;
      ph[p + 'first COPY start'] = rel(xs[0]!.start);
      ph[p + 'last COPY end'] = rel(xs.at(-1)!.end);
      ph[p + 'COPY seconds'] = xs.reduce((a, x) => a + x.end - x.start, 0) / 1000;
      // Between one range's COPY end and the next one's start the backend waits for the client.
      ph[p + 'ms between its COPYs'] = xs.slice(1).reduce((a, x, k) => a + x.start - xs[k]!.end, 0);
      ph[p + 'gone'] = rel(s.gone);
    });
  }
  copies.sort((a, b) => a.x.start - b.x.start).forEach(({ s, x }, i) => {
    if (queued) {
      starts.push(x.start);
      ends.push(x.end);
      return;
    }
    // A stream is named by its page range (the same in every run), else by its start order.
    const range = RANGE.exec(x.text);
    const p = range ? `pages ${range[1]}–${range[2] ?? 'end'}: ` : `stream ${i + 1}: `;
    if (s.app.startsWith('segferry')) {
      ph[p + 'connection received'] = rel(s.received);
      ph[p + 'authorized'] = rel(s.authorized);
      const set = s.stmts.find((y) => /SET TRANSACTION SNAPSHOT/.test(y.text));
      if (set) ph[p + 'snapshot set'] = rel(set.end);
      ph[p + 'statements before COPY'] = s.stmts.filter((y) => y.end <= x.start && !y.text.startsWith('parse ') && !y.text.startsWith('bind ')).length;
    } else {
      ph[p + 'connection received'] = rel(s.received);
    }
    ph[p + 'COPY start'] = rel(x.start);
    ph[p + 'COPY end'] = rel(x.end);
    ph[p + 'COPY seconds'] = (x.end - x.start) / 1000;
    ph[p + 'gone'] = rel(s.gone);
    starts.push(x.start);
    ends.push(x.end);
  });
  const objects = mk('rename', /_segment\./);
  if (objects.length > 0) ph['last object renamed'] = rel(Math.max(...objects.map((m) => m.t)));
  const manifest = mk('link', /^manifest\.json$/)[0] ?? mk('rename', /^manifest\.json$/)[0];
  if (manifest) ph['manifest written'] = rel(manifest.t);
  const released = mk('rm', /segferry-claim/).at(-1) ?? mk('unlink', /segferry-claim/).at(-1);
  if (released) ph['claim removed (export returned)'] = rel(released.t);
  ph["'exit' event"] = rel(mk('exit')[0]?.t);
  ph['process closed'] = rel(r.close);
  ph['client CPU-s'] = r.clientCpu;
  ph['server CPU-s'] = r.serverCpu;
  if (starts.length > 0) {
    ph['— before the first COPY'] = Math.min(...starts) - r.spawn;
    if (!queued) {
      ph['— one COPY only, at the start'] = starts.length > 1 ? Math.max(...starts) - Math.min(...starts) : 0;
      ph['— one COPY only, at the end'] = ends.length > 1 ? Math.max(...ends) - Math.min(...ends) : 0;
    }
    // The streams' ends: each session's last COPY end (a stream runs several with ranges from a queue).
    const last = [...perSession.values()].map((xs) => Math.max(...xs.map((x) => x.end)));
    const firstOf = [...perSession.values()].map((xs) => Math.min(...xs.map((x) => x.start)));
    ph['— streams\' ends apart (last COPY end per session)'] = last.length > 1 ? Math.max(...last) - Math.min(...last) : 0;
    ph['— streams\' starts apart (first COPY per session)'] = firstOf.length > 1 ? Math.max(...firstOf) - Math.min(...firstOf) : 0;
    ph['— first COPY start → last COPY end'] = Math.max(...ends) - Math.min(...starts);
    ph['— COPYs (ranges)'] = copies.length;
    ph['— after the last COPY'] = r.close - Math.max(...ends);
  }
  return ph;
}

async function main(): Promise<void> {
  const builds: { name: string; root: string }[] = [{ name: 'this', root: ROOT }];
  if (typeof values.base === 'string') builds.push({ name: 'base', root: path.resolve(values.base) });
  for (const b of builds) statSync(path.join(b.root, 'dist/cli/main.js'));
  const server = await BenchServer.start('timeline');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sf-bench-timeline-'));
  try {
    await growNode(server, 0, rows);
    const total = await rowCount(server);
    warmTable(server);
    for (const [k, v] of Object.entries({ log_min_duration_statement: '0', log_connections: 'on', log_disconnections: 'on', log_line_prefix: '%m [%p] %a|', log_min_messages: 'log' })) {
      await server.query(`ALTER SYSTEM SET ${k} = '${v}'`);
    }
    await server.query('SELECT pg_reload_conf()');
    const logFile = (await server.query<{ f: string }>(`SELECT current_setting('data_directory') || '/server.log' AS f`))[0]!.f;
    const ranges = new Map<string, number>();
    const file = path.join(dir, 'psql.txt');
    // Several commands at once (psql halves) count as one run, closed when the last one is.
    const run = async (contestant: string, cmd: string, argv: string[] | string[][], env: NodeJS.ProcessEnv): Promise<Run> => {
      await server.quiesce();
      const from = statSync(logFile).size;
      const marksFile = path.join(dir, 'marks.json');
      rmSync(marksFile, { force: true });
      const server0 = procCpu(server.pid, true);
      const spawnAt = performance.timeOrigin + performance.now();
      const all = (typeof argv[0] === 'string' ? [argv as string[]] : (argv as string[][])).map((args, i) => {
        const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', path.join(dir, `time${i}`), cmd, ...args], { env: { ...env, SF_TIMELINE_OUT: marksFile }, stdio: ['ignore', 'ignore', 'inherit'] });
        return new Promise<number | null>((res, rej) => { child.on('error', rej); child.on('close', res); });
      });
      const codes = await Promise.all(all);
      const close = performance.timeOrigin + performance.now();
      if (codes.some((c) => c !== 0)) throw new Error(`${contestant} exited ${codes.join(', ')}`);
      const clientCpu = all.reduce((a, _, i) => a + readFileSync(path.join(dir, `time${i}`), 'utf8').trim().split('\n').pop()!.split(' ').reduce((x, y) => x + Number(y), 0), 0);
      await server.quiesce();
      const serverCpu = procCpu(server.pid, true) - server0;
      await new Promise((res) => setTimeout(res, 100)); // the log's last lines
      const text = readFileSync(logFile).subarray(from).toString('utf8');
      let marks: Mark[] = [];
      try { marks = JSON.parse(readFileSync(marksFile, 'utf8')) as Mark[]; } catch { /* psql: none */ }
      const sessions = [...parseLog(text).values()].filter((s) => s.received !== undefined && s.received >= spawnAt - 5);
      for (const s of sessions) for (const x of s.stmts) { const m = RANGE.exec(x.text); if (m) ranges.set(ctidRangeSQL(Number(m[1]), m[2] === undefined ? null : Number(m[2])), 0); }
      return { contestant, spawn: spawnAt, close, marks, sessions, clientCpu, serverCpu };
    };
    const pages = Number((await server.query<{ p: string }>(`SELECT pg_relation_size('${TABLE}') / current_setting('block_size')::int8 AS p`))[0]!.p);
    const half = Math.floor(pages / 2); // as pageStarts(pages, 2) cuts them
    const halves = [ctidRangeSQL(0, half), ctidRangeSQL(half, null)].map((w, i) => [...server.psqlArgs(), '-c', `\\copy (${nodeSelectSQL()} WHERE ${w}) TO '${file}.${i}'`]);
    const contestants: { name: string; go: () => Promise<Run> }[] = [
      { name: 'psql', go: () => { rmSync(file, { force: true }); return run('psql', 'psql', [...server.psqlArgs(), '-c', `\\copy (${nodeSelectSQL()}) TO '${file}'`], psqlEnv()); } },
      ...(values.halves ? [{ name: 'psql halves', go: () => run('psql halves', 'psql', halves, psqlEnv()) }] : []),
      ...builds.map((b) => ({
        name: `segferry ${b.name}`,
        go: async () => {
          const to = path.join(dir, 'out');
          rmSync(to, { recursive: true, force: true });
          const args = ['--import', PRELOAD, path.join(b.root, 'bin/segferry.js'), 'export', '--source', server.url(), '--table', TABLE, '--to', to, '--streams', streams, '-q'];
          const r = await run(`segferry ${b.name}`, process.execPath, args, { ...process.env, SF_TIMELINE_ROOT: b.root });
          const m = JSON.parse(readFileSync(path.join(to, 'manifest.json'), 'utf8')) as { objects: { rows: number }[] };
          if (m.objects.reduce((a, o) => a + o.rows, 0) !== total) throw new Error('segferry stored a wrong row count');
          return r;
        },
      })),
    ];
    const runs: Run[] = [];
    for (let i = 0; i < reps; i++) {
      const order = contestants.map((_, k) => contestants[(k + i) % contestants.length]!);
      for (const c of order) {
        const r = await c.go();
        runs.push(r);
        log(`rep ${i + 1}: ${c.name}: ${((r.close - r.spawn) / 1000).toFixed(2)} s`);
      }
    }
    // Rows and pages per ctid range (untimed, after the runs).
    for (const k of ranges.keys()) ranges.set(k, Number((await server.query<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE} WHERE ${k}`))[0]!.n));
    const lines: string[] = [];
    lines.push(`streams timeline: ${total} rows, one server, --streams ${streams}, ${reps} repetition(s), ${os.availableParallelism()} cores, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; ms from spawn, medians (min–max)`);
    for (const c of contestants) {
      const ps = runs.filter((r) => r.contestant === c.name).map(phases);
      lines.push(`  ${c.name}`);
      const keys = [...new Set(ps.flatMap((p) => Object.keys(p)))];
      for (const k of keys) {
        const xs = ps.map((p) => p[k]).filter((x): x is number => x !== undefined && !Number.isNaN(x));
        if (xs.length === 0) continue;
        const f = (x: number) => (Number.isInteger(x) || Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
        lines.push(`    ${k.padEnd(40)} ${f(median(xs)).padStart(8)}  (${f(Math.min(...xs))}–${f(Math.max(...xs))})`);
      }
    }
    if (ranges.size > 0) lines.push(`  ranges: ${[...ranges].map(([k, n]) => `${k.replace(/::tid/g, '')}: ${n} rows`).join('; ')}`);
    if (values.verbose) {
      for (const r of runs) {
        lines.push(`  run ${r.contestant}:`);
        const ev: [number, string][] = r.marks.map((m) => [m.t, `client ${m.what}${m.app ? ` ${m.app}` : ''}${m.pid ? ` pid ${m.pid}` : ''}${m.file ? ` ${m.file}` : ''}`]);
        for (const s of r.sessions) {
          if (s.received) ev.push([s.received, `[${s.pid}] connection received`]);
          if (s.authorized) ev.push([s.authorized, `[${s.pid}] authorized ${s.app}`]);
          for (const x of s.stmts) ev.push([x.start, `[${s.pid}] ${(x.end - x.start).toFixed(1)} ms: ${x.text.slice(0, 90)}`]);
          if (s.gone) ev.push([s.gone, `[${s.pid}] gone`]);
        }
        ev.push([r.close, 'process closed']);
        const ph = phases(r);
        lines.push(`    ${Object.keys(ph).filter((k) => k.endsWith('COPY seconds')).map((k) => `${k} ${ph[k]!.toFixed(2)}`).join(', ')}`);
        for (const [t, e] of ev.sort((a, b) => a[0] - b[0])) lines.push(`    ${(t - r.spawn).toFixed(1).padStart(8)}  ${e}`);
      }
    }
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await stopAll();
  }
}

runSection(main);
