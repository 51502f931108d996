/**
 * Profiling harness for the columnar conversions, in memory and on one thread, in CPU seconds
 * per million rows (robust when other processes share the cores):
 *
 *   node --import tsx bench/columnar-profile.ts [--rows N] [--reps N] [--only export|import|encode|build] [--format parquet [--compression C]]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/columnar-profile.ts --only export
 *
 * The first run starts one throw-away PostgreSQL server, fills the benchmark table
 * (bench/lib/data.ts: 12 columns of common types) and keeps its COPY BINARY stream in a file
 * under the OS temp directory (`--cache DIR` to choose); later runs read that file, so a
 * profile holds the conversion alone. `export` is COPY BINARY rows → record batches → IPC
 * bytes (what the Arrow segment writer does per row); `import` is IPC objects → COPY BINARY
 * (what the loader does). `--only encode` (Parquet): the Parquet encoding alone, i.e.
 * encodePlainRowGroup (encodeRowGroup in a `--base` build from before it) over row groups
 * built once beforehand, without the building; with
 * `--columns`, also per column. `--only build`: the column build alone (BatchBuilder.feed and
 * take, as the segment writers build: Arrow columns, or with `--format parquet` the PLAIN
 * layout of 32 MiB row groups), buffers reused, without encoding or compression; the builds'
 * columns are compared first. `--profile DIR` only prints the self-time summary of the
 * .cpuprofile in DIR.
 */
import { createHash, type Hash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { makeData, RecordBatch, Schema, Struct } from 'apache-arrow';
import pg from 'pg';
import type { ColumnSpec, PgColumn } from '../lib/format/arrow/pgtypes.js';
import type { PlainColumn } from '../lib/format/arrow/columns.js';
import type { ParquetCompression } from '../lib/format/parquet/codecs.js';
import type { RowChunk } from '../lib/pg/copy-out.js';
import type { ObjectStore } from '../lib/store/types.js';
import { BenchServer, stopAll } from './lib/cluster.js';
import { generateSQL, TABLE, tableDDL } from './lib/data.js';
import { arrowIpcFiles } from './lib/arrow-files.js';
import { summarizeProfile } from './lib/profile.js';
import pgCopy from 'pg-copy-streams';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string' }, reps: { type: 'string' }, only: { type: 'string' }, cache: { type: 'string' },
    profile: { type: 'string' }, quick: { type: 'boolean' }, dist: { type: 'boolean' }, base: { type: 'string' }, 'no-reuse': { type: 'boolean' },
    'base-reuse': { type: 'boolean' },
    format: { type: 'string' }, compression: { type: 'string' }, columns: { type: 'boolean' },
  },
});
// `--format parquet [--compression zstd|snappy|none]`: the same through the Parquet segment writer
// (an in-memory store) and openParquetObject, instead of Arrow IPC.
const PARQUET = flags.format === 'parquet';
const COMPRESSION = (flags.compression ?? 'zstd') as ParquetCompression;
// `--dist`: the compiled dist/ (run `npx tsc -p tsconfig.json` first), so profiles show its line numbers.
// `--base DIR`: a second build (a copy of an older dist/) measured in the same run, alternating.
// DIR must lie inside this checkout (its imports resolve node_modules from there); for Parquet
// with zstd, make DIR/format/zstd.js `export * from '<this checkout>/dist/format/zstd.js'`: a
// second WebAssembly zstd in one process corrupts the first one's heap.
type Impl = {
  name: string;
  BatchBuilder: typeof import('../lib/format/arrow/columns.js').BatchBuilder;
  openArrowObject: typeof import('../lib/format/arrow/decoder.js').openArrowObject;
  IpcFileEncoder: typeof import('../lib/format/arrow/ipc.js').IpcFileEncoder;
  columnSpec: typeof import('../lib/format/arrow/pgtypes.js').columnSpec;
  ParquetSegmentWriter: typeof import('../lib/format/parquet/segment-writer.js').ParquetSegmentWriter;
  openParquetObject: typeof import('../lib/format/parquet/import.js').openParquetObject;
  encodeRowGroup: typeof import('../lib/format/parquet/encode.js').encodeRowGroup;
  /** Undefined in a build from before the plain layout (its writer encoded Arrow batches). */
  encodePlainRowGroup: typeof import('../lib/format/parquet/encode.js').encodePlainRowGroup | undefined;
  pageCodec: typeof import('../lib/format/parquet/codecs.js').pageCodec;
  /** Undefined in a build from before the writer kept one (each row group got its own). */
  EncoderScratch: typeof import('../lib/format/parquet/encode.js').EncoderScratch | undefined;
  parquetSpec: typeof import('../lib/format/parquet/schema.js').parquetSpec;
};
async function load(name: string, dir: string): Promise<Impl> {
  const m = async (f: string) => import(`${dir}/format/arrow/${f}.js`);
  const q = async (f: string) => import(`${dir}/format/parquet/${f}.js`);
  return {
    name,
    BatchBuilder: (await m('columns')).BatchBuilder, openArrowObject: (await m('decoder')).openArrowObject,
    IpcFileEncoder: (await m('ipc')).IpcFileEncoder, columnSpec: (await m('pgtypes')).columnSpec,
    ParquetSegmentWriter: (await q('segment-writer')).ParquetSegmentWriter, openParquetObject: (await q('import')).openParquetObject,
    encodeRowGroup: (await q('encode')).encodeRowGroup, encodePlainRowGroup: (await q('encode')).encodePlainRowGroup, pageCodec: (await q('codecs')).pageCodec, EncoderScratch: (await q('encode')).EncoderScratch, parquetSpec: (await q('schema')).parquetSpec,
  };
}
const IMPLS: Impl[] = [await load('this', flags.dist ? '../dist' : '../lib')];
if (flags.base) IMPLS.push(await load('base', flags.base));
const ROWS = Number(flags.rows ?? (flags.quick ? 50_000 : 300_000));
const REPS = Number(flags.reps ?? 3);
const CACHE = flags.cache ?? tmpdir();
/**
 * BatchBuilderOptions.reuseBuffers for this build (not for `--base`, so a copy of this build
 * compares it, unless `--base-reuse`: both reuse, as the segment writers do); `--no-reuse`: off.
 */
