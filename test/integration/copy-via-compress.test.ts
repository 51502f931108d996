/**
 * `copy --via` with compressed objects (issue 16): the staged objects are stored as `export
 * --compress / --extension / --arrow-compression` stores them, each decompresses alone with the
 * standard tool, the loaders decompress them into the destination, and the prefix imports
 * elsewhere. A direct copy refuses these options. Three single servers: source, destination, and
 * a third that imports the staging prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyTables, importTables, planCopy, SegferryError, type CopyOptions, type Manifest } from '../../lib/index.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { describeMultisetDiff, rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';

const ROWS = 6000;
const CAP = 16 * 1024;
const DDL = 'CREATE TABLE items (id bigint PRIMARY KEY, name text, note text, price numeric(12,2), at timestamptz)';

let src: PgServer;
let dst: PgServer;
let third: PgServer;
let dir: string;
let srcRows: Map<string, number>;

beforeAll(async () => {
  ensureBuilt();
  [src, dst, third] = await startServers(['cvz-src', 'cvz-dst', 'cvz-third']) as [PgServer, PgServer, PgServer];
  await src.query(DDL);
  // Text that compresses but not to nothing: a tab, a backslash and a newline in some values.
  await src.query(`INSERT INTO items SELECT g, 'item ' || g || CASE WHEN g % 7 = 0 THEN E'\\t\\\\\\n' ELSE '' END, md5(g::text), g * 1.25,
    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, ${ROWS}) g`);
  await dst.query(DDL);
  srcRows = await rowMultiset(src, 'SELECT * FROM items');
  dir = await mkdtemp(join(tmpdir(), 'sf-copy-via-z-'));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([src, dst, third].filter(Boolean).map((s) => s.destroy()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The destination (or `server`) holds exactly the source's rows, order-free. */
async function expectRows(server: PgServer): Promise<void> {
  const b = await rowMultiset(server, 'SELECT * FROM items');
  expect(sameMultiset(srcRows, b), describeMultisetDiff(srcRows, b)).toBe(true);
}

