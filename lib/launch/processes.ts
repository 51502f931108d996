/**
 * Process helpers for tearing down child servers from places that cannot wait: `exit` and
 * signal handlers, and sweeps of what dead processes left behind.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** True when `pid` exists and is not a zombie (a killed process may linger unreaped). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // No /proc (macOS): kill(0) is all we have.
    return !existsSync('/proc/self/stat');
  }
}

/** Blocks the thread for `ms` milliseconds (for exit handlers only). */
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
 * deletes `dirs`. Returns at once, so it is safe in exit and signal handlers (a test runner
 * SIGKILLs its worker 500 ms after SIGTERM).
 */
export function removeWhenGone(pids: number[], dirs: string[]): void {
  if (dirs.length === 0 && pids.length === 0) return;
  try {
    const child = spawn('/bin/sh', ['-c', CLEANER_SCRIPT, 'segferry-cleanup', pids.join(' '), ...dirs], {
      detached: true,
      stdio: 'ignore',
      cwd: '/',
    });
    child.on('error', () => {});
    child.unref();
  } catch {
    /* nothing more we can do; the next stale sweep will catch the directories */
  }
}

/** SIGKILL whichever of `pids` are still alive after waiting up to `waitMs` for them. */
export function waitOrKillSync(pids: number[], waitMs: number): void {
  const deadline = Date.now() + waitMs;
  while (pids.some(pidAlive) && Date.now() < deadline) sleepSync(20);
  for (const pid of pids) {
    if (!pidAlive(pid)) continue;
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
