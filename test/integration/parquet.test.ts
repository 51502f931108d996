import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { exportTables, importTables, verifyImport, SegferryError, type Manifest, type StaticTopology } from '../../lib/index.js';
import { rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { DDL, DEMOTING_ROWS, EDGE_ROWS, GEN_SELECT } from '../helpers/arrow-types.js';
import { startS3 } from '../helpers/s3.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { readFile } from 'node:fs/promises';
import { readParquetFooter } from '../../lib/format/parquet/import.js';

// DuckDB is the independent reader: every object segferry writes must open alone in it, and
// what DuckDB computes over the objects must equal what PostgreSQL computes over the source.

const CAP = 256 * 1024;
const GEN = 4000;

let src: PgServer;
let dst: PgServer;
let duck: DuckDBConnection;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-parquet-'));
  dirs.push(d);
  return d;
}

function topology(): StaticTopology {
  return { nodes: [{ name: 'dn1', url: src.url() }], replicated: [] };
}

async function duckRows(sql: string): Promise<Record<string, unknown>[]> {
  const r = await duck.runAndReadAll(sql);
  return r.getRowObjectsJson() as Record<string, unknown>[];
}

function files(dir: string, m: Manifest, table: string): string[] {
  return m.objects.filter((o) => o.table === `public.${table}` || o.table === table).map((o) => join(dir, o.key));
}

function destTopology(): StaticTopology {
  return { nodes: [{ name: 'dn1', url: dst.url() }], replicated: [] };
}

function list(paths: string[]): string {
  return `[${paths.map((p) => `'${p}'`).join(', ')}]`;
}

beforeAll(async () => {
  [src, dst] = await startServers(['dn1', 'ddn1']) as [PgServer, PgServer];
  await src.query(`${DDL('alltypes', true)}; ${DDL('plain', false)}; CREATE TABLE bigrow (id int4, t text)`);
  await src.query(`INSERT INTO plain VALUES ${EDGE_ROWS.join(',\n')}`);
  await src.query(`INSERT INTO plain ${GEN_SELECT} FROM generate_series(100, ${99 + GEN}) g`);
  await src.query(`INSERT INTO alltypes SELECT *, CASE WHEN id % 5 = 0 THEN NULL ELSE ('10.' || (id % 250) || '.0.1/24')::inet END FROM plain`);
  await src.query(`INSERT INTO alltypes VALUES ${DEMOTING_ROWS.map((r) => r.replace(/\)\s*$/, ", '::1')")).join(',\n')}`);
  await src.query(`INSERT INTO bigrow VALUES (1, 'small'), (2, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 12000) i)), (3, 'small')`);
  const inst = await DuckDBInstance.create(':memory:');
  duck = await inst.connect();
}, 120_000);

