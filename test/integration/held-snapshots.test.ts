import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../lib/index.js';
import { BIN, ROOT, ensureBuilt, runCli } from '../helpers/cli.js';
import { startServer, type PgServer } from '../helpers/pg.js';

// plan --out --hold-snapshots (docs/multi-host.md#consistency): one snapshot per node held by
// the plan command, imported by every part's sessions (streams included), released by finish.

const ROWS = 20_000;
let server: PgServer;
let dir: string;

beforeAll(async () => {
  ensureBuilt();
  server = await startServer({ name: 'held-snap' });
  await server.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, ${ROWS}) g;
    CREATE TABLE other (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO other SELECT g, 'v' || g FROM generate_series(1, 2000) g;
    ANALYZE items; ANALYZE other`);
  dir = await mkdtemp(join(tmpdir(), 'sf-held-'));
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Rows of one table in the export's objects, as TEXT lines. */
async function lines(to: string, m: Manifest, table: string): Promise<string[]> {
  const out: string[] = [];
  for (const o of m.objects.filter((x) => x.table === table)) {
    const ls = (await readFile(join(to, o.key), 'utf8')).split('\n');
    expect(ls.pop()).toBe('');
    out.push(...ls);
  }
  return out.sort();
}

describe('plan --hold-snapshots', () => {
  it('every part reads the plan\'s snapshot: rows written after the plan are in no object; finish releases the hold; a later part gets ERR_SNAPSHOT_GONE', async () => {
    const to = join(dir, 'out');
    const planPath = join(dir, 'plan.json');
    const pgpass = join(dir, 'pgpass');
    await writeFile(pgpass, `127.0.0.1:${server.port}:*:${server.user}:${server.password}\n`, { mode: 0o600 });
    const env = { env: { PGPASSFILE: pgpass } };
    const before = {
      items: (await server.query<{ l: string }>(`SELECT id || E'\\t' || payload AS l FROM items`)).map((r) => r.l).sort(),
      other: (await server.query<{ l: string }>(`SELECT id || E'\\t' || v AS l FROM other`)).map((r) => r.l).sort(),
    };

    // The holding plan command runs in the background until finish.
    const hold = spawn(process.execPath, [BIN, 'plan', '--source', server.url(), '--table', 'items', '--table', 'other', '--streams', '2',
      '--segment-size', '64KiB', '--to', to, '--out', planPath, '--hold-snapshots'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    hold.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    hold.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((r) => hold.on('exit', (code) => r(code)));
    try {
      for (let i = 0; i < 600 && !out.includes('plan written'); i++) {
        if (hold.exitCode !== null) throw new Error(`plan exited ${hold.exitCode}: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(out).toMatch(/holding 1 snapshot/);
      const file = JSON.parse(await readFile(planPath, 'utf8')) as { plan: { snapshots: Record<string, string>; tables: { streams?: { streams: number }[] }[] } };
      const nodes = Object.keys(file.plan.snapshots);
      expect(nodes).toHaveLength(1);
      expect(file.plan.snapshots[nodes[0]!]).toMatch(/^[0-9A-F]+-[0-9A-F]+-\d+$/);
      expect(file.plan.tables[0]!.streams![0]!.streams).toBe(2);

      // Written after the plan, committed before any part starts.
      await server.query(`INSERT INTO items SELECT g, 'late' FROM generate_series(${ROWS + 1}, ${ROWS + 500}) g;
        UPDATE items SET payload = 'changed' WHERE id <= 100; DELETE FROM other WHERE id <= 10`);

      // Three parts as three processes, one after another (each after the writes).
      for (const k of [1, 2, 3]) {
        const r = await runCli(['run', '--plan', planPath, '--part', `${k}/3`], env);
        expect(r.code, r.stderr).toBe(0);
      }
      const f = await runCli(['finish', '--plan', planPath], env);
      expect(f.code, f.stderr).toBe(0);
      const m = JSON.parse(await readFile(join(to, 'manifest.json'), 'utf8')) as Manifest;
      expect(await lines(to, m, 'public.items')).toEqual(before.items);
      expect(await lines(to, m, 'public.other')).toEqual(before.other);
      // The items pair was read in 2 streams, both in the held snapshot.
      expect(m.objects.filter((o) => o.table === 'public.items').length).toBeGreaterThan(2);

      // finish wrote the manifest: the holder sees it, releases the sessions, exits 0.
      expect(await exited).toBe(0);
      expect(out).toMatch(/finish has written the manifest: snapshots released/);
      const still = await server.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'segferry held snapshot'`);
      expect(Number(still[0]!.n)).toBe(0);

      // The snapshot is gone now: a part of the same plan, elsewhere, fails with ERR_SNAPSHOT_GONE.
      const other = join(dir, 'plan-other.json');
      const again = JSON.parse(await readFile(planPath, 'utf8')) as { to: string };
      again.to = join(dir, 'out-other');
      await writeFile(other, JSON.stringify(again));
      const late = await runCli(['run', '--plan', other, '--part', '1/1'], env);
      expect(late.code).toBe(1);
      expect(late.stderr).toContain('ERR_SNAPSHOT_GONE');
      expect(existsSync(join(dir, 'out-other', 'manifest.json'))).toBe(false);
    } finally {
      if (hold.exitCode === null) hold.kill('SIGKILL');
    }
  }, 180_000);

  it('a plan file whose snapshots name an unknown node or are not snapshot ids is refused before any SQL', async () => {
    const planPath = join(dir, 'plan-plain.json');
    const p = await runCli(['plan', '--source', server.url(), '--table', 'other', '--to', join(dir, 'x'), '--out', planPath]);
    expect(p.code, p.stderr).toBe(0);
    const f = JSON.parse(await readFile(planPath, 'utf8')) as { plan: { nodes: { name: string }[]; snapshots?: Record<string, string> } };
    for (const [snap, why] of [[{ nowhere: '00000003-0000001B-1' }, /does not have/], [{ [f.plan.nodes[0]!.name]: "1'; DROP TABLE other; --" }, /not a snapshot id/]] as const) {
      f.plan.snapshots = snap as Record<string, string>;
      const bad = join(dir, 'plan-bad.json');
      await writeFile(bad, JSON.stringify(f));
      const r = await runCli(['run', '--plan', bad, '--part', '1/1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('ERR_MANIFEST_INVALID');
      expect(r.stderr).toMatch(why);
    }
    expect((await server.query<{ n: string }>('SELECT count(*) AS n FROM other'))[0]!.n).toBe('1990');
  }, 60_000);
});
