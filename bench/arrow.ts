/**
 * Arrow export against TEXT export of the same table in the same run.
 *
 *   node --import tsx bench/arrow.ts            (BENCH_ROWS=500000 by default)
 *
 * Starts one throw-away PostgreSQL server, fills a table of common column types, then:
 *  1. exports it to a local directory as TEXT and as Arrow, alternately, three times each,
 *     and prints the median rows/s of each and their ratio (wall time: the server and this
 *     process share the machine's cores);
 *  2. measures the conversion alone, in memory, on one thread, in rows per CPU second (robust
 *     when other processes share the cores): COPY BINARY rows into Arrow record batches and
 *     IPC bytes (export), and Arrow objects back into COPY BINARY (import);
 *  3. measures what record batch body compression costs and saves with segferry's codecs
 *     (`--arrow-compression none|lz4|zstd`): client CPU-s per million rows to convert and to
 *     decode back, and bytes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import { CompressionType } from 'apache-arrow';
import { registerArrowCodecs } from '../lib/format/arrow-codecs.js';
import { exportTables } from '../lib/export/export.js';
import { copyOut, type RowChunk } from '../lib/pg/copy-out.js';
import { BatchBuilder } from '../lib/format/arrow/columns.js';
import { IpcFileEncoder } from '../lib/format/arrow/ipc.js';
import { columnSpec, type PgColumn } from '../lib/format/arrow/pgtypes.js';
import { arrowIpcFiles } from './lib/arrow-files.js';
import { openArrowObject } from '../lib/format/arrow/decoder.js';
import { startServer, type PgServer } from '../test/helpers/pg.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 500_000);
const RUNS = 3;

const DDL = `CREATE TABLE bench_rows (
  id int8 NOT NULL, grp int4, amount numeric(18,4), f8 float8, flag bool, ts timestamptz,
  d date, note text, js jsonb, tags text[])`;
const FILL = `INSERT INTO bench_rows
  SELECT g, g % 1000, (g * 1.2345)::numeric(18,4), g / 7.0, g % 3 = 0,
         timestamptz '2020-01-01' + g * interval '1 second', date '2000-01-01' + g % 9000,
         'note number ' || g || ' ' || md5(g::text), jsonb_build_object('k', g, 's', 'v' || g % 97),
         CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['a' || g % 10, 'b'] END
    FROM generate_series(1, ${ROWS}) g`;

/** CPU milliseconds of this process since `from`: robust when other processes share the cores. */
const cpuMs = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function exportOnce(server: PgServer, format: 'text' | 'arrow'): Promise<{ rowsPerSec: number; bytes: number; cpuMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'sf-bench-arrow-'));
  try {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const res = await exportTables({
      source: server.url(), tables: ['bench_rows'], format, to: dir, checksums: false, segmentSize: 256 * 1024 * 1024,
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = process.cpuUsage(c0);
    const rows = res.manifest.tables[0]!.rows;
    if (rows !== ROWS) throw new Error(`exported ${rows} rows, expected ${ROWS}`);
    return { rowsPerSec: (rows / ms) * 1000, bytes: res.manifest.tables[0]!.bytes, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The table's COPY BINARY output, in memory, as the exporter receives it. */
async function captureBinary(server: PgServer): Promise<{ chunks: RowChunk[]; columns: PgColumn[] }> {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    await client.query("SET TimeZone = 'UTC'");
    const desc = await client.query('SELECT * FROM bench_rows LIMIT 0');
    const columns = desc.fields.map((f) => ({ name: f.name, pgType: '', oid: f.dataTypeID, typmod: f.dataTypeModifier }));
    const chunks: RowChunk[] = [];
    for await (const rc of copyOut(client, 'COPY bench_rows TO STDOUT (FORMAT binary)')) chunks.push(rc as RowChunk);
    return { chunks, columns };
  } finally {
    await client.end();
  }
}

/** Single-thread conversion: rows → record batches → IPC message bytes. Returns rows/s and the encoded batches. */
function convert(chunks: RowChunk[], columns: PgColumn[], compression: CompressionType | null): { rowsPerSec: number; bytes: number; files: Buffer[] } {
  const t0 = process.cpuUsage();
  const b = new BatchBuilder(columns.map(columnSpec));
  // One IPC file per 8 batches, as the segment writer would cut them.
  const { files, rows, bytes } = arrowIpcFiles(b, () => new IpcFileEncoder(b.schema, compression), chunks);
  const ms = cpuMs(t0);
  if (rows !== ROWS) throw new Error(`converted ${rows} rows, expected ${ROWS}`);
  return { rowsPerSec: (rows / ms) * 1000, bytes, files };
}

/** Single-thread decoding of Arrow objects back into COPY BINARY. */
async function decode(files: Buffer[]): Promise<number> {
  const t0 = process.cpuUsage();
  let rows = 0;
  for (const f of files) {
    const src = await openArrowObject(Readable.from([f]));
    for await (const _ of src.chunks()) { /* COPY input, dropped */ }
    rows += src.rows;
  }
  const ms = cpuMs(t0);
  if (rows !== ROWS) throw new Error(`decoded ${rows} rows, expected ${ROWS}`);
  return (rows / ms) * 1000;
}

async function main(): Promise<void> {
  console.log(`segferry bench: Arrow vs TEXT export, ${fmt(ROWS)} rows, node ${process.version}`);
  const server = await startServer({ name: 'bench-arrow' });
  try {
    await server.query(DDL);
    await server.query(FILL);
    await server.query('VACUUM ANALYZE bench_rows');
    await exportOnce(server, 'text'); // warm the cache

    const text: Awaited<ReturnType<typeof exportOnce>>[] = [];
    const arrow: Awaited<ReturnType<typeof exportOnce>>[] = [];
    for (let r = 0; r < RUNS; r++) {
      text.push(await exportOnce(server, 'text'));
      arrow.push(await exportOnce(server, 'arrow'));
    }
    const tr = median(text.map((x) => x.rowsPerSec));
    const ar = median(arrow.map((x) => x.rowsPerSec));
    console.log('\nexport, one node, wall time (median of 3):');
    console.log(`  text : ${fmt(tr)} rows/s, ${fmt(text[0]!.bytes / 1e6)} MB, client CPU ${fmt(median(text.map((x) => x.cpuMs)))} ms`);
    console.log(`  arrow: ${fmt(ar)} rows/s, ${fmt(arrow[0]!.bytes / 1e6)} MB, client CPU ${fmt(median(arrow.map((x) => x.cpuMs)))} ms`);
    console.log(`  arrow / text = ${(ar / tr).toFixed(2)}`);

    const { chunks, columns } = await captureBinary(server);
    const conv = [convert(chunks, columns, null), convert(chunks, columns, null), convert(chunks, columns, null)];
    const dec = [await decode(conv[0]!.files), await decode(conv[0]!.files), await decode(conv[0]!.files)];
    console.log('\nconversion alone, in memory, one thread, rows per CPU second (median of 3):');
    console.log(`  COPY BINARY → Arrow IPC : ${fmt(median(conv.map((c) => c.rowsPerSec)))} rows/s`);
    console.log(`  Arrow IPC → COPY BINARY : ${fmt(median(dec))} rows/s`);

    console.log('\nrecord batch body compression (in memory, one thread, client CPU-s per million rows, median of 3, alternated):');
    await registerArrowCodecs();
    const codecs = [['none', null], ['lz4', CompressionType.LZ4_FRAME], ['zstd', CompressionType.ZSTD]] as const;
    const runs = new Map<string, { conv: number[]; dec: number[]; bytes: number }>(codecs.map(([n]) => [n, { conv: [], dec: [], bytes: 0 }]));
    for (let r = 0; r < RUNS; r++) {
      for (const [name, type] of codecs) {
        const c = convert(chunks, columns, type);
        const x = runs.get(name)!;
        x.conv.push(1e6 / c.rowsPerSec);
        x.dec.push(1e6 / (await decode(c.files)));
        x.bytes = c.bytes;
      }
    }
    const plain = runs.get('none')!.bytes;
    for (const [name, x] of runs) {
      console.log(`  ${name.padEnd(5)}: convert ${median(x.conv).toFixed(2)} CPU-s/M rows, decode ${median(x.dec).toFixed(2)} CPU-s/M rows, ${fmt(x.bytes / 1e6)} MB (${(x.bytes / plain * 100).toFixed(0)}%)`);
    }
  } finally {
    await server.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
