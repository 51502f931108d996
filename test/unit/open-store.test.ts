import { describe, expect, it } from 'vitest';
import { openStore } from '../../lib/store/open.js';
import { DirectoryStore } from '../../lib/store/dir.js';
import { InvalidOptionError } from '../../lib/errors.js';

describe('openStore: file URLs', () => {
  it('file://relative is a usage error naming the fix, not an internal error', () => {
    let err: unknown;
    try { openStore('file://relative/dir'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).hint).toMatch(/file:\/\/\/absolute/);
    expect(() => openStore('file://')).toThrow(InvalidOptionError);
  });
  it('file:///absolute and file://localhost/absolute open a directory', () => {
    expect(openStore('file:///tmp/sf-x')).toBeInstanceOf(DirectoryStore);
    expect(openStore('file://localhost/tmp/sf-x')).toBeInstanceOf(DirectoryStore);
  });
});