const REUSE = !flags['no-reuse'];
const BASE_REUSE = flags['base-reuse'] === true;

interface Captured { copy: Buffer; columns: PgColumn[] }

/** The table's COPY BINARY stream and column types, from the cache or a fresh server. */
async function capture(): Promise<Captured> {
  const base = join(CACHE, `segferry-colprof-${ROWS}`);
  if (existsSync(`${base}.copybin`)) {
    return { copy: readFileSync(`${base}.copybin`), columns: JSON.parse(readFileSync(`${base}.json`, 'utf8')) as PgColumn[] };
  }
  const s = await BenchServer.start('colprof');
  try {
    await s.query(tableDDL(TABLE));
    await s.query(`INSERT INTO ${TABLE} ${generateSQL(1, ROWS)}`);
    const c = new pg.Client({ connectionString: s.url() });
    await c.connect();
    try {
      await c.query("SET TimeZone = 'UTC'");
      const desc = await c.query(`SELECT * FROM ${TABLE} LIMIT 0`);
      const columns = desc.fields.map((f) => ({ name: f.name, pgType: '', oid: f.dataTypeID, typmod: f.dataTypeModifier }));
      const parts: Buffer[] = [];
      for await (const b of c.query(pgCopy.to(`COPY ${TABLE} TO STDOUT (FORMAT binary)`))) parts.push(b as Buffer);
      const copy = Buffer.concat(parts);
      writeFileSync(`${base}.copybin`, copy);
      writeFileSync(`${base}.json`, JSON.stringify(columns));
      return { copy, columns };
    } finally {
      await c.end();
    }
  } finally {
    await stopAll();
  }
}

/** Cut a COPY BINARY stream into ≈ 1 MiB row chunks, as the COPY reader hands them out (header in the first row, trailer last). */
function rowChunks(copy: Buffer): RowChunk[] {
  const out: RowChunk[] = [];
  let p = 19 + copy.readUInt32BE(15);
  let start = 0;
  let ends: number[] = [];
  const flush = (end: number) => {
    const data = copy.subarray(start, end);
    out.push({ data, rowEnds: Uint32Array.from(ends, (e) => e - start) });
    start = end;
    ends = [];
  };
  for (;;) {
    const nf = copy.readInt16BE(p);
    if (nf === -1) { p += 2; ends.push(p); break; }
    p += 2;
    for (let f = 0; f < nf; f++) {
      const len = copy.readInt32BE(p);
      p += 4 + Math.max(0, len);
    }
    ends.push(p);
    if (p - start >= 1 << 20) flush(p);
  }
  flush(p);
  return out;
}

