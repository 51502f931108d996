import { describe, expect, it } from 'vitest';
import { SegferryError } from '../../lib/errors.js';
import { destinationAddress } from '../../lib/import/destination.js';
import { parseStaticTopology } from '../../lib/topology/static.js';
import type { StaticTopology } from '../../lib/topology/types.js';

function fails(topo: unknown): SegferryError {
  try {
    parseStaticTopology(topo as StaticTopology);
  } catch (e) {
    expect(e).toBeInstanceOf(SegferryError);
    return e as SegferryError;
  }
  throw new Error('expected an error');
}

const url = (port: number) => `postgres://loader:s3cret@127.0.0.1:${port}/shop`;

describe('parseStaticTopology', () => {
  it('parses nodes in the order given and replicated names as schema.name', () => {
    const t = parseStaticTopology({ nodes: [{ name: 'dn2', url: url(5433) }, { name: 'dn.1-a_b', url: url(5434) }], replicated: ['nation', 'Sales."Region"'] });
    expect([...t.nodes.keys()]).toEqual(['dn2', 'dn.1-a_b']);
    const e = t.nodes.get('dn2')!.endpoint;
    expect([e.host, e.port, e.database, e.user]).toEqual(['127.0.0.1', 5433, 'shop', 'loader']);
    expect(t.nodes.get('dn2')!.name).toBe('dn2');
    expect([...t.replicated]).toEqual(['public.nation', 'sales.Region']);
    // Endpoints carry no password (it is kept aside for connect()).
    expect(JSON.stringify([...t.nodes.values()])).not.toContain('s3cret');
  });

  it.each([
    ['no nodes', { nodes: [] }],
    ['nodes not a list', { nodes: { dn1: url(1) } }],
    ['no topology', undefined],
  ])('%s: ERR_INVALID_OPTION', (_what, topo) => {
    const e = fails(topo);
    expect(e.code).toBe('ERR_INVALID_OPTION');
    expect(e.message).toBe('a static topology needs at least one node');
  });

  it('duplicate node names', () => {
    const e = fails({ nodes: [{ name: 'dn1', url: url(1) }, { name: 'dn2', url: url(2) }, { name: 'dn1', url: url(3) }] });
    expect([e.code, e.message]).toEqual(['ERR_INVALID_OPTION', 'node name dn1 is used twice']);
  });

  // Names become part of object keys `<table>_<node>_segment.<n>`.
  it.each([['dn/1'], ['_dn1'], ['-dn'], [''], ['dn 1'], ['dn1\n'], [7], [undefined]])('bad node name %j', (name) => {
    const e = fails({ nodes: [{ name, url: url(1) }] });
    expect(e.code).toBe('ERR_INVALID_OPTION');
    expect(e.message).toMatch(/^invalid node name /);
  });

  it('a node entry that is not an object', () => {
    expect(fails({ nodes: [null] }).message).toMatch(/^invalid node name undefined/);
  });

  it.each([[undefined], [''], [5432], [null]])('missing url %j', (u) => {
    const e = fails({ nodes: [{ name: 'dn1', url: u }] });
    expect([e.code, e.message, e.node]).toEqual(['ERR_INVALID_OPTION', 'node dn1 has no url', 'dn1']);
  });

  it.each([
    ['postgres://loader:s3cret@127.0.0.1:0/shop', /^node dn2: invalid port/],
    ['postgres://loader:s3cret@127.0.0.1:99999/shop', /^node dn2: cannot parse the connection string/],
    ['postgres://loader:s3cret@[zz/shop', /^node dn2: cannot parse the connection string/],
  ])('bad url %s: named by node, without the password', (u, msg) => {
    const e = fails({ nodes: [{ name: 'dn1', url: url(1) }, { name: 'dn2', url: u }] });
    expect(e.code).toBe('ERR_INVALID_OPTION');
    expect(e.node).toBe('dn2');
    expect(e.message).toMatch(msg);
    expect(JSON.stringify(e.toJSON())).not.toContain('s3cret');
  });

  it('bad replicated entries', () => {
    expect(fails({ nodes: [{ name: 'dn1', url: url(1) }], replicated: 'nation' }).code).toBe('ERR_INVALID_OPTION');
    expect(fails({ nodes: [{ name: 'dn1', url: url(1) }], replicated: ['a.b.c'] }).code).toBe('ERR_INVALID_OPTION');
  });
});

describe('destinationAddress (import and verify)', () => {
  it('a static topology and a target together are refused', () => {
    expect(() => destinationAddress({ target: url(1), topology: { nodes: [{ name: 'dn1', url: url(2) }] } })).toThrow(/not both/);
  });
  it('a static topology is checked by parseStaticTopology', () => {
    expect(() => destinationAddress({ topology: { nodes: [{ name: 'dn1', url: url(1) }, { name: 'dn1', url: url(2) }] } })).toThrow('node name dn1 is used twice');
    const a = destinationAddress({ topology: { nodes: [{ name: 'dn1', url: url(1) }], replicated: ['nation'] } });
    expect('static' in a && [...a.static.nodes.keys(), ...a.static.replicated]).toEqual(['dn1', 'public.nation']);
  });
  it('a target URL becomes the coordinator node', () => {
    const a = destinationAddress({ target: url(6000), topology: 'fdw' });
    expect('coordinator' in a && [a.coordinator.name, a.coordinator.endpoint.port, a.target]).toEqual(['coordinator', 6000, url(6000)]);
  });
});
