import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import { SegferryError, redact } from '../errors.js';
import type { EventListener, SegferryEvent } from '../events.js';
import type { ExportResult } from '../export/export.js';
import type { ImportResult } from '../import/import.js';
import type { VerifyResult } from '../import/verify.js';
import {
  ProgressModel,
  formatBytes,
  formatCount,
  formatDuration,
  formatBytesPerSecond,
  formatRate,
  nodePercent,
  printable,
  type ProgressSnapshot,
} from './progress.js';

export { formatBytes } from './progress.js';

/** How the CLI talks: live TTY lines, plain log lines, JSON events, or nothing but errors. */
export type OutputMode = 'tty' | 'plain' | 'json' | 'quiet';

/** Output mode from flags and the terminal: live lines only on a real terminal. */
export function outputMode(v: { json?: unknown; quiet?: unknown }): OutputMode {
  if (v.json) return 'json';
  if (v.quiet) return 'quiet';
  return process.stderr.isTTY && process.env.TERM !== 'dumb' ? 'tty' : 'plain';
}

/** Figures of a finished operation, as the summary prints them. */
export interface Summary {
  operation: 'export' | 'import' | 'verify';
  /** First line, e.g. "Export complete: s3://bucket/prefix/". */
  title: string;
  tablesDone: number;
  tablesTotal: number;
  objects: number;
  rows: number;
  bytes: number;
  elapsedMs: number;
  /** Import: objects skipped because they were already loaded. */
  skipped?: number;
  /** Per-node figures, so skew is visible. */
  nodes: { node: string; objects: number; rows: number; bytes: number; elapsedMs: number }[];
  /** Extra lines printed after the figures (verify results, next steps). */
  notes?: string[];
}

/** Plain mode prints one status line at most this often. */
export const PLAIN_INTERVAL_MS = 3000;

/** Exit code for an error (0 never). */
export function exitCodeOf(err: unknown): number {
  const code = (err as { code?: unknown })?.code;
  if (code === 'ERR_INVALID_OPTION') return 2;
  if (code === 'ERR_ABORTED') return 130;
  if (code === 'ERR_VERIFY_MISMATCH') return 3;
  return 1;
}

/** Build the summary's lines (no trailing newline). Pure, for tests and renderers. */
export function summaryLines(s: Summary): string[] {
  const lines = [
    s.title,
    `  tables    ${s.tablesDone}/${s.tablesTotal}`,
    `  objects   ${s.objects}${s.skipped ? ` (${s.skipped} skipped: already loaded)` : ''}`,
    `  rows      ${s.rows}`,
    `  bytes     ${s.bytes} (${formatBytes(s.bytes)})`,
    `  elapsed   ${(s.elapsedMs / 1000).toFixed(1)} s`,
    `  rate      ${formatRate(s.bytes, s.elapsedMs)}`,
  ];
  if (s.nodes.length > 0) {
    const w = Math.max(8, ...s.nodes.map((n) => n.node.length));
    lines.push(`  ${'node'.padEnd(w)} ${'objects'.padStart(7)} ${'rows'.padStart(12)} ${'bytes'.padStart(11)} ${'time'.padStart(8)} ${'rate'.padStart(13)} ${'share'.padStart(6)}`);
    for (const n of s.nodes) {
      const share = s.bytes > 0 ? `${((100 * n.bytes) / s.bytes).toFixed(1)}%` : '-';
      lines.push(
        `  ${printable(n.node).padEnd(w)} ${String(n.objects).padStart(7)} ${String(n.rows).padStart(12)} ${formatBytes(n.bytes).padStart(11)} ${`${(n.elapsedMs / 1000).toFixed(1)} s`.padStart(8)} ${formatRate(n.bytes, n.elapsedMs).padStart(13)} ${share.padStart(6)}`,
      );
    }
    if (s.nodes.length > 1) {
      const byTime = [...s.nodes].sort((a, b) => a.elapsedMs - b.elapsedMs);
      const fast = byTime[0]!;
      const slow = byTime[byTime.length - 1]!;
      if (fast.elapsedMs > 0) {
        lines.push(`  skew      slowest node ${printable(slow.node)} took ${(slow.elapsedMs / fast.elapsedMs).toFixed(2)}x the time of the fastest (${printable(fast.node)})`);
      }
    }
  }
  if (s.notes) lines.push(...s.notes);
  return lines;
}

