import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AbortedError } from '../../lib/errors.js';
import { DirectoryStore } from '../../lib/store/dir.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function store(): Promise<DirectoryStore> {
  const d = await mkdtemp(join(tmpdir(), 'segferry-unit-'));
  dirs.push(d);
  const s = new DirectoryStore(d);
  await s.check();
  return s;
}

describe('DirectoryStore writer signal', () => {
  it('an abort cuts short a write waiting for drain; abort() then leaves no file, partial included', async () => {
    const s = await store();
    const ac = new AbortController();
    const w = s.createWriter('t_dn1_segment.0', { signal: ac.signal });
    // Larger than the stream's 1 MiB mark: the write waits for 'drain'.
    const pending = w.write(Buffer.alloc(8 << 20, 1));
    const err = new AbortedError('stop');
    await new Promise((r) => setImmediate(r));
    ac.abort(err);
    await expect(pending).rejects.toBe(err);
    await expect(w.write(Buffer.from('x'))).rejects.toBe(err);
    await w.abort();
    expect(await readdir(s.root)).toEqual([]);
  });

  it('a signal aborted before the first write stores nothing', async () => {
    const s = await store();
    const ac = new AbortController();
    ac.abort(new AbortedError());
    const w = s.createWriter('k', { signal: ac.signal });
    await expect(w.write(Buffer.from('x'))).rejects.toBe(ac.signal.reason);
    await w.abort();
    expect(await readdir(s.root)).toEqual([]);
  });

  it('finish after an abort fails and stores nothing', async () => {
    const s = await store();
    const ac = new AbortController();
    const w = s.createWriter('k', { signal: ac.signal });
    await w.write(Buffer.from('abc'));
    ac.abort(new AbortedError());
    await expect(w.finish()).rejects.toBe(ac.signal.reason);
    await w.abort();
    expect(await readdir(s.root)).toEqual([]);
  });

  it('without an abort the object appears under its key on finish only', async () => {
    const s = await store();
    const w = s.createWriter('k', { signal: new AbortController().signal });
    await w.write(Buffer.from('abc'));
    expect(await s.head('k')).toBeUndefined();
    await w.finish();
    expect(await readdir(s.root)).toEqual(['k']);
    expect((await s.getBytes('k'))!.toString()).toBe('abc');
  });
});
