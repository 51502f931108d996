import { AbortedError, SegferryError } from '../errors.js';
import { WorkerSignals } from './worker-signals.js';

/**
 * Run `worker` over `items` with at most `concurrency` at once (at least 1): N workers pull from
 * one shared iterator, so an item is taken only when a worker is free. On the first failure the
 * shared AbortController is aborted (items not started are never started), every worker is
 * awaited, and then the first error is thrown (a real failure before the abort errors it
 * caused): nothing is still running when this rejects. `parent` (default: none) aborts the
 * same way; the pool then rejects with its reason, or ERR_ABORTED for a plain `abort()`.
 * Each worker gets a signal of its own (lib/util/worker-signals.ts), used for all its items,
 * and `parent` one listener, however many workers run.
 */
export async function runPool<T>(
  items: Iterable<T>,
  concurrency: number,
  worker: (item: T, signal: AbortSignal) => Promise<void>,
  parent?: AbortSignal,
): Promise<void> {
  const { ac, errors, settle } = openPool(parent);
  const it = items[Symbol.iterator]();
  const loop = async () => {
    const signal = ac.signal();
    for (;;) {
      if (ac.aborted) return;
      const next = it.next();
      if (next.done) return;
      try {
        await worker(next.value, signal);
      } catch (e) {
        errors.push(e);
        ac.abort(e);
        return;
      }
    }
  };
  await settle(concurrency, loop);
}

/**
 * What both pools (this one and lib/util/keyed-pool.ts) share: the workers' signals, tied to
 * `parent` by one listener (a caller's plain `abort()`, a DOMException reason, becomes
 * ERR_ABORTED, for the workers and for the caller alike, whether it came before the start or
 * during the run), the errors the workers push, and `settle`, which runs `concurrency` loops (at
 * least 1), then throws the first real failure (before the abort errors it caused in the other
 * workers), else the parent's abort. `onAbort` (default none) also runs on the workers' abort.
 */
export function openPool(parent: AbortSignal | undefined, onAbort?: () => void): {
  ac: WorkerSignals;
  errors: unknown[];
  settle: (concurrency: number, loop: () => Promise<void>) => Promise<void>;
} {
  const ac = new WorkerSignals(onAbort);
  const parentReason = () => (parent?.reason instanceof SegferryError ? parent.reason : new AbortedError());
  const onParentAbort = () => ac.abort(parentReason());
  if (parent?.aborted) throw parentReason();
  parent?.addEventListener('abort', onParentAbort, { once: true });
  const errors: unknown[] = [];
  const settle = async (concurrency: number, loop: () => Promise<void>) => {
    try {
      await Promise.all(Array.from({ length: Math.max(1, concurrency) }, loop));
    } finally {
      parent?.removeEventListener('abort', onParentAbort);
    }
    if (errors.length > 0) throw errors.find((e) => !(e instanceof AbortedError)) ?? errors[0];
    if (parent?.aborted) throw parentReason();
  };
  return { ac, errors, settle };
}

/** Throw if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError();
}
