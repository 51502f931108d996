// Object checksums (issues 16/17): an export records CRC-32 of each object by default and
// SHA-256 with --object-checksum sha256; both import and verify, a flipped byte is refused on
// import with ERR_CHECKSUM_MISMATCH under either, and a resume keeps the algorithm it began with.
// One source and one destination server, a small cap so the table spans several objects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportTables, importTables, planExport, SegferryError, verifyImport, type Manifest } from '../../lib/index.js';
import { startExport } from '../../lib/export/resume.js';
import { DirectoryStore } from '../../lib/store/dir.js';
import { startServers, type PgServer } from '../helpers/pg.js';
import { rowMultiset, sameMultiset } from '../helpers/fixtures.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { crc32Hex, sha256Hex } from '../helpers/digest.js';

const CAP = 16 * 1024;
const ROWS = 4000;

let src: PgServer;
let dst: PgServer;
let base: string;
const exports: Record<'crc32' | 'sha256', { dir: string; manifest: Manifest }> = {} as never;

beforeAll(async () => {
  ensureBuilt();
  [src, dst] = await startServers(['src', 'dst']);
  const ddl = 'CREATE TABLE items (id int PRIMARY KEY, note text, amount numeric(12,2))';
  await src.query(ddl);
  await src.query(`INSERT INTO items SELECT g, 'note ' || g || repeat('x', g % 40), g * 1.25 FROM generate_series(1, ${ROWS}) g`);
  await dst.query(ddl);
  base = await mkdtemp(join(tmpdir(), 'sf-objsum-'));
  // The default, then SHA-256 on request, through the CLI.
  for (const [name, flags] of [['crc32', []], ['sha256', ['--object-checksum', 'sha256']]] as const) {
    const dir = join(base, name);
    const r = await runCli(['export', '--source', src.url(), '--table', 'items', '--to', dir, '--segment-size', String(CAP), ...flags]);
    expect(r.code, r.stderr).toBe(0);
    exports[name] = { dir, manifest: JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest };
  }
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([src?.destroy(), dst?.destroy()]);
  if (base) await rm(base, { recursive: true, force: true });
});

