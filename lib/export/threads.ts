import { Worker } from 'node:worker_threads';
import { AbortedError, SegferryError, WorkerError, reviveError, serializeError, type SerializedError } from '../errors.js';
import type { makeEmitter } from '../events.js';
import { rememberedPassword, type NodeEndpoint } from '../pg/conn.js';
import { s3PartSize, uploadMemory, type S3Options, type S3RetryInfo } from '../store/s3.js';
import { throwIfAborted } from '../util/pool.js';
import type { NodeWork, UnitResult } from './units.js';
import type { ExportPlan } from './plan.js';
import type { ObjectCipher } from '../crypto/objects.js';

// Data nodes' exporters in worker threads (worker.ts). The main thread keeps the orchestration
// (checkpoint, manifest, events to the caller); each worker runs exportNode for the nodes it is
// given, with its own store client and sessions, so COPY decoding and Arrow building spread
// over several cores. A worker is a whole V8 isolate (tens of MB), so there are at most as
// many as cores, each running one or more nodes' exporters at once.

/** What every worker of an export receives (workerData): plain data only. */
export interface WorkerInput {
  plan: ExportPlan;
  /** Store location string; the worker opens its own store. */
  location: string;
  /** Client-side encryption: the plain data key, passed in memory only (never stored). */
  cipher?: ObjectCipher;
  /** S3 options without callbacks (retries come back as messages). */
  s3?: Omit<S3Options, 'onRetry'>;
}

/** Main thread → worker. */
export type ToWorker =
  /** Export one node's work; `password` is the node's, when this process remembers one. */
  | { t: 'run'; job: number; work: NodeWork; password?: string }
  | { t: 'abort'; job: number; reason: SerializedError }
  | { t: 'ack'; id: number; error?: SerializedError };

/** Worker → main thread. */
export type FromWorker =
  | { t: 'event'; e: Parameters<ReturnType<typeof makeEmitter>>[0] }
  | { t: 'retry'; info: S3RetryInfo }
  /** A finished unit, named by its id in the job's `work.units`; the main thread answers with `ack`. */
  | { t: 'unit'; job: number; id: number; unit: string; result: Omit<UnitResult, 'unit'> }
  /** The worker got an abort: it is alive and stopping the job (its `error` follows once its uploads are aborted). */
  | { t: 'aborting'; job: number }
  | { t: 'done'; job: number }
  | { t: 'error'; job: number; error: SerializedError };

/**
 * After an abort, how long a worker may take to answer ('aborting') before it is terminated.
 * A worker that answers is waited for however long it takes to stop its COPY and abort its
 * uploads (STYLE.md: undo work only after every worker has stopped); only one that does not
 * answer (its event loop stuck) is terminated, which can strand the parts of its open
 * multipart uploads (`segferry cleanup` lists them where the store can list uploads).
 */
const ABORT_ANSWER_MS = 15_000;

let running = 0;

/** Exporter threads alive in this process right now (tests check that none outlive an export). */
export function runningWorkers(): number {
  return running;
}

// The rule that decides whether to start workers lives apart, so that deciding loads no worker
// machinery (node:worker_threads, the S3 store): lib/export/threads-rule.ts.
export { autoThreads, cores, onThisHost, type AutoThreadsInput } from './threads-rule.js';

/**
 * Where the worker entry is: next to this module. From the built dist that is worker.js, run by
 * Node as is. From TypeScript sources (tests under vitest, `tsx`), worker.ts: Node 20 applies
 * no `--import` loader to a worker's entry, so a tiny eval entry registers tsx's loader through
 * its API first. tsx is a devDependency: the dist path never touches it.
 */
function startWorker(input: WorkerInput, other?: URL): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = other ?? new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
  const execArgv = workerExecArgv(process.execArgv);
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData: input, execArgv });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData: input, execArgv });
}

/** Node flags that load code before the entry: each takes the module as its value. */
const PRELOAD_FLAGS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);

