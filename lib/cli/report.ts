import { SegferryError, redact } from '../errors.js';
import type { EventListener, SegferryEvent } from '../events.js';
import type { ExportResult } from '../export/export.js';
import type { ImportResult } from '../import/import.js';
import type { VerifyResult } from '../import/verify.js';

/** How the CLI talks: live TTY lines, plain log lines, JSON events, or nothing but errors. */
export type OutputMode = 'tty' | 'plain' | 'json' | 'quiet';

/** Format bytes as B, KiB, MiB, GiB. */
export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

function rate(bytes: number, ms: number): string {
  return ms > 0 ? `${formatBytes((bytes * 1000) / ms)}/s` : '-';
}

/**
 * Renders library events for people (stderr) or machines (`--json`, stdout), and the final
 * summary and errors. Never prints secrets: everything goes through redact().
 */
export class Reporter {
  mode: OutputMode = 'plain';
  verbose = false;
  #lastPlain = 0;
  #nodes = new Map<string, { table: string; segment: number; bytes: number; rows: number }>();

  configure(mode: OutputMode, verbose: boolean): this {
    this.mode = mode;
    this.verbose = verbose;
    return this;
  }

  #out(s: string): void { process.stdout.write(redact(s)); }
  #err(s: string): void { process.stderr.write(redact(s)); }

  listener(): EventListener {
    return (e: SegferryEvent) => this.event(e);
  }

