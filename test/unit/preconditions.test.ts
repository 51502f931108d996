import { describe, expect, it } from 'vitest';
import type { SegferryError } from '../../lib/errors.js';
import { checkColumns, markLoaded, typeAccepts } from '../../lib/import/preconditions.js';
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

describe('typeAccepts: the same type or a safe widening', () => {
  const accepted: [string, string][] = [
    ['integer', 'integer'], ['smallint', 'integer'], ['smallint', 'bigint'], ['integer', 'bigint'],
    ['integer', 'numeric'], ['bigint', 'numeric'], ['bigint', 'numeric(19,0)'], ['integer', 'numeric(12,2)'],
    ['real', 'double precision'],
    ['character varying(10)', 'character varying(10)'], ['character varying(10)', 'character varying(20)'],
    ['character varying(10)', 'character varying'], ['character varying(10)', 'text'], ['character varying', 'text'],
    ['character(3)', 'text'], ['text', 'character varying'],
    ['timestamp(3) without time zone', 'timestamp(6) without time zone'], ['timestamp(0) with time zone', 'timestamp with time zone'],
    ['numeric(10,2)', 'numeric(12,2)'], ['numeric(10,2)', 'numeric'], ['numeric(5)', 'numeric(7,0)'],
  ];
  const refused: [string, string][] = [
    ['bigint', 'integer'], ['integer', 'smallint'], ['bigint', 'numeric(18,0)'], ['integer', 'numeric(10,2)'], ['integer', 'real'],
    ['double precision', 'real'], ['integer', 'text'], ['text', 'character varying(10)'], ['character varying(20)', 'character varying(10)'],
    ['character(3)', 'character varying(3)'], ['text', 'character(3)'], ['timestamp(6) without time zone', 'timestamp(3) without time zone'],
    ['timestamp without time zone', 'timestamp with time zone'], ['numeric(10,2)', 'numeric(12,3)'], ['numeric(10,2)', 'numeric(9,2)'],
    ['numeric', 'numeric(30,2)'], ['integer[]', 'bigint[]'], ['date', 'timestamp without time zone'], ['json', 'jsonb'],
  ];
  it('accepts widenings under which every text form reads back the same', () => {
    expect(accepted.filter(([f, t]) => !typeAccepts(f, t))).toEqual([]);
  });
  it('refuses everything else', () => {
    expect(refused.filter(([f, t]) => typeAccepts(f, t))).toEqual([]);
  });
  it('Arrow (COPY BINARY) accepts only the same type', () => {
    expect(typeAccepts('integer', 'integer', 'arrow')).toBe(true);
    expect(accepted.filter(([f, t]) => f !== t && typeAccepts(f, t, 'arrow'))).toEqual([]);
  });
  it('checkColumns applies the rule: integer into bigint loads, bigint into integer does not', () => {
    expect(() => checkColumns([{ name: 'id', type: 'integer' }], [{ name: 'id', type: 'bigint' }], [], 'public.t', 'dn1')).not.toThrow();
    expect(() => checkColumns([{ name: 'id', type: 'integer' }], [{ name: 'id', type: 'bigint' }], [], 'public.t', 'dn1', 'arrow')).toThrow(/exported as integer/);
  });
});
