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

  describe('single-shard tables and distributed schemas (Citus ≥ 11.3 / 12); range and append refused', () => {
    const SINGLE = [
      'CREATE SCHEMA solo',
      'CREATE TABLE solo.accounts (id int PRIMARY KEY, name text)',
      'CREATE TABLE solo.notes (account int REFERENCES solo.accounts (id), body text)',
      'CREATE TABLE solo.alone (id int, v text)',
      `SELECT create_distributed_table('solo.accounts', NULL, colocate_with => 'none')`,
      `SELECT create_distributed_table('solo.notes', NULL, colocate_with => 'solo.accounts')`,
      `SELECT create_distributed_table('solo.alone', NULL, colocate_with => 'none')`,
      'CREATE SCHEMA tenant1',
      'CREATE TABLE tenant1.items (id int PRIMARY KEY, label text)',
      'CREATE TABLE tenant1.parts (item int REFERENCES tenant1.items (id), n int)',
      `SELECT citus_schema_distribute('tenant1')`,
      `INSERT INTO solo.accounts SELECT i, 'a' || i FROM generate_series(1, 40) i`,
      `INSERT INTO solo.notes SELECT 1 + i % 40, 'n' || i FROM generate_series(1, 100) i`,
      `INSERT INTO solo.alone SELECT i, 'x' || i FROM generate_series(1, 30) i`,
      `INSERT INTO tenant1.items SELECT i, 'item ' || i FROM generate_series(1, 25) i`,
      `INSERT INTO tenant1.parts SELECT 1 + i % 25, i FROM generate_series(1, 60) i`,
      'CREATE SCHEMA legacy',
      'CREATE TABLE legacy.ranged (id int, v int)',
      `SELECT create_distributed_table('legacy.ranged', 'id', 'range')`,
      `SELECT master_create_empty_shard('legacy.ranged')`,
      `UPDATE pg_dist_shard SET shardminvalue = '0', shardmaxvalue = '1000' WHERE logicalrelid = 'legacy.ranged'::regclass`,
      'CREATE TABLE legacy.appended (id int, v int)',
      `SELECT create_distributed_table('legacy.appended', 'id', 'append')`,
      `SELECT master_create_empty_shard('legacy.appended')`,
    ];
    const SINGLE_TABLES = ['solo.accounts', 'solo.alone', 'solo.notes', 'tenant1.items', 'tenant1.parts'];
    /** Single-shard tables, colocation as "same group as" the first table of its group, and the distributed schemas. */
    const singles = async (c: CitusCluster) => {
      const rows = await c.coordinator.query<{ t: string; m: string; r: string; g: number; nokey: boolean }>(
        `SELECT logicalrelid::regclass::text AS t, partmethod::text AS m, repmodel::text AS r, colocationid AS g, partkey IS NULL AS nokey
           FROM pg_dist_partition WHERE logicalrelid::regclass::text ~ '^(solo|tenant1)\\.' ORDER BY 1`);
      const first = new Map<number, string>();
      const out: Record<string, string> = {};
      for (const x of rows) {
        if (!first.has(x.g)) first.set(x.g, x.t);
        out[x.t] = `${x.m}/${x.r}${x.nokey ? ' no key' : ''} x${(await c.coordinator.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_dist_shard WHERE logicalrelid = $1::regclass', [x.t]))[0]!.n} colocated with ${first.get(x.g)}`;
      }
      const schemas = await c.coordinator.query<{ s: string }>('SELECT schemaid::regnamespace::text AS s FROM pg_dist_schema ORDER BY 1');
      return { tables: out, schemas: schemas.map((x) => x.s) };
    };

    beforeAll(async () => {
      for (const st of SINGLE) await src.query(st);
    });

    it('export --schema solo --schema tenant1, import --create into Citus: single-shard tables with their colocation, the distributed schema, rows equal', async () => {
      const dir = await tmp();
      const ex = await exportTables({ source: src.coordinator.url(), schemas: ['solo', 'tenant1'], to: dir });
      const d = new Map(ex.manifest.ddl!.distribution!.map((x) => [`${x.schema}.${x.name}`, x]));
      expect([...d.keys()].sort()).toEqual(SINGLE_TABLES);
      expect(d.get('solo.notes')).toMatchObject({ kind: 'single-shard', colocationGroup: d.get('solo.accounts')!.colocationGroup });
      expect(d.get('solo.alone')!.colocationGroup).not.toBe(d.get('solo.accounts')!.colocationGroup);
      expect(d.get('tenant1.items')).toMatchObject({ kind: 'single-shard', tenantSchema: true });
      expect(d.get('solo.accounts')!.tenantSchema).toBeUndefined();
      expect(manifestSchemaErrors(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')))).toBe('');

      const res = await importTables({ from: dir, target: dst.coordinator.url(), create: true });
      expect(res.notes.join('\n')).toContain('Citus distribution replayed after pre-data: 0 reference, 0 distributed tables, 5 single-shard tables (1 distributed schemas)');
      const want = await singles(src);
      expect(want.tables).toEqual({
        'solo.accounts': 'n/s no key x1 colocated with solo.accounts',
        'solo.alone': 'n/s no key x1 colocated with solo.alone',
        'solo.notes': 'n/s no key x1 colocated with solo.accounts',
        'tenant1.items': 'n/s no key x1 colocated with tenant1.items',
        'tenant1.parts': 'n/s no key x1 colocated with tenant1.items',
      });
      expect(await singles(dst)).toEqual(want);
      expect(want.schemas).toEqual(['tenant1']);
      for (const t of SINGLE_TABLES) {
        const a = await rowMultiset(src.coordinator, `SELECT * FROM ${t}`);
        expect(multisetSize(a), t).toBeGreaterThan(0);
        expect(sameMultiset(a, await rowMultiset(dst.coordinator, `SELECT * FROM ${t}`)), t).toBe(true);
      }
      // post-data ran: the foreign keys between colocated single-shard tables hold.
      const e = await dst.query(`INSERT INTO tenant1.parts VALUES (999, 1)`).catch((x: { code?: string }) => x.code);
      expect(e).toBe('23503');
    });

    it('a range or an append table with --ddl: ERR_DDL_UNSUPPORTED naming the table, its method and that Citus deprecated it; no manifest', async () => {
      for (const [t, how] of [['legacy.ranged', 'range'], ['legacy.appended', 'append']] as const) {
        const dir = await tmp();
        const e = await exportTables({ source: src.coordinator.url(), tables: [t], ddl: true, to: dir }).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(SegferryError);
        expect((e as SegferryError).code).toBe('ERR_DDL_UNSUPPORTED');
        expect((e as SegferryError).message).toContain(`${t} is ${how}-distributed`);
        expect((e as SegferryError).message).toContain('Citus has deprecated append and range distribution');
        expect((e as SegferryError).table).toBe(t);
        await expect(readFile(join(dir, 'manifest.json'))).rejects.toThrow(/ENOENT/);
      }
    });
  });
});
