import { describe, expect, it } from 'vitest';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryStore } from '../../lib/store/dir.js';

// Parts of one plan write under one directory at once (docs/multi-host.md): one lists the
// folder while another renames its partial uploads into place. A file gone between the folder
// read and its stat is not an error: it was renamed (its new name is listed by a later list) or deleted.
describe('directory store: list while another writer renames files', () => {
  it('never fails with ENOENT, and lists only files that exist', async () => {
    const base = await mkdtemp(join(tmpdir(), 'sf-list-race-'));
    try {
      const store = new DirectoryStore(base);
      const N = 400;
      await Promise.all(Array.from({ length: N }, (_, i) => writeFile(join(base, `t_dn1_segment.${i}.segferry-partial-00000000000${i % 10}`), 'x')));
      const renames = (async () => {
        for (let i = 0; i < N; i++) await rename(join(base, `t_dn1_segment.${i}.segferry-partial-00000000000${i % 10}`), join(base, `t_dn1_segment.${i}`));
      })();
      const lists: number[] = [];
      try {
        for (let k = 0; k < 20; k++) {
          let n = 0;
          for await (const o of store.list('')) {
            expect(o.size).toBe(1);
            n++;
          }
          lists.push(n);
        }
      } finally {
        await renames;
      }
      // Every list saw each file under one of its names at most once.
      for (const n of lists) expect(n).toBeLessThanOrEqual(N);
      const keys: string[] = [];
      for await (const o of store.list('')) keys.push(o.key);
      expect(keys.length).toBe(N);
      expect(keys.every((k) => !k.includes('partial'))).toBe(true);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
