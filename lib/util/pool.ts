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
  const ac = new WorkerSignals();
  // A caller's plain `abort()` (a DOMException reason) becomes ERR_ABORTED, for the workers and
  // for the caller alike, whether it came before the start or during the run.
  const parentReason = () => (parent?.reason instanceof SegferryError ? parent.reason : new AbortedError());
  const onAbort = () => ac.abort(parentReason());
  if (parent?.aborted) throw parentReason();
  parent?.addEventListener('abort', onAbort, { once: true });
  const it = items[Symbol.iterator]();
  const errors: unknown[] = [];
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
  try {
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, loop));
  } finally {
    parent?.removeEventListener('abort', onAbort);
  }
  if (errors.length > 0) {
    // Prefer a real failure over the abort errors it caused in the other workers.
    const real = errors.find((e) => !(e instanceof AbortedError));
    throw real ?? errors[0];
  }
  if (parent?.aborted) throw parentReason();
}

/** Throw if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError();
}
