/**
 * Run the built CLI (`node bin/segferry.js`) as a subprocess, the way a user does. The CLI runs
 * from dist/: {@link ensureBuilt} compiles it when a source file is newer than the build
 * (`npm test` builds first, so in CI this is a no-op).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'segferry.js');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Compile lib/ into dist/ unless dist/ is newer than every source file. */
export function ensureBuilt(): void {
  let built = 0;
  try { built = statSync(join(ROOT, 'dist', 'cli', 'main.js')).mtimeMs; } catch { /* not built */ }
  if (built > newest(join(ROOT, 'lib'))) return;
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}\n${r.stderr}`);
}

/** What a CLI run printed and how it ended. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link runCli}. */
export interface RunOptions {
  /** Extra environment (merged over a copy of ours, minus AWS_* and PG* so tests are hermetic). */
  env?: Record<string, string | undefined>;
  /** Called with each stderr chunk as it arrives (e.g. to interrupt at a given point). */
  onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void;
  /** Called once with the child process as soon as it is spawned (e.g. to kill it at a chosen point). */
  onSpawn?: (child: ReturnType<typeof spawn>) => void;
  /** Kill after this many ms (default 170 s). */
  timeoutMs?: number;
  /** Run as this OS account (needs root). */
  uid?: number;
  gid?: number;
}

/** Run `segferry ...args` with pipes for stdout and stderr (so it is not a TTY). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|PG)/.test(k)) env[k] = v;
  Object.assign(env, opts.env ?? {});
  return new Promise((resolve, reject) => {
    const ids = opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {};
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; opts.onStderr?.(d, child); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 170_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Figures of the summary block printed on stdout (`rows 123`, `bytes 456 (…)`, …). */
export function parseSummary(stdout: string): { tables: [number, number]; objects: number; rows: number; bytes: number; nodes: Map<string, { objects: number; rows: number }> } {
  const num = (label: string) => {
    const m = new RegExp(`^  ${label}\\s+(\\d+)`, 'm').exec(stdout);
    if (!m) throw new Error(`summary has no ${label} line:\n${stdout}`);
    return Number(m[1]);
  };
  const t = /^ {2}tables\s+(\d+)\/(\d+)/m.exec(stdout);
  if (!t) throw new Error(`summary has no tables line:\n${stdout}`);
  const nodes = new Map<string, { objects: number; rows: number }>();
  const head = stdout.indexOf('  node ');
  if (head >= 0) {
    for (const line of stdout.slice(head).split('\n').slice(1)) {
      const m = /^ {2}(\S+)\s+(\d+)\s+(\d+)\s+[\d.]+ \S+\s+[\d.]+ s/.exec(line);
      if (!m) break;
      nodes.set(m[1]!, { objects: Number(m[2]), rows: Number(m[3]) });
    }
  }
  return { tables: [Number(t[1]), Number(t[2])], objects: num('objects'), rows: num('rows'), bytes: num('bytes'), nodes };
}