afterAll(async () => {
  duck?.closeSync();
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Logical types DuckDB's parquet_schema() reports for each column of `plain`. */
const LOGICAL: Record<string, string> = {
  id: 'INTEGER(32,true)', i2: 'INTEGER(16,true)', i4: 'INTEGER(32,true)', i8: 'INTEGER(64,true)',
  n: 'STRING', n12: 'DECIMAL(12,2)', n38: 'DECIMAL(38,10)', n40: 'STRING',
  t: 'STRING', vc: 'STRING', ch: 'STRING', nm: 'STRING', d: 'DATE',
  ts: 'TIMESTAMP(false,MICROS)', tstz: 'TIMESTAMP(true,MICROS)', tm: 'TIME(false,MICROS)',
  iv: 'STRING', u: 'UUID', j: 'JSON', jb: 'JSON',
};

describe('Parquet export read by DuckDB', () => {
  let dir: string;
  let m: Manifest;

  beforeAll(async () => {
    dir = await tmp();
    const res = await exportTables({
      topology: topology(), tables: ['plain', 'alltypes'], to: dir, segmentSize: CAP,
      format: { kind: 'parquet', rowGroupBytes: 48 * 1024 },
    });
    m = res.manifest;
  }, 120_000);

  it('writes objects within the cap, each opening alone with the manifest row count, rows never split', async () => {
    expect(m.format).toEqual({ kind: 'parquet', compression: 'zstd', rowGroupBytes: 48 * 1024 });
    for (const table of ['plain', 'alltypes']) {
      const objs = m.objects.filter((o) => o.table.endsWith(table));
      expect(objs.length).toBeGreaterThan(2);
      for (const o of objs) {
        const p = join(dir, o.key);
        expect((await stat(p)).size).toBe(o.bytes);
        expect(o.bytes).toBeLessThanOrEqual(CAP);
        const [r] = await duckRows(`SELECT count(*)::VARCHAR AS n FROM read_parquet('${p}')`);
        expect(r!.n).toBe(String(o.rows));
      }
      const [all] = await duckRows(`SELECT count(*)::VARCHAR AS n, count(DISTINCT id)::VARCHAR AS d FROM read_parquet(${list(files(dir, m, table))}, union_by_name = true)`);
      const total = (await src.query(`SELECT count(*)::text AS n FROM ${table}`))[0].n as string;
      expect([all!.n, all!.d]).toEqual([total, total]);
    }
  });

  it('has the logical types of the PostgreSQL columns, and the PostgreSQL types in the footer', async () => {
    const p = files(dir, m, 'plain')[0]!;
    const rows = await duckRows(`SELECT name, type, logical_type::VARCHAR AS lt, converted_type FROM parquet_schema('${p}')`);
    const by = new Map(rows.map((r) => [r.name as string, r]));
    const norm = (s: unknown) => String(s ?? '').replace(/\s+/g, '');
    for (const [col, lt] of Object.entries(LOGICAL)) {
      const r = by.get(col)!;
      expect(r, col).toBeDefined();
      const got = norm(r.lt);
      // DuckDB prints logical types as Thrift structs, e.g. "DecimalType(scale=2, precision=12)".
      const want = lt.replace(/\s+/g, '');
      const ok: Record<string, (g: string) => boolean> = {
        // DuckDB prints bitWidth (a Thrift i8) as a raw character: the width is checked below.
        'INTEGER(32,true)': (g) => /IntType\(bitWidth=.?,isSigned=1\)/i.test(g),
        'INTEGER(16,true)': (g) => /IntType\(bitWidth=.?,isSigned=1\)/i.test(g),
        'INTEGER(64,true)': (g) => /IntType\(bitWidth=.?,isSigned=1\)/i.test(g),
        STRING: (g) => /StringType/i.test(g),
        'DECIMAL(12,2)': (g) => /DecimalType\(scale=2,precision=12\)/i.test(g),
        'DECIMAL(38,10)': (g) => /DecimalType\(scale=10,precision=38\)/i.test(g),
        DATE: (g) => /DateType/i.test(g),
        'TIMESTAMP(false,MICROS)': (g) => /TimestampType\(isAdjustedToUTC=0,unit=TimeUnit\(MILLIS=<null>,MICROS=MicroSeconds/i.test(g),
        'TIMESTAMP(true,MICROS)': (g) => /TimestampType\(isAdjustedToUTC=1,unit=TimeUnit\(MILLIS=<null>,MICROS=MicroSeconds/i.test(g),
        'TIME(false,MICROS)': (g) => /TimeType\(isAdjustedToUTC=0,unit=TimeUnit\(MILLIS=<null>,MICROS=MicroSeconds/i.test(g),
        UUID: (g) => /UUIDType/i.test(g),
        JSON: (g) => /JsonType/i.test(g),
      };
      expect(ok[want]!(got), `${col}: ${got}`).toBe(true);
    }
    expect(['i2', 'i4', 'i8', 'n12', 'n38', 'd'].map((c) => [by.get(c)!.type, by.get(c)!.converted_type])).toEqual([
      ['INT32', 'INT_16'], ['INT32', 'INT_32'], ['INT64', 'INT_64'], ['INT64', 'DECIMAL'], ['FIXED_LEN_BYTE_ARRAY', 'DECIMAL'], ['INT32', 'DATE'],
    ]);
    expect(by.get('by')!.type).toBe('BYTE_ARRAY');
    expect(by.get('f8')!.type).toBe('DOUBLE');
    expect(by.get('f4')!.type).toBe('FLOAT');
    expect(by.get('b')!.type).toBe('BOOLEAN');
    expect(by.get('u')!.type).toBe('FIXED_LEN_BYTE_ARRAY');
    expect(norm(by.get('a_i4')!.lt)).toMatch(/ListType/i);
    const kv = await duckRows(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata('${p}')`);
    const cols = JSON.parse(kv.find((r) => r.k === 'segferry.columns')!.v as string) as { name: string; pgType: string; text?: boolean }[];
    expect(cols.find((c) => c.name === 'iv')).toMatchObject({ pgType: 'interval', text: true });
    expect(cols.find((c) => c.name === 'n12')).toEqual({ name: 'n12', pgType: 'numeric(12,2)', oid: 1700, typmod: (12 << 16) + 2 + 4 });
    const mt = m.tables.find((t) => t.name.endsWith('plain'))!;
    expect(mt.parquet!.schema.find((c) => c.name === 'n')).toEqual({ name: 'n', pgType: 'numeric', parquetType: 'STRING' });
    expect(mt.parquet!.schema.find((c) => c.name === 'a_d')).toEqual({ name: 'a_d', pgType: 'date[]', parquetType: 'LIST<DATE>' });
    const at = m.tables.find((t) => t.name.endsWith('alltypes'))!;
    expect(at.parquet!.schema.filter((c) => c.demoted).map((c) => c.name).sort()).toEqual(['a_i4', 'a_t', 'a_ts', 'n12', 'tm', 'ts'].sort());
  });

  it('gives the same aggregates in DuckDB over the objects as PostgreSQL over the source', async () => {
    const pq = `read_parquet(${list(files(dir, m, 'plain'))})`;
    const [d] = await duckRows(`SELECT
      sum(id)::VARCHAR AS ids, sum(i8)::VARCHAR AS i8s, sum(n12)::VARCHAR AS n12, sum(n38)::VARCHAR AS n38,
      min(d - DATE '1970-01-01') FILTER (WHERE isfinite(d) AND id <> 3)::VARCHAR AS dmin, max(d - DATE '1970-01-01') FILTER (WHERE isfinite(d) AND id <> 3)::VARCHAR AS dmax,
      min(epoch_us(ts)) FILTER (WHERE isfinite(ts) AND id <> 3)::VARCHAR AS tsmin, max(epoch_us(ts)) FILTER (WHERE isfinite(ts) AND id <> 3)::VARCHAR AS tsmax,
      min(epoch_us(tstz)) FILTER (WHERE isfinite(tstz) AND id <> 3)::VARCHAR AS tzmin, max(epoch_us(tstz)) FILTER (WHERE isfinite(tstz) AND id <> 3)::VARCHAR AS tzmax,
      sum(('0x' || substr(md5(t), 1, 15))::BIGINT)::VARCHAR AS th,
      sum(('0x' || substr(md5("by"), 1, 15))::BIGINT)::VARCHAR AS bh,
      sum(('0x' || substr(md5(n), 1, 15))::BIGINT)::VARCHAR AS nh,
      count(*) FILTER (WHERE isnan(f8))::VARCHAR AS nan8, count(*) FILTER (WHERE f8 = 'inf'::DOUBLE)::VARCHAR AS inf8,
      sum(len(a_i4))::VARCHAR AS alen, sum(list_sum(a_i4))::VARCHAR AS asum,
      count(u)::VARCHAR AS uuids, min(u)::VARCHAR AS umin, max(u)::VARCHAR AS umax
      FROM ${pq}`);
    const p = (await src.query(`SELECT
      sum(id)::text AS ids, sum(i8)::text AS i8s, sum(n12)::text AS n12, sum(n38)::text AS n38,
      min(d - date '1970-01-01') FILTER (WHERE isfinite(d) AND id <> 3)::text AS dmin, max(d - date '1970-01-01') FILTER (WHERE isfinite(d) AND id <> 3)::text AS dmax,
      min((extract(epoch FROM ts) * 1000000)::bigint) FILTER (WHERE isfinite(ts) AND id <> 3)::text AS tsmin, max((extract(epoch FROM ts) * 1000000)::bigint) FILTER (WHERE isfinite(ts) AND id <> 3)::text AS tsmax,
      min((extract(epoch FROM tstz) * 1000000)::bigint) FILTER (WHERE isfinite(tstz) AND id <> 3)::text AS tzmin, max((extract(epoch FROM tstz) * 1000000)::bigint) FILTER (WHERE isfinite(tstz) AND id <> 3)::text AS tzmax,
      sum(('x' || substr(md5(t), 1, 15))::bit(60)::bigint)::text AS th,
      sum(('x' || substr(md5("by"), 1, 15))::bit(60)::bigint)::text AS bh,
      sum(('x' || substr(md5(n::text), 1, 15))::bit(60)::bigint)::text AS nh,
      count(*) FILTER (WHERE f8 = 'NaN')::text AS nan8, count(*) FILTER (WHERE f8 = 'Infinity')::text AS inf8,
      sum(cardinality(a_i4))::text AS alen, sum((SELECT sum(x) FROM unnest(a_i4) x))::text AS asum,
      count(u)::text AS uuids, min(u::text) AS umin, max(u::text) AS umax
      FROM plain`))[0];
    expect(d).toEqual(p);
    // ±infinity keep the Arrow path's values: INT32/INT64 max (DuckDB reads infinity) and min.
    const inf = await duckRows(`SELECT id, (d - DATE '1970-01-01')::VARCHAR AS d, epoch_us(ts)::VARCHAR AS ts, isinf(d) AS dinf, isinf(ts) AS tinf
      FROM ${pq} WHERE id IN (2, 3) ORDER BY id`);
    expect(inf).toEqual([
      { id: 2, d: '2147483647', ts: null, dinf: true, tinf: true },
      { id: 3, d: '-2147483648', ts: '-9223372036854775808', dinf: false, tinf: false },
    ]);
  });

  it('writes snappy and uncompressed objects DuckDB reads the same, zstd the smallest', async () => {
    const sizes: Record<string, number> = {};
    for (const compression of ['snappy', 'none'] as const) {
      const d2 = await tmp();
      const res = await exportTables({ topology: topology(), tables: ['plain'], to: d2, segmentSize: CAP, format: { kind: 'parquet', compression } });
      expect(res.manifest.format.compression).toBe(compression);
      sizes[compression] = res.manifest.objects.reduce((a, o) => a + o.bytes, 0);
      const [r] = await duckRows(`SELECT count(*)::VARCHAR AS n, sum(n12)::VARCHAR AS s, sum(('0x' || substr(md5(t), 1, 15))::BIGINT)::VARCHAR AS th FROM read_parquet(${list(res.manifest.objects.map((o) => join(d2, o.key)))})`);
      const p = (await src.query(`SELECT count(*)::text AS n, sum(n12)::text AS s, sum(('x' || substr(md5(t), 1, 15))::bit(60)::bigint)::text AS th FROM plain`))[0];
      expect(r).toEqual(p);
    }
    sizes.zstd = m.objects.filter((o) => o.table.endsWith('plain')).reduce((a, o) => a + o.bytes, 0);
    expect(sizes.zstd).toBeLessThan(sizes.snappy!);
    expect(sizes.snappy).toBeLessThan(sizes.none!);
  });

  it('writes the chunks of columns zstd does not shrink uncompressed after the first, which DuckDB and import read', async () => {
    // Random uuids and int8s (md5 bits) do not compress; the text does. Row groups of 1 MiB
    // hold ≈ 12,000 rows: chunks of ≈ 190 KB of uuids, enough to be judged.
    await src.query(`CREATE TABLE mixed AS SELECT g AS id, md5(g::text)::uuid AS u, ('x' || substr(md5('r' || g), 1, 16))::bit(64)::int8 AS r,
      'row ' || g || ' of a text that compresses' AS t FROM generate_series(1, 40000) g`);
    const d2 = await tmp();
    const res = await exportTables({ topology: topology(), tables: ['mixed'], to: d2, format: { kind: 'parquet', rowGroupBytes: 1 << 20 } });
    const [o] = res.manifest.objects;
    const bytes = await readFile(join(d2, o!.key));
    const meta = await readParquetFooter({ size: bytes.length, range: async (a, b) => bytes.subarray(a, b) });
    expect(meta.groups.length).toBeGreaterThan(2);
    // id u r t: the first group compresses every column, later ones leave u and r as they are.
    expect(meta.groups.map((g) => g.chunks.map((c) => c.codec))).toEqual(meta.groups.map((_, i) => [6, i === 0 ? 6 : 0, i === 0 ? 6 : 0, 6]));
    const [d] = await duckRows(`SELECT count(*)::VARCHAR AS n, count(DISTINCT u)::VARCHAR AS du, sum(r::HUGEINT)::VARCHAR AS sr,
      sum(('0x' || substr(md5(u::VARCHAR || t), 1, 15))::BIGINT)::VARCHAR AS h FROM read_parquet('${join(d2, o!.key)}')`);
    const [p] = await src.query(`SELECT count(*)::text AS n, count(DISTINCT u)::text AS du, sum(r)::text AS sr,
      sum(('x' || substr(md5(u::text || t), 1, 15))::bit(60)::bigint)::text AS h FROM mixed`);
    expect(d).toEqual(p);
    const imp = await importTables({ from: d2, topology: destTopology(), create: true, verify: true });
    expect(imp.verify?.ok).toBe(true);
    expect(sameMultiset(await rowMultiset(src, 'SELECT * FROM mixed'), await rowMultiset(dst, 'SELECT * FROM mixed'))).toBe(true);
  });

  it('refuses a row larger than the cap with ERR_ROW_TOO_LARGE', async () => {
    const d2 = await tmp();
    const e = await exportTables({ topology: topology(), tables: ['bigrow'], to: d2, segmentSize: 64 * 1024, format: 'parquet' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_ROW_TOO_LARGE');
  });

  it('imports its own objects row group by row group and verifies (round trip)', async () => {
    const imp = await importTables({ from: dir, topology: destTopology(), create: true, verify: true });
    expect(imp.loaded).toBe(m.objects.length);
    expect(imp.verify?.ok).toBe(true);
    for (const t of ['plain', 'alltypes']) {
      expect(sameMultiset(await rowMultiset(src, `SELECT * FROM ${t}`), await rowMultiset(dst, `SELECT * FROM ${t}`)), t).toBe(true);
    }
    // A changed value is caught by verify.
    await dst.query(`UPDATE plain SET n12 = n12 + 0.01 WHERE id = 100`);
    expect((await verifyImport({ from: dir, topology: destTopology() })).ok).toBe(false);
    await dst.query(`UPDATE plain SET n12 = n12 - 0.01 WHERE id = 100`);
    expect((await verifyImport({ from: dir, topology: destTopology() })).ok).toBe(true);
  });

  it('imports Parquet written by DuckDB with --bare when the columns match', async () => {
    const d2 = await tmp();
    // DuckDB's own types: INTEGER, BIGINT, DECIMAL, VARCHAR, BLOB, DATE, TIMESTAMP, TIMESTAMPTZ, UUID, BOOLEAN, DOUBLE, lists.
    await duck.run(`COPY (SELECT i AS id, i::BIGINT * 1000003 AS big, (i / 100)::DECIMAL(12,2) AS amount, 'row ' || i AS name,
      CASE WHEN i % 7 = 0 THEN NULL ELSE encode('x' || i) END AS payload, DATE '2000-01-01' + i AS day,
      TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND AS ts, TIMESTAMPTZ '2020-01-01 00:00:00+00' + INTERVAL (i) MINUTE AS tstz,
      uuid() AS u, i % 2 = 0 AS flag, i / 3 AS ratio, [i, NULL, i + 1] AS ints, ['a' || i] AS texts
      FROM (SELECT i::INTEGER AS i FROM range(1, 3001) t(i))) TO '${join(d2, 'duck_dn1_segment.0')}' (FORMAT parquet, ROW_GROUP_SIZE 1000)`);
    await duck.run(`COPY (SELECT * FROM read_parquet('${join(d2, 'duck_dn1_segment.0')}') LIMIT 10) TO '${join(d2, 'duck_dn1_segment.1')}' (FORMAT parquet, COMPRESSION zstd)`);
    // public: the import user's own schema is segferry's ledger schema, first on its search_path.
    await dst.query(`CREATE TABLE public.duck (id int4, big int8, amount numeric(12,2), name text, payload bytea, day date, ts timestamp, tstz timestamptz,
      u uuid, flag bool, ratio float8, ints int4[], texts text[])`);
    const imp = await importTables({ from: d2, topology: destTopology(), bare: { table: 'duck', format: 'parquet' } });
    expect(imp.loaded).toBe(2);
    const [p] = await dst.query(`SELECT count(*)::text AS n, sum(id)::text AS ids, sum(big)::text AS big, sum(amount)::text AS amt,
      count(payload)::text AS pl, min(day)::text AS d0, max(ts)::text AS ts1, max(tstz AT TIME ZONE 'UTC')::text AS tz1,
      count(DISTINCT u)::text AS us, sum(cardinality(ints))::text AS il, sum(ints[3])::text AS i3, count(*) FILTER (WHERE ints[2] IS NULL)::text AS inull FROM public.duck`);
    const [d] = await duckRows(`SELECT count(*)::VARCHAR AS n, sum(id)::VARCHAR AS ids, sum(big)::VARCHAR AS big, sum(amount)::VARCHAR AS amt,
      count(payload)::VARCHAR AS pl, min(day)::VARCHAR AS d0, max(ts)::VARCHAR AS ts1, max(tstz AT TIME ZONE 'UTC')::VARCHAR AS tz1,
      count(DISTINCT u)::VARCHAR AS us, sum(len(ints))::VARCHAR AS il, sum(ints[3])::VARCHAR AS i3, count(*) FILTER (WHERE ints[2] IS NULL)::VARCHAR AS inull
      FROM read_parquet(['${join(d2, 'duck_dn1_segment.0')}', '${join(d2, 'duck_dn1_segment.1')}'])`);
    expect(p).toEqual(d);
    const [pb] = await dst.query(`SELECT encode(payload, 'escape') AS b, name, texts::text AS t FROM public.duck WHERE id = 5 LIMIT 1`);
    expect(pb).toEqual({ b: 'x5', name: 'row 5', t: '{a5}' });
  });

  it('exports to and imports from S3 (s3rver): footers by ranged GETs, objects streamed once', async () => {
    const s3 = await startS3();
    try {
      const s3o = { endpoint: s3.endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle, checksum: s3.checksum, credentials: s3.credentials };
      const to = `s3://${s3.bucket}/pq/`;
      const res = await exportTables({ topology: topology(), tables: ['plain'], to, s3: s3o, segmentSize: CAP, format: { kind: 'parquet', compression: 'snappy' } });
      const keys = await s3.listKeys(s3.bucket, 'pq/');
      for (const o of res.manifest.objects) expect(keys.find((k) => k.key === `pq/${o.key}`)?.size).toBe(o.bytes);
      const imp = await importTables({ from: to, s3: s3o, topology: destTopology(), truncate: true, verify: true });
      expect(imp.loaded).toBe(res.manifest.objects.length);
      expect(imp.verify?.ok).toBe(true);
      expect(sameMultiset(await rowMultiset(src, 'SELECT * FROM plain'), await rowMultiset(dst, 'SELECT * FROM plain'))).toBe(true);
    } finally {
      await s3.stop();
    }
  });

  it('CLI: export --format parquet --parquet-compression --row-group-size, then import --bare --format parquet', async () => {
    ensureBuilt();
    const d2 = await tmp();
    const out = join(d2, 'x');
    const e = await runCli(['export', '--source', src.url(), '--table', 'plain', '--to', out, '--format', 'parquet',
      '--parquet-compression', 'snappy', '--row-group-size', '64KiB', '--segment-size', '1MiB', '--quiet']);
    expect(e.code, e.stderr).toBe(0);
    const man = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(man.format).toEqual({ kind: 'parquet', compression: 'snappy', rowGroupBytes: 65536 });
    const bad = await runCli(['export', '--source', src.url(), '--table', 'plain', '--to', join(d2, 'y'), '--format', 'parquet', '--parquet-compression', 'lzo']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/zstd, snappy or none/);
    // The objects without their manifest, as another tool's Parquet: bare, by the file's own types.
    await rm(join(out, 'manifest.json'));
    await dst.query(DDL('public.plain_copy', false));
    const i = await runCli(['import', '--from', out, '--target', dst.url(), '--bare', '--table', 'public.plain_copy', '--object-name', man.tables[0]!.objectName, '--format', 'parquet', '--quiet']);
    expect(i.code, i.stderr).toBe(0);
    expect(sameMultiset(await rowMultiset(src, 'SELECT * FROM plain'), await rowMultiset(dst, 'SELECT * FROM public.plain_copy'))).toBe(true);
  });
});
