import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryStore } from '../../lib/store/dir.js';
import { exportTables } from '../../lib/index.js';

// A failed run leaves no empty folder of its own; it never removes one it found, or a non-empty one.
describe('directory store: the root a run created', () => {
  it('removeRootIfEmpty removes only a folder check() created, and only while it is empty', async () => {
    const base = await mkdtemp(join(tmpdir(), 'sf-root-'));
    try {
      const fresh = new DirectoryStore(join(base, 'new'));
      await fresh.check();
      expect(existsSync(join(base, 'new'))).toBe(true);
      await fresh.removeRootIfEmpty();
      expect(existsSync(join(base, 'new'))).toBe(false);

      await mkdir(join(base, 'old'));
      const old = new DirectoryStore(join(base, 'old'));
      await old.check();
      await old.removeRootIfEmpty();
      expect(existsSync(join(base, 'old'))).toBe(true);

      const busy = new DirectoryStore(join(base, 'busy'));
      await busy.check();
      await writeFile(join(base, 'busy', 'someone-elses.txt'), 'x');
      await busy.removeRootIfEmpty();
      expect(existsSync(join(base, 'busy', 'someone-elses.txt'))).toBe(true);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  it('an export that fails at planning leaves no folder behind', async () => {
    const base = await mkdtemp(join(tmpdir(), 'sf-root-'));
    try {
      const to = join(base, 'export');
      // Nothing listens on port 1: planning fails with a typed connection error.
      const err = await exportTables({ topology: { nodes: [{ name: 'dn1', url: 'postgres://u@127.0.0.1:1/db' }] }, tables: ['t'], to })
        .then(() => undefined, (e: unknown) => e as { code?: string });
      expect(err?.code).toBe('ERR_CONNECT');
      expect(existsSync(to)).toBe(false);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