/** The summary of an export result. */
export function exportSummaryOf(r: ExportResult): Summary {
  const m = r.manifest;
  return {
    operation: 'export',
    title: `Export complete: ${r.location}`,
    tablesDone: m.tables.length,
    tablesTotal: r.plan.tables.length,
    objects: m.objects.length,
    rows: m.tables.reduce((a, t) => a + t.rows, 0),
    bytes: m.objects.reduce((a, o) => a + o.bytes, 0),
    elapsedMs: r.elapsedMs,
    nodes: r.nodes,
  };
}

/** The summary of an import. */
export function importSummaryOf(r: ImportResult): Summary {
  const notes = r.tables.map((t) => {
    const extra = [
      t.created.length > 0 ? `created on ${t.created.join(', ')}` : '',
      t.truncated ? 'truncated first' : '',
      t.analyzed ? 'analyzed' : '',
    ].filter(Boolean).join(', ');
    return `  table     ${printable(t.table)} via ${t.route}: ${t.loaded} loaded, ${t.skipped} skipped, ${t.rows} rows${t.rejected > 0 ? `, ${t.rejected} rejected` : ''}${extra ? ` (${extra})` : ''}`;
  });
  if (r.rejects) {
    notes.push(r.rejected > 0
      ? `  rejected  ${r.rejected} rows set aside in ${r.rejects.keys.length} rejects object(s) under ${printable(r.rejects.location)}`
      : '  rejected  no rows refused');
  }
  const s: Summary = {
    operation: 'import',
    title: `Import complete: ${r.location} (import id ${r.importId})`,
    tablesDone: r.tables.length,
    tablesTotal: r.plan.tables.length,
    objects: r.loaded,
    rows: r.rows,
    bytes: r.bytes,
    elapsedMs: r.elapsedMs,
    nodes: r.nodes.map((n) => ({ node: n.node, objects: n.objects, rows: n.rows, bytes: n.bytes, elapsedMs: n.elapsedMs })),
    notes: [...notes, ...r.notes.map((n) => `  note      ${n}`)],
  };
  if (r.skipped > 0) s.skipped = r.skipped;
  return s;
}

/** The verify report's lines: per table, match or mismatch with both figures. */
export function verifyLines(v: VerifyResult): string[] {
  const fig = (f: { rows: number; sum?: string } | undefined) => (f ? `${f.rows} rows, checksum ${f.sum ?? '(none)'}` : '(nothing recorded)');
  const lines = [`Verify ${v.location}:`];
  for (const t of v.tables) {
    const word = t.match === true ? 'match' : t.match === false ? 'MISMATCH' : 'not compared';
    lines.push(`  ${word.padEnd(12)} ${printable(t.table)}`);
    lines.push(`    source       ${fig(t.source)}`);
    if (t.replicatedPerNode && t.nodes) {
      for (const n of t.nodes) lines.push(`    ${printable(n.node).padEnd(12)} ${fig(n)}${n.match === false ? '  <- differs' : ''}`);
    } else {
      lines.push(`    destination  ${fig(t.destination)}`);
    }
    if (t.rejected) {
      const per = t.rejected.nodes ? ` (${Object.entries(t.rejected.nodes).map(([n, r]) => `${printable(n)} ${r}`).join(', ')})` : '';
      lines.push(`    rejected     ${t.rejected.rows} rows${t.rejected.sum !== undefined ? `, checksum ${t.rejected.sum}` : ''}${per}: set aside on import`);
    }
    if (t.note) lines.push(`    note: ${t.note}`);
  }
  lines.push(v.ok ? 'All compared tables match.' : 'Some tables differ.');
  return lines;
}

const BAR_WIDTH = 20;

function bar(percent: number | undefined): string {
  if (percent === undefined) return '';
  const full = Math.round((BAR_WIDTH * percent) / 100);
  return `[${'█'.repeat(full)}${'░'.repeat(BAR_WIDTH - full)}] ${percent.toFixed(0).padStart(3)}%`;
}

