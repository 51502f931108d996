import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const TICK = 100; // USER_HZ: /proc/<pid>/stat times are in clock ticks (sysconf(_SC_CLK_TCK) is 100 on Linux)

/** What one child process cost, as GNU time reports it. */
export interface ProcCost {
  wallS: number;
  userS: number;
  sysS: number;
  maxRssKB: number;
}

/** One timed contestant run (possibly several processes at once). */
export interface RunCost {
  wallS: number;
  /** CPU seconds of the client process(es): psql, segferry, the naive script. */
  clientCpuS: number;
  /** Largest peak RSS among the client processes (KiB). */
  clientMaxRssKB: number;
  /** CPU seconds of the PostgreSQL servers (all backends that finished in the window). */
  serverCpuS: number;
  /** CPU seconds of s3rver. */
  s3CpuS: number;
  /** Whole machine busy CPU seconds (from /proc/stat). */
  machineCpuS: number;
}

/** utime+stime+cutime+cstime of a process, in seconds (cutime: its reaped children). */
export function procCpu(pid: number, withChildren: boolean): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after "pid (comm) ": state=0, ..., utime=11, stime=12, cutime=13, cstime=14
    const t = Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
    return t / TICK;
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine since boot. */
export function machineBusy(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
  return busy / TICK;
}

export interface Spawned {
  cmd: string;
  args: string[];
  /** Write stdout to this file path ('/dev/null' by default). */
  stdout?: string;
  env?: NodeJS.ProcessEnv;
}

// Created on first use, so that loading this module (--help, --render) leaves nothing behind.
let timeDir: string | undefined;
let timeSeq = 0;

/** Run a command under /usr/bin/time; reject with its stderr on a non-zero exit. */
export function timed(p: Spawned): Promise<ProcCost> {
  timeDir ??= mkdtempSync(path.join(tmpdir(), 'segferry-bench-time-'));
  const out = path.join(timeDir, `t${timeSeq++}`);
  const fd = openSync(p.stdout ?? '/dev/null', 'w');
  const errChunks: Buffer[] = [];
  const t0 = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, p.cmd, ...p.args], {
    stdio: ['ignore', fd, 'pipe'],
    env: p.env ?? process.env,
  });
  closeSync(fd);
  child.stderr!.on('data', (b: Buffer) => { if (errChunks.length < 50) errChunks.push(b); });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      let parts: number[] = [];
      try {
        const text = readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
        parts = text.split(' ').map(Number);
        rmSync(out, { force: true });
      } catch { /* reported below */ }
      if (code !== 0) {
        reject(new Error(`${path.basename(p.cmd)} ${p.args.join(' ').slice(0, 300)} exited ${code}: ${Buffer.concat(errChunks).toString().slice(0, 2000)}`));
        return;
      }
      resolve({ wallS, userS: parts[1] ?? NaN, sysS: parts[2] ?? NaN, maxRssKB: parts[3] ?? NaN });
    });
  });
}

/** Everything whose CPU a run is charged for. */
export interface Meters {
  serverPids: () => number[];
  s3Pid: () => number | undefined;
  quiesce: () => Promise<void>;
}

/** Run processes at once; wall time is until the last ends. */
export async function measure(procs: Spawned[], m: Meters): Promise<RunCost> {
  await m.quiesce();
  const srv0 = m.serverPids().reduce((a, p) => a + procCpu(p, true), 0);
  const s3p = m.s3Pid();
  const s30 = s3p ? procCpu(s3p, false) : 0;
  const mach0 = machineBusy();
  const t0 = process.hrtime.bigint();
  const costs = await Promise.all(procs.map(timed));
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const mach1 = machineBusy();
  await m.quiesce();
  const srv1 = m.serverPids().reduce((a, p) => a + procCpu(p, true), 0);
  const s31 = s3p ? procCpu(s3p, false) : 0;
  return {
    wallS,
    clientCpuS: costs.reduce((a, c) => a + c.userS + c.sysS, 0),
    clientMaxRssKB: Math.max(...costs.map((c) => c.maxRssKB)),
    serverCpuS: srv1 - srv0,
    s3CpuS: s31 - s30,
    machineCpuS: mach1 - mach0,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export function cleanupTimeDir(): void {
  if (timeDir) rmSync(timeDir, { recursive: true, force: true });
  timeDir = undefined;
}
