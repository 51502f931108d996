/**
 * `copy --via` with compressed objects (issue 16): the staged objects are stored as `export
 * --compress / --extension / --arrow-compression` stores them, each decompresses alone with the
 * standard tool, the loaders decompress them into the destination, and the prefix imports
 * elsewhere. A direct copy refuses these options. Three single servers: source, destination, and
 * a third that imports the staging prefix. And a compressed copy killed (SIGKILL) mid-way and
 * run again, from a two-node static source (the source server and a fourth).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyTables, importTables, planCopy, SegferryError, type CopyOptions, type Manifest } from '../../lib/index.js';
import { COPY_CHUNK_BYTES } from '../../lib/pg/copy-out.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { describeMultisetDiff, mergeMultisets, rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { killWhenReady, stallExport } from '../helpers/kill.js';

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
  await fillItems(src, 1, ROWS);
  await dst.query(DDL);
  srcRows = await rowMultiset(src, 'SELECT * FROM items');
  dir = await mkdtemp(join(tmpdir(), 'sf-copy-via-z-'));
}, 120_000);

/** `items` created on `server` with rows `from`..`to`. */
async function fillItems(server: PgServer, from: number, to: number): Promise<void> {
  await server.query(DDL);
  // Text that compresses but not to nothing: a tab, a backslash and a newline in some values.
  await server.query(`INSERT INTO items SELECT g, 'item ' || g || CASE WHEN g % 7 = 0 THEN E'\\t\\\\\\n' ELSE '' END, md5(g::text), g * 1.25,
    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(${from}, ${to}) g`);
}

