/**
 * Issue 14, Citus: export --all from a Citus coordinator carries its schema in the export with its
 * distribution as data (column, shard count, colocation, reference tables), replayed by
 * `import --create` into another Citus cluster; into a plain server the tables stay plain.
 * Skips with a message when the citus extension is missing (SEGFERRY_REQUIRE_CITUS=1 fails).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, SegferryError, type Manifest } from '../../lib/index.js';
import { findPgDump, runPgDump } from '../../lib/ddl/pgdump.js';
import { parseConnection } from '../../lib/pg/conn.js';
import { manifestSchemaErrors } from '../helpers/manifest-schema.js';
import { citusMissing, startCitusCluster, type CitusCluster } from '../helpers/citus.js';
import { describeMultisetDiff, multisetSize, rowMultiset, sameMultiset } from '../helpers/fixtures.js';

const missing = citusMissing();
if (missing) console.warn(`skipping the Citus whole-database tests: ${missing}`);

let src: CitusCluster;
let dst: CitusCluster;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-wholedb-citus-'));
  dirs.push(d);
  return d;
}

const SCHEMA = `
CREATE SCHEMA shop;
CREATE TYPE shop.kind AS ENUM ('a', 'b', 'c');
CREATE TABLE shop.nation (n int PRIMARY KEY, name text NOT NULL);
CREATE TABLE shop.events (id bigint PRIMARY KEY, tenant int NOT NULL, k shop.kind, nation int REFERENCES shop.nation (n), note text);
CREATE INDEX events_tenant ON shop.events (tenant);
CREATE TABLE shop.event_notes (event_id bigint NOT NULL, line int NOT NULL, body text, PRIMARY KEY (event_id, line));
CREATE TABLE shop.items (tenant int NOT NULL, id bigint NOT NULL, "Price" numeric(10,2) CHECK ("Price" >= 0), PRIMARY KEY (tenant, id));
CREATE TABLE shop.local_notes (id int PRIMARY KEY, body text);
SELECT create_reference_table('shop.nation');
SELECT create_distributed_table('shop.events', 'id', shard_count => 6, colocate_with => 'none');
SELECT create_distributed_table('shop.event_notes', 'event_id', colocate_with => 'shop.events');
SELECT create_distributed_table('shop.items', 'tenant', shard_count => 4, colocate_with => 'none');
ALTER TABLE shop.event_notes ADD CONSTRAINT notes_event_fk FOREIGN KEY (event_id) REFERENCES shop.events (id);
INSERT INTO shop.nation SELECT i, 'nation ' || i FROM generate_series(1, 25) i;
INSERT INTO shop.events SELECT i, i % 37, (ARRAY['a','b','c'])[1 + i % 3]::shop.kind, 1 + i % 25, 'note ' || i FROM generate_series(1, 3000) i;
INSERT INTO shop.event_notes SELECT 1 + i % 3000, i, 'line ' || i FROM generate_series(1, 1500) i;
INSERT INTO shop.items SELECT i % 11, i, i * 0.5 FROM generate_series(1, 800) i;
INSERT INTO shop.local_notes SELECT i, 'local ' || i FROM generate_series(1, 10) i;
`;
const TABLES = ['shop.event_notes', 'shop.events', 'shop.items', 'shop.local_notes', 'shop.nation'];

/** Each table's Citus distribution, colocation as "same group as" the first table of its group. */
async function distribution(c: CitusCluster, db = 'postgres'): Promise<Record<string, string>> {
  const rows = await c.coordinator.query<{ t: string; m: string; r: string; col: string | null; shards: number; g: number }>(
    `SELECT logicalrelid::regclass::text AS t, partmethod::text AS m, repmodel::text AS r, column_to_column_name(logicalrelid, partkey) AS col,
            (SELECT count(*)::int FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shards, colocationid AS g
       FROM pg_dist_partition p ORDER BY 1`, [], db);
  const first = new Map<number, string>();
  const out: Record<string, string> = {};
  for (const x of rows) {
    if (!first.has(x.g)) first.set(x.g, x.t);
    out[x.t] = x.m === 'n' && x.r === 't' ? 'reference' : `hash(${x.col}) x${x.shards} colocated with ${first.get(x.g)}`;
  }
  return out;
}

async function schemaDump(s: CitusCluster['coordinator'], db = 'postgres'): Promise<string> {
  return runPgDump(findPgDump(15), parseConnection(s.url(db)), ['--schema-only', '--schema=shop']);
}

