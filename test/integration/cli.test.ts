/**
 * The CLI as a user runs it: `node bin/segferry.js …` in a subprocess against real servers
 * (a postgres_fdw cluster and s3rver), with pipes for output, so it is not a TTY.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest, SegferryEvent } from '../../lib/index.js';
import { ensureBuilt, parseSummary, runCli, type CliResult } from '../helpers/cli.js';
import { startFdwCluster, type SourceCluster } from '../helpers/fixtures.js';
import { freePort } from '../helpers/pg.js';
import { startS3, type S3Harness } from '../helpers/s3.js';

const ROWS = 20_000;
const ESC = '\x1b';
const STACK_LINE = /^\s+at .+\(?.*:\d+:\d+\)?$/m;

let fdw: SourceCluster;
let dst: SourceCluster;
let s3: S3Harness;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-cli-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  ensureBuilt();
  [fdw, dst, s3] = await Promise.all([startFdwCluster({ rows: ROWS }), startFdwCluster({ withData: false }), startS3()]);
});

afterAll(async () => {
  await Promise.allSettled([fdw?.destroy(), dst?.destroy(), s3?.stop()]);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** S3 settings through the standard AWS variables (credentials, endpoint, checksum mode). */
function awsEnv(): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    AWS_REGION: s3.region,
  };
}

function source(): string {
  return fdw.coordinator.url(fdw.database);
}

/** Every secret the tests handed the CLI: none may appear in its output. */
function secrets(): string[] {
  return [fdw, dst].flatMap((c) => (c ? [c.coordinator.password, ...c.nodes.map((n) => n.password)] : []));
}

function expectNoSecrets(r: CliResult, extra: string[] = []): void {
  for (const s of [...secrets(), ...extra]) {
    expect(r.stdout).not.toContain(s);
    expect(r.stderr).not.toContain(s);
    expect(r.stdout).not.toContain(encodeURIComponent(s));
    expect(r.stderr).not.toContain(encodeURIComponent(s));
  }
}

