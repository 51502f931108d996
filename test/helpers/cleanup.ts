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
 * directories) to a detached shell, see {@link removeWhenGone}.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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

/** True when `pid` exists and is not a zombie (a killed process may linger unreaped). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return !fs.existsSync('/proc/self/stat');
  }
}

/** Blocks the thread for `ms` milliseconds (for use inside exit handlers only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Shell script for {@link removeWhenGone}: waits (at most ~15 s) until each pid is gone or a
 * zombie, SIGKILLs stragglers, then deletes the directories.
 */
const CLEANER_SCRIPT = `
pids="$1"; shift
gone() {
  if [ -d /proc/self ]; then
    [ ! -e "/proc/$1" ] || grep -q ') [ZX] ' "/proc/$1/stat" 2>/dev/null
  else
    ! kill -0 "$1" 2>/dev/null
  fi
}
n=0
for p in $pids; do
  while ! gone "$p" && [ $n -lt 300 ]; do sleep 0.05; n=$((n+1)); done
done
for p in $pids; do gone "$p" || kill -9 "$p" 2>/dev/null; done
rm -rf -- "$@"
`;

/**
 * Starts a detached `/bin/sh` that outlives this process: it waits for `pids` to end, then
 * deletes `dirs`. Returns at once (safe to call from exit and signal handlers).
 */
export function removeWhenGone(pids: number[], dirs: string[]): void {
  if (dirs.length === 0 && pids.length === 0) return;
  try {
    const child = spawn('/bin/sh', ['-c', CLEANER_SCRIPT, 'segferry-test-cleanup', pids.join(' '), ...dirs], {
      detached: true,
      stdio: 'ignore',
      cwd: '/',
    });
    child.on('error', () => {});
    child.unref();
  } catch {
    /* nothing more we can do; the next run's stale sweep will catch the directories */
  }
}