/** The TTY lines: one per node and a total. Pure, so tests can check the text. */
export function ttyLines(s: ProgressSnapshot): { nodes: string[]; total: string } {
  if (s.operation === 'verify') {
    // Verify scans on the servers and reports per table only: one line.
    const when = s.done ? `in ${formatDuration(s.elapsedMs / 1000)}` : formatDuration(s.elapsedMs / 1000);
    return { nodes: [], total: `  verify  ${s.tablesDone}/${s.tablesTotal} tables checked  ${formatCount(s.tableRows)} rows  ${when}` };
  }
  const wn = Math.max(5, ...s.nodes.map((n) => n.node.length));
  const wt = Math.min(24, Math.max(5, ...s.nodes.map((n) => n.table.length)));
  const nodes = s.nodes.map((n) => {
    // A finished node has no current table: show none rather than the last one it did.
    const table = (n.done ? '' : printable(n.table)).slice(0, wt).padEnd(wt);
    const seg = n.table && !n.done ? `seg ${String(n.segment).padStart(3)}` : '       ';
    const p = bar(nodePercent(n));
    const parts = [
      `  ${printable(n.node).padEnd(wn)}`,
      table,
      seg,
      p,
      formatBytes(n.bytes).padStart(10),
      `${formatCount(n.rows).padStart(11)} rows`,
      formatRate(n.bytes, n.elapsedMs).padStart(12),
      n.done ? 'done' : '',
    ];
    return parts.filter((x) => x !== '').join('  ');
  });
  const size = s.expectedBytes > 0 && !s.done ? ` / ${s.exact ? '' : '~'}${formatBytes(s.expectedBytes)}` : '';
  const total = [
    `  ${'total'.padEnd(wn)}`,
    `${s.tablesDone}/${s.tablesTotal} tables`,
    `${s.objects} objects`,
    bar(s.percent),
    `${formatBytes(s.bytes)}${size}`,
    `${formatCount(s.rows)} rows`,
    formatBytesPerSecond(s.rate),
    s.done ? `in ${formatDuration(s.elapsedMs / 1000)}` : s.etaSeconds !== undefined ? `ETA ${formatDuration(s.etaSeconds)}` : `${formatDuration(s.elapsedMs / 1000)}`,
  ].filter((x) => x !== '').join('  ');
  return { nodes, total };
}

/** The plain status line. Pure. */
/** A warning event as one stderr line (not with --quiet; an `info` one only with --verbose; --json prints the event itself). */
export function warningLine(e: Extract<SegferryEvent, { type: 'warning' }>): string {
  return `${e.operation}: ${e.level === 'info' ? 'info' : 'warning'} (${printable(e.code)}): ${printable(e.message)}\n`;
}

export function plainLine(s: ProgressSnapshot): string {
  const pct = s.percent !== undefined ? ` ${s.exact ? '' : '~'}${s.percent.toFixed(0)}%` : '';
  const size = s.expectedBytes > 0 ? `/${s.exact ? '' : '~'}${formatBytes(s.expectedBytes)}` : '';
  const eta = s.etaSeconds !== undefined ? ` ETA ${formatDuration(s.etaSeconds)}` : '';
  const nodes = s.nodes
    .map((n) => `${printable(n.node)}: ${n.done ? 'done' : `${printable(n.table)} seg ${n.segment}`} ${formatBytes(n.bytes)}`)
    .join(' | ');
  return `${s.operation} ${(s.elapsedMs / 1000).toFixed(0)}s: ${formatBytes(s.bytes)}${size}${pct}, ${s.rows} rows, ${s.objects} objects, ${formatBytesPerSecond(s.rate)}${eta} | ${nodes}`;
}

type Bar = cliProgress.SingleBar;