/** The single error line, checked: exactly one line names the code; no stack. */
function expectOneErrorLine(r: CliResult, code: string): string {
  const lines = r.stderr.split('\n').filter((l) => l.includes(code));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^segferry: error ${code}: `));
  expect(r.stderr).not.toMatch(STACK_LINE);
  expect(r.stderr).toMatch(/^ {2}hint: \S/m);
  return lines[0]!;
}

describe('export through the CLI', () => {
  it('exports to S3 (flags for endpoint, path style, checksum mode; AWS variables for credentials) and the summary equals the manifest', async () => {
    const bucket = await s3.newBucket();
    const r = await runCli([
      'export', '--source', source(), '--table', fdw.distributed, '--table', fdw.replicated, '--replicated', fdw.replicated,
      '--to', `s3://${bucket}/cli/run1`, '--segment-size', '256KiB',
      '--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', 'WHEN_REQUIRED',
    ], { env: awsEnv() });
    expect(r.code, r.stderr).toBe(0);
    // Not a TTY: plain lines only, no escape sequences anywhere.
    expect(r.stdout).not.toContain(ESC);
    expect(r.stderr).not.toContain(ESC);
    expect(r.stderr).toMatch(/^export: 2 table\(s\) on 3 node\(s\)/m);
    expect(r.stderr).toMatch(/^export: node dn1 done: /m);

    const m = JSON.parse((await s3.getObject(bucket, 'cli/run1/manifest.json')).toString('utf8')) as Manifest;
    const sum = parseSummary(r.stdout);
    expect(sum.tables).toEqual([m.tables.length, m.tables.length]);
    expect(sum.objects).toBe(m.objects.length);
    expect(sum.rows).toBe(m.tables.reduce((a, t) => a + t.rows, 0));
    expect(sum.rows).toBe(ROWS + fdw.replicatedRows);
    expect(sum.bytes).toBe(m.objects.reduce((a, o) => a + o.bytes, 0));
    // Per node: objects and rows as the manifest lists them.
    const perNode = new Map<string, { objects: number; rows: number }>();
    for (const o of m.objects) {
      const p = perNode.get(o.node) ?? { objects: 0, rows: 0 };
      p.objects++;
      p.rows += o.rows;
      perNode.set(o.node, p);
    }
    expect(sum.nodes).toEqual(perNode);
    expect(r.stdout).toMatch(/^ {2}skew\s+slowest node /m);
    expectNoSecrets(r);
  });

  it('takes the endpoint and checksum mode from the standard AWS variables too', async () => {
    const bucket = await s3.newBucket();
    const r = await runCli([
      'export', '--source', source(), '--table', fdw.replicated, '--replicated', fdw.replicated, '--to', `s3://${bucket}/env`, '--quiet',
    ], { env: { ...awsEnv(), AWS_ENDPOINT_URL: s3.endpoint, AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED', AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('');
    const keys = (await s3.listKeys(bucket, 'env/')).map((k) => k.key);
    expect(keys).toContain('env/manifest.json');
  });

  it('--json prints one parseable event per line, ending with a done event whose figures match the manifest', async () => {
    const dir = await tmp();
    const r = await runCli(['export', '--source', source(), '--table', fdw.distributed, '--to', dir, '--segment-size', '256KiB', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    const lines = r.stdout.trimEnd().split('\n');
    const events = lines.map((l) => JSON.parse(l) as SegferryEvent);
    expect(events[0]!.type).toBe('start');
    const done = events[events.length - 1]!;
    expect(done.type).toBe('done');
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    if (done.type !== 'done') throw new Error('unreachable');
    expect(done.rows).toBe(m.tables[0]!.rows);
    expect(done.objects).toBe(m.objects.length);
    expect(done.bytes).toBe(m.objects.reduce((a, o) => a + o.bytes, 0));
    expect(events.filter((e) => e.type === 'segment')).toHaveLength(m.objects.length);
    expect(events.filter((e) => e.type === 'node-done').map((e) => (e as { node: string }).node).sort()).toEqual(['dn1', 'dn2', 'dn3']);
    expect(r.stderr).toBe('');
    expectNoSecrets(r);
  });

  it('--threads on runs the exporters in worker threads from the built dist: same events, same objects', async () => {
    const bucket = await s3.newBucket();
    const args = ['export', '--source', source(), '--table', fdw.distributed, '--table', fdw.replicated, '--replicated', fdw.replicated,
      '--segment-size', '256KiB', '--json', '--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', 'WHEN_REQUIRED'];
    // Passwords of the data nodes come from the coordinator's user mappings: the workers get them too.
    const on = await runCli([...args, '--to', `s3://${bucket}/on`, '--threads', 'on'], { env: awsEnv() });
    expect(on.code, on.stderr).toBe(0);
    const off = await runCli([...args, '--to', `s3://${bucket}/off`, '--threads', 'off'], { env: awsEnv() });
    expect(off.code, off.stderr).toBe(0);
    const events = on.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as SegferryEvent);
    expect(events.filter((e) => e.type === 'node-done').map((e) => (e as { node: string }).node).sort()).toEqual(['dn1', 'dn2', 'dn3']);
    expect(events.some((e) => e.type === 'progress')).toBe(true);
    const manifest = async (p: string) => JSON.parse((await s3.getObject(bucket, `${p}/manifest.json`)).toString('utf8')) as Manifest;
    const objs = (m: Manifest) => m.objects.map((o) => [o.key, o.rows, o.crc32]);
    const [mOn, mOff] = [await manifest('on'), await manifest('off')];
    expect(objs(mOn)).toEqual(objs(mOff));
    expect(events.filter((e) => e.type === 'segment')).toHaveLength(mOn.objects.length);
    expectNoSecrets(on, [s3.credentials.secretAccessKey]);

    const bad = await runCli([...args, '--to', `s3://${bucket}/bad`, '--threads', 'sometimes'], { env: awsEnv() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^segferry: error ERR_INVALID_OPTION: --threads takes on, off or auto/m);
  });

  it('plan prints the plan without credentials', async () => {
    const r = await runCli(['plan', '--source', source(), '--table', fdw.distributed]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { nodes: { name: string }[] };
    expect(plan.nodes.map((n) => n.name)).toEqual(['dn1', 'dn2', 'dn3']);
    expectNoSecrets(r);
  });
});

describe('export → import → verify through the CLI', () => {
  it('moves the tables to an empty cluster of the same layout: exit codes 0, summaries equal the manifest, verify matches', async () => {
    const bucket = await s3.newBucket();
    const to = `s3://${bucket}/roundtrip`;
    const s3flags = ['--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', 'WHEN_REQUIRED'];
    const exp = await runCli(['export', '--source', source(), '--table', fdw.distributed, '--table', fdw.replicated, '--replicated', fdw.replicated, '--to', to, '--segment-size', '256KiB', ...s3flags], { env: awsEnv() });
    expect(exp.code, exp.stderr).toBe(0);
    const m = JSON.parse((await s3.getObject(bucket, 'roundtrip/manifest.json')).toString('utf8')) as Manifest;

    const target = dst.coordinator.url(dst.database);
    const imp = await runCli(['import', '--from', to, '--target', target, ...s3flags], { env: awsEnv() });
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout + imp.stderr).not.toContain(ESC);
    const sum = parseSummary(imp.stdout);
    expect(sum.tables).toEqual([2, 2]);
    expect(sum.objects).toBe(m.objects.length);
    expect(sum.rows).toBe(m.tables.reduce((a, t) => a + t.rows, 0));
    expect(sum.bytes).toBe(m.objects.reduce((a, o) => a + o.bytes, 0));
    expect(imp.stdout).toMatch(/^ {2}table {5}public\.orders via direct: /m);

    const ver = await runCli(['verify', '--from', to, '--target', target, ...s3flags], { env: awsEnv() });
    expect(ver.code, ver.stderr).toBe(0);
    expect(ver.stdout).toMatch(/^ {2}match\s+public\.orders$/m);
    expect(ver.stdout).toContain(`${ROWS} rows, checksum ${m.tables[0]!.checksum!.sum}`);
    expect(ver.stdout).toMatch(/^All compared tables match\.$/m);

    // Run again: everything is in the ledger, nothing is loaded twice; --json ends with done.
    const again = await runCli(['import', '--from', to, '--target', target, '--json', ...s3flags], { env: awsEnv() });
    expect(again.code, again.stderr).toBe(0);
    const events = again.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as SegferryEvent);
    const done = events[events.length - 1]!;
    expect(done).toMatchObject({ type: 'done', operation: 'import', objects: 0, skipped: m.objects.length });

    // A lost row: verify says which table, exit 3.
    await dst.nodes[1]!.query(`DELETE FROM ${fdw.distributed} WHERE id IN (SELECT id FROM ${fdw.distributed} LIMIT 3)`, [], dst.database);
    const bad = await runCli(['verify', '--from', to, '--target', target, ...s3flags], { env: awsEnv() });
    expect(bad.code).toBe(3);
    expect(bad.stdout).toMatch(/^ {2}MISMATCH\s+public\.orders$/m);
    expectOneErrorLine(bad, 'ERR_VERIFY_MISMATCH');
    expectNoSecrets(exp);
    expectNoSecrets(imp);
    expectNoSecrets(ver);
  });
});

describe('errors through the CLI', () => {
  it('wrong password: exit 1, one ERR_AUTH line with a hint, no stack, the password nowhere', async () => {
    const wrong = 'Wr0ng-Pa55word-for-cli-test';
    const url = `postgres://${fdw.coordinator.user}:${wrong}@127.0.0.1:${fdw.coordinator.port}/${fdw.database}`;
    const r = await runCli(['export', '--source', url, '--table', fdw.distributed, '--to', await tmp()]);
    expect(r.code).toBe(1);
    const line = expectOneErrorLine(r, 'ERR_AUTH');
    expect(line).toContain('28P01');
    expectNoSecrets(r, [wrong]);
  });

  it('wrong password in PGPASSWORD: the same, and --json adds an error event', async () => {
    const wrong = 'An0ther-Wr0ng-PGPASSWORD';
    const url = `postgres://${fdw.coordinator.user}@127.0.0.1:${fdw.coordinator.port}/${fdw.database}`;
    const r = await runCli(['export', '--source', url, '--table', fdw.distributed, '--to', await tmp(), '--json'], { env: { PGPASSWORD: wrong } });
    expect(r.code).toBe(1);
    expectOneErrorLine(r, 'ERR_AUTH');
    const last = JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as { type: string; error: { code: string } };
    expect(last).toMatchObject({ type: 'error', error: { code: 'ERR_AUTH' } });
    expectNoSecrets(r, [wrong]);
  });

  it('no password anywhere (URL, PGPASSWORD, password file): exit 1, ERR_AUTH saying none was given, not ERR_CONNECT', async () => {
    const url = `postgres://${fdw.coordinator.user}@127.0.0.1:${fdw.coordinator.port}/${fdw.database}`;
    const r = await runCli(['export', '--source', url, '--table', fdw.distributed, '--to', await tmp()], { env: { PGPASSFILE: join(await tmp(), 'none') } });
    expect(r.code).toBe(1);
    const line = expectOneErrorLine(r, 'ERR_AUTH');
    expect(line).toContain('none was given');
    expect(r.stderr).toMatch(/hint: .*PGPASSWORD/);
    expect(r.stderr).not.toContain('ERR_CONNECT');
  });

  it('a password file (PGPASSFILE, 0600) gives the password, with no warning from pg on stderr', async () => {
    const c = fdw.coordinator;
    const pass = join(await tmp(), 'pgpass');
    await writeFile(pass, `# segferry test\n127.0.0.1:${c.port}:*:${c.user}:${c.password.replace(/[\\:]/g, '\\$&')}\n`, { mode: 0o600 });
    const url = `postgres://${c.user}@127.0.0.1:${c.port}/${fdw.database}`;
    const r = await runCli(['plan', '--source', url, '--table', fdw.distributed], { env: { PGPASSFILE: pass } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Warning/);
    expect(r.stderr).toBe('');
    expectNoSecrets(r);
  });

  it('unreachable node: exit 1, one ERR_CONNECT line naming the node, no stack, no password', async () => {
    const dead = await freePort();
    const pw = 'Secret-of-the-dead-node';
    const topo = join(await tmp(), 'nodes.json');
    await writeFile(topo, JSON.stringify({
      nodes: [
        { name: 'dn1', url: fdw.nodes[0]!.url(fdw.database) },
        { name: 'dn2', url: `postgres://segferry:${pw}@127.0.0.1:${dead}/postgres` },
      ],
    }));
    const r = await runCli(['export', '--topology', topo, '--table', fdw.distributed, '--to', await tmp()]);
    expect(r.code).toBe(1);
    const line = expectOneErrorLine(r, 'ERR_CONNECT');
    expect(line).toContain('dn2');
    expect(line).toContain(String(dead));
    expectNoSecrets(r, [pw]);
  });

  it('--verbose adds the stack trace (still without the password)', async () => {
    const wrong = 'Wr0ng-Pa55word-verbose';
    const url = `postgres://${fdw.coordinator.user}:${wrong}@127.0.0.1:${fdw.coordinator.port}/${fdw.database}`;
    const r = await runCli(['export', '--source', url, '--table', fdw.distributed, '--to', await tmp(), '--verbose']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^segferry: error ERR_AUTH: /m);
    expect(r.stderr).toMatch(STACK_LINE);
    expectNoSecrets(r, [wrong]);
  });

  it('missing bucket and a non-empty prefix: their codes and hints', async () => {
    const env = awsEnv();
    const s3flags = ['--s3-endpoint', s3.endpoint, '--s3-path-style', '--s3-checksum', 'WHEN_REQUIRED'];
    const missing = await runCli(['export', '--source', source(), '--table', fdw.replicated, '--to', 's3://no-such-bucket-here/x', ...s3flags], { env });
    expect(missing.code).toBe(1);
    expectOneErrorLine(missing, 'ERR_BUCKET_NOT_FOUND');

    const dir = await tmp();
    const args = ['export', '--source', source(), '--table', fdw.replicated, '--to', dir, '-q'];
    expect((await runCli(args)).code).toBe(0);
    const again = await runCli(args);
    expect(again.code).toBe(1);
    expectOneErrorLine(again, 'ERR_PREFIX_NOT_EMPTY');
    expect(again.stderr).toContain('--overwrite');
  });

  it('usage errors exit 2; every command has --help with examples', async () => {
    const r = await runCli(['export', '--source', source(), '--to', await tmp()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^segferry: error ERR_INVALID_OPTION: .*--table/m);
    const unknown = await runCli(['export', '--no-such-flag']);
    expect(unknown.code).toBe(2);
    for (const cmd of ['export', 'plan', 'import', 'verify', 'demo', 'cleanup']) {
      const h = await runCli([cmd, '--help']);
      expect(h.code, cmd).toBe(0);
      expect(h.stdout, cmd).toMatch(/Examples?:/);
    }
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/segferry demo/);
  });
});
