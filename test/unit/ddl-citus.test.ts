import { describe, expect, it } from 'vitest';
import { distributionStatements, withoutCitusExtension } from '../../lib/ddl/citus.js';
import { ManifestInvalidError } from '../../lib/errors.js';
import type { ManifestDistribution, ManifestTable } from '../../lib/manifest/types.js';

const table = (schema: string, name: string, cols: string[]): ManifestTable => ({
  schema, name, objectName: name, columns: cols.map((c) => ({ name: c, type: 'integer' })), distribution: { kind: 'single' }, filter: null, rows: 0, bytes: 0, nodes: [],
} as unknown as ManifestTable);

const TABLES = [table('s', 'a', ['id']), table('s', 'b', ['a_id']), table('s', 'r', ['n']), table('Odd', 'Q"t', ['k'])];

describe('Citus distribution replay (lib/ddl/citus.ts)', () => {
  it('reference tables first, then per colocation group a new group with its shard count and the others colocated with it; names bound, quoted', () => {
    const dist: ManifestDistribution[] = [
      { schema: 's', name: 'b', kind: 'distributed', column: 'a_id', shardCount: 6, colocationGroup: 3 },
      { schema: 'Odd', name: 'Q"t', kind: 'distributed', column: 'k', shardCount: 4, colocationGroup: 9 },
      { schema: 's', name: 'a', kind: 'distributed', column: 'id', shardCount: 6, colocationGroup: 3 },
      { schema: 's', name: 'r', kind: 'reference' },
    ];
    expect(distributionStatements(dist, TABLES)).toEqual([
      { text: 'SELECT pg_catalog.create_reference_table($1::regclass)', values: ['"s"."r"'] },
      { text: `SELECT pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => 'none', shard_count => $3::int)`, values: ['"s"."b"', 'a_id', 6] },
      { text: `SELECT pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => 'none', shard_count => $3::int)`, values: ['"Odd"."Q""t"', 'k', 4] },
      { text: 'SELECT pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => $3)', values: ['"s"."a"', 'id', '"s"."b"'] },
    ]);
  });

  it('single-shard tables: each distributed schema once, then per group a new single-shard group and the others colocated with its first table', () => {
    const tables = [...TABLES, table('tenant', 't1', ['id']), table('tenant', 't2', ['id'])];
    const dist: ManifestDistribution[] = [
      { schema: 's', name: 'a', kind: 'single-shard', colocationGroup: 7 },
      { schema: 'tenant', name: 't1', kind: 'single-shard', colocationGroup: 8, tenantSchema: true },
      { schema: 's', name: 'b', kind: 'single-shard', colocationGroup: 7 },
      { schema: 'tenant', name: 't2', kind: 'single-shard', colocationGroup: 8, tenantSchema: true },
      { schema: 's', name: 'r', kind: 'distributed', column: 'n', shardCount: 4, colocationGroup: 2 },
    ];
    expect(distributionStatements(dist, tables)).toEqual([
      { text: 'SELECT pg_catalog.citus_schema_distribute($1::regnamespace)', values: ['"tenant"'] },
      { text: `SELECT pg_catalog.create_distributed_table($1::regclass, NULL, colocate_with => 'none')`, values: ['"s"."a"'] },
      { text: 'SELECT pg_catalog.create_distributed_table($1::regclass, NULL, colocate_with => $2)', values: ['"s"."b"', '"s"."a"'] },
      { text: `SELECT pg_catalog.create_distributed_table($1::regclass, $2, colocate_with => 'none', shard_count => $3::int)`, values: ['"s"."r"', 'n', 4] },
    ]);
    const mixed = () => distributionStatements([
      { schema: 's', name: 'a', kind: 'single-shard', colocationGroup: 7 },
      { schema: 's', name: 'b', kind: 'distributed', column: 'a_id', shardCount: 1, colocationGroup: 7 },
    ], tables);
    expect(mixed).toThrow(ManifestInvalidError);
    expect(mixed).toThrow(/share colocation group 7/);
  });

  it('refuses entries that do not match the export\'s tables', () => {
    const bad = (d: ManifestDistribution[]) => { try { distributionStatements(d, TABLES); return 'accepted'; } catch (e) { expect(e).toBeInstanceOf(ManifestInvalidError); return (e as Error).message; } };
    expect(bad([{ schema: 's', name: 'zz', kind: 'reference' }])).toMatch(/s\.zz is not a table of the export/);
    expect(bad([{ schema: 's', name: 'a', kind: 'distributed', column: 'id); DROP TABLE x; --', shardCount: 2, colocationGroup: 1 }])).toMatch(/not one of its columns/);
    expect(bad([{ schema: 's', name: 'r', kind: 'reference' }, { schema: 's', name: 'r', kind: 'reference' }])).toMatch(/listed twice/);
    expect(bad([
      { schema: 's', name: 'a', kind: 'distributed', column: 'id', shardCount: 2, colocationGroup: 1 },
      { schema: 's', name: 'b', kind: 'distributed', column: 'a_id', shardCount: 4, colocationGroup: 1 },
    ])).toMatch(/different shard counts/);
  });

  it('drops the citus extension\'s own statements from a dump and nothing else', () => {
    const dump = [
      "CREATE EXTENSION IF NOT EXISTS citus WITH SCHEMA pg_catalog;",
      "COMMENT ON EXTENSION citus IS 'Citus distributed database';",
      "CREATE EXTENSION IF NOT EXISTS citus_columnar WITH SCHEMA pg_catalog;",
      "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
      "COMMENT ON EXTENSION pg_trgm IS 'it''s trigrams';",
      "CREATE TABLE public.citus (x int);",
      '',
    ].join('\n');
    expect(withoutCitusExtension(dump)).toBe([
      "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
      "COMMENT ON EXTENSION pg_trgm IS 'it''s trigrams';",
      "CREATE TABLE public.citus (x int);",
      '',
    ].join('\n'));
  });
});
