import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { DirectoryStore, type Manifest } from '../../lib/index.js';

// What the streams tests (test/integration/streams.test.ts, range-queue.test.ts) share: reading a
// TEXT export of one server back, checking its segment numbers, and a store to act at a known point.

const KEY = /^(.+)_coordinator_segment\.(\d+)$/;

/**
 * Create `items (id, payload)` with `rows` rows (payload: md5 of the id and `id % pad` times
 * `fill`) on a server, and return its rows as the lines a TEXT export gives, sorted.
 */
export async function itemsTable(server: { query<R>(sql: string): Promise<R[]> }, rows: number, fill: string, pad: number): Promise<string[]> {
  await server.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT g, md5(g::text) || repeat('${fill}', g % ${pad}) FROM generate_series(1, ${rows}) g;
    ANALYZE`);
  const lines = await server.query<{ line: string }>(`SELECT concat_ws(E'\\t', id::text, payload) AS line FROM items`);
  return lines.map((r) => r.line).sort();
}

/** Every row in the export's objects as lines, sorted, and the manifest (each object's row count checked). */
export async function exported(dir: string): Promise<{ lines: string[]; manifest: Manifest }> {
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const lines: string[] = [];
  for (const o of manifest.objects) {
    const text = await readFile(join(dir, o.key), 'utf8');
    const ls = text.split('\n');
    expect(ls.pop()).toBe('');
    expect(ls.length).toBe(o.rows);
    lines.push(...ls);
  }
  return { lines: lines.sort(), manifest };
}

/** Segment numbers per (table, node) are 0..n-1 and match the keys. */
export function expectContiguous(m: Manifest): void {
  const nums = m.objects.map((o) => {
    const k = KEY.exec(o.key);
    expect(k).not.toBeNull();
    expect(Number(k![2])).toBe(o.segment);
    return o.segment;
  }).sort((a, b) => a - b);
  expect(nums).toEqual(nums.map((_, i) => i));
}

/** A directory store whose object writes first wait for `gate(key)` (to act at a known point of an export). */
export function gatedStore(dir: string, gate: (key: string) => Promise<unknown>): DirectoryStore {
  return new Proxy(new DirectoryStore(dir), {
    get(t, p) {
      if (p === 'createWriter') {
        return (key: string, o?: { signal?: AbortSignal }) => {
          const w = t.createWriter(key, o);
          return { write: async (c: Buffer) => { await gate(key); return w.write(c); }, finish: () => w.finish(), abort: () => w.abort() };
        };
      }
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** A resumed export: every source row once, numbers contiguous, and the objects the resume kept unchanged. */
export async function expectResumed(dir: string, source: readonly string[], kept: readonly { key: string; crc32?: string }[]): Promise<Manifest> {
  const { lines, manifest } = await exported(dir);
  expect(lines).toEqual(source);
  expectContiguous(manifest);
  // The default object checksum is CRC-32: the kept objects' digests are the first run's.
  expect(kept.every((k) => /^[0-9a-f]{8}$/.test(k.crc32 ?? ''))).toBe(true);
  for (const k of kept) expect(manifest.objects.find((o) => o.key === k.key)?.crc32).toBe(k.crc32);
  return manifest;
}
