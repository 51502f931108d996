/**
 * `segferry demo` as a user runs it (`npm run demo` runs the same command): a subprocess that
 * starts its own clusters and S3 server, moves the data, and removes everything again, also
 * when interrupted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../lib/index.js';
import { ensureBuilt, parseSummary, runCli, type CliResult } from '../helpers/cli.js';

const dirs: string[] = [];

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

ensureBuilt();

/** The demo's temp directory, as it announces it. */
function tempDirOf(r: { stderr: string; stdout: string }): string {
  const m = /temp dir (\S+)/.exec(r.stderr + r.stdout);
  if (!m) throw new Error(`no temp dir announced:\n${r.stderr}`);
  return m[1]!.replace(/[;,]$/, '');
}

/** Processes whose command line mentions `path`. */
function processesUsing(path: string): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return ps.split('\n').filter((l) => l.includes(path));
}

function expectCleanedUp(r: CliResult): void {
  const dir = tempDirOf(r);
  expect(existsSync(dir), `${dir} left behind`).toBe(false);
  expect(processesUsing(dir)).toEqual([]);
}

function nobody(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
  if (!line) return undefined;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

describe('segferry demo', () => {
  it('runs the whole job on a small sample through the local S3 server, prints the summary, removes everything', async () => {
    const r = await runCli(['demo', '--rows', '20000']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('\x1b');
    expect(r.stderr).toMatch(/local S3 server \(s3rver\) at http:\/\/127\.0\.0\.1:\d+/);
    // The best-effort claim on the demo's own s3rver is an info line, shown only with -v (docs/cli.md#demo).
    expect(r.stderr).not.toContain('claim-best-effort');
    const sum = parseSummary(r.stdout);
    expect(sum.tables).toEqual([2, 2]);
    expect(sum.rows).toBe(20000 + 2000);
    expect([...sum.nodes.keys()].sort()).toEqual(['dn1', 'dn2', 'dn3']);
    expect(r.stdout).toMatch(/^Import complete: /m);
    expect(r.stdout).toMatch(/^ {2}match\s+public\.orders$/m);
    expect(r.stdout).toMatch(/^ {4}dn3\s+2000 rows, checksum \d+$/m);
    expect(r.stdout).toMatch(/^All compared tables match\.$/m);
    expect(r.stderr).toMatch(/^demo: verify OK, finished in [\d.]+ s, everything removed/m);
    // The whole-database path: export --all with the schema, import --create into an empty database.
    expect(r.stderr).toMatch(/^demo: whole database: export --all of 127\.0\.0\.1:\d+\/shop_full .* import --create into the empty 127\.0\.0\.1:\d+\/shop_restored$/m);
    expect(r.stderr).toMatch(/^demo: whole database: billing\.customers 1000 → 1000 rows, billing\.events 10000 → 10000 rows, billing\.invoices 20000 → 20000 rows$/m);
    expect(r.stderr).toMatch(/^demo: whole database: schema identical \(pg_dump --schema-only of source and destination, \d+ lines/m);
    expectCleanedUp(r);
  });

  it('--to DIR --json: one JSON object per line, and a valid export left in DIR', async () => {
    const to = await mkdtemp(join(tmpdir(), 'sf-demo-'));
    dirs.push(to);
    const r = await runCli(['demo', '--rows', '5000', '--to', join(to, 'out'), '--json', '--format', 'csv']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; operation?: string; message?: string; step?: string });
    expect(events.some((e) => e.type === 'done' && e.operation === 'export')).toBe(true);
    expect(events.some((e) => e.type === 'done' && e.operation === 'import')).toBe(true);
    expect(events.find((e) => e.type === 'verify')).toMatchObject({ ok: true });
    expect(events[events.length - 1]).toMatchObject({ type: 'note', step: 'end', verified: true });
    expect(events.find((e) => e.step === 'whole-db-schema')).toMatchObject({ identical: true });
    const w = JSON.parse(await readFile(join(to, 'out-whole-db', 'manifest.json'), 'utf8')) as Manifest;
    expect(w.ddl?.scope).toBe('database');
    expect(w.tables.map((t) => t.name)).toEqual(['customers', 'events', 'invoices']);
    const m = JSON.parse(await readFile(join(to, 'out', 'manifest.json'), 'utf8')) as Manifest;
    expect(m.format.kind).toBe('csv');
    expect(m.tables.map((t) => [t.name, t.rows])).toEqual([['orders', 5000], ['products', 2000]]);
    expect(m.tables[1]!.distribution.kind).toBe('replicated');
    const setup = events.find((e) => e.type === 'note' && (e as { step?: string }).step === 'setup') as { dir: string } | undefined;
    expect(setup?.dir).toMatch(/segferry-pg-/);
    expect(existsSync(setup!.dir)).toBe(false);
  });

  it('stops the servers and removes its files on Ctrl-C (SIGINT), exiting 130', async () => {
    let sent = false;
    const r = await runCli(['demo', '--rows', '300000'], {
      onStderr: (_chunk, child) => {
        // Interrupt while the sample data is being generated: a long query on every node.
        if (!sent && /start 8 PostgreSQL servers/.test(_chunk)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/^segferry: error ERR_ABORTED: interrupted$/m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expectCleanedUp(r);
  });

  it.skipIf(nobody() === undefined)('works as a normal user (nobody) too', async () => {
    const r = await runCli(['demo', '--rows', '5000'], { ...nobody()!, env: { HOME: '/nonexistent' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/we are root/);
    expectCleanedUp(r);
  });

  it('names what to install when the PostgreSQL server programs are missing', async () => {
    const r = await runCli(['demo'], { env: { SEGFERRY_PG_BINDIR: '/nonexistent/bin' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^segferry: error ERR_PREREQUISITE: /m);
    expect(r.stderr).toMatch(/hint: install the PostgreSQL server .*apt-get install postgresql/);
  });

  it('runs with the default sample size (what `npm run demo` does)', async () => {
    const r = await runCli(['demo'], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const sum = parseSummary(r.stdout);
    expect(sum.rows).toBe(1_000_000 + 2000);
    expect(r.stderr).toMatch(/^demo: verify OK, /m);
    expectCleanedUp(r);
  }, 320_000);
});
