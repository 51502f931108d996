import { describe, expect, it } from 'vitest';
import { getEventListeners } from 'node:events';
import { AbortedError } from '../../lib/errors.js';
import { runPool } from '../../lib/util/pool.js';
import { runKeyedPool } from '../../lib/util/keyed-pool.js';
import { WorkerSignals } from '../../lib/util/worker-signals.js';

const N = 12;

/**
 * N workers at once, each hanging two listeners on its signal (as an exporter and its store
 * writer do) and running until all N run and `parent` aborts. Returns the most abort
 * listeners any one signal carried, what the workers saw, and the warnings Node printed.
 */
async function crowd(run: (worker: (item: number, signal: AbortSignal) => Promise<void>, parent: AbortSignal) => Promise<void>) {
  const parent = new AbortController();
  const signals = new Set<AbortSignal>();
  const aborted: number[] = [];
  const warnings: string[] = [];
  const onWarning = (w: Error) => { warnings.push(`${w.name}: ${w.message}`); };
  process.on('warning', onWarning);
  let inside = 0;
  let most = 0;
  try {
    const err = await run(async (item, signal) => {
      signals.add(signal);
      // Runs until the abort: its listener rejects (a `once` listener is gone after it ran).
      await new Promise<void>((_resolve, reject) => {
        const a = () => { aborted.push(item); reject(new AbortedError()); };
        const b = () => {};
        signal.addEventListener('abort', a, { once: true });
        signal.addEventListener('abort', b, { once: true });
        most = Math.max(most, ...[...signals].map((s) => getEventListeners(s, 'abort').length));
        if (++inside === N) parent.abort();
      });
    }, parent.signal).then(() => undefined, (e: unknown) => e);
    // Node reports the warning on a later tick.
    await new Promise((r) => setImmediate(r));
    return { err, most, signals: signals.size, aborted: aborted.sort((x, y) => x - y), warnings, parentLeft: getEventListeners(parent.signal, 'abort').length };
  } finally {
    process.off('warning', onWarning);
  }
}

const items = Array.from({ length: N }, (_, i) => i);

describe('pools give each worker its own signal', () => {
  it('runPool: 12 workers with 2 listeners each put at most 2 on any one signal; an abort still reaches every one; no warning', async () => {
    const r = await crowd((w, parent) => runPool(items, N, w, parent));
    expect(r.err).toBeInstanceOf(AbortedError);
    expect([r.most, r.signals, r.aborted, r.parentLeft]).toEqual([2, N, items, 0]);
    expect(r.warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
  });

  it('runKeyedPool: the same', async () => {
    const r = await crowd((w, parent) => runKeyedPool(items, N, (i) => `k${i % 3}`, () => N, w, parent));
    expect(r.err).toBeInstanceOf(AbortedError);
    expect([r.most, r.signals, r.aborted, r.parentLeft]).toEqual([2, N, items, 0]);
    expect(r.warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
  });

  it('WorkerSignals: one abort reaches every signal, once; a late worker gets one already aborted', () => {
    let called = 0;
    const ws = new WorkerSignals(() => { called++; });
    const a = ws.signal();
    const why = new Error('stop');
    ws.abort(why);
    ws.abort(new Error('again'));
    expect([a.aborted, a.reason, ws.reason, called]).toEqual([true, why, why, 1]);
    const late = ws.signal();
    expect([late.aborted, late.reason]).toEqual([true, why]);
  });
});
