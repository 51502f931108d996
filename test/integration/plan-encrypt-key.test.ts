/**
 * `segferry plan --out FILE --encrypt key-file:PATH` opens the key first: a missing or bad key
 * file fails before any database work. The source is a port where nothing listens, so any
 * connection attempt would fail differently (the control case shows how).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/pg.js';

let dir: string;
let source: string;

beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'sf-plan-key-'));
  source = `postgresql://segferry:pw@127.0.0.1:${await freePort()}/db`;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const plan = (key: string) =>
  runCli(['plan', '--source', source, '--table', 'public.t', '--to', join(dir, 'out'), '--out', join(dir, 'plan.json'), '--encrypt', `key-file:${key}`]);

describe('plan --out --encrypt checks the key before planning', () => {
  it('a missing key file: ERR_ENCRYPTION_KEY naming it, no connection attempted, no plan written', async () => {
    const r = await plan(join(dir, 'no-such-key'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_ENCRYPTION_KEY');
    expect(r.stderr).toContain(`cannot read key file ${join(dir, 'no-such-key')}: ENOENT`);
    expect(r.stderr).not.toMatch(/ECONNREFUSED|connect/i);
    expect(existsSync(join(dir, 'plan.json'))).toBe(false);
  });

  it('a key file without a 256-bit key: ERR_ENCRYPTION_KEY, no connection attempted, no plan written', async () => {
    const bad = join(dir, 'bad-key');
    await writeFile(bad, 'not a key\n');
    const r = await plan(bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_ENCRYPTION_KEY');
    expect(r.stderr).toContain('does not hold a 256-bit key');
    expect(r.stderr).not.toMatch(/ECONNREFUSED|connect/i);
    expect(existsSync(join(dir, 'plan.json'))).toBe(false);
  });

  it('control: a good key file gets as far as connecting to the source, which fails there', async () => {
    const good = join(dir, 'good-key');
    await writeFile(good, 'ab'.repeat(32) + '\n', { mode: 0o600 });
    const r = await plan(good);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('ERR_ENCRYPTION_KEY');
    expect(r.stderr).toMatch(/ECONNREFUSED|connect/i);
    expect(existsSync(join(dir, 'plan.json'))).toBe(false);
  });
});