  event(e: SegferryEvent): void {
    if (this.mode === 'json') {
      this.#out(JSON.stringify(e) + '\n');
      return;
    }
    if (this.mode === 'quiet') return;
    if (e.type === 'progress') {
      this.#nodes.set(e.node, { table: e.table, segment: e.segment, bytes: e.bytes, rows: e.rows });
      const now = Date.now();
      if (now - this.#lastPlain >= 3000) {
        this.#lastPlain = now;
        const parts = [...this.#nodes].map(([n, s]) => `${n}: ${s.table} seg ${s.segment} ${formatBytes(s.bytes)} ${s.rows} rows`);
        this.#err(`${e.operation}: ${parts.join(' | ')}\n`);
      }
    } else if (e.type === 'start') {
      this.#err(`${e.operation}: ${e.tables.length} table(s) on ${e.nodes.length} node(s) [${e.nodes.join(', ')}]\n`);
    } else if (e.type === 'node-done') {
      this.#err(`${e.operation}: node ${e.node} done: ${e.objects} objects, ${e.rows} rows, ${formatBytes(e.bytes)} in ${(e.elapsedMs / 1000).toFixed(1)} s\n`);
    } else if (e.type === 'table-done') {
      this.#err(`${e.operation}: table ${e.table} done: ${e.objects} objects, ${e.rows} rows, ${formatBytes(e.bytes)}\n`);
    } else if (e.type === 'retry') {
      this.#err(`${e.operation}: retry ${e.attempt}${e.key ? ` ${e.key}` : ''}: ${e.reason}\n`);
    }
  }

  exportSummary(r: ExportResult): void {
    if (this.mode === 'json' || this.mode === 'quiet') return;
    const m = r.manifest;
    const rows = m.tables.reduce((a, t) => a + t.rows, 0);
    const bytes = m.objects.reduce((a, o) => a + o.bytes, 0);
    const lines = [
      '',
      `Export complete: ${r.location}`,
      `  tables   ${m.tables.length}/${r.plan.tables.length}`,
      `  objects  ${m.objects.length}`,
      `  rows     ${rows}`,
      `  bytes    ${bytes} (${formatBytes(bytes)})`,
      `  elapsed  ${(r.elapsedMs / 1000).toFixed(1)} s, ${rate(bytes, r.elapsedMs)}`,
      '  per node:',
      ...r.nodes.map((n) => `    ${n.node.padEnd(16)} ${String(n.objects).padStart(5)} objects ${String(n.rows).padStart(10)} rows ${formatBytes(n.bytes).padStart(10)} ${(n.elapsedMs / 1000).toFixed(1).padStart(7)} s ${rate(n.bytes, n.elapsedMs).padStart(12)}`),
      '',
    ];
    this.#err(lines.join('\n'));
  }

  importSummary(r: ImportResult): void {
    if (this.mode === 'json' || this.mode === 'quiet') return;
    const lines = [
      '',
      `Import complete: ${r.location} (import id ${r.importId})`,
      `  loaded   ${r.loaded} object(s), ${r.rows} rows, ${r.bytes} bytes (${formatBytes(r.bytes)})`,
      `  skipped  ${r.skipped} object(s) already in the ledger`,
      `  elapsed  ${(r.elapsedMs / 1000).toFixed(1)} s, ${rate(r.bytes, r.elapsedMs)}`,
      '  per table:',
      ...r.tables.map((t) => {
        const extra = [
          t.created.length > 0 ? `created on ${t.created.join(', ')}` : '',
          t.truncated ? 'truncated first' : '',
          t.analyzed ? 'analyzed' : '',
        ].filter(Boolean).join(', ');
        return `    ${t.table.padEnd(24)} via ${t.route.padEnd(11)} ${String(t.loaded).padStart(5)} loaded ${String(t.skipped).padStart(5)} skipped ${String(t.rows).padStart(10)} rows${extra ? `  (${extra})` : ''}`;
      }),
      '  per node:',
      ...r.nodes.map((n) => `    ${n.node.padEnd(16)} ${String(n.objects).padStart(5)} objects ${String(n.skipped).padStart(5)} skipped ${String(n.rows).padStart(10)} rows ${formatBytes(n.bytes).padStart(10)}`),
      ...r.notes.map((n) => `  note: ${n}`),
      '',
    ];
    this.#err(lines.join('\n'));
  }

  /** Per table: match or mismatch with both figures (stdout; one JSON line with --json). */
  verifyReport(v: VerifyResult): void {
    if (this.mode === 'json') {
      this.#out(JSON.stringify({ type: 'verify', at: new Date().toISOString(), ...v }) + '\n');
      return;
    }
    const fig = (f: { rows: number; sum?: string } | undefined) => (f ? `${f.rows} rows, checksum ${f.sum ?? '(none)'}` : '(nothing recorded)');
    const lines = [`Verify ${v.location}:`];
    for (const t of v.tables) {
      const word = t.match === true ? 'match' : t.match === false ? 'MISMATCH' : 'not compared';
      lines.push(`  ${word.padEnd(12)} ${t.table}`);
      lines.push(`    source       ${fig(t.source)}`);
      if (t.replicatedPerNode && t.nodes) {
        for (const n of t.nodes) lines.push(`    ${n.node.padEnd(12)} ${fig(n)}${n.match === false ? '  <- differs' : ''}`);
      } else {
        lines.push(`    destination  ${fig(t.destination)}`);
      }
      if (t.note) lines.push(`    note: ${t.note}`);
    }
    lines.push(v.ok ? 'All compared tables match.' : 'Some tables differ.');
    if (this.mode === 'quiet' && v.ok) return;
    this.#out(lines.join('\n') + '\n');
  }

  /** Print a failure and return the exit code. */
  failure(err: unknown): number {
    const e = err instanceof SegferryError ? err : undefined;
    if (this.mode === 'json') {
      this.#out(JSON.stringify({ type: 'error', at: new Date().toISOString(), error: e ? e.toJSON() : { code: 'ERR_INTERNAL', message: String((err as Error)?.message ?? err) } }) + '\n');
    }
    if (e) {
      const where = [e.sqlState ? `SQLSTATE ${e.sqlState}` : ''].filter(Boolean).join(' ');
      this.#err(`segferry: error ${e.code}: ${e.message}${where ? ` [${where}]` : ''}\n`);
      if (e.hint) this.#err(`  hint: ${e.hint}\n`);
    } else {
      this.#err(`segferry: internal error: ${(err as Error)?.message ?? String(err)}\n`);
    }
    if (this.verbose && err instanceof Error && err.stack) this.#err(err.stack + '\n');
    if (e?.code === 'ERR_INVALID_OPTION') return 2;
    if (e?.code === 'ERR_ABORTED') return 130;
    if (e?.code === 'ERR_VERIFY_MISMATCH') return 3;
    return 1;
  }
}
