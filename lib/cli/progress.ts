import type { SegferryEvent } from '../events.js';

/**
 * The CLI's view of a running operation, built from library events only. Renderers read it;
 * it never prints. Kept separate so the figures can be tested without a terminal.
 */

/** One node's figures so far. */
export interface NodeProgress {
  /** The node's name; for a copy, `<name> export` (read from it) or `<name> import` (loaded into it). */
  node: string;
  /** A copy's side of the node (events with `phase`); absent otherwise. */
  phase?: 'export' | 'import';
  /** Table and segment the node works on (last reported). */
  table: string;
  segment: number;
  /** Cumulative bytes and rows of this node, all tables together. */
  bytes: number;
  rows: number;
  /** Objects finished (stored on export, loaded on import). */
  objects: number;
  /** Expected bytes of this node when known (plan estimate or manifest sizes), else 0. */
  expectedBytes: number;
  done: boolean;
  /** Node's own time when done, else time since the operation started. */
  elapsedMs: number;
}

/** A snapshot of the whole operation. */
export interface ProgressSnapshot {
  operation: string;
  started: boolean;
  elapsedMs: number;
  tablesTotal: number;
  tablesDone: number;
  /** Rows of the finished tables (as their table-done events report them). */
  tableRows: number;
  objects: number;
  bytes: number;
  rows: number;
  /** Expected total bytes (0 when unknown). */
  expectedBytes: number;
  /** True when `expectedBytes` is exact (import: sizes from the manifest), false for an estimate. */
  exact: boolean;
  /** 0–100, or undefined when the size is unknown. Held below 100 until the done event. */
  percent?: number;
  /** Bytes per second since the start. */
  rate: number;
  /** Seconds left at the average rate, when the size is known. */
  etaSeconds?: number;
  retries: number;
  done: boolean;
  nodes: NodeProgress[];
}

/** Folds events into figures. */
export class ProgressModel {
  #op = '';
  #t0 = 0;
  #started = false;
  #done = false;
  #doneMs = 0;
  #tablesTotal = 0;
  #tablesDone = 0;
  #tableRows = 0;
  #expected = 0;
  #exact = false;
  #retries = 0;
  #nodes = new Map<string, NodeProgress>();
  #nodeExpect = new Map<string, number>();
  /** Per node: the latest figures of each reader ('' the node's one session; else a stream's unit id). */
  #readers = new Map<string, Map<string, { bytes: number; rows: number }>>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /**
   * Set per-node expected bytes (from a plan's estimates or a manifest's object sizes).
   * `exact` tells whether the figures are exact.
   */
  expect(perNode: Record<string, number>, exact = false): void {
    for (const [n, b] of Object.entries(perNode)) {
      this.#nodeExpect.set(n, b);
      const p = this.#nodes.get(n);
      if (p) p.expectedBytes = b;
    }
    this.#exact = exact;
    const sum = Object.values(perNode).reduce((a, b) => a + b, 0);
    if (sum > 0) this.#expected = sum;
  }

  #node(name: string, phase?: 'export' | 'import'): NodeProgress {
    // A copy's two sides of one node name are two lines: what was read there, what was loaded there.
    const key = phase ? `${name} ${phase}` : name;
    let p = this.#nodes.get(key);
    if (!p) {
      p = { node: key, table: '', segment: 0, bytes: 0, rows: 0, objects: 0, expectedBytes: phase ? 0 : this.#nodeExpect.get(name) ?? 0, done: false, elapsedMs: 0 };
      if (phase) p.phase = phase;
      this.#nodes.set(key, p);
    }
    return p;
  }

