import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestMissingError } from '../../lib/errors.js';
import { readManifest } from '../../lib/manifest/io.js';
import { DirectoryStore } from '../../lib/store/dir.js';

const dirs: string[] = [];
const dir = () => { const d = mkdtempSync(join(tmpdir(), 'sf-nomanifest-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

async function failure(root: string): Promise<ManifestMissingError> {
  const store = new DirectoryStore(root);
  try { await readManifest(store); } catch (e) { return e as ManifestMissingError; } finally { store.close(); }
  throw new Error('readManifest did not fail');
}

describe('no manifest: an interrupted export is named as one', () => {
  it('a checkpoint without a manifest: ERR_MANIFEST_MISSING saying the export did not finish, hint --resume', async () => {
    const d = dir();
    writeFileSync(join(d, 'segferry-checkpoint.json'), '{}');
    const e = await failure(d);
    expect(e).toBeInstanceOf(ManifestMissingError);
    expect(e.code).toBe('ERR_MANIFEST_MISSING');
    expect(e.message).toMatch(/did not finish \(its segferry-checkpoint\.json is there\)/);
    expect(e.hint).toMatch(/--resume/);
  });

  it('an empty location: the general message and hint, no --resume', async () => {
    const e = await failure(dir());
    expect(e).toBeInstanceOf(ManifestMissingError);
    expect(e.hint).not.toMatch(/--resume/);
  });
});
