import { describe, expect, it } from 'vitest';
import type { SegferryError } from '../../lib/errors.js';
import { NodeClients } from '../../lib/topology/clients.js';
import { TOPOLOGY_KINDS } from '../../lib/topology/discover.js';
import type { PlanNode } from '../../lib/topology/types.js';

describe('TOPOLOGY_KINDS', () => {
  it('lists every topology kind, Citus included, without any import for side effects', () => {
    expect(Object.keys(TOPOLOGY_KINDS).sort()).toEqual(['citus', 'fdw', 'postgres', 'static']);
    for (const fn of Object.values(TOPOLOGY_KINDS)) expect(typeof fn).toBe('function');
  });

  it.each(['postgres', 'fdw', 'citus'] as const)('%s needs a coordinator client', async (kind) => {
    const e = await TOPOLOGY_KINDS[kind]({ static: { nodes: [] } }, { tables: ['t'] }, [{ schema: 'public', name: 't' }]).catch((x: SegferryError) => x);
    expect((e as SegferryError).code).toBe('ERR_INVALID_OPTION');
  });

  it('static checks its node list before connecting anywhere', async () => {
    const e = await TOPOLOGY_KINDS.static({ static: { nodes: [{ name: 'a', url: 'postgres://u@127.0.0.1:1/d' }, { name: 'a', url: 'postgres://u@127.0.0.1:2/d' }] } }, { tables: ['t'] }, [{ schema: 'public', name: 't' }])
      .catch((x: SegferryError) => x);
    expect((e as SegferryError).message).toBe('node name a is used twice');
  });
});

describe('NodeClients', () => {
  it('a node name it was not given is a TopologyError, and nothing is opened', async () => {
    const nodes = new Map<string, PlanNode>([['dn1', { name: 'dn1', endpoint: { host: '127.0.0.1', port: 1, database: 'd', user: 'u' } }]]);
    const c = new NodeClients({ nodes });
    const e = await c.get('dn9').catch((x: SegferryError) => x);
    expect([(e as SegferryError).code, (e as SegferryError).message]).toEqual(['ERR_TOPOLOGY', 'unknown destination node dn9']);
    await c.closeAll();
  });
});