afterAll(async () => {
  await Promise.allSettled([src, dst, third].filter(Boolean).map((s) => s.destroy()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The destination (or `server`) holds exactly the source's rows (or `want`), order-free. */
async function expectRows(server: PgServer, want = srcRows): Promise<void> {
  const b = await rowMultiset(server, 'SELECT * FROM items');
  expect(sameMultiset(want, b), describeMultisetDiff(want, b)).toBe(true);
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

/** Every object of the manifest (`total` rows in all): within the cap, compressed with `codec`, and decompressed alone by the tool into whole rows. */
async function expectObjects(via: string, codec: 'gzip' | 'zstd', csv = false, total = ROWS): Promise<Manifest> {
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
  expect(rows).toBe(total);
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

describe('copy --via --compress zstd, the process killed', () => {
  // A second source node: with one exporter per node, dn1's unit is exported and loaded while
  // dn2's is held mid-way (one node would run its units one after the other). dn2 holds more
  // than 2 MiB of rows: the exporter takes rows from COPY a MiB at a time (COPY_CHUNK_BYTES), so
  // objects of a held unit appear only once a MiB has come before the hold.
  const DN2_ROWS = 5 * ROWS;
  let dn2: PgServer;
  let topo: string;
  beforeAll(async () => {
    [dn2] = await startServers(['cvz-dn2']) as [PgServer];
    await fillItems(dn2, ROWS + 1, ROWS + DN2_ROWS);
    topo = join(dir, 'src2.json');
    await writeFile(topo, JSON.stringify({ nodes: [{ name: 'dn1', url: src.url() }, { name: 'dn2', url: dn2.url() }], replicated: [] }));
  }, 60_000);
  afterAll(async () => { await dn2?.destroy(); });

  it('SIGKILL with one unit loaded, the other half exported: the rerun exits 0, every row once, every staged object decompresses alone', async () => {
    const via = join(dir, 'zstd-kill');
    await dst.query('TRUNCATE items; DROP SCHEMA IF EXISTS segferry CASCADE');
    // The hold: dn2's first row after 1.5 MiB of row text.
    const [{ at }] = await dn2.query<{ at: string }>(`SELECT ctid::text AS at FROM (SELECT ctid, sum(octet_length(items::text)) OVER (ORDER BY ctid) AS s FROM items) x
      WHERE s > ${1.5 * COPY_CHUNK_BYTES} ORDER BY ctid LIMIT 1`) as [{ at: string }];
    const stall = await stallExport(dn2, at);
    const args = ['copy', '--source', topo, '--target', dst.url(), '--table', 'items', '--via', via, '--compress', 'zstd', '--segment-size', `${CAP / 1024}KiB`, '--where', stall.where];
    const committed = async () => Number((await dst.query<{ c: string }>(`SELECT count(*)::text AS c FROM segferry.loads WHERE object_key LIKE 'items_dn1_%'`).catch(() => [{ c: '0' }]))[0]!.c);
    const stored = async (stem: string) => (await readdir(via).catch(() => [] as string[])).filter((k) => k.startsWith(stem) && /segment\.\d+$/.test(k));
    const checkpoint = async () => (JSON.parse(await readFile(join(via, 'segferry-checkpoint.json'), 'utf8')) as { units: { unit?: string }[] }).units.map((u) => u.unit);
    let unitsAtKill: unknown;
    // Ready: dn1's unit committed at the destination (its ledger rows) and some of dn2's objects stored.
    const killed = await killWhenReady(args, async () => (await committed()) > 0 && (await stored('items_dn2_')).length > 0, {
      before: async () => { unitsAtKill = await checkpoint(); },
    }).finally(() => stall.release());
    expect(killed.ready, killed.result.stderr).toBe(true);
    expect(killed.result.signal).toBe('SIGKILL');
    // Only dn1's unit recorded; dn2's objects stored but not recorded (the hold outlasts the
    // test: nothing changes between the look and the kill); no manifest.
    expect(unitsAtKill).toEqual(['items_dn1']);
    expect(await readdir(via)).not.toContain('manifest.json');
    // Exactly dn1's rows committed at the destination, nothing of dn2's unit.
    await expectRows(dst, srcRows);

    const again = await runCli([...args, '--verify', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const segs = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; phase?: string; key?: string; skipped?: boolean }).filter((e) => e.type === 'segment');
    const stems = (f: (e: (typeof segs)[number]) => boolean) => new Set(segs.filter(f).map((e) => e.key!.replace(/segment\.\d+$/, '')));
    // Only dn2's unit is exported again; dn1's objects are found in the ledger, not loaded again.
    expect(stems((e) => e.phase === 'export')).toEqual(new Set(['items_dn2_']));
    expect(stems((e) => e.phase === 'import' && e.skipped === true)).toEqual(new Set(['items_dn1_']));
    expect(stems((e) => e.phase === 'import' && !e.skipped)).toEqual(new Set(['items_dn2_']));
    // Every source row exactly once (the multisets count duplicates).
    await expectRows(dst, mergeMultisets(srcRows, await rowMultiset(dn2, 'SELECT * FROM items')));
    expect(Number((await dst.query<{ c: string }>('SELECT count(*)::text AS c FROM items'))[0]!.c)).toBe(ROWS + DN2_ROWS);
    // The prefix is a complete export: exactly the manifest's objects (nothing left of the killed
    // run), each decompressing alone into whole rows, and the manifest's counts equal.
    const m = await expectObjects(via, 'zstd', false, ROWS + DN2_ROWS);
    expect((await readdir(via)).filter((k) => k !== 'manifest.json').sort()).toEqual(m.objects.map((o) => o.key).sort());
    expect(m.tables.map((t) => [t.name, t.rows, t.nodes.map((n) => [n.node, n.rows])])).toEqual([['items', ROWS + DN2_ROWS, [['dn1', ROWS], ['dn2', DN2_ROWS]]]]);
    for (const [n, rows] of [['dn1', ROWS], ['dn2', DN2_ROWS]] as const) expect(m.objects.filter((o) => o.node === n).reduce((a, o) => a + o.rows, 0)).toBe(rows);
  }, 60_000);
});