/**
 * The Node flags an exporter thread starts with: the process's own (a Worker inherits them by
 * default) without its preloads and loaders (`--import`, `--require`/`-r`, `--loader`,
 * `--experimental-loader`). A thread runs only segferry's modules and needs none; inherited,
 * `--import tsx` alone cost each thread ≈ 0.2 CPU-s more to start (bench/threads.ts), and an
 * agent preloaded by the host would start again in every thread.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (PRELOAD_FLAGS.has(a)) i++; // and its value
    else if (![...PRELOAD_FLAGS].some((f) => f.startsWith('--') && a.startsWith(`${f}=`))) out.push(a);
  }
  return out;
}

interface Job {
  work: NodeWork;
  onUnitDone: (r: UnitResult) => Promise<void>;
  settle: (error?: SegferryError) => void;
  /** Called when the worker answers an abort. */
  answered?: () => void;
}

interface Thread {
  worker: Worker;
  jobs: Map<number, Job>;
  exited: Promise<void>;
}

/**
 * The S3 part-buffer budget of each of `workers` threads: each opens its own store, so the
 * export's `uploadMemory` (default 72 MiB) is split between them, one part each at least. Pure.
 */
export function workerUploadMemory(s3: Pick<S3Options, 'partSize' | 'queueSize' | 'uploadMemory'>, workers: number): number {
  return Math.max(s3PartSize(s3), Math.floor(uploadMemory(s3) / Math.max(1, workers)));
}

/** Options of {@link ExporterThreads}. */
export interface ExporterThreadsOptions {
  plan: ExportPlan;
  location: string;
  s3?: S3Options;
  /** Client-side encryption of every object (default: none). */
  cipher?: ObjectCipher;
  /** Most worker threads at once; exporters beyond that share them. */
  size: number;
  emit: ReturnType<typeof makeEmitter>;
  /** Called for each S3 retry inside a worker (the main thread's retry reporter). */
  onRetry?: (info: S3RetryInfo) => void;
  /** Tests only: another entry module (e.g. one that crashes). */
  entry?: URL;
  /** Tests only: how long a worker may take to answer an abort (default ABORT_ANSWER_MS, 15 s). */
  abortAnswerMs?: number;
}

/**
 * A set of up to `size` worker threads running node exporters. Threads start on demand; a new
 * exporter goes to a new thread while fewer than `size` exist, else to the least busy one.
 * {@link close} terminates them all and resolves once every one has exited.
 */
export class ExporterThreads {
  readonly #o: ExporterThreadsOptions;
  readonly #input: WorkerInput;
  readonly #threads = new Set<Thread>();
  #nextJob = 0;

  constructor(o: ExporterThreadsOptions) {
    this.#o = o;
    const { onRetry: _drop, ...s3 } = o.s3 ?? {};
    this.#input = { plan: o.plan, location: o.location, s3: { ...s3, uploadMemory: workerUploadMemory(s3, o.size) } };
    if (o.cipher) this.#input.cipher = o.cipher;
  }