const cpuS = (from: NodeJS.CpuUsage) => { const u = process.cpuUsage(from); return (u.user + u.system) / 1e6; };

/** COPY BINARY chunks → record batches → IPC files (8 batches each); returns the files (none unless `keep`). */
function toArrow(impl: Impl, chunks: RowChunk[], columns: PgColumn[], keep: boolean): Buffer[] {
  // Each batch is copied at once, as the segment writer does, so the builder may reuse its buffers.
  const b = new impl.BatchBuilder(columns.map(impl.columnSpec), { reuseBuffers: REUSE && (impl === IMPLS[0] || BASE_REUSE) });
  return arrowIpcFiles(b, () => new impl.IpcFileEncoder(b.schema), chunks, { copyBatches: true, keep }).files;
}

/**
 * COPY BINARY chunks → Parquet objects of at most 64 MiB (the segment writer, storing into
 * memory). Unless `keep`, the store drops what it is given and, like a directory, releases
 * each write (so the writer reuses its assembly buffers); no objects are returned then.
 */
async function toParquet(impl: Impl, chunks: RowChunk[], columns: PgColumn[], keep: boolean): Promise<Buffer[]> {
  const files = new Map<string, Buffer[]>();
  const store = {
    releasesWrites: !keep,
    createWriter: (key: string) => {
      const parts: Buffer[] = [];
      if (keep) files.set(key, parts);
      return { write: async (b: Buffer) => { if (keep) parts.push(b); }, finish: async () => {}, abort: async () => {} };
    },
  } as unknown as ObjectStore;
  const w = new impl.ParquetSegmentWriter({ store, keyOf: (n) => `t_dn1_segment.${n}`, cap: 64 << 20, table: TABLE, node: 'dn1', compression: COMPRESSION });
  await w.begin({ columns });
  for (const rc of chunks) await w.write(rc);
  await w.finish();
  return [...files.values()].map((p) => Buffer.concat(p));
}

async function fromParquet(impl: Impl, files: Buffer[], hash?: Hash): Promise<{ rows: number; bytes: number }> {
  let rows = 0;
  let bytes = 0;
  for (const f of files) {
    const src = await impl.openParquetObject({ size: f.length, range: async (s, e) => f.subarray(s, e), stream: () => Readable.from([f]) });
    for await (const c of src.chunks()) {
      bytes += c.length;
      hash?.update(c);
    }
    rows += src.rows;
  }
  return { rows, bytes };
}

/**
 * The objects of `chunks`. Timed runs pass `keep` false: the bytes are handed on and dropped, as
 * an export to a directory does (the writers then reuse their assembly buffers), instead of
 * holding every object in memory.
 */
const toObjects = async (impl: Impl, chunks: RowChunk[], columns: PgColumn[], keep = true): Promise<Buffer[]> =>
  (PARQUET ? toParquet(impl, chunks, columns, keep) : toArrow(impl, chunks, columns, keep));
const fromObjects = (impl: Impl, files: Buffer[], hash?: Hash) => (PARQUET ? fromParquet(impl, files, hash) : fromArrow(impl, files, hash));
const NAME = PARQUET ? `Parquet ${COMPRESSION}` : 'Arrow IPC';

async function fromArrow(impl: Impl, files: Buffer[], hash?: Hash): Promise<{ rows: number; bytes: number }> {
  let rows = 0;
  let bytes = 0;
  for (const f of files) {
    const src = await impl.openArrowObject(Readable.from([f]));
    for await (const c of src.chunks()) {
      bytes += c.length;
      hash?.update(c);
    }
    rows += src.rows;
  }
  return { rows, bytes };
}

/** Row groups as the Parquet segment writer builds them (32 MiB of COPY BINARY each), kept. */
/** A row group as the build's writer encodes it: PLAIN-layout columns where it has them, else an Arrow batch. */
interface Group { batch?: RecordBatch; columns?: PlainColumn[]; rows: number; specs: ColumnSpec[] }