describe.skipIf(missing !== undefined)('Citus → Citus with DDL (issue 14)', () => {
  let exported: string;
  let manifest: Manifest;

  beforeAll(async () => {
    [src, dst] = await Promise.all([startCitusCluster({ name: 'wdsrc' }), startCitusCluster({ name: 'wddst' })]);
    // One statement at a time: Citus refuses create_distributed_table in a multi-statement query string.
    for (const st of SCHEMA.split(';\n').map((x) => x.trim()).filter(Boolean)) await src.query(st);
    exported = await tmp();
    const res = await exportTables({ source: src.coordinator.url(), all: true, to: exported, segmentSize: 32 * 1024 });
    manifest = res.manifest;
  });

  afterAll(async () => {
    await Promise.allSettled([src?.destroy(), dst?.destroy()]);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('export --all on the coordinator: the shell tables\' DDL (no shards, no citus extension), the distribution as data', async () => {
    expect(manifest.source.topology).toBe('citus');
    expect(manifest.ddl!.snapshot).toBe('before-data');
    expect(manifest.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(TABLES);
    const pre = await readFile(join(exported, manifest.ddl!.pre.key), 'utf8');
    expect(pre).toContain('CREATE TABLE shop.events (');
    expect(pre).not.toMatch(/events_\d{6}/); // no shard relation
    expect(pre).not.toMatch(/^(CREATE|COMMENT ON) EXTENSION/m); // pg_dump's own comment lines about it stay
    const d = manifest.ddl!.distribution!;
    const byName = new Map(d.map((x) => [x.name, x]));
    expect(d).toHaveLength(4);
    expect(byName.get('nation')).toEqual({ schema: 'shop', name: 'nation', kind: 'reference' });
    expect(byName.get('events')).toMatchObject({ kind: 'distributed', column: 'id', shardCount: 6 });
    expect(byName.get('event_notes')).toMatchObject({ kind: 'distributed', column: 'event_id', shardCount: 6, colocationGroup: byName.get('events')!.colocationGroup });
    expect(byName.get('items')).toMatchObject({ kind: 'distributed', column: 'tenant', shardCount: 4 });
    expect(byName.get('items')!.colocationGroup).not.toBe(byName.get('events')!.colocationGroup);
    expect(byName.has('local_notes')).toBe(false);
    expect(manifestSchemaErrors(JSON.parse(await readFile(join(exported, 'manifest.json'), 'utf8')))).toBe('');
  });

  it('import --create into a Citus coordinator: distributed on the same column with the same shard count and colocation, reference tables as reference tables, rows and schema equal', async () => {
    const res = await importTables({ from: exported, target: dst.coordinator.url(), create: true });
    expect(res.notes.join('\n')).toContain('Citus distribution replayed after pre-data: 1 reference, 3 distributed tables');
    expect(await distribution(dst)).toEqual(await distribution(src));
    expect(await distribution(dst)).toEqual({
      'shop.event_notes': 'hash(event_id) x6 colocated with shop.event_notes',
      'shop.events': 'hash(id) x6 colocated with shop.event_notes',
      'shop.items': 'hash(tenant) x4 colocated with shop.items',
      'shop.nation': 'reference',
    });
    for (const t of TABLES) {
      const a = await rowMultiset(src.coordinator, `SELECT * FROM ${t}`);
      const b = await rowMultiset(dst.coordinator, `SELECT * FROM ${t}`);
      expect(multisetSize(a), t).toBeGreaterThan(0);
      expect(sameMultiset(a, b), `${t}: ${describeMultisetDiff(a, b)}`).toBe(true);
    }
    expect(await schemaDump(dst.coordinator)).toBe(await schemaDump(src.coordinator));
    // Keys and foreign keys are in place (post-data ran on the distributed tables).
    const e = await dst.query(`INSERT INTO shop.event_notes VALUES (999999, 1, 'x')`).catch((x: { code?: string }) => x.code);
    expect(e).toBe('23503');
  });

  it('import --create into a plain server: plain tables, the distribution not replayed (said in a note), rows equal', async () => {
    await dst.coordinator.query('CREATE DATABASE plain');
    const res = await importTables({ from: exported, target: dst.coordinator.url('plain'), create: true });
    expect(res.notes.join('\n')).toContain('the Citus distribution of 4 tables is not replayed: the destination is not Citus, they are plain tables');
    expect(await dst.coordinator.query(`SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'citus'`, [], 'plain')).toEqual([{ n: 0 }]);
    for (const t of TABLES) {
      expect(sameMultiset(await rowMultiset(src.coordinator, `SELECT * FROM ${t}`), await rowMultiset(dst.coordinator, `SELECT * FROM ${t}`, 'plain')), t).toBe(true);
    }
  });

  it('a manifest whose distribution names a column the table lacks: ERR_MANIFEST_INVALID before anything runs', async () => {
    const { cp, writeFile } = await import('node:fs/promises');
    const dir = await tmp();
    await cp(exported, dir, { recursive: true });
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    m.ddl!.distribution!.find((x) => x.name === 'events')!.column = 'tenant); DROP TABLE shop.nation; --';
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
    await dst.coordinator.query('CREATE DATABASE bad');
    const e = await importTables({ from: dir, target: dst.coordinator.url('bad'), create: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_MANIFEST_INVALID');
    expect((e as SegferryError).message).toContain('is not one of its columns');
    expect(await dst.coordinator.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'shop'`, [], 'bad')).toEqual([{ n: 0 }]);
  });
});
