import { describe, expect, it } from 'vitest';
import { AbortedError, type SegferryEvent } from '../../lib/index.js';
import { makeEmitter } from '../../lib/events.js';
import type { ExportPlan } from '../../lib/export/plan.js';
import { ExporterThreads, runningWorkers } from '../../lib/export/threads.js';
import type { NodeWork } from '../../lib/export/units.js';

// Worker threads with a stub entry (stub-worker.ts): no database, no store.
const plan: ExportPlan = {
  version: 1, topology: 'static', nodes: [{ name: 'dn1', endpoint: { host: '127.0.0.1', port: 1, database: 'db', user: 'u' } }], tables: [],
  format: { kind: 'text' }, segmentSize: 1 << 20, filter: null, sessionSettings: {}, concurrency: 1, checksums: true,
};
const work: NodeWork = { node: plan.nodes[0]!, units: [] };
const entry = new URL('./stub-worker.ts', import.meta.url);

describe('exporter threads on abort', () => {
  it('a worker that answers is waited for until it reports, however long after the answer deadline', async () => {
    const events: SegferryEvent[] = [];
    const ac = new AbortController();
    // Abort once the worker runs. The answer deadline is far shorter than the stub's 2.5 s of "aborting uploads".
    const onEvent = (e: SegferryEvent) => {
      events.push(e);
      if (e.type === 'retry' && e.reason === 'running') ac.abort(new AbortedError('stop'));
    };
    const threads = new ExporterThreads({ plan, location: 'answers', size: 1, emit: makeEmitter('export', onEvent), entry, abortAnswerMs: 1000 });
    try {
      const run = threads.run(work, ac.signal, async () => {});
      const err = await run.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(AbortedError);
      expect((err as AbortedError).message).toBe('stop');
      // The worker's last message before its report arrived: it was not terminated early.
      expect(events.map((e) => (e.type === 'retry' ? e.reason : e.type))).toEqual(['running', 'uploads aborted']);
      expect(runningWorkers()).toBe(1);
    } finally {
      await threads.close();
    }
    expect(runningWorkers()).toBe(0);
  });

  it('a worker that does not answer is terminated as a last resort and the run rejects with the abort reason', async () => {
    const ac = new AbortController();
    const threads = new ExporterThreads({ plan, location: 'silent', size: 1, emit: makeEmitter('export', () => ac.abort()), entry, abortAnswerMs: 300 });
    try {
      const run = threads.run(work, ac.signal, async () => {});
      const err = await run.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(AbortedError);
      expect((err as AbortedError).code).toBe('ERR_ABORTED');
    } finally {
      await threads.close();
    }
    expect(runningWorkers()).toBe(0);
  });
});
