import { describe, expect, it } from 'vitest';
import { AbortedError, StorageError } from '../../lib/errors.js';
import { autoImportStreams, checkImportStreams } from '../../lib/import/streams.js';
import { runKeyedPool } from '../../lib/util/keyed-pool.js';

const tick = () => new Promise((r) => setImmediate(r));

/** Runs the pool over items `<key><n>` and records the most running at once, in all and per key. */
async function peaks(items: string[], concurrency: number, limits: Record<string, number>) {
  const running = new Map<string, number>();
  let now = 0;
  let peak = 0;
  const keyPeak = new Map<string, number>();
  const order: string[] = [];
  await runKeyedPool(items, concurrency, (x) => x[0]!, (k) => limits[k] ?? 1, async (x) => {
    const k = x[0]!;
    order.push(x);
    running.set(k, (running.get(k) ?? 0) + 1);
    now++;
    peak = Math.max(peak, now);
    keyPeak.set(k, Math.max(keyPeak.get(k) ?? 0, running.get(k)!));
    for (let i = 0; i < 3 + (x.charCodeAt(1) % 3); i++) await tick();
    running.set(k, running.get(k)! - 1);
    now--;
  });
  return { peak, keyPeak: Object.fromEntries(keyPeak), order };
}

describe('runKeyedPool: at most N per key, at most concurrency in all', () => {
  it('one key with limit 4 under concurrency 8 runs 4 at once; every item once, in order per key', async () => {
    const items = Array.from({ length: 20 }, (_, i) => `a${i}`);
    const r = await peaks(items, 8, { a: 4 });
    expect(r.peak).toBe(4);
    expect(r.order).toEqual(items);
  });

  it('a key at its limit does not hold back the other keys; the total stays under concurrency', async () => {
    const items = [...Array.from({ length: 12 }, (_, i) => `a${i}`), ...Array.from({ length: 12 }, (_, i) => `b${i}`)];
    const r = await peaks(items, 5, { a: 1, b: 8 });
    expect(r.keyPeak).toEqual({ a: 1, b: 4 });
    expect(r.peak).toBe(5);
    expect([...r.order].sort()).toEqual([...items].sort());
  });

  it('the first failure stops new items, waits for the running ones, and is what it throws', async () => {
    const boom = new StorageError('boom');
    const started: string[] = [];
    const err = await runKeyedPool(['a1', 'a2', 'a3', 'b1', 'b2', 'b3'], 4, (x) => x[0]!, () => 2, async (x, signal) => {
      started.push(x);
      if (x === 'b1') {
        await tick();
        throw boom;
      }
      await new Promise<void>((_r, reject) => signal.addEventListener('abort', () => reject(new AbortedError()), { once: true }));
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toBe(boom);
    expect(started.sort()).toEqual(['a1', 'a2', 'b1', 'b2']);
  });

  it('a parent abort rejects with ERR_ABORTED and starts nothing more', async () => {
    const ac = new AbortController();
    const started: string[] = [];
    const err = await runKeyedPool(['a1', 'a2', 'a3'], 2, () => 'a', () => 1, async (x) => {
      started.push(x);
      ac.abort();
      await tick();
    }, ac.signal).then(() => undefined, (e: unknown) => e);
    expect((err as AbortedError).code).toBe('ERR_ABORTED');
    expect(started).toEqual(['a1']);
  });
});

describe('import streams: the auto rule', () => {
  it('min(max_parallel_workers, 4, free connections / 4), at least 1', () => {
    expect(autoImportStreams({ maxParallelWorkers: 8, freeConnections: 95 })).toBe(4);
    expect(autoImportStreams({ maxParallelWorkers: 2, freeConnections: 95 })).toBe(2);
    expect(autoImportStreams({ maxParallelWorkers: 8, freeConnections: 10 })).toBe(2);
    expect(autoImportStreams({ maxParallelWorkers: 0, freeConnections: 0 })).toBe(1);
    expect(checkImportStreams('auto')).toBe('auto');
    expect(checkImportStreams(3)).toBe(3);
    expect(() => checkImportStreams(0)).toThrow(/streams/);
    expect(() => checkImportStreams('2')).toThrow(/streams/);
  });
});
