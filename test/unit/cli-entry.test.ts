/**
 * The CLI entry as a subprocess (no database): a failure that escapes the command's own error
 * handling still ends as one typed error line, and the AWS SDK's Node version block is filtered
 * while other warnings pass.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/cli.js';

const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

function node(script: string, args: string[] = []) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
}

beforeAll(() => ensureBuilt());

// An export whose source accepts the connection and never answers: main() is still running
// when the escaped failure happens, with --json configured.
const HANGING_EXPORT = `
import net from 'node:net';
const srv = net.createServer(() => {}).listen(0, '127.0.0.1');
await new Promise((r) => srv.once('listening', r));
const { main } = await import('./dist/cli/main.js');
const run = main(['export', '--json', '--source', 'postgres://u@127.0.0.1:' + srv.address().port + '/db', '--table', 't', '--to', '/tmp/sf-never-written']);
`;

describe('CLI: every failure ends as one typed error line', () => {
  for (const [what, escape] of [
    ['an unhandled rejection', `setImmediate(() => { Promise.reject(new TypeError('boom from nowhere')); });`],
    ["an 'error' event thrown from a listener", `setImmediate(() => { process.stdout.emit('error', Object.assign(new TypeError('boom from nowhere'), { code: 'ERR_SOMETHING' })); });`],
  ] as const) {
    it(what, () => {
      const r = node(HANGING_EXPORT + escape + '\nprocess.exitCode = await run;');
      expect(r.status, r.stderr).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('segferry: '));
      expect(lines, r.stderr).toEqual(['segferry: internal error: boom from nowhere']);
      expect(r.stderr).not.toMatch(STACK_LINE);
      const last = JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as { type: string; error: { code: string; message: string } };
      expect(last).toMatchObject({ type: 'error', error: { code: 'ERR_INTERNAL', message: 'boom from nowhere' } });
    });
  }
});

describe('CLI: warnings', () => {
  const EMIT = `process.emitWarning('NodeVersionSupportWarning: The AWS SDK for JavaScript (v3)\\nversions published after ...'); process.emitWarning('some other warning', 'OtherWarning');`;
  it('filters the AWS SDK Node version block, keeps other warnings, and -v shows it as one line', () => {
    const quiet = node(`process.argv = [process.execPath, 'segferry', '--version']; await import('./bin/segferry.js'); ${EMIT}`);
    expect(quiet.status).toBe(0);
    expect(quiet.stderr).not.toContain('NodeVersionSupportWarning');
    expect(quiet.stderr).not.toContain('AWS SDK');
    expect(quiet.stderr).toContain('OtherWarning: some other warning');
    const verbose = node(`process.argv = [process.execPath, 'segferry', '--version', '-v']; await import('./bin/segferry.js'); ${EMIT}`);
    expect(verbose.stderr).toContain('segferry: note: AWS SDK releases after January 2027 need Node >= 22');
    expect(verbose.stderr).not.toContain('NodeVersionSupportWarning');
    expect(verbose.stderr).toContain('OtherWarning: some other warning');
  });
});

describe('CLI: flag errors are usage errors like any other', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [`${ROOT}/bin/segferry.js`, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  it('an unknown flag: exit 2, one ERR_INVALID_OPTION line with a hint, and with --json the error event', () => {
    const r = cli(['export', '--tabel', 'orders', '--json']);
    expect(r.status).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('segferry: '));
    expect(lines, r.stderr).toEqual([expect.stringMatching(/^segferry: error ERR_INVALID_OPTION: Unknown option '--tabel'/)]);
    expect(r.stderr).toMatch(/^ {2}hint: run "segferry export --help" for the options$/m);
    const last = JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as { type: string; error: { code: string } };
    expect(last).toMatchObject({ type: 'error', error: { code: 'ERR_INVALID_OPTION' } });
  });

  it('a flag without its value, in another command: the same line, exit 2', () => {
    const r = cli(['check', '--at']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^segferry: error ERR_INVALID_OPTION: Option '--at <value>' argument missing$/m);
    expect(r.stdout).toBe('');
  });
});

describe('CLI: help texts and docs/cli.md agree', () => {
  const help = (args: string[]) => spawnSync(process.execPath, [`${ROOT}/bin/segferry.js`, ...args, '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 }).stdout;
  it('docs/cli.md lists every command of segferry --help', () => {
    const commands = [...help([]).matchAll(/^ {2}segferry ([a-z]+)\b/gm)].map((m) => m[1]!);
    expect(commands).toContain('run');
    const list = readFileSync(`${ROOT}/docs/cli.md`, 'utf8').split('```')[1]!;
    for (const c of commands) expect(list, c).toMatch(new RegExp(`^segferry ${c} `, 'm'));
  });

  it('docs/cli.md\'s list of the commands that take the S3 flags names every command that takes them', () => {
    const line = readFileSync(`${ROOT}/docs/cli.md`, 'utf8').split('\n').find((l) => l.startsWith('S3 flags ('))!;
    const listed = new Set(line.slice('S3 flags ('.length).split(/[,):]/).map((w) => w.trim().split(' ')[0]!));
    const commands = [...help([]).matchAll(/^ {2}segferry ([a-z]+)\b/gm)].map((m) => m[1]!);
    for (const c of commands) {
      const takes = spawnSync(process.execPath, [`${ROOT}/bin/segferry.js`, c, '--s3-region', 'x', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 }).status === 0;
      expect(listed.has(c), `${c} ${takes ? 'takes' : 'does not take'} the S3 flags`).toBe(takes);
    }
  });

  it('every command of segferry --help has --help with examples (docs/cli.md promises both)', () => {
    const commands = [...help([]).matchAll(/^ {2}segferry ([a-z]+)\b/gm)].map((m) => m[1]!);
    for (const c of commands) expect(help([c]), c).toMatch(/^Examples?:$/m);
  });

  it('plan --help is plan\'s own (not export\'s): what it does, its flags, an example with --out', () => {
    const h = help(['plan']);
    expect(h).toMatch(/^segferry plan: /);
    expect(h).not.toContain('segferry export: ');
    for (const f of ['--out FILE', '--to DEST', '--hold-snapshots', '--encrypt E', '-t, --table NAME', '-s, --source URL', '--segment-size N', 'segferry run --plan FILE --part K/N']) expect(h, f).toContain(f);
    // A run's flags are not plan's.
    for (const f of ['--overwrite', '--resume', '--threads']) expect(h, f).not.toContain(f);
    const examples = h.split(/^Examples:$/m)[1] ?? '';
    expect(examples).toMatch(/^ {2}segferry plan .* --to \S+ --out \S+/m);
  });

  it('segferry --help shows copy\'s selection (--schema, --all) and --via, as copy --help does', () => {
    const copyLines = help([]).split('\n').filter((l, i, a) => l.startsWith('  segferry copy') || (i > 0 && a[i - 1]!.startsWith('  segferry copy')) || (i > 1 && a[i - 2]!.startsWith('  segferry copy'))).join('\n');
    for (const f of ['--schema', '--all', '--append', '--via']) expect(copyLines, f).toContain(f);
  });

  it('check --help names the digest the manifest records (CRC-32 by default), verify --help explains its flags', () => {
    expect(help(['check'])).toMatch(/CRC-32 or SHA-256/);
    const v = help(['verify']);
    for (const f of ['--target URL', '--topology T', '-t, --table NAME', '--route R', '-j, --concurrency N']) expect(v, f).toContain(f);
  });
});

describe('CLI: --json, -q and -v on every command', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [`${ROOT}/bin/segferry.js`, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const failing: [string, string[], string, number][] = [
    ['check', ['check', '--at', '/nonexistent/sf-export'], 'ERR_MANIFEST_MISSING', 1],
    ['replicate', ['replicate', '--from', '/nonexistent/sf-export', '--to', '/nonexistent/sf-copy'], 'ERR_MANIFEST_MISSING', 1],
    ['cleanup', ['cleanup', '--at', 'file://relative/x'], 'ERR_INVALID_OPTION', 2],
    ['run', ['run', '--plan', '/nonexistent/plan.json', '--part', '1/2'], 'ERR_INVALID_OPTION', 2],
    ['finish', ['finish', '--plan', '/nonexistent/plan.json'], 'ERR_INVALID_OPTION', 2],
  ];
  for (const [name, args, code, exit] of failing) {
    it(`${name}: a failure with --json ends with the error event; -v adds the stack; -q is accepted`, () => {
      const j = cli([...args, '--json']);
      expect(j.status, j.stderr).toBe(exit);
      expect(j.stderr).toMatch(new RegExp(`^segferry: error ${code}: `, 'm'));
      const last = JSON.parse(j.stdout.trimEnd().split('\n').pop() || '{}') as { type?: string; error?: { code: string } };
      expect(last).toMatchObject({ type: 'error', error: { code } });
      const v = cli([...args, '-v']);
      expect(v.status).toBe(exit);
      expect(v.stderr).toMatch(STACK_LINE);
      const q = cli([...args, '-q']);
      expect(q.status).toBe(exit);
      expect(q.stderr).toMatch(new RegExp(`^segferry: error ${code}: `, 'm'));
    });
  }
});

describe('CLI: cleanup of an interrupted export', () => {
  it('lists the checkpoint as a leftover and says that removing it gives up --resume', () => {
    const d = mkdtempSync(join(tmpdir(), 'sf-cleanup-cp-'));
    try {
      writeFileSync(join(d, 'segferry-checkpoint.json'), JSON.stringify({ kind: 'segferry-checkpoint', version: 1, planDigest: '0'.repeat(64), createdAt: '2026-12-01T00:00:00.000Z', updatedAt: '2026-12-01T00:00:00.000Z', units: [], runId: 'r', stems: ['t_dn1_segment.'] }));
      const r = spawnSync(process.execPath, [`${ROOT}/bin/segferry.js`, 'cleanup', '--at', d], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^ {2}object {2}segferry-checkpoint\.json .*--resume continues it; removing this gives that up/m);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
