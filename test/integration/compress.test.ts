// Compressed objects (--compress gzip|zstd), Arrow bodies (--arrow-compression zstd|lz4) and --extension, end to end on two 2-node static
// clusters: every stored object within the cap, each decompressed alone by the standard tool
// (/usr/bin/gzip, /usr/bin/zstd) and loaded alone by COPY (so rows are whole), round trip through
// import and verify, and a corrupt object refused with nothing of it loaded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  checkExport, cleanup, exportTables, importTables, verifyImport, SegferryError,
  type Manifest, type StaticTopology,
} from '../../lib/index.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { describeMultisetDiff, mergeMultisets, rowMultiset, sameMultiset, trickyInsertSQL, trickyTableDDL } from '../helpers/fixtures.js';
import { copyInSQL } from '../../lib/import/load.js';
import { CompressionType, tableFromIPC } from 'apache-arrow';
import { bodyBuffers, checkBodiesWithCli } from '../helpers/arrow-bodies.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// docs/manifest.schema.json must describe compressed and extension manifests too.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;
let schemaValidate: ReturnType<Ajv2020['compile']>;
async function expectSchemaValid(m: Manifest): Promise<void> {
  if (!schemaValidate) {
    const schema = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'docs', 'manifest.schema.json'), 'utf8')) as Record<string, unknown>;
    schemaValidate = addFormats(new Ajv2020({ allErrors: true, strict: true, strictRequired: false })).compile(schema);
  }
  expect(schemaValidate(m), JSON.stringify(schemaValidate.errors)).toBe(true);
}
import { registerArrowCodecs } from '../../lib/format/arrow-codecs.js';

/** pyarrow, when installed here: an independent Arrow reader (C++), used if present. */
const HAS_PYARROW = spawnSync('python3', ['-c', 'import pyarrow'], { stdio: 'ignore' }).status === 0;
const PYARROW_SKIP = 'pyarrow is not installed (python3 -c "import pyarrow" fails): the independent-reader check of compressed Arrow bodies is skipped';

const CAP = 16 * 1024;
const ROWS = 3000;

let src: PgServer[];
let dst: PgServer[];
const dirs: string[] = [];
let srcRows: Map<string, number>;

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-compress-'));
  dirs.push(d);
  return d;
}

const topo = (servers: PgServer[]): StaticTopology => ({ nodes: servers.map((n, i) => ({ name: `dn${i + 1}`, url: n.url() })), replicated: [] });
const clusterRows = async (servers: PgServer[]) => mergeMultisets(...(await Promise.all(servers.map((n) => rowMultiset(n, 'SELECT * FROM items')))));

beforeAll(async () => {
  const all = await startServers(['dn1', 'dn2', 'ddn1', 'ddn2']);
  src = all.slice(0, 2);
  dst = all.slice(2);
  await Promise.all(src.map(async (n, i) => {
    await n.query(trickyTableDDL('items'));
    await n.query(trickyInsertSQL('items', 1, ROWS, { modulus: 2, remainder: i }));
  }));
  await Promise.all(dst.map((n) => n.query(trickyTableDDL('items'))));
  srcRows = await clusterRows(src);
});

