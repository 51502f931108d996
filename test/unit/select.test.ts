import { describe, expect, it } from 'vitest';
import { compilePattern, needsCatalog, patternMatches, resolveSelection, type CatalogTable } from '../../lib/topology/select.js';

const cat = (schema: string, name: string, relkind = 'r', visible = schema === 'public'): CatalogTable => ({ schema, name, relkind, visible });
const CATALOG: CatalogTable[] = [
  cat('public', 'orders'),
  cat('public', 'order_items'),
  cat('public', 'orderly', 'v'),
  cat('public', 'nation'),
  cat('sales', 'order1'),
  cat('sales', 'order22'),
  cat('sales', 'measurements', 'p'),
  cat('sales', 'remote', 'f'),
  cat('Odd Schema', 'Größe Tabelle'),
  cat('audit', 'log'),
];
const names = (qs: { schema: string; name: string }[]) => qs.map((q) => `${q.schema}.${q.name}`);

describe('compilePattern', () => {
  it('folds unquoted parts, keeps quoted ones, * and ? are wildcards, other regex characters literal', () => {
    expect(compilePattern('Sales.Order*').schema!.source).toBe('^(?:sales)$');
    expect(compilePattern('Sales.Order*').name.source).toBe('^(?:order.*)$');
    expect(compilePattern('"Odd Schema"."Größe Tabelle"').exact).toBe(true);
    expect(compilePattern('"a*b"').name.test('a*b')).toBe(true);
    expect(compilePattern('"a*b"').name.test('axxb')).toBe(false);
    expect(compilePattern('"a.b"').schema).toBeUndefined();
    expect(compilePattern('t?').name.test('t1')).toBe(true);
    expect(compilePattern('t?').name.test('t12')).toBe(false);
    expect(compilePattern('a+b').name.test('a+b')).toBe(true);
    expect(compilePattern('a+b').name.test('aab')).toBe(false);
    expect(compilePattern('"say ""hi"""').name.test('say "hi"')).toBe(true);
  });
  it('refuses what is not a pattern', () => {
    for (const bad of ['', 'a.b.c', '"open', 'a.', '.b']) expect(() => compilePattern(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
  it('an unqualified pattern matches visible tables only, as pg_dump', () => {
    expect(patternMatches(compilePattern('order*'), cat('sales', 'order1', 'r', false))).toBe(false);
    expect(patternMatches(compilePattern('order*'), cat('sales', 'order1', 'r', true))).toBe(true);
  });
});

describe('resolveSelection', () => {
  it('exact names pass through in the order given, without needing the catalog', () => {
    expect(needsCatalog({ tables: ['b', 'a'] })).toBe(false);
    expect(names(resolveSelection([], { tables: ['nation', 'Sales.Orders'] }))).toEqual(['public.nation', 'sales.orders']);
    expect(() => resolveSelection([], { tables: ['a', 'public.a'] })).toThrow(/given twice/);
  });
  it('patterns select ordinary, partitioned and foreign tables (not views), deduplicated', () => {
    expect(needsCatalog({ tables: ['sales.*'] })).toBe(true);
    expect(names(resolveSelection(CATALOG, { tables: ['sales.*', 'sales.order?'] }))).toEqual(['sales.measurements', 'sales.order1', 'sales.order22', 'sales.remote']);
    expect(names(resolveSelection(CATALOG, { tables: ['order*'] }))).toEqual(['public.order_items', 'public.orders']);
    expect(names(resolveSelection(CATALOG, { tables: ['sales.order??'] }))).toEqual(['sales.order22']);
  });
  it('--all: ordinary and partitioned tables of every schema, sorted; --schema: of those schemas', () => {
    expect(names(resolveSelection(CATALOG, { all: true }))).toEqual([
      'Odd Schema.Größe Tabelle', 'audit.log', 'public.nation', 'public.order_items', 'public.orders', 'sales.measurements', 'sales.order1', 'sales.order22',
    ]);
    expect(names(resolveSelection(CATALOG, { schemas: ['Odd Schema', 'audit'] }))).toEqual(['Odd Schema.Größe Tabelle', 'audit.log']);
  });
  it('excludes apply last, to every way of selecting', () => {
    expect(names(resolveSelection(CATALOG, { all: true, excludeTables: ['sales.*', '"Odd Schema".*', 'order_items'] }))).toEqual(['audit.log', 'public.nation', 'public.orders']);
    expect(names(resolveSelection(CATALOG, { tables: ['nation', 'orders'], excludeTables: ['nation'] }))).toEqual(['public.orders']);
  });
  it('refuses a pattern or schema that matches nothing, and an empty result', () => {
    expect(() => resolveSelection(CATALOG, { tables: ['nope*'] })).toThrow(expect.objectContaining({ code: 'ERR_TABLE_NOT_FOUND' }));
    expect(() => resolveSelection(CATALOG, { schemas: ['Sales'] })).toThrow(expect.objectContaining({ code: 'ERR_TABLE_NOT_FOUND' }));
    expect(() => resolveSelection(CATALOG, { all: true, excludeTables: ['*.*'] })).toThrow(/selection is empty/);
  });
  it('an unqualified exact name takes the visible table of that name', () => {
    expect(names(resolveSelection([cat('app', 'orders', 'r', true)], { tables: ['orders', 'x*'].slice(0, 1), all: false, excludeTables: ['zzz'] }))).toEqual(['app.orders']);
  });
});
