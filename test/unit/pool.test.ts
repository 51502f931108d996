import { describe, expect, it } from 'vitest';
import { AbortedError, StorageError } from '../../lib/errors.js';
import { runPool } from '../../lib/util/pool.js';

/** A task that runs until its signal aborts, then takes a while to clean up. */
function untilAborted(log: string[], name: string, signal: AbortSignal, cleanupTicks = 3): Promise<void> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener('abort', async () => {
      log.push(`${name} aborted`);
      for (let i = 0; i < cleanupTicks; i++) await new Promise((r) => setImmediate(r));
      log.push(`${name} stopped`);
      reject(new AbortedError());
    }, { once: true });
  });
}

describe('runPool', () => {
  it('one task fails: the others get the abort, and the pool rejects with the first error after all have settled', async () => {
    const log: string[] = [];
    const boom = new StorageError('boom');
    const p = runPool(['a', 'b', 'c'], 3, async (item, signal) => {
      if (item === 'b') {
        await new Promise((r) => setImmediate(r));
        log.push('b fails');
        throw boom;
      }
      await untilAborted(log, item, signal, item === 'a' ? 5 : 2);
    });
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBe(boom);
    // Both others were told, and both had stopped before the pool settled.
    expect(log[0]).toBe('b fails');
    expect(log.filter((l) => l.endsWith('aborted')).sort()).toEqual(['a aborted', 'c aborted']);
    expect(log.filter((l) => l.endsWith('stopped')).sort()).toEqual(['a stopped', 'c stopped']);
    expect(log).toHaveLength(5);
  });

  it('items not yet started are never started after a failure', async () => {
    const started: number[] = [];
    const err = await runPool([1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n);
      if (n === 2) throw new StorageError('fail');
      await new Promise((r) => setImmediate(r));
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(started).toEqual([1, 2]);
  });

  it('a caller abort reaches every task as ERR_ABORTED and the pool rejects once all have stopped', async () => {
    const log: string[] = [];
    const ac = new AbortController();
    setImmediate(() => ac.abort()); // a plain abort(), as most callers write it
    const q = runPool(['x', 'y'], 2, (item, signal) => {
      expect(signal.aborted).toBe(false);
      return untilAborted(log, item, signal).catch((e) => {
        expect(signal.reason).toBeInstanceOf(AbortedError);
        throw e;
      });
    }, ac.signal);
    const err = await q.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AbortedError);
    expect((err as AbortedError).code).toBe('ERR_ABORTED');
    expect(log.filter((l) => l.startsWith('x') || l.startsWith('y')).sort()).toEqual(['x aborted', 'x stopped', 'y aborted', 'y stopped']);
  });

  it('an already aborted signal starts nothing; success runs every item once', async () => {
    const ac = new AbortController();
    ac.abort();
    let ran = 0;
    await expect(runPool([1], 1, async () => { ran++; }, ac.signal)).rejects.toBeInstanceOf(AbortedError);
    expect(ran).toBe(0);
    const seen: number[] = [];
    await runPool([1, 2, 3, 4], 3, async (n) => { seen.push(n); });
    expect(seen.sort()).toEqual([1, 2, 3, 4]);
  });
});
