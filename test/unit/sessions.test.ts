import { describe, expect, it } from 'vitest';
import { ConnectError, InternalError } from '../../lib/errors.js';
import { Sessions } from '../../lib/import/sessions.js';
import { freePort } from '../../lib/launch/postgres.js';

// Sessions.withSession where no server is needed: a session that cannot be acquired runs no
// step, and the acquire's own error is thrown as it is. The step's success and failure paths
// need a session: test/integration/sessions.test.ts.

describe('Sessions.withSession without a session', () => {
  it('a node the pool does not know: InternalError, the step never runs', async () => {
    const s = new Sessions(new Map(), {}, 'segferry test');
    let ran = false;
    const err = await s.withSession('nowhere', 'prepare', async () => { ran = true; }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toContain('no endpoint for node nowhere');
    expect(ran).toBe(false);
  });

  it('a node that refuses the connection: ERR_CONNECT naming the node and action connect (not the step\'s action), the step never runs', async () => {
    // A port nothing listens on (taken from the kernel, then closed).
    const port = await freePort();
    const s = new Sessions(new Map([['n1', { name: 'n1', endpoint: { host: '127.0.0.1', port, database: 'd', user: 'u' } }]]), {}, 'segferry test');
    let ran = false;
    const err = await s.withSession('n1', 'prepare', async () => { ran = true; }, { table: 'public.t' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: 'ERR_CONNECT', node: 'n1' });
    expect((err as Error).message).not.toContain('prepare');
    expect(ran).toBe(false);
    await s.closeAll();
  });
});
