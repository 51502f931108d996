import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { passwordFilePath, passwordFromFile, splitPasswordLine } from '../../lib/pg/pgpass.js';

const dir = mkdtempSync(join(tmpdir(), 'sf-pgpass-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string, mode = 0o600): NodeJS.ProcessEnv {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return { PGPASSFILE: p };
}

const key = { host: 'db1.example', port: 5433, database: 'shop', user: 'app' };

describe('the password file (libpq rules, read by segferry itself)', () => {
  it('splits on unescaped colons; \\: and \\\\ are literal', () => {
    expect(splitPasswordLine('h:5432:db:u:p')).toEqual(['h', '5432', 'db', 'u', 'p']);
    expect(splitPasswordLine('h\\:x:5432:d\\\\b:u:pa\\:ss:word')).toEqual(['h:x', '5432', 'd\\b', 'u', 'pa:ss:word']);
    expect(splitPasswordLine('h:5432:db:u')).toBeUndefined();
    // The password runs to the end of the line (pg's former reader did the same).
    expect(splitPasswordLine('h:5432:db:u:sf-x/+@:')).toEqual(['h', '5432', 'db', 'u', 'sf-x/+@:']);
  });

  it('returns the first matching line; * matches any value; comments and CRLF lines are read', () => {
    const env = file('a', [
      '# comment:*:*:*:not-this',
      'db1.example:5432:shop:app:wrong-port',
      'db1.example:5433:other:app:wrong-db',
      'db1.example:5433:*:app:first-match\r',
      '*:*:*:*:catch-all',
    ].join('\n'));
    expect(passwordFromFile(key, env)).toBe('first-match');
    expect(passwordFromFile({ ...key, user: 'bob' }, env)).toBe('catch-all');
  });

  it('localhost matches a Unix socket directory; no match gives undefined', () => {
    const env = file('b', 'localhost:5432:*:app:sock-pw\n');
    expect(passwordFromFile({ host: '/var/run/postgresql', port: 5432, database: 'x', user: 'app' }, env)).toBe('sock-pw');
    expect(passwordFromFile({ host: '10.0.0.1', port: 5432, database: 'x', user: 'app' }, env)).toBeUndefined();
  });

  it('ignores a file that group or others may read, a directory, and a missing file, as libpq does', () => {
    expect(passwordFromFile(key, file('c', '*:*:*:*:open-pw\n', 0o644))).toBeUndefined();
    expect(passwordFromFile(key, file('d', '*:*:*:*:ok-pw\n', 0o400))).toBe('ok-pw');
    expect(passwordFromFile(key, { PGPASSFILE: dir })).toBeUndefined();
    expect(passwordFromFile(key, { PGPASSFILE: join(dir, 'missing') })).toBeUndefined();
  });

  it('finds the file in PGPASSFILE, else ~/.pgpass', () => {
    expect(passwordFilePath({ PGPASSFILE: '/x/y' })).toBe('/x/y');
    expect(passwordFilePath({ HOME: '/home/z' })).toBe('/home/z/.pgpass');
  });
});
