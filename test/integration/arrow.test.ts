import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { tableFromIPC, type Field } from 'apache-arrow';
import {
  exportTables, importTables, openArrowObject, verifyImport, SegferryError,
  type StaticTopology,
} from '../../lib/index.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { mergeMultisets, rowMultiset, sameMultiset, describeMultisetDiff } from '../helpers/fixtures.js';
import { refChecksum } from '../helpers/row-hash-ref.js';
import { DDL, DEMOTING_ROWS, EDGE_ROWS, EXPECTED, GEN_SELECT } from '../helpers/arrow-types.js';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { applySettings } from '../../lib/pg/conn.js';
import { recordedAndComputed } from '../helpers/digest.js';

// Small cap so that every table spans many objects and batches must be cut to fit.
const CAP = 256 * 1024;
// Rows generated per table (ids 100..), split over two data nodes by id parity.
const GEN = 6000;

let nodes: PgServer[];
let dest: PgServer[];
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-arrow-'));
  dirs.push(d);
  return d;
}

function topology(): StaticTopology {
  return { nodes: nodes.map((n) => ({ name: n.name, url: n.url() })), replicated: [] };
}

/** The second cluster: two data nodes, empty until an import creates the tables. */
function destTopology(): StaticTopology {
  return { nodes: dest.map((n, i) => ({ name: `dn${i + 1}`, url: n.url() })), replicated: [] };
}

/** Rows of a table over a cluster, as an order-free multiset (independent of segferry's checksum). */
async function clusterRows(servers: PgServer[], table: string): Promise<Map<string, number>> {
  return mergeMultisets(...(await Promise.all(servers.map((n) => rowMultiset(n, `SELECT * FROM ${table}`)))));
}

beforeAll(async () => {
  const all = await startServers(['dn1', 'dn2', 'ddn1', 'ddn2']);
  nodes = all.slice(0, 2);
  dest = all.slice(2);
  await Promise.all(nodes.map(async (n, i) => {
    const mine = (id: number) => id % 2 === i;
    await n.query(`${DDL('alltypes', true)}; ${DDL('plain', false)}; CREATE TABLE bigvals (id int4, t text, b bytea)`);
    const edge = EDGE_ROWS.filter((_, k) => mine(k + 1));
    const demoting = DEMOTING_ROWS.filter((_, k) => mine(k + 8));
    // plain: no demoting values and no fallback type, so every object loads through COPY BINARY.
    await n.query(`INSERT INTO plain VALUES ${edge.join(',\n')}`);
    await n.query(`INSERT INTO plain ${GEN_SELECT} FROM generate_series(100, ${99 + GEN}) g WHERE g % 2 = ${i}`);
    // alltypes: the same plus an inet column and the demoting rows, placed mid-table.
    await n.query(`INSERT INTO alltypes SELECT *, CASE WHEN id % 5 = 0 THEN NULL ELSE ('10.' || (id % 250) || '.0.1/24')::inet END FROM plain`);
    await n.query(`INSERT INTO alltypes VALUES ${demoting.map((r) => r.replace(/\)\s*$/, ", '::1')")).join(',\n')}`);
    await n.query(`INSERT INTO alltypes SELECT *, NULL FROM plain WHERE id >= 100`);
  }));
  // Multi-MB values on dn1 only (dn2 has none: no object for it).
  await nodes[0]!.query(`INSERT INTO bigvals VALUES
    (1, repeat('ünï☃ ', 250000), (SELECT string_agg(decode(md5(i::text), 'hex'), '') FROM generate_series(1, 160000) i)),
    (2, repeat('abcdefghij', 300000), NULL),
    (3, NULL, (SELECT string_agg(decode(md5((-i)::text), 'hex'), '') FROM generate_series(1, 187500) i)),
    (4, NULL, NULL)`);
});