  /** Fold one event in. */
  apply(e: SegferryEvent): void {
    switch (e.type) {
      case 'start':
        this.#op = e.operation;
        this.#t0 = this.#now();
        this.#started = true;
        this.#done = false;
        this.#tablesTotal = e.tables.length;
        this.#tablesDone = 0;
        if (e.nodeBytes && this.#nodeExpect.size === 0) this.expect(e.nodeBytes, e.operation !== 'export');
        if (this.#nodeExpect.size === 0 && e.estimatedBytes > 0) this.#expected = e.estimatedBytes;
        // A copy's lines appear with its first events of each side.
        if (e.operation !== 'copy') for (const n of e.nodes) this.#node(n);
        break;
      case 'progress': {
        const p = this.#node(e.node, e.phase);
        p.table = e.table;
        p.segment = e.segment;
        // Streams of one node report their own figures: the node has done their sum.
        let r = this.#readers.get(e.node);
        if (!r) this.#readers.set(e.node, (r = new Map()));
        const k = e.unit ?? '';
        const prev = r.get(k);
        r.set(k, { bytes: Math.max(prev?.bytes ?? 0, e.bytes), rows: Math.max(prev?.rows ?? 0, e.rows) });
        let bytes = 0;
        let rows = 0;
        for (const x of r.values()) {
          bytes += x.bytes;
          rows += x.rows;
        }
        p.bytes = Math.max(p.bytes, bytes);
        p.rows = Math.max(p.rows, rows);
        break;
      }
      case 'segment': {
        // A copy's units committed by an earlier run moved nothing in this one.
        if (e.skipped && e.phase) break;
        const p = this.#node(e.node, e.phase);
        p.table = e.table;
        p.segment = e.segment;
        p.objects += 1;
        break;
      }
      case 'node-done': {
        const p = this.#node(e.node);
        p.bytes = e.bytes;
        p.rows = e.rows;
        p.objects = e.objects;
        p.elapsedMs = e.elapsedMs;
        p.done = true;
        break;
      }
      case 'table-done':
        this.#tablesDone += 1;
        this.#tableRows += e.rows;
        break;
      case 'retry':
        this.#retries += 1;
        break;
      case 'done':
        this.#done = true;
        this.#doneMs = e.elapsedMs;
        this.#tablesDone = Math.max(this.#tablesDone, e.tables);
        break;
    }
  }

  /** Current figures. */
  snapshot(): ProgressSnapshot {
    const elapsedMs = this.#done ? this.#doneMs : this.#started ? this.#now() - this.#t0 : 0;
    const nodes = [...this.#nodes.values()]
      .map((n) => ({ ...n, elapsedMs: n.done ? n.elapsedMs : elapsedMs }))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    // A copy's totals are what has been loaded (its export side is shown per node only).
    const counted = nodes.some((n) => n.phase) ? nodes.filter((n) => n.phase === 'import') : nodes;
    const bytes = counted.reduce((a, n) => a + n.bytes, 0);
    const rows = counted.reduce((a, n) => a + n.rows, 0);
    const objects = counted.reduce((a, n) => a + n.objects, 0);
    const rate = elapsedMs > 0 ? (bytes * 1000) / elapsedMs : 0;
    const s: ProgressSnapshot = {
      operation: this.#op,
      started: this.#started,
      elapsedMs,
      tablesTotal: this.#tablesTotal,
      tablesDone: this.#tablesDone,
      tableRows: this.#tableRows,
      objects,
      bytes,
      rows,
      expectedBytes: this.#expected,
      exact: this.#exact,
      rate,
      retries: this.#retries,
      done: this.#done,
      nodes,
    };
    if (this.#done) s.percent = 100;
    else if (this.#expected > 0) {
      s.percent = Math.min(99, (100 * bytes) / this.#expected);
      // An estimate can be too small: never promise a time once the bytes passed it.
      if (rate > 0 && bytes < this.#expected) s.etaSeconds = (this.#expected - bytes) / rate;
    }
    return s;
  }
}

/** Per-node percentage (held below 100 until the node is done), or undefined. */
export function nodePercent(n: NodeProgress): number | undefined {
  if (n.done) return 100;
  if (n.expectedBytes <= 0) return undefined;
  return Math.min(99, (100 * n.bytes) / n.expectedBytes);
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers shared by the renderers and the summary.

/** Bytes as B, KiB, MiB, GiB, TiB. */
export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** Bytes per second from bytes and milliseconds (`14.6 B/s`, `1.23 MiB/s`; `-` without time). */
export function formatRate(bytes: number, ms: number): string {
  return ms > 0 ? formatBytesPerSecond((bytes * 1000) / ms) : '-';
}

/**
 * A rate with binary units and 3 significant digits: `0 B/s`, `14.6 B/s`, `0.977 KiB/s`,
 * `1.0 MiB/s`, `123 MiB/s`. The unit changes at 1000 so that no figure needs a fourth digit.
 */
export function formatBytesPerSecond(rate: number): string {
  if (!Number.isFinite(rate) || rate <= 0) return '0 B/s';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = rate;
  while (v >= 999.5 && i < u.length - 1) { v /= 1024; i++; }
  // 3 significant digits; zeros after the point are dropped down to one (`1.0`, `14.6`, `0.977`).
  const digits = v >= 100 ? String(Math.round(v)) : v.toPrecision(3).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '.0');
  return `${digits} ${u[i]}/s`;
}

/** A whole number with thousands separators (1,234,567). */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Seconds as `42s`, `3m07s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Replace control characters (ESC included) so a name from a catalog cannot drive a terminal. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}
