import type { S3Options } from './store/s3.js';

/**
 * Typed progress events. The library never prints: pass `onEvent` to receive these.
 * Every event carries `type`, `operation` and `at` (ISO time). Events never carry credentials.
 */

interface Base {
  operation: 'export' | 'import' | 'verify' | 'copy';
  /** ISO timestamp. */
  at: string;
}

/** The operation starts; `estimatedBytes` is the planner's estimate (0 when unknown). */
export interface StartEvent extends Base {
  type: 'start';
  tables: string[];
  nodes: string[];
  objects?: number;
  estimatedBytes: number;
  /**
   * Expected bytes per node, when known: export, the planner's estimates (relation sizes on
   * disk, so only a guide); import, the manifest's exact object sizes.
   */
  nodeBytes?: Record<string, number>;
}

/** Periodic (about twice a second per node): cumulative figures of one node's current work. */
export interface ProgressEvent extends Base {
  type: 'progress';
  /**
   * Copy only: the side this event is about: `export` (rows read from a source node) or
   * `import` (rows committed on a destination node).
   */
  phase?: 'export' | 'import';
  node: string;
  table: string;
  /** Segment being written or loaded. */
  segment: number;
  /** Bytes and rows this node has done so far, all tables together. */
  bytes: number;
  rows: number;
  /**
   * Export: set when the figures are of one stream of a (table, node) read in several streams
   * at once (docs/streams.md): the stream's unit id, with `bytes` and `rows` that stream's own.
   * The node's figures are then the sum over its streams' latest (and its other work).
   */
  unit?: string;
}

/** An object was stored (export) or loaded and committed (import). */
export interface SegmentEvent extends Base {
  type: 'segment';
  /**
   * Copy only: the side this event is about: `export` (rows read from a source node) or
   * `import` (rows committed on a destination node).
   */
  phase?: 'export' | 'import';
  node: string;
  table: string;
  key: string;
  segment: number;
  bytes: number;
  rows: number;
  /** Import only: the object was already in the ledger and was skipped. */
  skipped?: boolean;
  /** Export: the id of the unit that stored it (lib/export/units.ts), as the checkpoint records it. */
  unit?: string;
  /** Export: the stored object's SHA-256 (hex), as the manifest will record it, when the export uses `objectChecksum: 'sha256'`. */
  sha256?: string;
  /** Export: the stored object's CRC-32 (8 hex digits), as the manifest will record it, when the export uses `objectChecksum: 'crc32'`. */
  crc32?: string;
  /** Import with a reject limit: rows of the object the destination refused (set aside; absent when none). */
  rejected?: number;
}

/** A node finished all its work. */
export interface NodeDoneEvent extends Base {
  type: 'node-done';
  node: string;
  bytes: number;
  rows: number;
  objects: number;
  elapsedMs: number;
}

/** All objects of a table are done. */
export interface TableDoneEvent extends Base {
  type: 'table-done';
  table: string;
  rows: number;
  bytes: number;
  objects: number;
}

/** A request is retried after a transient failure. */
export interface RetryEvent extends Base {
  type: 'retry';
  node?: string;
  table?: string;
  key?: string;
  attempt: number;
  reason: string;
}

/** The operation finished successfully. */
export interface DoneEvent extends Base {
  type: 'done';
  tables: number;
  objects: number;
  rows: number;
  bytes: number;
  elapsedMs: number;
  /** Import: objects skipped because the ledger already had them. */
  skipped?: number;
}

/** Something worth telling the user that does not stop the run (e.g. a best-effort prefix claim). */
export interface WarningEvent extends Base {
  type: 'warning';
  /** Stable identifier of the warning, e.g. `claim-best-effort`. */
  code: string;
  message: string;
  key?: string;
  /**
   * `'info'`: the same fact, where the caller knows it is no cause for concern (the demo's own
   * local S3 server and the best-effort claim, docs/cli.md): the CLI prints it only with
   * `--verbose`, and `--json` prints it as any event. Absent: a warning, always printed.
   */
  level?: 'info';
}

/** Any progress event. */
export type SegferryEvent = StartEvent | ProgressEvent | SegmentEvent | NodeDoneEvent | TableDoneEvent | RetryEvent | DoneEvent | WarningEvent;

/** Callback receiving events; exceptions it throws are ignored. */
export type EventListener = (event: SegferryEvent) => void;

type Without<T, K extends keyof any> = T extends unknown ? Omit<T, K> : never;

/** Build an emitter that stamps `operation` and `at` and shields the caller's listener. */
export function makeEmitter(operation: Base['operation'], listener?: EventListener): (e: Without<SegferryEvent, 'operation' | 'at'>) => void {
  if (!listener) return () => {};
  return (e) => {
    try {
      listener({ ...e, operation, at: new Date().toISOString() } as SegferryEvent);
    } catch {
      /* a listener's failure must not break the data path */
    }
  };
}

/** S3 options whose retries also become `retry` events (the caller's own onRetry still runs). */
export function withRetryEvents(s3: S3Options | undefined, emit: ReturnType<typeof makeEmitter>): S3Options {
  return {
    ...s3,
    onRetry: (i) => {
      s3?.onRetry?.(i);
      emit({ type: 'retry', attempt: i.attempt, reason: `${i.operation}: ${i.reason}`, ...(i.key ? { key: i.key } : {}) });
    },
  };
}
