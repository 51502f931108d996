// A stand-in exporter thread for test/unit/threads.test.ts, speaking the protocol of
// lib/export/threads.ts. workerData.location picks its behaviour on abort:
// 'answers': answers at once, then takes 2.5 s to "abort its uploads" (an event), then reports;
// 'silent': never answers (a stuck event loop, as far as the main thread can tell).
import { parentPort, workerData } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerInput } from '../../lib/export/threads.js';

const port = parentPort!;
const input = workerData as WorkerInput;
const send = (m: FromWorker) => port.postMessage(m);
port.on('message', (m: ToWorker) => {
  // Tell the test it runs, so that it aborts a live worker (not one still loading).
  if (m.t === 'run') send({ t: 'event', e: { type: 'retry', attempt: 0, reason: 'running' } });
  if (m.t !== 'abort' || input.location !== 'answers') return;
  send({ t: 'aborting', job: m.job });
  setTimeout(() => {
    send({ t: 'event', e: { type: 'retry', node: 'dn1', table: 'public.t', attempt: 1, reason: 'uploads aborted' } });
    send({ t: 'error', job: m.job, error: m.reason });
  }, 2500);
});