  /**
   * Run one node's exporter in a thread. Its events, retries and finished units arrive as they
   * happen (`onUnitDone` gets the caller's own unit objects from `work.units`); its error
   * arrives as the same class and code; a thread that dies under it is a {@link WorkerError}.
   */
  async run(work: NodeWork, signal: AbortSignal, onUnitDone: (r: UnitResult) => Promise<void>): Promise<void> {
    throwIfAborted(signal);
    const th = this.#pick(work.node.name);
    const job = this.#nextJob++;
    let answerTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      const why = signal.reason;
      const reason = why instanceof SegferryError ? why : new AbortedError();
      // The job settles when the worker reports (its uploads aborted first); terminate only a
      // worker that does not even answer (see ABORT_ANSWER_MS).
      const j = th.jobs.get(job);
      if (j) j.answered = () => clearTimeout(answerTimer);
      answerTimer = setTimeout(() => {
        th.jobs.get(job)?.settle(reason);
        void th.worker.terminate();
      }, this.#o.abortAnswerMs ?? ABORT_ANSWER_MS);
      this.#post(th, { t: 'abort', job, reason: serializeError(reason) });
    };
    try {
      await new Promise<void>((resolve, reject) => {
        th.jobs.set(job, {
          work,
          onUnitDone,
          settle: (error) => {
            th.jobs.delete(job);
            if (error) reject(error);
            else resolve();
          },
        });
        const m: ToWorker = { t: 'run', job, work };
        const pw = rememberedPassword(work.node.endpoint);
        if (pw !== undefined) m.password = pw;
        try {
          th.worker.postMessage(m);
        } catch (e) {
          // Not cloneable (or the thread is gone): this exporter cannot start there.
          const n = work.node.name;
          th.jobs.get(job)?.settle(new WorkerError(`cannot hand node ${n}'s work to an exporter thread: ${(e as Error)?.message ?? e}`, { node: n, cause: e }));
          return;
        }
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      clearTimeout(answerTimer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Terminate every thread; resolves when all have exited. Call it once every run has
   * settled: the threads are idle then, with no upload open.
   */
  async close(): Promise<void> {
    const all = [...this.#threads];
    for (const th of all) void th.worker.terminate();
    await Promise.all(all.map((th) => th.exited));
  }

  #post(th: Thread, m: ToWorker): void {
    try { th.worker.postMessage(m); } catch { /* it has exited: its jobs are settled on exit */ }
  }

  #pick(node: string): Thread {
    let best: Thread | undefined;
    for (const th of this.#threads) if (!best || th.jobs.size < best.jobs.size) best = th;
    if (best && (best.jobs.size === 0 || this.#threads.size >= Math.max(1, this.#o.size))) return best;
    return this.#start(node);
  }

  #start(node: string): Thread {
    let worker: Worker;
    try {
      worker = startWorker(this.#input, this.#o.entry);
    } catch (e) {
      throw new WorkerError(`cannot start an exporter thread for node ${node}: ${(e as Error)?.message ?? e}`, { node, cause: e });
    }
    running++;
    let failure: ((job: Job) => SegferryError) | undefined;
    const th: Thread = {
      worker,
      jobs: new Map(),
      exited: new Promise<void>((resolve) => {
        worker.once('exit', (code) => {
          running--;
          this.#threads.delete(th);
          // Whatever still runs on it has no result: name each node.
          for (const j of [...th.jobs.values()]) {
            const n = j.work.node.name;
            j.settle(failure?.(j) ?? new WorkerError(`the exporter thread of node ${n} ended without a result (exit code ${code})`, { node: n }));
          }
          resolve();
        });
      }),
    };
    this.#threads.add(th);
    worker.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'event':
          this.#o.emit(m.e);
          break;
        case 'retry':
          try { this.#o.onRetry?.(m.info); } catch { /* never break the export */ }
          break;
        case 'unit': {
          const j = th.jobs.get(m.job);
          if (!j) break;
          const unit = j.work.units.find((u) => u.id === m.unit);
          if (!unit) {
            this.#post(th, { t: 'ack', id: m.id, error: serializeError(new WorkerError(`the exporter thread of node ${j.work.node.name} reported an unknown unit ${m.unit}`, { node: j.work.node.name })) });
            break;
          }
          j.onUnitDone({ ...m.result, unit }).then(
            () => this.#post(th, { t: 'ack', id: m.id }),
            (e: unknown) => this.#post(th, { t: 'ack', id: m.id, error: serializeError(e) }),
          );
          break;
        }
        case 'aborting':
          th.jobs.get(m.job)?.answered?.();
          break;
        case 'done':
          th.jobs.get(m.job)?.settle();
          break;
        case 'error':
          th.jobs.get(m.job)?.settle(reviveError(m.error));
          break;
      }
    });
    worker.on('error', (e) => {
      failure ??= (j) => new WorkerError(`the exporter thread of node ${j.work.node.name} failed: ${e?.message ?? e}`, { node: j.work.node.name, cause: e });
    });
    worker.on('messageerror', (e) => {
      failure ??= (j) => new WorkerError(`the exporter thread of node ${j.work.node.name} sent an unreadable message`, { node: j.work.node.name, cause: e });
      void worker.terminate();
    });
    return th;
  }
}
