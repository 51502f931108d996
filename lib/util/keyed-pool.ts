import { openPool } from './pool.js';

/**
 * {@link runPool} with a second bound: at most `limitOf(key)` items of one key run at once
 * (at least 1), and at most `concurrency` in all. Items of one key start in their given
 * order; keys take turns, so a key at its limit never holds back another key's items
 * (a free worker takes the next item of the next key with room, or waits for a slot). Failure
 * and abort as runPool: the first failure aborts the rest, every worker is awaited, then the
 * first real error is thrown. Each worker has a signal of its own, as in runPool. O(keys) per item.
 */
export async function runKeyedPool<T>(
  items: Iterable<T>,
  concurrency: number,
  keyOf: (item: T) => string,
  limitOf: (key: string) => number,
  worker: (item: T, signal: AbortSignal) => Promise<void>,
  parent?: AbortSignal,
): Promise<void> {
  // Waiting workers wake on abort, to see it and end.
  const { ac, errors, settle } = openPool(parent, () => wake());
  // Per key: its items in order and how many run; keys in order of first appearance.
  const queues = new Map<string, { items: T[]; next: number; running: number; limit: number }>();
  let left = 0;
  for (const x of items) {
    const k = keyOf(x);
    let q = queues.get(k);
    if (!q) queues.set(k, (q = { items: [], next: 0, running: 0, limit: Math.max(1, limitOf(k)) }));
    q.items.push(x);
    left++;
  }
  const keys = [...queues.keys()];
  let turn = 0;
  let waiting: (() => void)[] = [];
  const wake = () => {
    const w = waiting;
    waiting = [];
    for (const f of w) f();
  };
  const take = (): { key: string; item: T } | undefined => {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[(turn + i) % keys.length]!;
      const q = queues.get(key)!;
      if (q.next < q.items.length && q.running < q.limit) {
        turn = (turn + i + 1) % keys.length;
        q.running++;
        left--;
        return { key, item: q.items[q.next++]! };
      }
    }
    return undefined;
  };
  const loop = async () => {
    const signal = ac.signal();
    for (;;) {
      if (ac.aborted || left === 0) return;
      const next = take();
      if (!next) {
        await new Promise<void>((r) => waiting.push(r));
        continue;
      }
      try {
        await worker(next.item, signal);
      } catch (e) {
        errors.push(e);
        ac.abort(e);
        return;
      } finally {
        queues.get(next.key)!.running--;
        wake();
      }
    }
  };
  await settle(concurrency, loop);
}
