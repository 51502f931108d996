// Worker thread entry: runs data nodes' exporters (exporter.ts) for export.ts, with the
// protocol of threads.ts. Not part of the public API.
import { parentPort, workerData } from 'node:worker_threads';
import { reviveError, serializeError } from '../errors.js';
import { rememberPassword } from '../pg/conn.js';
import { openStore } from '../store/open.js';
import { exportNode } from './exporter.js';
import type { NodeWork, UnitResult } from './units.js';
import type { FromWorker, ToWorker, WorkerInput } from './threads.js';

const port = parentPort;
if (!port) throw new Error('worker.ts runs only as a worker thread');
const input = workerData as WorkerInput;
const send = (m: FromWorker) => port.postMessage(m);

// One store client for every exporter of this thread; closed when the thread is terminated.
const store = openStore(input.location, { ...input.s3, onRetry: (info) => send({ t: 'retry', info }) });
// Structured cloning turns the data key's Buffer into a Uint8Array.
const cipher = input.cipher ? { dataKey: Buffer.from(input.cipher.dataKey), chunkSize: input.cipher.chunkSize } : undefined;
const aborts = new Map<number, AbortController>();
const acks = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
let nextAck = 0;

async function run(job: number, work: NodeWork, password: string | undefined): Promise<void> {
  // This thread has its own password map and secret list: this registers it for redaction too.
  rememberPassword(work.node.endpoint, password);
  const ac = new AbortController();
  aborts.set(job, ac);
  // As in this thread: the exporter goes on only once the main thread has recorded the unit.
  const onUnitDone = (r: UnitResult) => new Promise<void>((resolve, reject) => {
    const id = nextAck++;
    acks.set(id, { resolve, reject });
    const { unit, ...result } = r;
    send({ t: 'unit', job, id, unit: unit.id, result });
  });
  try {
    await exportNode(work, input.plan, store, ac.signal, (e) => send({ t: 'event', e }), onUnitDone, undefined, cipher);
    send({ t: 'done', job });
  } catch (e) {
    send({ t: 'error', job, error: serializeError(e) });
  } finally {
    aborts.delete(job);
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'run':
      void run(m.job, m.work, m.password);
      break;
    case 'abort': {
      // Answer at once (this thread is alive), then stop: the exporter destroys its COPY and
      // aborts its uploads before its 'error' is sent.
      const ac = aborts.get(m.job);
      if (!ac) break;
      send({ t: 'aborting', job: m.job });
      ac.abort(reviveError(m.reason));
      break;
    }
    case 'ack': {
      const a = acks.get(m.id);
      acks.delete(m.id);
      if (m.error) a?.reject(reviveError(m.error));
      else a?.resolve();
      break;
    }
  }
});