/** The standard tool's output for one stored object. */
function tool(codec: 'gzip' | 'zstd', file: string): Buffer {
  const r = spawnSync(codec === 'gzip' ? '/usr/bin/gzip' : '/usr/bin/zstd', ['-dc', file], { maxBuffer: 1 << 26 });
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

/** Rows of COPY TEXT (a raw newline ends a row) or CSV (a newline outside quotes; `""` toggles twice). */
function countRows(b: Buffer, csv: boolean): number {
  let n = 0;
  let quoted = false;
  for (const c of b) {
    if (csv && c === 0x22) quoted = !quoted;
    else if (c === 0x0a && !quoted) n++;
  }
  return n;
}

/** Every object of the manifest: within the cap, compressed with `codec`, and decompressed alone by the tool into whole rows. */
async function expectObjects(via: string, codec: 'gzip' | 'zstd', csv = false): Promise<Manifest> {
  const m = JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest;
  expect(m.objects.length).toBeGreaterThan(3);
  expect((await readdir(via)).filter((k) => k.startsWith('items_')).sort()).toEqual(m.objects.map((o) => o.key).sort());
  let rows = 0;
  for (const o of m.objects) {
    expect(o.compression).toBe(codec);
    expect(o.bytes).toBeLessThanOrEqual(CAP);
    const text = tool(codec, join(via, o.key));
    expect(text.length).toBeGreaterThan(o.bytes);
    expect(text[text.length - 1]).toBe(0x0a);
    expect(countRows(text, csv)).toBe(o.rows);
    rows += o.rows;
  }
  expect(rows).toBe(ROWS);
  return m;
}

/** A library copy of items through `dir/name` (truncating the destination first): its rows all copied, its manifest, and the destination's rows equal. */
async function stagedCopy(name: string, o: Partial<CopyOptions>): Promise<{ via: string; m: Manifest }> {
  const via = join(dir, name);
  const res = await copyTables({ source: src.url(), target: dst.url(), tables: ['items'], via, segmentSize: CAP, truncate: true, ...o });
  expect(res.rows).toBe(ROWS);
  await expectRows(dst);
  return { via, m: JSON.parse(await readFile(join(via, 'manifest.json'), 'utf8')) as Manifest };
}

describe('copy --via with compressed objects', () => {
  it('--compress zstd (CLI): objects decompress alone with zstd -dc, rows equal, and the prefix imports into another server', async () => {
    const via = join(dir, 'zstd');
    const r = await runCli(['copy', '--source', src.url(), '--target', dst.url(), '--table', 'items', '--via', via, '--compress', 'zstd', '--segment-size', `${CAP / 1024}KiB`, '--verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const m = await expectObjects(via, 'zstd');
    expect(m.objects.every((o) => /^items_[^.]+_segment\.\d+$/.test(o.key))).toBe(true);
    await expectRows(dst);
    const im = await importTables({ from: via, target: third.url(), create: true, verify: true });
    expect(im.verify?.ok).toBe(true);
    expect(im.loaded).toBe(m.objects.length);
    await expectRows(third);
  }, 60_000);

  it('--compress gzip --extension, csv (library): keys end in .csv.gz, each gunzips alone, rows equal', async () => {
    const { via, m } = await stagedCopy('gzip', { format: 'csv', compress: 'gzip', extension: true });
    await expectObjects(via, 'gzip', true);
    expect(m.objects.every((o) => o.key.endsWith('.csv.gz'))).toBe(true);
  }, 60_000);

  it('--format binary --compress zstd (library): COPY BINARY objects compressed, rows equal', async () => {
    const { via, m } = await stagedCopy('binary', { format: 'binary', compress: 'zstd', extension: true });
    expect(m.objects.length).toBeGreaterThan(3);
    for (const o of m.objects) {
      expect([o.compression, o.key.endsWith('.bin.zst')]).toEqual(['zstd', true]);
      // Each object alone is a whole COPY BINARY stream: its signature, and the -1 trailer at the end.
      const b = tool('zstd', join(via, o.key));
      expect([b.subarray(0, 11).toString('latin1'), b.readInt16BE(b.length - 2)]).toEqual(['PGCOPY\n\xff\r\n\0', -1]);
    }
  }, 60_000);

  it('--format arrow --arrow-compression zstd (library): the manifest records the body codec, rows equal', async () => {
    const { m } = await stagedCopy('arrow', { format: 'arrow', arrowCompression: 'zstd', extension: true, segmentSize: 64 * 1024 });
    expect(m.arrowCompression).toBe('zstd');
    expect(m.objects.every((o) => o.key.endsWith('.arrow'))).toBe(true);
  }, 60_000);

  it('a direct copy refuses them (CLI and library), and --compress with arrow is refused as export refuses it', async () => {
    for (const flags of [['--compress', 'zstd'], ['--extension'], ['--arrow-compression', 'lz4']]) {
      const r = await runCli(['copy', '--source', src.url(), '--target', dst.url(), '--table', 'items', ...flags]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('ERR_INVALID_OPTION');
      expect(r.stderr).toContain('--via');
    }
    const direct = await planCopy({ source: src.url(), target: dst.url(), tables: ['items'], compress: 'gzip' }).catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(SegferryError);
    expect([(direct as SegferryError).code, (direct as Error).message]).toEqual(['ERR_INVALID_OPTION', expect.stringContaining('compress gzip')]);
    const arrow = await planCopy({ source: src.url(), target: dst.url(), tables: ['items'], via: join(dir, 'never'), format: 'arrow', compress: 'zstd' }).catch((e: unknown) => e);
    expect([(arrow as SegferryError).code, (arrow as Error).message]).toEqual(['ERR_INVALID_OPTION', expect.stringContaining('--compress applies to text, csv and binary')]);
  }, 60_000);
});
