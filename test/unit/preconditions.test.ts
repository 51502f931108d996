import { describe, expect, it } from 'vitest';
import type { SegferryError } from '../../lib/errors.js';
import { checkColumns, markLoaded } from '../../lib/import/preconditions.js';
import type { ImportTablePlan, PlannedObject } from '../../lib/import/route.js';

const obj = (key: string, targets: string[]): PlannedObject => ({ key, sourceNode: 'dn1', segment: 0, bytes: 1, targets, loaded: [] });
const table = (objects: PlannedObject[]): ImportTablePlan => ({
  table: 'public.t', destination: { schema: 'public', name: 't' }, columns: [], distribution: { kind: 'distributed' },
  route: 'direct', reason: '', targets: [], create: [], truncate: [], objects, source: {},
});
const ledger = (keys: string[]) => new Map(keys.map((k) => [k, 'public.t']));

describe('markLoaded', () => {
  it('records per object the target nodes whose ledger has it', () => {
    const t = table([obj('a', ['dn1', 'dn2']), obj('b', ['dn2']), obj('c', ['dn1'])]);
    markLoaded([t], new Map([['dn1', ledger(['a'])], ['dn2', ledger(['a', 'b'])], ['coordinator', ledger([])]]));
    expect(t.objects.map((o) => [o.key, o.loaded])).toEqual([['a', ['dn1', 'dn2']], ['b', ['dn2']], ['c', []]]);
  });

  it('an object recorded on a node that is not its target: routed differently before', () => {
    const t = table([obj('a', ['coordinator'])]);
    let e: SegferryError | undefined;
    try {
      markLoaded([t], new Map([['coordinator', ledger([])], ['dn1', ledger(['a'])]]));
    } catch (x) {
      e = x as SegferryError;
    }
    expect([e?.code, e?.key, e?.node, e?.table]).toEqual(['ERR_INVALID_OPTION', 'a', 'dn1', 'public.t']);
  });
});

describe('checkColumns', () => {
  const exported = [{ name: 'id', type: 'bigint' }, { name: 'note', type: 'text' }];
  it('accepts the exported columns under their names on the node, in any order and with extras', () => {
    expect(() => checkColumns(exported, [{ name: 'extra', type: 'date' }, { name: 'rnote', type: 'text' }, { name: 'id', type: 'bigint' }], ['id', 'rnote'], 'public.t', 'dn1')).not.toThrow();
  });
  it('a missing column or another type: ERR_SCHEMA_MISMATCH naming the node', () => {
    for (const dest of [[{ name: 'id', type: 'bigint' }], [{ name: 'id', type: 'integer' }, { name: 'note', type: 'text' }]]) {
      let e: SegferryError | undefined;
      try { checkColumns(exported, dest, [], 'public.t', 'dn2'); } catch (x) { e = x as SegferryError; }
      expect([e?.code, e?.node]).toEqual(['ERR_SCHEMA_MISMATCH', 'dn2']);
    }
  });
});
