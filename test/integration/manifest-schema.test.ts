/**
 * docs/manifest.schema.json describes the manifests segferry really writes: real exports
 * (fdw and static topologies, text and csv, with and without a filter) are validated against
 * it, and broken manifests are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { exportTables, MANIFEST_VERSION, type Manifest } from '../../lib/index.js';
import { startFdwCluster, startStaticCluster, type SourceCluster } from '../helpers/fixtures.js';
import { ROOT } from '../helpers/cli.js';

const ROWS = 20_000;
const CAP = 256 * 1024;

// ajv-formats is CommonJS; its default export arrives as the module or as `.default`.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;

let fdw: SourceCluster;
let stat: SourceCluster;
let validate: ReturnType<Ajv2020['compile']>;
const dirs: string[] = [];

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sf-schema-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  const schema = JSON.parse(await readFile(join(ROOT, 'docs', 'manifest.schema.json'), 'utf8')) as Record<string, unknown>;
  // strictRequired would refuse `required` inside if/then branches, which is plain 2020-12.
  const ajv = addFormats(new Ajv2020({ allErrors: true, strict: true, strictRequired: false }));
  validate = ajv.compile(schema);
  [fdw, stat] = await Promise.all([startFdwCluster({ rows: ROWS }), startStaticCluster({ rows: ROWS })]);
});

afterAll(async () => {
  await Promise.allSettled([fdw?.destroy(), stat?.destroy()]);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function errorsOf(m: unknown): string {
  return validate(m) ? '' : JSON.stringify(validate.errors, null, 2);
}

async function manifestOf(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

describe('docs/manifest.schema.json', () => {
  const written: Manifest[] = [];

  it('accepts an fdw export in text (distributed + replicated tables)', async () => {
    const dir = await tmp();
    await exportTables({
      source: fdw.coordinator.url(fdw.database), tables: [fdw.distributed, fdw.replicated], replicated: [fdw.replicated], to: dir, segmentSize: CAP,
    });
    const m = await manifestOf(dir);
    expect(m.version).toBe(MANIFEST_VERSION);
    expect(m.objects.length).toBeGreaterThan(3);
    expect(errorsOf(m)).toBe('');
    written.push(m);
  });

  it('accepts an fdw export in csv with a header and a filter, and without checksums', async () => {
    const dir = await tmp();
    await exportTables({
      source: fdw.coordinator.url(fdw.database), tables: [fdw.distributed], to: dir, segmentSize: CAP,
      format: { kind: 'csv', header: true }, where: 'id % 2 = 0', checksums: false,
    });
    const m = await manifestOf(dir);
    expect(m.format.kind).toBe('csv');
    expect(m.tables[0]!.filter).toBe('id % 2 = 0');
    expect(m.tables[0]!.checksum).toBeUndefined();
    expect(errorsOf(m)).toBe('');
  });

  it('accepts a static-topology export, with SHA-256 object digests', async () => {
    const dir = await tmp();
    await exportTables({ topology: stat.staticTopology(), tables: [stat.distributed, stat.replicated], to: dir, segmentSize: CAP, objectChecksum: 'sha256' });
    const m = await manifestOf(dir);
    expect(m.source.topology).toBe('static');
    expect(m.objects.every((o) => o.sha256 !== undefined && o.crc32 === undefined)).toBe(true);
    expect(errorsOf(m)).toBe('');
  });

  it('accepts an encrypted export (client-side, key file)', async () => {
    const dir = await tmp();
    const key = join(dir, 'key');
    await writeFile(key, randomBytes(32));
    const to = join(dir, 'export');
    await exportTables({ topology: stat.staticTopology(), tables: [stat.distributed], to, segmentSize: CAP, encrypt: { keyFile: key } });
    const m = await manifestOf(to);
    expect(m.clientEncryption?.keySource).toBe('key-file');
    expect(errorsOf(m)).toBe('');
  });

  it('refuses manifests that break the format', () => {
    const good = written[0]!;
    const bad = (f: (m: Record<string, any>) => void): Record<string, any> => {
      const m = structuredClone(good) as unknown as Record<string, any>;
      f(m);
      return m;
    };
    expect(errorsOf(good)).toBe('');
    expect(errorsOf(bad((m) => { m.version = 2; }))).toContain('const');
    // Exactly one digest (the default export's is crc32), well formed.
    expect(good.objects[0]!.crc32).toMatch(/^[0-9a-f]{8}$/);
    expect(errorsOf(bad((m) => { delete m.objects[0].crc32; }))).toContain('oneOf');
    expect(errorsOf(bad((m) => { m.objects[0].sha256 = 'ab'.repeat(32); }))).toContain('oneOf');
    expect(errorsOf(bad((m) => { m.objects[0].crc32 = 'XYZ'; }))).toContain('pattern');
    expect(errorsOf(bad((m) => { m.objects[0].crc32 = 'cbf439260'; }))).toContain('pattern');
    expect(errorsOf(bad((m) => { delete m.objects[0].crc32; m.objects[0].sha256 = 'XYZ'; }))).toContain('pattern');
    expect(errorsOf(bad((m) => { m.objects[0].key = 'a/b_dn1_segment.0'; }))).toContain('pattern');
    expect(errorsOf(bad((m) => { m.tables[0].checksum = { rows: 1, sum: '-5' }; }))).toContain('pattern');
    // A copy-rowhash64 sum is below 2^64; an md5 sum (no algorithm, earlier versions) may exceed it.
    expect(good.tables[0]!.checksum?.algorithm).toBe('copy-rowhash64');
    expect(errorsOf(bad((m) => { m.tables[0].checksum.sum = '123456789012345678901'; }))).toContain('maxLength');
    expect(errorsOf(bad((m) => { m.tables[0].checksum = { rows: 1, sum: '123456789012345678901' }; }))).toBe('');
    expect(errorsOf(bad((m) => { m.tables[0].checksum.algorithm = 'md5'; }))).toContain('enum');
    expect(errorsOf(bad((m) => { m.format = { kind: 'text', delimiter: '\t', null: '\\N', header: true }; }))).not.toBe('');
    // No room for a password anywhere in the node locations.
    expect(errorsOf(bad((m) => { m.source.nodes[0].password = 'x'; }))).toContain('unevaluated');
    expect(errorsOf(bad((m) => { m.source.coordinator = { host: 'h', port: 5432, database: 'd', user: 'u', password: 'x' }; }))).toContain('unevaluated');
    expect(errorsOf(bad((m) => { m.extra = 1; }))).toContain('additional');
  });
});
