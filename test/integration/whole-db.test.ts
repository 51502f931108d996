/**
 * Issue 14: whole databases. Selection (--all, --schema, patterns, excludes) resolved on a real
 * server holding the realistic sample database (test/helpers/sample-db.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planExport, SegferryError } from '../../lib/index.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startServer, type PgServer } from '../helpers/pg.js';
import { SAMPLE_DB_SQL, SAMPLE_TABLES } from '../helpers/sample-db.js';

let pgs: PgServer;
const dirs: string[] = [];
const SRC = 'src';

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-wholedb-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  ensureBuilt();
  pgs = await startServer({ name: 'wholedb' });
  await pgs.query(`CREATE DATABASE ${SRC}`);
  await pgs.query(SAMPLE_DB_SQL, [], SRC);
  // segferry's own ledger schema and an extension's table are never selected.
  await pgs.query('CREATE SCHEMA segferry; CREATE TABLE segferry.loads (x int)', [], SRC);
});

afterAll(async () => {
  await pgs?.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const names = (p: { tables: { table: { schema: string; name: string } }[] }) => p.tables.map((t) => `${t.table.schema}.${t.table.name}`);

describe('selection (issue 14, item 1)', () => {
  it('--all: every ordinary and partitioned table, not partitions, views or the ledger schema; a partitioned table is read through its parent', async () => {
    const plan = await planExport({ source: pgs.url(SRC), all: true });
    expect(names(plan)).toEqual(SAMPLE_TABLES);
    const m = plan.tables.find((t) => t.table.name === 'measurements')!;
    expect(m.reads.map((r) => `${r.node}:${r.relation.schema}.${r.relation.name}`)).toEqual(['coordinator:sales.measurements']);
    expect(plan.topology).toBe('postgres');
    // Generated columns are not exported (COPY cannot load them; the DDL recomputes them).
    expect(plan.tables.find((t) => t.table.name === 'orders')!.columns.map((c) => c.name)).toEqual(['id', 'customer_id', 'status', 'amount', 'qty']);
  });

  it('--schema, patterns and excludes', async () => {
    expect(names(await planExport({ source: pgs.url(SRC), schemas: ['Odd Schema ü'] }))).toEqual(['Odd Schema ü.Big Table Ä']);
    expect(names(await planExport({ source: pgs.url(SRC), tables: ['sales.*'], excludeTables: ['sales.m*', '*.ticket?'] }))).toEqual(['sales.customers', 'sales.orders']);
    expect(names(await planExport({ source: pgs.url(SRC), tables: ['"Odd Schema ü"."Big Table "?', 'sales.orders'] }))).toEqual(['Odd Schema ü.Big Table Ä', 'sales.orders']);
    const e = await planExport({ source: pgs.url(SRC), tables: ['sales.nothing*'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_TABLE_NOT_FOUND');
  });

  it('CLI: plan with --table-file and --exclude-table-file lists the resolved tables', async () => {
    const d = await tmp();
    await writeFile(join(d, 'in.txt'), '# sales first\nsales.*\n\n"Odd Schema ü".*\n');
    await writeFile(join(d, 'out.txt'), 'sales.measurements\nsales.tickets\n');
    const r = await runCli(['plan', '--source', pgs.url(SRC), '--table-file', join(d, 'in.txt'), '--exclude-table-file', join(d, 'out.txt'), '-T', 'sales.customers']);
    expect(r.code, r.stderr).toBe(0);
    expect(names(JSON.parse(r.stdout) as Parameters<typeof names>[0])).toEqual(['sales.orders', 'Odd Schema ü.Big Table Ä']);
  });
});