/** Feed every chunk to a builder, calling `take` whenever a batch is full and once at the end. */
function feedAll(b: { feed(d: Buffer, e: Uint32Array, i: number): number; full: boolean }, chunks: RowChunk[], take: () => void): void {
  for (const rc of chunks) {
    for (let i = 0; i < rc.rowEnds.length;) {
      i = b.feed(rc.data, rc.rowEnds, i);
      if (b.full) take();
    }
  }
  take();
}

function rowGroups(impl: Impl, chunks: RowChunk[], columns: PgColumn[]): Group[] {
  const plain = impl.encodePlainRowGroup !== undefined;
  const b = new impl.BatchBuilder(columns.map((c) => impl.parquetSpec(impl.columnSpec(c))), { maxRows: 1 << 20, maxBytes: 32 << 20, ...(plain ? { layout: 'plain' } : {}) });
  const out: Group[] = [];
  const take = () => {
    const specs = b.specs;
    if (plain) { const t = b.takePlain(); if (t) out.push({ columns: t.columns, rows: t.rows, specs }); }
    else { const t = b.take(); if (t) out.push({ batch: t.batch, rows: t.rows, specs }); }
  };
  feedAll(b, chunks, take);
  return out;
}

/** `--only encode`: the row group encoding alone over prebuilt row groups, in CPU-s per million rows (and per column with `--columns`). */
async function encodeOnly(chunks: RowChunk[], columns: PgColumn[]): Promise<void> {
  // Each build's own groups (a build with the plain layout encodes those, as its writer does).
  const groupsOf = IMPLS.map((impl) => rowGroups(impl, chunks, columns));
  const codecs = await Promise.all(IMPLS.map((impl) => impl.pageCodec(COMPRESSION)));
  // One scratch per pass over the groups, as one writer keeps one for its row groups (its
  // per-column codec choice depends on the groups before).
  const encodeOne = (k: number, g: Group, sc: InstanceType<NonNullable<Impl['EncoderScratch']>> | undefined) => {
    const impl = IMPLS[k]!;
    return g.columns ? impl.encodePlainRowGroup!(g.columns, g.specs, 0, g.rows, codecs[k]!, sc) : impl.encodeRowGroup(g.batch!, g.specs, 0, g.rows, codecs[k]!, sc);
  };
  const scratch = (k: number) => { const S = IMPLS[k]!.EncoderScratch; return S && new S(); };
  const encodeAll = (k: number, hash?: Hash) => {
    let bytes = 0;
    const sc = scratch(k);
    for (const g of groupsOf[k]!) {
      const e = encodeOne(k, g, sc);
      bytes += e.bytes;
      if (hash) for (const c of e.chunks) for (const p of c.pages) hash.update(p);
    }
    return bytes;
  };
  const digests = IMPLS.map((impl, k) => {
    const h = createHash('sha256');
    process.stdout.write(`  [${impl.name}] row groups: ${groupsOf[k]!.length}, encoded ${encodeAll(k, h)} bytes\n`);
    return h.digest('hex');
  });
  if (IMPLS.length > 1) {
    const same = digests.every((d) => d === digests[0]);
    process.stdout.write(`  pages of every build: ${same ? 'byte-identical' : 'DIFFERENT'}\n`);
    if (!same) process.exitCode = 1;
  }
  const xs = IMPLS.map(() => [] as number[]);
  for (let r = 0; r < REPS; r++) {
    // ABBA: neither build always runs first.
    for (const k of r % 2 === 0 ? [...IMPLS.keys()] : [...IMPLS.keys()].reverse()) {
      const t = process.cpuUsage();
      encodeAll(k);
      xs[k]!.push(cpuS(t) / ROWS * 1e6);
    }
  }
  IMPLS.forEach((impl, k) => line(`encode row groups, ${NAME}`, impl, xs[k]!));
  if (!flags.columns) return;
  // One column at a time: a batch of just that column, so each figure is its own encoding.
  const specs = groupsOf[0]![0]!.specs;
  const column = (g: Group, c: number): Group => (g.columns
    ? { columns: [g.columns[c]!], rows: g.rows, specs: [g.specs[c]!] }
    : { batch: new RecordBatch(new Schema([g.batch!.schema.fields[c]!]), makeData({ type: new Struct([g.batch!.schema.fields[c]!]), length: g.rows, children: [g.batch!.data.children[c]!] })), rows: g.rows, specs: [g.specs[c]!] });
  for (const [c, spec] of specs.entries()) {
    // Builds alternate (ABBA) every repetition; each figure is the median of REPS.
    const ones = IMPLS.map((_, k) => groupsOf[k]!.map((g) => column(g, c)));
    const cpu = IMPLS.map(() => [] as number[]);
    const bytes = IMPLS.map(() => 0);
    for (let r = 0; r < REPS; r++) {
      for (const k of r % 2 === 0 ? [...IMPLS.keys()] : [...IMPLS.keys()].reverse()) {
        const t = process.cpuUsage();
        const sc = scratch(k);
        for (const g of ones[k]!) bytes[k] = encodeOne(k, g, sc).bytes;
        cpu[k]!.push(cpuS(t) / ROWS * 1e6);
      }
    }
    const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
    const parts = IMPLS.map((impl, k) => `[${impl.name}] ${med(cpu[k]!).toFixed(3)} (${bytes[k]} B last group)`);
    process.stdout.write(`    ${spec.name.padEnd(10)} ${spec.kind.padEnd(10)} ${parts.join('  ')}\n`);
  }
}