/** Live multi-line display on a terminal, drawn by cli-progress. */
class TtyView {
  readonly #model: () => ProgressModel;
  readonly #stream: NodeJS.WriteStream;
  #multi: cliProgress.MultiBar | undefined;
  #nodeBars = new Map<string, Bar>();
  #total: Bar | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(model: () => ProgressModel, stream: NodeJS.WriteStream) {
    this.#model = model;
    this.#stream = stream;
  }

  get active(): boolean { return this.#multi !== undefined; }

  #fit(line: string): string {
    // A wrapped line breaks the redraw's cursor arithmetic: cut to the terminal width.
    const cols = this.#stream.columns ?? 120;
    return redact(line).slice(0, Math.max(20, cols - 1));
  }

  start(): void {
    if (this.#multi) return;
    // Loaded on first use: a run without a live display (not a terminal, -q, --json) never
    // needs cli-progress and its 20 files (≈ 10 ms of every run's start-up).
    const { MultiBar } = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
    this.#multi = new MultiBar({
      stream: this.#stream,
      format: (_o: unknown, _p: unknown, payload: { line?: string }) => payload.line ?? '',
      hideCursor: true,
      clearOnComplete: false,
      fps: 5,
      linewrap: false,
      gracefulExit: false,
    });
    this.#timer = setInterval(() => this.refresh(), 500);
    this.#timer.unref();
    this.refresh();
  }

  refresh(): void {
    const multi = this.#multi;
    if (!multi) return;
    const s = this.#model().snapshot();
    const lines = ttyLines(s);
    if (lines.nodes.length > 0) s.nodes.forEach((n, i) => {
      let b = this.#nodeBars.get(n.node);
      const payload = { line: this.#fit(lines.nodes[i]!) };
      if (!b) {
        // Node bars above the total: recreate the total so it stays last.
        if (this.#total) { multi.remove(this.#total); this.#total = undefined; }
        b = multi.create(100, 0, payload);
        this.#nodeBars.set(n.node, b);
      } else b.update(nodePercent(n) ?? 0, payload);
    });
    const payload = { line: this.#fit(lines.total) };
    if (!this.#total) this.#total = multi.create(100, 0, payload);
    else this.#total.update(s.percent ?? 0, payload);
  }

  log(text: string): void {
    if (this.#multi) this.#multi.log(this.#fit(text) + '\n');
    else this.#stream.write(redact(text) + '\n');
  }

  stop(): void {
    if (!this.#multi) return;
    this.refresh();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#multi.stop();
    this.#multi = undefined;
    this.#nodeBars.clear();
    this.#total = undefined;
  }
}

/**
 * Renders library events for people (stderr) or machines (`--json`, stdout), plus the final
 * summary (stdout) and errors (stderr). Events → {@link ProgressModel} → a view; the library
 * itself never prints. Everything written passes through redact().
 */
export class Reporter {
  mode: OutputMode = 'plain';
  verbose = false;
  #model = new ProgressModel();
  #pendingExpect: { perNode: Record<string, number>; exact: boolean } | undefined;
  #tty: TtyView | undefined;
  #lastPlain = 0;
  readonly #stdout: NodeJS.WriteStream;
  readonly #stderr: NodeJS.WriteStream;

  constructor(streams: { stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream } = {}) {
    this.#stdout = streams.stdout ?? process.stdout;
    this.#stderr = streams.stderr ?? process.stderr;
  }

  configure(mode: OutputMode, verbose: boolean): this {
    this.mode = mode;
    this.verbose = verbose;
    return this;
  }

  #out(s: string): void { this.#stdout.write(redact(s)); }
  #err(s: string): void {
    if (this.#tty?.active) this.#tty.log(s.replace(/\n$/, ''));
    else this.#stderr.write(redact(this.mode === 'tty' ? s : printableLines(s)));
  }

  /** Expected bytes per node (plan estimates, or exact manifest sizes) for percentages and ETA. */
  expect(perNode: Record<string, number>, exact = false): void {
    this.#pendingExpect = { perNode, exact };
  }

  /** A listener to pass as `onEvent`. */
  listener(): EventListener {
    return (e: SegferryEvent) => this.event(e);
  }

  event(e: SegferryEvent): void {
    if (this.mode === 'json') {
      this.#out(JSON.stringify(e) + '\n');
      return;
    }
    if (e.type === 'start') {
      // Each operation (the demo runs export, import and verify in turn) starts from zero,
      // with the expectations set for it.
      this.#model = new ProgressModel();
      if (this.#pendingExpect) this.#model.expect(this.#pendingExpect.perNode, this.#pendingExpect.exact);
      this.#pendingExpect = undefined;
    }
    this.#model.apply(e);
    if (this.mode === 'quiet') return;
    if (this.mode === 'tty') {
      if (e.type === 'start') {
        this.#err(`${e.operation}: ${e.tables.length} table(s) on ${e.nodes.length} node(s)\n`);
        this.#tty ??= new TtyView(() => this.#model, this.#stderr);
        this.#tty.start();
      } else if (e.type === 'retry') {
        this.#err(`${e.operation}: retry ${e.attempt}${e.node ? ` on ${e.node}` : ''}${e.key ? ` ${e.key}` : ''}: ${e.reason}\n`);
      } else if (e.type === 'warning') {
        if (e.level !== 'info' || this.verbose) this.#err(warningLine(e));
      } else if (e.type === 'done') {
        this.#tty?.stop();
        this.#tty = undefined;
      }
      return;
    }
    // plain
    if (e.type === 'progress' || e.type === 'segment') {
      const now = Date.now();
      if (now - this.#lastPlain >= PLAIN_INTERVAL_MS) {
        this.#lastPlain = now;
        this.#err(plainLine(this.#model.snapshot()) + '\n');
      }
    } else if (e.type === 'start') {
      this.#lastPlain = Date.now();
      this.#err(`${e.operation}: ${e.tables.length} table(s) on ${e.nodes.length} node(s) [${e.nodes.join(', ')}]${e.estimatedBytes > 0 ? `, about ${formatBytes(e.estimatedBytes)}` : ''}\n`);
    } else if (e.type === 'node-done') {
      this.#err(`${e.operation}: node ${e.node} done: ${e.objects} objects, ${e.rows} rows, ${formatBytes(e.bytes)} in ${(e.elapsedMs / 1000).toFixed(1)} s\n`);
    } else if (e.type === 'table-done') {
      const figs = e.operation === 'verify' ? `${e.rows} rows` : `${e.objects} objects, ${e.rows} rows, ${formatBytes(e.bytes)}`;
      this.#err(`${e.operation}: table ${e.table} done: ${figs}\n`);
    } else if (e.type === 'retry') {
      this.#err(`${e.operation}: retry ${e.attempt}${e.node ? ` on ${e.node}` : ''}${e.key ? ` ${e.key}` : ''}: ${e.reason}\n`);
    } else if (e.type === 'warning') {
      if (e.level !== 'info' || this.verbose) this.#err(warningLine(e));
    } else if (e.type === 'done') {
      const figs = e.operation === 'verify' ? `${e.rows} rows` : `${e.objects} objects${e.skipped ? ` (+${e.skipped} skipped)` : ''}, ${e.rows} rows, ${formatBytes(e.bytes)}`;
      this.#err(`${e.operation}: done: ${e.tables} tables, ${figs} in ${(e.elapsedMs / 1000).toFixed(1)} s\n`);
    }
  }

  /** A step message (demo, next steps): stderr for people; a `note` line with --json. */
  note(text: string, fields: Record<string, unknown> = {}): void {
    if (this.mode === 'json') {
      this.#out(JSON.stringify({ type: 'note', at: new Date().toISOString(), message: text, ...fields }) + '\n');
      return;
    }
    if (this.mode === 'quiet') return;
    this.#err(text + '\n');
  }

  /** Print the final summary on stdout (not with --json or --quiet). */
  summary(s: Summary): void {
    this.#tty?.stop();
    this.#tty = undefined;
    if (this.mode === 'json' || this.mode === 'quiet') return;
    const text = '\n' + summaryLines(s).join('\n') + '\n';
    this.#out(this.mode === 'tty' ? text : printableLines(text));
  }

  /** Summary of an export. */
  exportSummary(r: ExportResult): void {
    this.summary(exportSummaryOf(r));
  }

  /** Stop live output (before exiting on a failure or interrupt). */
  stop(): void {
    this.#tty?.stop();
    this.#tty = undefined;
  }

  /** Summary of an import (per-table lines and notes follow the figures). */
  importSummary(r: ImportResult): void {
    this.summary(importSummaryOf(r));
  }

  /** Per table: match or mismatch with both figures (stdout; one JSON line with --json). */
  verifyReport(v: VerifyResult): void {
    this.stop();
    if (this.mode === 'json') {
      this.#out(JSON.stringify({ type: 'verify', at: new Date().toISOString(), ...v }) + '\n');
      return;
    }
    if (this.mode === 'quiet' && v.ok) return;
    this.#out(verifyLines(v).join('\n') + '\n');
  }

  /**
   * Print a failure and return the exit code: one line `segferry: error CODE: message`, a
   * `hint:` line when there is one, and the stack only when verbose. With --json, also an
   * `error` event on stdout.
   */
  failure(err: unknown): number {
    this.stop();
    const e = err instanceof SegferryError ? err : undefined;
    if (this.mode === 'json') {
      this.#out(JSON.stringify({ type: 'error', at: new Date().toISOString(), error: e ? e.toJSON() : { code: 'ERR_INTERNAL', message: String((err as Error)?.message ?? err) } }) + '\n');
    }
    if (e) {
      const where = e.sqlState ? ` [SQLSTATE ${e.sqlState}]` : '';
      this.#err(`segferry: error ${e.code}: ${oneLine(e.message)}${where}\n`);
      if (e.hint) this.#err(`  hint: ${oneLine(e.hint)}\n`);
    } else {
      this.#err(`segferry: internal error: ${oneLine(String((err as Error)?.message ?? err))}\n`);
      if (!this.verbose) this.#err('  hint: run again with --verbose for the stack trace, and report it\n');
    }
    if (this.verbose && err instanceof Error && err.stack) this.#err(err.stack + '\n');
    return exitCodeOf(err);
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}

/** Keep newlines, replace every other control character. */
function printableLines(s: string): string {
  return s.split('\n').map(printable).join('\n');
}
