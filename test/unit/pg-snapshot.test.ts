import { describe, expect, it } from 'vitest';
import { ConnectError, InternalError } from '../../lib/errors.js';
import { freePort } from '../../lib/launch/postgres.js';
import { rememberPassword } from '../../lib/pg/conn.js';
import { checkSnapshotId, exportSnapshot } from '../../lib/pg/snapshot.js';

// lib/pg/snapshot.ts where no server is needed; the exported snapshot itself:
// test/integration/sessions.test.ts (and held-snapshots, streams, whole-db through their callers).

describe('checkSnapshotId', () => {
  it('takes the ids pg_export_snapshot() returns and refuses anything else before it reaches SQL', () => {
    expect(checkSnapshotId('00000003-0000001B-1')).toBe('00000003-0000001B-1');
    expect(checkSnapshotId('0000000A-00000002-00000001')).toBe('0000000A-00000002-00000001');
    for (const bad of ['', '00000003', "00000003-1'; SELECT 1; --", '00000003-0000001G-1', `1-${'0'.repeat(64)}`]) {
      expect(() => checkSnapshotId(bad)).toThrow(InternalError);
    }
  });
});

describe('exportSnapshot without a server', () => {
  it('a refused connection is ERR_CONNECT naming the node, without the password', async () => {
    const port = await freePort(); // nothing listens on it
    const endpoint = { host: '127.0.0.1', port, database: 'd', user: 'u' };
    rememberPassword(endpoint, 'sekret-pw');
    const err = await exportSnapshot(endpoint, { node: 'n1', applicationName: 'segferry test' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: 'ERR_CONNECT', node: 'n1' });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect(JSON.stringify({ m: (err as Error).message, j: (err as ConnectError).toJSON() })).not.toContain('sekret-pw');
  });
});