/**
 * Build every row into columns as the build's segment writer does (buffers reused), taking
 * each batch; `hash`: also digest the taken columns' bytes (to compare builds).
 */
function buildAll(impl: Impl, chunks: RowChunk[], columns: PgColumn[], hash?: Hash): void {
  const b = PARQUET
    ? new impl.BatchBuilder(columns.map((c) => impl.parquetSpec(impl.columnSpec(c))), { maxRows: 1 << 20, maxBytes: 32 << 20, reuseBuffers: true, layout: 'plain' })
    : new impl.BatchBuilder(columns.map(impl.columnSpec), { reuseBuffers: true });
  const add = (u: Uint8Array | Int32Array | undefined) => { if (u) hash!.update(new Uint8Array(u.buffer, u.byteOffset, u.byteLength)); };
  const plainHash = (c: PlainColumn): void => { hash!.update(`${c.length}/${c.nulls}`); add(c.validity); add(c.values); add(c.offsets); if (c.child) plainHash(c.child); };
  type D = { values?: Uint8Array; valueOffsets?: Int32Array; nullBitmap?: Uint8Array; children: D[] };
  const arrowHash = (d: D): void => { add(d.values); add(d.valueOffsets); add(d.nullBitmap); d.children.forEach(arrowHash); };
  const take = () => {
    if (PARQUET) { const t = b.takePlain(); if (t && hash) t.columns.forEach(plainHash); }
    else { const t = b.take(); if (t && hash) (t.batch.data.children as unknown as D[]).forEach(arrowHash); }
  };
  feedAll(b, chunks, take);
}

