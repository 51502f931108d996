import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, statSync, writeFileSync, chmodSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, planExport } from '../../lib/index.js';
import { startServer, type PgServer } from '../helpers/pg.js';

// TLS options of PostgreSQL connections pass through: sslmode and sslrootcert in the URL.
let srv: PgServer;
let work: string;
let caFile: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sf-tls-'));
  srv = await startServer({ name: 'tls' });
  // A self-signed certificate for 127.0.0.1, used as its own CA.
  const key = join(work, 'server.key');
  const crt = join(work, 'server.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', crt], { stdio: 'ignore' });
  caFile = join(work, 'ca.crt');
  copyFileSync(crt, caFile);
  const owner = statSync(srv.dataDir);
  for (const [src, name] of [[key, 'server.key'], [crt, 'server.crt']] as const) {
    const dst = join(srv.dataDir, name);
    copyFileSync(src, dst);
    chownSync(dst, owner.uid, owner.gid);
    chmodSync(dst, 0o600);
  }
  await srv.query(`CREATE DATABASE secure`);
  // Database "secure" refuses connections without TLS: an export from it proves TLS was used.
  const hba = join(srv.dataDir, 'pg_hba.conf');
  const { readFileSync } = await import('node:fs');
  writeFileSync(hba, 'hostnossl secure all 127.0.0.1/32 reject\n' + readFileSync(hba, 'utf8'));
  await srv.query(`ALTER SYSTEM SET ssl = on`);
  await srv.query(`SELECT pg_reload_conf()`);
  await new Promise((r) => setTimeout(r, 500));
  await new (await import('pg')).default.Client({ connectionString: srv.url('secure'), ssl: { rejectUnauthorized: false } }).connect().then(async (c) => {
    await c.query(`CREATE TABLE t (id int, s text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g`);
    await c.end();
  });
});

afterAll(async () => {
  await srv?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('TLS to PostgreSQL', () => {
  it('sslmode=verify-full with sslrootcert: the export runs over TLS', async () => {
    // Without TLS the server refuses this database (hostnossl ... reject).
    await expect(planExport({ source: `${srv.url('secure')}?sslmode=disable`, tables: ['t'] })).rejects.toMatchObject({ code: 'ERR_AUTH' });
    const url = `${srv.url('secure')}?sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}`;
    const plan = await planExport({ source: url, tables: ['t'] });
    expect(plan.coordinator?.sslmode).toBe('verify-full');
    const res = await exportTables({ tables: ['t'], to: join(work, 'out'), plan });
    expect(res.manifest.tables[0]!.rows).toBe(1000);
  });

  it('sslmode=verify-full with a wrong CA is refused with a typed error', async () => {
    const other = join(work, 'other.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=other',
      '-keyout', join(work, 'other.key'), '-out', other], { stdio: 'ignore' });
    const url = `${srv.url('secure')}?sslmode=verify-full&sslrootcert=${encodeURIComponent(other)}`;
    await expect(planExport({ source: url, tables: ['t'] })).rejects.toMatchObject({ code: 'ERR_CONNECT' });
  });
});