afterAll(async () => {
  await Promise.allSettled([...(nodes ?? []), ...(dest ?? [])].map((s) => s.destroy()));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/**
 * The copy-rowhash64 checksum of a COPY BINARY, computed apart: the stream read with
 * pg-copy-streams, tuples found by walking field lengths after the 19-byte header, up to the
 * trailer (int16 -1).
 */
async function binaryCopyChecksum(server: PgServer, sql: string, settings: Record<string, string>): Promise<{ rows: number; sum: string }> {
  const c = new pg.Client({ connectionString: server.url() });
  await c.connect();
  try {
    await applySettings(c, settings);
    const parts: Buffer[] = [];
    for await (const chunk of c.query(pgCopy.to(sql))) parts.push(chunk as Buffer);
    const b = Buffer.concat(parts);
    let p = 19 + b.readUInt32BE(15);
    const rows: Buffer[] = [];
    for (;;) {
      const nf = b.readInt16BE(p);
      if (nf === -1) break;
      let q = p + 2;
      for (let f = 0; f < nf; f++) {
        const len = b.readInt32BE(q);
        q += 4 + Math.max(0, len);
      }
      rows.push(b.subarray(p, q));
      p = q;
    }
    expect(p + 2).toBe(b.length);
    return refChecksum(rows);
  } finally {
    await c.end();
  }
}

/** Open one object with apache-arrow alone and check its schema against the table's columns. */
function checkObject(bytes: Buffer, rows: number, columns: string[]): { demoted: string[] } {
  const t = tableFromIPC(bytes);
  expect(t.numRows).toBe(rows);
  expect(t.schema.fields.map((f) => f.name)).toEqual(columns);
  const demoted: string[] = [];
  for (const f of t.schema.fields as Field[]) {
    expect(f.metadata.get('segferry.pg_oid'), f.name).toMatch(/^\d+$/);
    if (String(f.type) === EXPECTED[f.name]) continue;
    // A column may only differ when the object holds it as exact text.
    expect(String(f.type), f.name).toBe('Utf8');
    expect(f.metadata.get('segferry.encoding'), f.name).toBe('text');
    demoted.push(f.name);
  }
  return { demoted };
}

/** The COPY format the decoder picks for each object of a table. */
async function copyFormats(dir: string, keys: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const k of keys) {
    const src = await openArrowObject(Readable.from([await readFile(join(dir, k))]));
    out[src.format] = (out[src.format] ?? 0) + 1;
  }
  return out;
}

describe('Arrow IPC export and import', () => {
  it('exports every type to Arrow files within a small cap, and loads them back exactly', async () => {
    const dir = await tmp();
    const res = await exportTables({ topology: topology(), tables: ['alltypes', 'plain'], format: 'arrow', segmentSize: CAP, to: dir });
    const m = res.manifest;
    expect(m.format.kind).toBe('arrow');
    for (const name of ['alltypes', 'plain']) {
      const mt = m.tables.find((t) => t.name === name)!;
      expect(mt.arrow?.schema.map((c) => c.name)).toEqual(mt.columns.map((c) => c.name));
      expect(mt.arrow?.schema.find((c) => c.name === 'n12')?.arrowType).toBe('Decimal128(12, 2)');
      expect(mt.checksum?.rows).toBe(mt.rows);
    }
    // plain has no text-read column: each node's checksum is that of its COPY BINARY rows.
    const plain = m.tables.find((t) => t.name === 'plain')!;
    for (const [i, n] of nodes.entries()) {
      const cols = plain.columns.map((c) => `"${c.name}"`).join(', ');
      const want = await binaryCopyChecksum(n, `COPY (SELECT ${cols} FROM plain) TO STDOUT (FORMAT binary)`, m.sessionSettings);
      expect(plain.nodes.find((x) => x.node === `dn${i + 1}`)!.checksum).toEqual({ ...want, algorithm: 'copy-rowhash64' });
    }
    expect(m.tables.find((t) => t.name === 'plain')!.arrow!.schema.some((c) => c.demoted)).toBe(false);
    expect(m.tables.find((t) => t.name === 'alltypes')!.arrow!.schema.filter((c) => c.demoted).map((c) => c.name).sort())
      .toEqual(['a_i4', 'a_iv', 'a_t', 'a_ts', 'iv', 'n12', 'tm', 'ts']);

    // Every object: within the cap, named by table/node/segment, hashed as recorded, and a
    // complete IPC file that apache-arrow opens on its own with the expected schema and rows.
    const seen = new Set<string>();
    for (const o of m.objects) {
      expect(o.key).toMatch(/^(alltypes|plain)_dn[12]_segment\.\d+$/);
      const bytes = await readFile(join(dir, o.key));
      expect(bytes.length).toBe(o.bytes);
      expect(bytes.length, o.key).toBeLessThanOrEqual(CAP);
      const [recorded, computed] = recordedAndComputed(o, bytes);
      expect(computed, o.key).toBe(recorded);
      const mt = m.tables.find((t) => `public.${t.name}` === o.table)!;
      const { demoted } = checkObject(bytes, o.rows, mt.columns.map((c) => c.name));
      if (o.table === 'public.plain') expect(demoted).toEqual([]);
      for (const d of demoted) seen.add(d);
    }
    expect(m.objects.filter((o) => o.table === 'public.plain').length).toBeGreaterThan(4);
    expect([...seen].sort()).toEqual(['a_i4', 'a_iv', 'a_t', 'a_ts', 'iv', 'n12', 'tm', 'ts']);

    // Objects of plain load through COPY BINARY; alltypes has a column without a native
    // mapping (inet), so its objects load through COPY TEXT.
    const keysOf = (t: string) => m.objects.filter((o) => o.table === `public.${t}`).map((o) => o.key);
    expect(await copyFormats(dir, keysOf('plain'))).toEqual({ binary: keysOf('plain').length });
    expect(await copyFormats(dir, keysOf('alltypes'))).toEqual({ text: keysOf('alltypes').length });

    // Import into the second cluster; verify, and an independent order-free comparison.
    const imp = await importTables({ from: dir, topology: destTopology(), create: true, verify: true });
    expect(imp.verify?.ok).toBe(true);
    expect(imp.loaded).toBe(m.objects.length);
    for (const name of ['plain', 'alltypes']) {
      const src = await clusterRows(nodes, name);
      const got = await clusterRows(dest, name);
      expect(sameMultiset(src, got), describeMultisetDiff(src, got)).toBe(true);
    }
    const v = await verifyImport({ from: dir, topology: destTopology() });
    expect(v.ok).toBe(true);
    expect(v.tables.map((t) => [t.table, t.match, t.checksummed, t.algorithm])).toEqual([
      ['public.alltypes', true, true, 'copy-rowhash64'], ['public.plain', true, true, 'copy-rowhash64'],
    ]);
    // One changed value in one row (a column read in binary; the inet column read as text): a
    // mismatch at equal counts; changed back, a match again.
    for (const [col, change, undo] of [['i2', 'i2 # 1::int2', 'i2 # 1::int2'], ['inet_col', 'inet_col + 1', 'inet_col - 1']] as const) {
      const [row] = await dest[0]!.query<{ ctid: string }>(
        `UPDATE alltypes SET ${col} = ${change} WHERE ctid = (SELECT ctid FROM alltypes WHERE ${col} IS NOT NULL LIMIT 1) RETURNING ctid::text`);
      expect(row, col).toBeDefined();
      const bad = await verifyImport({ from: dir, topology: destTopology() });
      const t = bad.tables.find((x) => x.table === 'public.alltypes')!;
      expect([bad.ok, t.match, t.destination.rows], col).toEqual([false, false, t.source!.rows]);
      await dest[0]!.query(`UPDATE alltypes SET ${col} = ${undo} WHERE ctid = '${row!.ctid}'`);
    }
    expect((await verifyImport({ from: dir, topology: destTopology() })).ok).toBe(true);
  });

  it('keeps multi-MB text and bytea values whole, one object per row when the cap demands it', async () => {
    const dir = await tmp();
    const cap = 6 * 1024 * 1024;
    const res = await exportTables({ topology: topology(), tables: ['bigvals'], format: 'arrow', segmentSize: cap, to: dir });
    const m = res.manifest;
    expect(m.objects.every((o) => o.node === 'dn1')).toBe(true);
    expect(m.objects.length).toBeGreaterThanOrEqual(2);
    expect(m.objects.reduce((a, o) => a + o.rows, 0)).toBe(4);
    for (const o of m.objects) {
      const bytes = await readFile(join(dir, o.key));
      expect(bytes.length).toBeLessThanOrEqual(cap);
      expect(tableFromIPC(bytes).numRows).toBe(o.rows);
    }
    expect(await copyFormats(dir, m.objects.map((o) => o.key))).toEqual({ binary: m.objects.length });
    const imp = await importTables({ from: dir, topology: destTopology(), create: true, verify: true });
    expect(imp.verify?.ok).toBe(true);
    expect(sameMultiset(await clusterRows(nodes, 'bigvals'), await clusterRows(dest, 'bigvals'))).toBe(true);
  });

  it('refuses a row larger than the cap with a typed error and leaves no manifest', async () => {
    const dir = await tmp();
    const err = await exportTables({ topology: topology(), tables: ['bigvals'], format: 'arrow', segmentSize: 1024 * 1024, to: dir })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SegferryError);
    expect((err as SegferryError).code).toBe('ERR_ROW_TOO_LARGE');
    await expect(readFile(join(dir, 'manifest.json'))).rejects.toThrow();
  });
});
