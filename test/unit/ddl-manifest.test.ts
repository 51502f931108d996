import { describe, expect, it } from 'vitest';
import { checkManifest } from '../../lib/manifest/io.js';
import { SESSION_SETTINGS } from '../../lib/pg/conn.js';
import { ManifestInvalidError } from '../../lib/errors.js';

// Issue 14's manifest fields beyond `ddl` itself: schemaOnly, and the data-only sequences.

const ddl = () => ({
  pre: { key: 'segferry-ddl-pre-data.sql', bytes: 10, sha256: 'a'.repeat(64) },
  post: { key: 'segferry-ddl-post-data.sql', bytes: 10, sha256: 'b'.repeat(64) },
  pgDumpVersion: 'pg_dump (PostgreSQL) 15.18', serverVersion: '15.18', snapshot: 'shared', scope: 'database', sequences: [],
});

function base(): any {
  return {
    kind: 'segferry-manifest', version: 1, id: 'b2c9', createdAt: 'x', completedAt: 'x', writer: 'segferry 0.1.0',
    source: { topology: 'postgres', nodes: [{ name: 'coordinator', host: '127.0.0.1', port: 5432, database: 'db' }] },
    format: { kind: 'text', delimiter: '\t', null: '\\N' },
    sessionSettings: { ...SESSION_SETTINGS },
    segmentSize: 1024,
    tables: [{ schema: 'public', name: 't', objectName: 't', columns: [{ name: 'id', type: 'integer', notNull: true }], distribution: { kind: 'single' }, filter: null, rows: 0, bytes: 0, nodes: [] }],
    objects: [],
  };
}

function message(m: unknown): string {
  try {
    checkManifest(m);
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestInvalidError);
    return (e as Error).message;
  }
  return 'accepted';
}

describe('manifest: schemaOnly, sequences, matviews', () => {
  it('accepts a schema-only manifest with ddl and no objects, and a data-only one with sequences', () => {
    expect(message({ ...base(), schemaOnly: true, ddl: ddl() })).toBe('accepted');
    expect(message({ ...base(), sequences: [{ schema: 's', name: 'q', lastValue: '-42', isCalled: false }], matviews: [{ schema: 's', name: 'mv' }] })).toBe('accepted');
  });

  it('refuses a schemaOnly that is not true, lacks ddl or lists objects', () => {
    expect(message({ ...base(), schemaOnly: false, ddl: ddl() })).toMatch(/schemaOnly must be true/);
    expect(message({ ...base(), schemaOnly: true })).toMatch(/must carry ddl/);
    const m = { ...base(), schemaOnly: true, ddl: ddl() };
    m.objects = [{ key: 't_coordinator_segment.0', table: 'public.t', node: 'coordinator', segment: 0, bytes: 4, rows: 2, sha256: 'a'.repeat(64) }];
    expect(message(m)).toMatch(/lists no objects/);
  });

  it('refuses sequence values that are not decimal bigints and names that are not identifiers', () => {
    expect(message({ ...base(), sequences: [{ schema: 's', name: 'q', lastValue: '1); DROP TABLE t; --', isCalled: true }] })).toMatch(/sequences\[0\]\.lastValue/);
    expect(message({ ...base(), sequences: [{ schema: '', name: 'q', lastValue: '1', isCalled: true }] })).toMatch(/sequences\[0\]\.schema/);
    expect(message({ ...base(), sequences: {} })).toMatch(/sequences must be an array/);
    expect(message({ ...base(), matviews: [{ schema: 's', name: 7 }] })).toMatch(/matviews\[0\]\.name/);
  });
});

describe('manifest: ddl.distribution (Citus)', () => {
  const withDist = (d: unknown) => ({ ...base(), ddl: { ...ddl(), distribution: d } });
  it('accepts distributed, reference and single-shard entries', () => {
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'distributed', column: 'id', shardCount: 8, colocationGroup: 2 }, { schema: 'public', name: 'r', kind: 'reference' }]))).toBe('accepted');
    expect(message(withDist([{ schema: 'public', name: 's', kind: 'single-shard', colocationGroup: 3 }, { schema: 'tenant', name: 't', kind: 'single-shard', colocationGroup: 4, tenantSchema: true }]))).toBe('accepted');
  });
  it('refuses other kinds, missing columns and shard counts out of range', () => {
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'range' }]))).toMatch(/kind must be distributed, reference or single-shard/);
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'single-shard' }]))).toMatch(/distribution\[0\]\.colocationGroup/);
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'single-shard', colocationGroup: 3, tenantSchema: 'yes' }]))).toMatch(/tenantSchema must be a boolean/);
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'distributed', shardCount: 8, colocationGroup: 2 }]))).toMatch(/distribution\[0\]\.column/);
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'distributed', column: 'id', shardCount: 0, colocationGroup: 2 }]))).toMatch(/shardCount must be 1 to 64000/);
    expect(message(withDist([{ schema: 'public', name: 't', kind: 'distributed', column: 'id', shardCount: 2, colocationGroup: -1 }]))).toMatch(/colocationGroup/);
    expect(message(withDist({}))).toMatch(/distribution must be an array/);
  });
});