describe('object checksums', () => {
  it('the default records CRC-32 of every stored object; --object-checksum sha256 records SHA-256 of the same bytes', async () => {
    const a = exports.crc32;
    const b = exports.sha256;
    expect(a.manifest.objects.length).toBeGreaterThan(3);
    for (const o of a.manifest.objects) {
      const body = await readFile(join(a.dir, o.key));
      expect(o.crc32, o.key).toBe(crc32Hex(body));
      expect(o.crc32).toMatch(/^[0-9a-f]{8}$/);
      expect('sha256' in o, o.key).toBe(false);
    }
    for (const o of b.manifest.objects) {
      const body = await readFile(join(b.dir, o.key));
      expect(o.sha256, o.key).toBe(sha256Hex(body));
      expect('crc32' in o, o.key).toBe(false);
    }
    // The objects themselves do not depend on the algorithm: same keys, sizes and rows.
    const shape = (m: Manifest) => m.objects.map((o) => [o.key, o.bytes, o.rows]);
    expect(shape(b.manifest)).toEqual(shape(a.manifest));
    // Whatever the digest, the manifest's other fields are as before.
    expect(b.manifest.tables).toEqual(a.manifest.tables);
  });

  it('each imports and verifies, and a rerun loads nothing twice', async () => {
    const want = await rowMultiset(src, 'SELECT * FROM items');
    for (const name of ['crc32', 'sha256'] as const) {
      const { dir, manifest } = exports[name];
      const r = await importTables({ from: dir, target: dst.url(), truncate: true });
      expect(r.tables[0]!.loaded, name).toBe(manifest.objects.length);
      expect(sameMultiset(await rowMultiset(dst, 'SELECT * FROM items'), want), name).toBe(true);
      const v = await verifyImport({ from: dir, target: dst.url() });
      expect(v.ok, `${name}: ${JSON.stringify(v.tables)}`).toBe(true);
      const again = await importTables({ from: dir, target: dst.url() });
      expect(again.tables[0]!.skipped, name).toBe(manifest.objects.length);
      // The ledger records the digest: SHA-256 hex as before, CRC-32 with its name.
      const ledger = await dst.query<{ k: string; d: string }>('SELECT object_key AS k, sha256 AS d FROM segferry.loads WHERE import_id = $1 ORDER BY 1', [manifest.id]);
      const expected = manifest.objects.map((o) => ({ k: o.key, d: o.crc32 !== undefined ? `crc32:${o.crc32}` : o.sha256! })).sort((x, y) => (x.k < y.k ? -1 : 1));
      expect(ledger).toEqual(expected);
    }
  });

  it('one flipped byte is refused on import under either algorithm, nothing of that object loaded', async () => {
    for (const name of ['crc32', 'sha256'] as const) {
      const dir = join(base, `${name}-flipped`);
      await cp(exports[name].dir, dir, { recursive: true });
      const m = exports[name].manifest;
      const victim = m.objects[2]!;
      const bytes = await readFile(join(dir, victim.key));
      // A digit turned into another digit: COPY still parses the row, only the digest can tell.
      const at = bytes.findIndex((c, i) => i > bytes.length / 2 && c >= 0x30 && c <= 0x38);
      bytes[at] = bytes[at]! + 1;
      await writeFile(join(dir, victim.key), bytes);
      const e = await importTables({ from: dir, target: dst.url(), truncate: true, concurrency: 1 }).catch((x: unknown) => x);
      expect(e, name).toBeInstanceOf(SegferryError);
      expect((e as SegferryError).code, name).toBe('ERR_CHECKSUM_MISMATCH');
      expect((e as SegferryError).key).toBe(victim.key);
      expect((e as Error).message).toContain(`its ${name === 'crc32' ? `CRC-32 is ${crc32Hex(bytes)}` : `SHA-256 is ${sha256Hex(bytes)}`}, the manifest records ${victim.crc32 ?? victim.sha256}`);
      const loaded = await dst.query<{ k: string }>('SELECT object_key AS k FROM segferry.loads WHERE import_id = $1', [m.id]);
      expect(loaded.map((r) => r.k)).not.toContain(victim.key);
      // check --read-data finds it by the recorded algorithm too.
      const c = await runCli(['check', '--at', dir, '--read-data']);
      expect(c.code, c.stdout + c.stderr).toBe(3);
      expect(c.stdout).toContain(`changed     ${victim.key}  ${name}`);
    }
  });

  it('a resume keeps the algorithm its first run began with, and says so when asked for another', async () => {
    const dir = await mkdtemp(join(base, 'resume-'));
    const store = new DirectoryStore(dir);
    // An unfinished export begun with SHA-256 (as every export before the option was): its checkpoint alone.
    await startExport(store, await planExport({ source: src.url(), tables: ['items'], segmentSize: CAP, objectChecksum: 'sha256' }), false);
    const e = await exportTables({ source: src.url(), tables: ['items'], segmentSize: CAP, to: dir, resume: true }).catch((x: unknown) => x);
    expect((e as SegferryError).code).toBe('ERR_INVALID_OPTION');
    expect((e as Error).message).toMatch(/was started with sha256 object checksums, not crc32/);
    expect((e as SegferryError).hint).toMatch(/--object-checksum sha256/);
    const r = await exportTables({ source: src.url(), tables: ['items'], segmentSize: CAP, to: dir, resume: true, objectChecksum: 'sha256' });
    expect(r.manifest.objects.every((o) => o.sha256 === undefined ? false : o.crc32 === undefined)).toBe(true);
    expect((await readdir(dir)).filter((k) => k.startsWith('items_'))).toHaveLength(r.manifest.objects.length);
  });
});
