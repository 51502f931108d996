/**
 * Smoke test of the integration harness itself: real PostgreSQL servers (postgres_fdw cluster)
 * and a real s3rver child process. If this file fails, every other integration test will too.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIG_TEXT_BYTES,
  REPLICATED_ROWS,
  TRICKY_COLUMNS,
  countBigRows,
  describeMultisetDiff,
  isBigRow,
  mergeMultisets,
  multisetSize,
  rowMultiset,
  sameMultiset,
  startFdwCluster,
  type SourceCluster,
} from '../helpers/fixtures.js';
import { destroyAllServers } from '../helpers/pg.js';
import { startS3, type S3Harness } from '../helpers/s3.js';

const ROWS = 20_000;

describe('integration harness', () => {
  let cluster: SourceCluster;
  let s3: S3Harness;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const t0 = Date.now();
    const [c, s] = await Promise.allSettled([
      startFdwCluster({ rows: ROWS }).then((v) => ((timings.cluster = Date.now() - t0), v)),
      startS3().then((v) => ((timings.s3 = Date.now() - t0), v)),
    ]);
    if (c.status === 'fulfilled') cluster = c.value;
    if (s.status === 'fulfilled') s3 = s.value;
    if (c.status === 'rejected') throw c.reason;
    if (s.status === 'rejected') throw s.reason;
  });

  afterAll(async () => {
    const t0 = Date.now();
    await s3?.stop();
    await cluster?.destroy();
    await destroyAllServers();
    timings.teardown = Date.now() - t0;
    console.log(`harness timings (ms): ${JSON.stringify(timings)}`);
  });

  it('builds an fdw cluster whose data nodes split the rows and whose coordinator sees them all', async () => {
    const { coordinator, nodes } = cluster;
    expect(nodes.map((n) => n.name)).toEqual(['dn1', 'dn2', 'dn3']);

    const counts = await Promise.all(nodes.map(async (n) => Number((await n.query<{ c: string }>('SELECT count(*) AS c FROM orders'))[0]!.c)));
    for (const c of counts) expect(c).toBeGreaterThan(ROWS / 6);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(ROWS);
    const [{ c: total }] = await coordinator.query<{ c: string }>('SELECT count(*) AS c FROM orders');
    expect(Number(total)).toBe(ROWS);

    // Foreign servers are named like the nodes and point at them.
    const servers = await coordinator.query<{ srvname: string; srvoptions: string[] }>(
      'SELECT srvname, srvoptions FROM pg_foreign_server ORDER BY srvname',
    );
    expect(servers.map((s) => s.srvname)).toEqual(['dn1', 'dn2', 'dn3']);
    servers.forEach((s, i) => {
      expect(s.srvoptions).toContain(`port=${nodes[i]!.port}`);
      expect(s.srvoptions).toContain('batch_size=1000');
    });
    const parts = await coordinator.query<{ relname: string; bound: string }>(
      `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'orders'::regclass ORDER BY 1`,
    );
    expect(parts.map((p) => p.relname)).toEqual(['orders_p0', 'orders_p1', 'orders_p2']);
    expect(parts[1]!.bound).toBe('FOR VALUES WITH (modulus 3, remainder 1)');

    // Replicated table: identical on every node, readable through the coordinator.
    const repl = await Promise.all([coordinator, ...nodes].map((s) => rowMultiset(s, 'SELECT * FROM nation')));
    for (const m of repl) {
      expect(multisetSize(m)).toBe(REPLICATED_ROWS);
      expect(sameMultiset(m, repl[0]!)).toBe(true);
    }

    // Static topology URLs (URL-encoded passwords) connect.
    const topo = cluster.staticTopology();
    expect(topo.replicated).toEqual(['nation']);
    for (const n of topo.nodes) {
      const client = new pg.Client({ connectionString: n.url });
      await client.connect();
      const r = await client.query<{ u: string }>('SELECT current_user AS u');
      expect(r.rows[0]!.u).toBe('segferry');
      await client.end();
    }
  });

  it('loads tricky data with ~100 KB rows, and compares row multisets order-free', async () => {
    const { coordinator, nodes } = cluster;
    const big = await coordinator.query<{ id: string; len: number }>(
      'SELECT id, octet_length(t) AS len FROM orders WHERE octet_length(t) > 100000 ORDER BY id',
    );
    const expectedBig = Array.from({ length: ROWS }, (_, i) => i + 1).filter(isBigRow);
    expect(big.map((r) => Number(r.id))).toEqual(expectedBig);
    expect(expectedBig.length).toBe(countBigRows(1, ROWS));
    for (const r of big) expect(r.len).toBeGreaterThanOrEqual(BIG_TEXT_BYTES);

    const [probe] = await coordinator.query<Record<string, string>>(String.raw`
      SELECT count(*) FILTER (WHERE t IS NULL) AS t_null, count(*) FILTER (WHERE t = '') AS t_empty,
             count(*) FILTER (WHERE note IS NULL) AS note_null, count(*) FILTER (WHERE note = '') AS note_empty,
             count(*) FILTER (WHERE t = E'\\N') AS t_backslash_n, count(*) FILTER (WHERE t LIKE E'%\r\n%') AS t_crlf,
             count(*) FILTER (WHERE f8 = 'NaN') AS f8_nan, count(*) FILTER (WHERE f8 = '-Infinity') AS f8_neg_inf,
             count(*) FILTER (WHERE f8 = 0 AND text(f8) = '-0') AS f8_neg_zero,
             count(*) FILTER (WHERE position('\x00'::bytea IN b) > 0) AS b_nul,
             count(*) FILTER (WHERE tags = '{}') AS tags_empty, count(*) FILTER (WHERE array_position(tags, NULL) IS NOT NULL) AS tags_null_elem,
             count(*) FILTER (WHERE t LIKE '%🚀%') AS t_emoji, count(*) FILTER (WHERE js = 'null'::jsonb) AS js_null
      FROM orders`);
    for (const [k, v] of Object.entries(probe!)) expect(Number(v), k).toBeGreaterThan(0);

    const cols = await nodes[0]!.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position",
    );
    expect(cols.map((c) => c.column_name)).toEqual(TRICKY_COLUMNS.map((c) => c.name));

    const whole = await rowMultiset(coordinator, 'SELECT * FROM orders');
    const merged = mergeMultisets(...(await Promise.all(nodes.map((n) => rowMultiset(n, 'SELECT * FROM orders')))));
    expect(multisetSize(whole)).toBe(ROWS);
    expect(whole.size).toBe(ROWS); // ids are unique, so every row hashes differently
    expect(sameMultiset(whole, merged), describeMultisetDiff(whole, merged)).toBe(true);
    const missingOne = await rowMultiset(coordinator, 'SELECT * FROM orders WHERE id <> 7');
    expect(sameMultiset(whole, missingOne)).toBe(false);
  });

  it('stops and restarts a data node on the same port', async () => {
    const { coordinator, nodes } = cluster;
    const dn2 = nodes[1]!;
    const port = dn2.port;
    await dn2.stop();
    await expect(coordinator.query('SELECT count(*) FROM orders')).rejects.toThrow();
    await dn2.start();
    expect(dn2.port).toBe(port);
    const [{ c }] = await coordinator.query<{ c: string }>('SELECT count(*) AS c FROM orders');
    expect(Number(c)).toBe(ROWS);
  });

  it('s3: a 3 MB stream body round-trips byte-identical', async () => {
    const data = crypto.randomBytes(3 * 1024 * 1024);
    const chunks = [data.subarray(0, 1_000_000), data.subarray(1_000_000, 2_500_000), data.subarray(2_500_000)];
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: 'smoke/stream.bin', Body: Readable.from(chunks), ContentLength: data.length }),
    );
    const back = await s3.getObject(s3.bucket, 'smoke/stream.bin');
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
    expect(await s3.listKeys(s3.bucket, 'smoke/')).toEqual([{ key: 'smoke/stream.bin', size: data.length }]);
  });

  it('s3: ListObjectsV2 paginates with MaxKeys', async () => {
    const bucket = await s3.newBucket();
    expect(bucket).not.toBe(s3.bucket);
    const keys = Array.from({ length: 5 }, (_, i) => `p/key-${i}`);
    for (const k of keys) await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: Buffer.from(k) }));
    const pages: string[][] = [];
    let token: string | undefined;
    do {
      const page = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'p/', MaxKeys: 2, ContinuationToken: token }));
      pages.push((page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && pages.length < 10);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toEqual(keys);
    expect((await s3.listKeys(bucket)).map((k) => k.key)).toEqual(keys);
  });
});