/** `--only build`: the column build alone, in CPU-s per million rows. */
function buildOnly(chunks: RowChunk[], columns: PgColumn[]): void {
  const digests = IMPLS.map((impl) => {
    const h = createHash('sha256');
    buildAll(impl, chunks, columns, h);
    return h.digest('hex');
  });
  if (IMPLS.length > 1) {
    const same = digests.every((d) => d === digests[0]);
    process.stdout.write(`  columns of every build: ${same ? 'identical' : 'DIFFERENT'}\n`);
    if (!same) process.exitCode = 1;
  }
  const xs = IMPLS.map(() => [] as number[]);
  for (let r = 0; r < REPS; r++) {
    // ABBA: neither build always runs first.
    for (const k of r % 2 === 0 ? [...IMPLS.keys()] : [...IMPLS.keys()].reverse()) {
      const t = process.cpuUsage();
      buildAll(IMPLS[k]!, chunks, columns);
      xs[k]!.push(cpuS(t) / ROWS * 1e6);
    }
  }
  IMPLS.forEach((impl, k) => line(`column build, ${PARQUET ? 'Parquet PLAIN layout' : 'Arrow'}`, impl, xs[k]!));
  if (IMPLS.length > 1) {
    const d = xs[0]!.map((x, i) => x - xs[1]![i]!);
    process.stdout.write(`  paired difference [${IMPLS[0]!.name}] − [${IMPLS[1]!.name}]: median ${med(d).toFixed(3)}, lower in ${d.filter((x) => x < 0).length} of ${d.length}\n`);
  }
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const line = (what: string, impl: Impl, xs: number[]) =>
  process.stdout.write(`  ${what} [${impl.name}]: min ${Math.min(...xs).toFixed(3)}, median ${med(xs).toFixed(3)} CPU-s per million rows (${xs.map((x) => x.toFixed(3)).join(', ')})\n`);

async function main(): Promise<void> {
  const { copy, columns } = await capture();
  const chunks = rowChunks(copy);
  const only = flags.only;
  if (only === 'encode') {
    if (!PARQUET) throw new Error('--only encode needs --format parquet');
    process.stdout.write(`columnar profile: ${ROWS} rows, ${(copy.length / 1e6).toFixed(0)} MB of COPY BINARY, ${REPS} reps, node ${process.version}\n`);
    return encodeOnly(chunks, columns);
  }
  process.stdout.write(`columnar profile: ${ROWS} rows, ${(copy.length / 1e6).toFixed(0)} MB of COPY BINARY, ${REPS} reps, node ${process.version}\n`);
  if (only === 'build') return buildOnly(chunks, columns);
  const files = await toObjects(IMPLS[0]!, chunks, columns); // warm-up, and the import's input
  process.stdout.write(`  ${NAME}: ${files.length} object(s), ${files.reduce((a, f) => a + f.length, 0)} bytes\n`);
  for (const impl of IMPLS.slice(1)) {
    // The contestants must write the same bytes.
    const other = await toObjects(impl, chunks, columns);
    const same = other.length === files.length && other.every((f, i) => f.equals(files[i]!));
    process.stdout.write(`  objects of [${impl.name}] and [${IMPLS[0]!.name}]: ${same ? 'byte-identical' : 'DIFFERENT'}\n`);
    if (!same) process.exitCode = 1;
    // And read them back into the same COPY BINARY bytes.
    const [h0, h1] = [createHash('sha256'), createHash('sha256')];
    await fromObjects(IMPLS[0]!, files, h0);
    await fromObjects(impl, files, h1);
    const sameCopy = h0.digest('hex') === h1.digest('hex');
    process.stdout.write(`  COPY BINARY read back by [${impl.name}] and [${IMPLS[0]!.name}]: ${sameCopy ? 'byte-identical' : 'DIFFERENT'}\n`);
    if (!sameCopy) process.exitCode = 1;
  }
  if (only !== 'import') {
    const xs = IMPLS.map(() => [] as number[]);
    for (let r = 0; r < REPS; r++) {
      // ABBA: neither build always runs first.
      for (const k of r % 2 === 0 ? [...IMPLS.keys()] : [...IMPLS.keys()].reverse()) {
        const impl = IMPLS[k]!;
        const t = process.cpuUsage();
        await toObjects(impl, chunks, columns, false);
        xs[k]!.push(cpuS(t) / ROWS * 1e6);
      }
    }
    IMPLS.forEach((impl, k) => line(`export COPY BINARY → ${NAME}`, impl, xs[k]!));
  }
  if (only !== 'export') {
    const xs = IMPLS.map(() => [] as number[]);
    for (let r = 0; r < REPS; r++) {
      for (const [k, impl] of IMPLS.entries()) {
        const t = process.cpuUsage();
        const { rows } = await fromObjects(impl, files);
        if (rows !== ROWS) throw new Error(`decoded ${rows} rows, expected ${ROWS}`);
        xs[k]!.push(cpuS(t) / ROWS * 1e6);
      }
    }
    IMPLS.forEach((impl, k) => line(`import ${NAME} → COPY`, impl, xs[k]!));
  }
}

/** `--profile DIR`: print the self-time summary of the .cpuprofile a `--cpu-prof` run left in DIR. */
function summarize(dir: string): void {
  const { totalMs, entries } = summarizeProfile(dir, 30);
  process.stdout.write(`profile ${dir}: ${(totalMs / 1000).toFixed(2)} CPU-s busy\n`);
  for (const e of entries) process.stdout.write(`  ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.fn}  ${e.where}\n`);
}

(flags.profile ? Promise.resolve(summarize(flags.profile)) : main()).catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
