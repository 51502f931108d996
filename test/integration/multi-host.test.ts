import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../lib/index.js';
import { BIN, ROOT, ensureBuilt, runCli } from '../helpers/cli.js';
import { startStaticCluster, type SourceCluster } from '../helpers/fixtures.js';

// One plan, many hosts (docs/multi-host.md): plan --out, run --part K/N as separate processes,
// finish; a killed part run again; finish refusing while a unit is missing; import and verify.

const ROWS = 30_000;
let src: SourceCluster;
let dst: SourceCluster;
let dir: string;

beforeAll(async () => {
  ensureBuilt();
  [src, dst] = await Promise.all([startStaticCluster({ rows: ROWS }), startStaticCluster({ withData: false })]);
  dir = await mkdtemp(join(tmpdir(), 'sf-multi-'));
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('one plan, many hosts', () => {
  it('plan --out, 3 parts as 3 processes (one killed and rerun), finish refuses then writes the manifest; import + verify', async () => {
    const topo = join(dir, 'topology.json');
    await writeFile(topo, JSON.stringify(src.staticTopology()));
    const to = join(dir, 'out');
    const planPath = join(dir, 'plan.json');
    const p = await runCli(['plan', '--topology', topo, '--table', src.distributed, '--table', src.replicated, '--to', to, '--out', planPath, '--segment-size', '256KiB']);
    expect(p.code, p.stderr).toBe(0);
    const planText = await readFile(planPath, 'utf8');
    // The plan carries no password: each host gives them as libpq does (here a password file).
    const pgpass = join(dir, 'pgpass');
    await writeFile(pgpass, src.nodes.map((n) => `127.0.0.1:${n.port}:*:${n.user}:${n.password}`).join('\n') + '\n', { mode: 0o600 });
    const env = { env: { PGPASSFILE: pgpass } };
    for (const n of src.nodes) expect(planText).not.toContain(n.password);
    const file = JSON.parse(planText) as { kind: string; to: string; plan: { tables: unknown[] } };
    expect(file).toMatchObject({ kind: 'segferry-plan', to });

    // Parts 1 and 2 at once, as two processes.
    const [r1, r2] = await Promise.all([1, 2].map((k) => runCli(['run', '--plan', planPath, '--part', `${k}/3`], env)));
    expect(r1!.code, r1!.stderr).toBe(0);
    expect(r2!.code, r2!.stderr).toBe(0);
    expect(r1!.stdout).toMatch(/^part 1\/3: \d+ units/m);

    // Part 3 missing: finish refuses, names the units, writes no manifest.
    const early = await runCli(['finish', '--plan', planPath], env);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('ERR_PLAN_INCOMPLETE');
    expect(early.stderr).toMatch(/units of the plan are not done/);
    expect(existsSync(join(to, 'manifest.json'))).toBe(false);

    // Part 3 killed once its record exists (it has started), then run again alone.
    const killed = await new Promise<{ signal: NodeJS.Signals | null }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'run', '--plan', planPath, '--part', '3/3'], { cwd: ROOT, stdio: 'ignore', env: { ...process.env, PGPASSFILE: pgpass } });
      const poll = setInterval(() => {
        if (existsSync(join(to, 'segferry-part-3-of-3.json'))) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 5);
      child.once('close', (_code, signal) => { clearInterval(poll); resolve({ signal }); });
    });
    expect(killed.signal).toBe('SIGKILL');
    const r3 = await runCli(['run', '--plan', planPath, '--part', '3/3'], env);
    expect(r3.code, r3.stderr).toBe(0);

    const fin = await runCli(['finish', '--plan', planPath], env);
    expect(fin.code, fin.stderr).toBe(0);
    const m = JSON.parse(await readFile(join(to, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.tables.map((t) => t.rows)).toEqual([ROWS, src.replicatedRows]);
    // n contiguous from 0 per (table, node); part records gone.
    const by = new Map<string, number[]>();
    for (const o of m.objects) by.set(`${o.table}/${o.node}`, [...(by.get(`${o.table}/${o.node}`) ?? []), o.segment]);
    for (const ns of by.values()) expect(ns.sort((a, b) => a - b)).toEqual(ns.map((_, i) => i));
    expect((await readdir(to)).filter((k) => k.startsWith('segferry-'))).toEqual([]);

    // finish again (a retried Job): its own manifest, by the plan's fingerprint; exit 0, nothing written.
    const manifestBytes = await readFile(join(to, 'manifest.json'));
    const again = await runCli(['finish', '--plan', planPath], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^already finished .*: its manifest \\(${m.id}, completed .*\\) is this plan's: 2 tables, ${ROWS + src.replicatedRows} rows in ${m.objects.length} objects; nothing written$`, 'm'));
    expect((await readFile(join(to, 'manifest.json'))).equals(manifestBytes)).toBe(true);
    const againJson = await runCli(['finish', '--plan', planPath, '--json'], env);
    expect(againJson.code, againJson.stderr).toBe(0);
    expect(JSON.parse(againJson.stdout)).toMatchObject({ type: 'finish', alreadyFinished: true, manifestId: m.id });

    // Import the result into an empty cluster and verify it.
    const dtopo = join(dir, 'dst.json');
    await writeFile(dtopo, JSON.stringify(dst.staticTopology()));
    const imp = await runCli(['import', '--from', to, '--topology', dtopo]);
    expect(imp.code, imp.stderr).toBe(0);
    const ver = await runCli(['verify', '--from', to, '--topology', dtopo]);
    expect(ver.code, ver.stdout + ver.stderr).toBe(0);
  }, 180_000);
});
