/**
 * Issue 18 and 16, reject limits beyond TEXT, CSV, binary and Arrow:
 * - Parquet objects (plain and encrypted): a few rows violate a destination CHECK / NOT NULL;
 *   with --reject-limit 10 the rest loads, the rejects objects list exactly those rows (their
 *   decoded COPY BINARY tuples, position, SQLSTATE, message), verify accounts for them, a
 *   rerun loads nothing twice, and past the limit the object fails as before;
 * - a postgres_fdw destination loaded node-direct keeps its ledgers (and so the rejected counts)
 *   on the foreign servers: verify through the coordinator, without --route direct, finds them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, verifyImport, SegferryError } from '../../lib/index.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { rejectLines, type RejectLine } from '../helpers/rejects.js';
import { startFdwCluster, type SourceCluster } from '../helpers/fixtures.js';
import { startServers, type PgServer } from '../helpers/pg.js';

let src: PgServer;
let dst: PgServer;
let base: string;
let keyFile: string;

const NEGATIVE = [17, 101, 202, 299];
const NULL_QTY = [150];
const BAD = [...NEGATIVE, ...NULL_QTY].sort((a, b) => a - b);
const ROWS = 300;
const good = Array.from({ length: ROWS }, (_, i) => i + 1).filter((i) => !BAD.includes(i));

async function ids(table: string): Promise<number[]> {
  return (await dst.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id);
}

beforeAll(async () => {
  ensureBuilt();
  [src, dst] = await startServers(['rejects2-src', 'rejects2-dst']);
  // Tables go to public even once the ledger's schema (segferry, the role's "$user") exists.
  for (const s of [src, dst]) await s.query('ALTER ROLE segferry SET search_path = public');
  base = await mkdtemp(join(tmpdir(), 'sf-rejects2-'));
  keyFile = join(base, 'key');
  await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  if (base) await rm(base, { recursive: true, force: true });
});

describe('--reject-limit with Parquet objects', () => {
  for (const encrypted of [false, true]) {
    it(`${encrypted ? 'encrypted ' : ''}Parquet: the rest loads, the rejects objects list exactly the refused rows, a rerun loads nothing, past the limit the object fails`, async () => {
      const table = `pq_${encrypted ? 'enc' : 'plain'}`;
      await src.query(`CREATE TABLE ${table} (id int, note text, qty int)`);
      await src.query(
        `INSERT INTO ${table} SELECT g, CASE g % 3 WHEN 0 THEN 'a' || chr(9) || 'b' WHEN 1 THEN E'two\\nlines' ELSE 'n' || g END,
           CASE WHEN g = ANY($1::int[]) THEN -g WHEN g = ANY($2::int[]) THEN NULL ELSE g END FROM generate_series(1, ${ROWS}) g`,
        [NEGATIVE, NULL_QTY],
      );
      await dst.query(`CREATE TABLE ${table} (id int, note text, qty int NOT NULL CHECK (qty >= 0))`);
      const dir = join(base, table);
      const encrypt = encrypted ? { encrypt: { keyFile } } : {};
      // Small files of small row groups: the refused rows fall into several objects.
      const exp = await exportTables({ source: src.url(), tables: [table], to: dir, format: { kind: 'parquet', compression: 'none', rowGroupBytes: 600 }, segmentSize: 3000, ...encrypt });
      const objects = exp.manifest.objects.map((o) => o.key);
      expect(objects.length).toBeGreaterThan(2);

      // Without a limit the first refused row fails the import, as before; past the limit too.
      const plain = await importTables({ from: dir, target: dst.url(), ...encrypt }).then(() => undefined, (e: unknown) => e as SegferryError);
      expect(plain?.code, plain?.message).toBe('ERR_DATABASE');
      const over = await importTables({ from: dir, target: dst.url(), rejectLimit: BAD.length - 1, ...encrypt }).then(() => undefined, (e: unknown) => e as SegferryError);
      expect(over?.code, over?.message).toBe('ERR_REJECT_LIMIT');
      // The objects committed before the limit was passed hold no refused row. Start again.
      for (const id of await ids(table)) expect(BAD).not.toContain(id);
      await dst.query(`TRUNCATE ${table}; DROP SCHEMA segferry CASCADE`);

      const res = await importTables({ from: dir, target: dst.url(), rejectLimit: 10, ...encrypt });
      expect(res.rejected).toBe(BAD.length);
      expect(await ids(table)).toEqual(good);

      // One line per refused row: its object, 1-based position in it, SQLSTATE, message, and
      // the row as the decoded COPY BINARY tuple (no byte offset: a Parquet file has no row bytes).
      const lines = await rejectLines(dir);
      expect(lines.length).toBe(BAD.length);
      const byId = new Map<number, RejectLine>();
      for (const l of lines) {
        const tuple = Buffer.from(l.data, 'base64');
        expect(tuple.readInt16BE(0)).toBe(3); // fields
        expect(tuple.readInt32BE(2)).toBe(4); // id: int4
        byId.set(tuple.readInt32BE(6), l);
        expect(l.offset).toBeUndefined();
        expect(l).toMatchObject({ table: `public.${table}`, node: 'coordinator' });
        expect(objects).toContain(l.object);
      }
      expect([...byId.keys()].sort((a, b) => a - b)).toEqual(BAD);
      for (const id of NEGATIVE) expect(byId.get(id)).toMatchObject({ sqlstate: '23514', message: expect.stringContaining('check constraint') });
      expect(byId.get(NULL_QTY[0]!)!.sqlstate).toBe('23502');
      // The position is the row's ordinal in its object: the objects' row counts before it.
      const order = [...exp.manifest.objects].sort((a, b) => a.segment - b.segment);
      for (const [id, l] of byId) {
        const before = order.slice(0, order.findIndex((o) => o.key === l.object)).reduce((a, o) => a + o.rows, 0);
        expect(before + l.row, `row ${id}`).toBe(id); // exported in id order from one node
      }

      const v = await verifyImport({ from: dir, target: dst.url() });
      expect(v.ok).toBe(true);
      expect(v.tables[0]).toMatchObject({ match: true, rejected: { rows: BAD.length } });
      expect(v.tables[0]!.note).toContain('row counts compared only');

      // A rerun loads nothing twice.
      const again = await importTables({ from: dir, target: dst.url(), rejectLimit: 10, ...encrypt });
      expect(again).toMatchObject({ loaded: 0, skipped: objects.length, rejected: 0 });
      expect(await ids(table)).toEqual(good);
      if (!encrypted) {
        const cli = await runCli(['import', '--from', dir, '--target', dst.url(), '--reject-limit', '10', '--verify']);
        expect(cli.code, cli.stderr).toBe(0);
      }
    }, 120_000);
  }
});

describe('verify finds the rejects of a postgres_fdw destination loaded node-direct', () => {
  let fsrc: SourceCluster;
  let fdst: SourceCluster;
  const FROWS = 2000;
  // The destination's data nodes refuse every id divisible by 97.
  const refused = Array.from({ length: FROWS }, (_, i) => i + 1).filter((i) => i % 97 === 0);

  beforeAll(async () => {
    [fsrc, fdst] = await Promise.all([startFdwCluster({ rows: FROWS, nodes: 2 }), startFdwCluster({ withData: false, nodes: 2 })]);
    for (const n of fdst.nodes) await n.query(`ALTER TABLE ${fdst.distributed} ADD CONSTRAINT no97 CHECK (id % 97 <> 0)`);
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled([fsrc?.destroy(), fdst?.destroy()]);
  });

  it('the import records the rejects on the nodes; verify without --route reads them there and matches', async () => {
    const dir = join(base, 'fdw');
    const exp = await exportTables({ source: fsrc.coordinator.url(), tables: [fsrc.distributed], to: dir });
    const res = await importTables({ from: dir, target: fdst.coordinator.url(), rejectLimit: 100 });
    expect(res.rejected).toBe(refused.length);
    // Node-direct: the ledgers (with the rejected counts) are on the data nodes, not the coordinator.
    let onNodes = 0;
    for (const n of fdst.nodes) {
      const r = await n.query<{ n: string }>('SELECT coalesce(sum(rejected), 0) AS n FROM segferry.loads WHERE import_id = $1', [exp.manifest.id]);
      onNodes += Number(r[0]!.n);
    }
    expect(onNodes).toBe(refused.length);
    const coordLedger = await fdst.coordinator.query<{ n: string }>(`SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'segferry'`);
    if (Number(coordLedger[0]!.n) > 0) {
      expect(await fdst.coordinator.query('SELECT 1 FROM segferry.loads WHERE import_id = $1 AND rejected > 0', [exp.manifest.id])).toEqual([]);
    }

    const v = await verifyImport({ from: dir, target: fdst.coordinator.url() });
    expect(v.ok).toBe(true);
    expect(v.tables[0]).toMatchObject({ match: true, checksummed: true, rejected: { rows: refused.length } });
    expect(v.tables[0]!.rejected!.nodes).toEqual({ dn1: expect.any(Number), dn2: expect.any(Number) });
    const cli = await runCli(['verify', '--from', dir, '--target', fdst.coordinator.url()]);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    expect(cli.stdout).toContain(`rejected     ${refused.length} rows`);
    // Still exact: one row fewer on a node is a mismatch.
    await fdst.nodes[0]!.query(`DELETE FROM ${fdst.distributed} WHERE id = (SELECT min(id) FROM ${fdst.distributed})`);
    expect((await verifyImport({ from: dir, target: fdst.coordinator.url() })).ok).toBe(false);
  }, 180_000);
});
