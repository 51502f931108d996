/**
 * Last-resort, synchronous cleanup of test servers when the test process goes away without
 * tearing them down (a crashed test, a worker killed by the runner, Ctrl-C).
 *
 * Callbacks run once, in registration order, on process `exit`, and, in the main thread, on
 * SIGINT/SIGTERM/SIGHUP. After cleaning up on a signal the signal is raised again when no other
 * listener wants it, so the process still dies the way it would have.
 *
 * Callbacks must be quick: vitest sends SIGTERM to a fork worker and SIGKILL 500 ms later. So
 * they only signal the servers and hand the slow part (waiting for the processes to end, deleting
 * directories) to a detached shell, see `removeWhenGone`.
 */
import { isMainThread } from 'node:worker_threads';

type Callback = () => void;

const callbacks = new Set<Callback>();
let installed = false;

function runAll(): void {
  const list = [...callbacks];
  callbacks.clear();
  for (const cb of list) {
    try {
      cb();
    } catch {
      /* keep going: this is best effort */
    }
  }
}

/** Registers a synchronous cleanup callback; returns a function that unregisters it. */
export function onEmergencyExit(cb: Callback): () => void {
  install();
  callbacks.add(cb);
  return () => {
    callbacks.delete(cb);
  };
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  if (!isMainThread) return;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      runAll();
      process.removeListener(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

// The process helpers live with the launcher (lib/launch), which needs them too.
export { pidAlive, removeWhenGone, sleepSync } from '../../lib/launch/processes.js';