afterAll(async () => {
  await Promise.allSettled([...(src ?? []), ...(dst ?? [])].map((s) => s.destroy()));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The standard tool's output for a stored object. */
function toolDecompress(codec: 'gzip' | 'zstd', file: string): Buffer {
  const r = spawnSync(codec === 'gzip' ? '/usr/bin/gzip' : '/usr/bin/zstd', ['-dc', file], { maxBuffer: 1 << 28 });
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

/** Load raw COPY bytes alone into a scratch copy of the table (rolled back); returns COPY's row count. */
async function copyAlone(server: PgServer, raw: Buffer, m: Manifest): Promise<number> {
  const c = new pg.Client({ connectionString: server.url() });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('CREATE TEMP TABLE scratch (LIKE items) ON COMMIT DROP');
    for (const [k, v] of Object.entries(m.sessionSettings)) await c.query(`SELECT set_config($1, $2, true)`, [k, v]);
    const sql = copyInSQL({ node: 'dn1', relation: { schema: 'pg_temp', name: 'scratch' }, columns: m.tables[0]!.columns.map((x) => x.name) } as never, m.format);
    const stream = c.query(pgCopy.from(sql));
    await pipeline(Readable.from([raw]), stream);
    return stream.rowCount;
  } finally {
    await c.query('ROLLBACK').catch(() => {});
    await c.end();
  }
}

const cases = [
  { format: 'text' as const, compress: 'gzip' as const, extension: false },
  { format: 'text' as const, compress: 'zstd' as const, extension: true },
  { format: 'csv' as const, compress: 'gzip' as const, extension: true },
  { format: 'binary' as const, compress: 'zstd' as const, extension: false },
];

describe('compressed exports', () => {
  for (const c of cases) {
    it(`${c.format} ${c.compress}${c.extension ? ' with --extension' : ''}: objects within the cap, each whole alone, round trip through import and verify`, async () => {
      const dir = await tmp();
      const res = await exportTables({
        topology: topo(src), tables: ['items'], to: dir, segmentSize: CAP, compress: c.compress, extension: c.extension,
        format: c.format === 'csv' ? { kind: 'csv', header: true } : c.format, threads: false,
      });
      const m = res.manifest;
      expect(m.compression).toBe(c.compress);
      await expectSchemaValid(m);
      expect(m.objects.length).toBeGreaterThan(4);
      const ext = { text: '.txt', csv: '.csv', binary: '.bin' }[c.format] + (c.compress === 'gzip' ? '.gz' : '.zst');
      let rows = 0;
      for (const o of m.objects) {
        expect(o.compression).toBe(c.compress);
        expect(o.key).toMatch(c.extension ? new RegExp(`^items_dn[12]_segment\\.\\d+${ext.replace(/\./g, '\\.')}$`) : /^items_dn[12]_segment\.\d+$/);
        const file = join(dir, o.key);
        const stored = await readFile(file);
        expect(stored.length).toBe(o.bytes);
        expect(o.bytes).toBeLessThanOrEqual(CAP);
        const raw = toolDecompress(c.compress, file);
        if (c.format === 'csv') expect(raw.toString('utf8', 0, 3)).toBe('id,');
        // COPY takes the object alone: whole rows, and as many as the manifest says.
        expect(await copyAlone(dst[0]!, raw, m)).toBe(o.rows);
        rows += o.rows;
      }
      expect(rows).toBe(ROWS);
      expect((await checkExport({ at: dir, readData: true })).ok).toBe(true);

      const imp = await importTables({ from: dir, topology: topo(dst), truncate: true, verify: true });
      expect(imp.verify?.ok).toBe(true);
      const back = await clusterRows(dst);
      expect(sameMultiset(back, srcRows), describeMultisetDiff(back, srcRows)).toBe(true);
      expect((await verifyImport({ from: dir, topology: topo(dst) })).ok).toBe(true);
    });
  }

  it('--compress with --format arrow is refused before any COPY', async () => {
    const dir = await tmp();
    const e = await exportTables({ topology: topo(src), tables: ['items'], to: dir, compress: 'gzip', format: 'arrow' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_INVALID_OPTION');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('corrupt compressed objects', () => {
  it('with a manifest: ERR_CHECKSUM_MISMATCH naming the object, nothing of it loaded', async () => {
    const dir = await tmp();
    const { manifest: m } = await exportTables({ topology: topo(src), tables: ['items'], to: dir, segmentSize: CAP, compress: 'zstd', threads: false });
    const victim = m.objects[2]!;
    const bytes = await readFile(join(dir, victim.key));
    for (let i = 40; i < bytes.length; i += 101) bytes[i]! ^= 0x55;
    await writeFile(join(dir, victim.key), bytes);
    const e = await importTables({ from: dir, topology: topo(dst), truncate: true, concurrency: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_CHECKSUM_MISMATCH');
    expect((e as SegferryError).key).toBe(victim.key);
    const node = dst[Number(victim.node.slice(2)) - 1]!;
    const loaded = await node.query<{ k: string }>('SELECT object_key AS k FROM segferry.loads WHERE import_id = $1', [m.id]);
    expect(loaded.map((r) => r.k)).not.toContain(victim.key);
  });

  it('bare .gz objects (no manifest): a corrupt one is ERR_DECOMPRESS naming it, and none of its rows stay', async () => {
    const dir = await tmp();
    const { manifest: m } = await exportTables({ topology: topo(src), tables: ['items'], to: dir, segmentSize: CAP, compress: 'gzip', extension: true, threads: false });
    await rm(join(dir, 'manifest.json'));
    const victim = m.objects.find((o) => o.node === 'dn1' && o.segment === 1)!;
    const bytes = await readFile(join(dir, victim.key));
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    bytes[Math.floor(bytes.length / 2) + 7]! ^= 0xff;
    await writeFile(join(dir, victim.key), bytes);
    // One destination server, through which every bare object loads.
    await dst[0]!.query('TRUNCATE items');
    const e = await importTables({ from: dir, target: dst[0]!.url(), bare: { table: 'items', format: 'text' }, concurrency: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SegferryError);
    expect((e as SegferryError).code).toBe('ERR_DECOMPRESS');
    expect((e as SegferryError).message).toContain(victim.key);
    const loaded = await dst[0]!.query<{ k: string; rows: string }>("SELECT object_key AS k, rows::text FROM segferry.loads WHERE import_id LIKE 'bare:%'");
    expect(loaded.map((r) => r.k)).not.toContain(victim.key);
    // Exactly the rows of the objects the ledger records, none of the corrupt one's.
    const n = Number((await dst[0]!.query<{ n: string }>('SELECT count(*)::text AS n FROM items'))[0]!.n);
    expect(n).toBe(loaded.reduce((a, r) => a + Number(r.rows), 0));
  });
});

describe.each([
  ['zstd', '/usr/bin/zstd', CompressionType.ZSTD],
  ['lz4', '/usr/bin/lz4', CompressionType.LZ4_FRAME],
] as const)('Arrow body compression (--arrow-compression %s)', (codec, cli, type) => {
  let dir: string;
  let m: Manifest;
  beforeAll(async () => {
    dir = await tmp();
    m = (await exportTables({ topology: topo(src), tables: ['items'], to: dir, segmentSize: 256 * 1024, format: 'arrow', arrowCompression: codec, extension: true, threads: false })).manifest;
  });

  it('every body buffer decodes with the codec\'s CLI to its length prefix; objects open in apache-arrow and round trip through import and verify', async () => {
    expect(m.arrowCompression).toBe(codec);
    await expectSchemaValid(m);
    const plainDir = await tmp();
    const plain = (await exportTables({ topology: topo(src), tables: ['items'], to: plainDir, segmentSize: 256 * 1024, format: 'arrow', threads: false })).manifest;
    const bytes = (x: Manifest) => x.objects.reduce((a, o) => a + o.bytes, 0);
    expect(bytes(m)).toBeLessThan(bytes(plain) * 0.8);
    await registerArrowCodecs();
    let rows = 0;
    for (const o of m.objects) {
      expect(o.key).toMatch(/^items_dn[12]_segment\.\d+\.arrow$/);
      expect(o.bytes).toBeLessThanOrEqual(256 * 1024);
      const file = await readFile(join(dir, o.key));
      expect(bodyBuffers(file).every((b) => b.type === type)).toBe(true);
      expect(checkBodiesWithCli(file, cli)).toBeGreaterThan(0);
      const t = tableFromIPC(file);
      expect(t.numRows).toBe(o.rows);
      rows += t.numRows;
    }
    expect(rows).toBe(ROWS);
    const imp = await importTables({ from: dir, topology: topo(dst), truncate: true, verify: true });
    expect(imp.verify?.ok).toBe(true);
    const back = await clusterRows(dst);
    expect(sameMultiset(back, srcRows), describeMultisetDiff(back, srcRows)).toBe(true);
  });

  if (!HAS_PYARROW) console.warn(PYARROW_SKIP);
  it.skipIf(!HAS_PYARROW)('pyarrow opens every object and counts the manifest\'s rows', () => {
    const script = 'import sys, pyarrow.ipc as ipc\nfor p in sys.argv[1:]:\n    t = ipc.open_file(p).read_all(); t.validate(full=True); print(t.num_rows)';
    const r = spawnSync('python3', ['-c', script, ...m.objects.map((o) => join(dir, o.key))], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').map(Number)).toEqual(m.objects.map((o) => o.rows));
  });
});

describe('keys with extensions are owned like plain ones', () => {
  it('--overwrite replaces a .txt.gz export with a .txt.zst one; cleanup finds nothing left; a foreign tail is left alone', async () => {
    const dir = await tmp();
    const first = (await exportTables({ topology: topo(src), tables: ['items'], to: dir, segmentSize: CAP, compress: 'gzip', extension: true, threads: false })).manifest;
    // A look-alike another job wrote: not a segment key of ours (unknown tail), never deleted.
    await writeFile(join(dir, 'items_dn1_segment.0.txt.gz.bak'), 'x');
    // A leftover partial upload of a unit of this export: ours.
    await writeFile(join(dir, 'items_dn2_segment.99.txt.gz.segferry-partial-00aa11bb22cc'), 'x');
    const again = await exportTables({ topology: topo(src), tables: ['items'], to: dir, segmentSize: CAP, compress: 'zstd', extension: true, overwrite: true, threads: false });
    const files = await readdir(dir);
    for (const o of first.objects) expect(files).not.toContain(o.key);
    expect(files).not.toContain('items_dn2_segment.99.txt.gz.segferry-partial-00aa11bb22cc');
    expect(files).toContain('items_dn1_segment.0.txt.gz.bak');
    expect(again.manifest.objects.every((o) => o.key.endsWith('.txt.zst'))).toBe(true);
    expect(files.filter((f) => f.endsWith('.txt.zst')).sort()).toEqual(again.manifest.objects.map((o) => o.key).sort());
    const c = await cleanup({ location: dir });
    expect(c.objects).toEqual([]);
  });

  it('the CLI: export --compress zstd --extension, then import and verify', async () => {
    const dir = await tmp();
    const topoFile = join(dir, '..', `${dir.split('/').pop()}-topo.json`);
    const dstFile = join(dir, '..', `${dir.split('/').pop()}-dst.json`);
    await writeFile(topoFile, JSON.stringify(topo(src)));
    await writeFile(dstFile, JSON.stringify(topo(dst)));
    const run = (args: string[]) => spawnSync(process.execPath, ['bin/segferry.js', ...args], { encoding: 'utf8' });
    const out = join(dir, 'x');
    let r = run(['export', '--topology', topoFile, '--table', 'items', '--to', out, '--compress', 'zstd', '--extension', '--segment-size', '16KiB', '--threads', 'off', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.compression).toBe('zstd');
    expect(m.objects.every((o) => /\.txt\.zst$/.test(o.key) && o.bytes <= CAP)).toBe(true);
    r = run(['import', '--from', out, '--topology', dstFile, '--truncate', '--verify', '-q']);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    r = run(['export', '--topology', topoFile, '--table', 'items', '--to', join(dir, 'y'), '--compress', 'lz4']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('ERR_INVALID_OPTION');
    await rm(topoFile);
    await rm(dstFile);
  });
});
