// The exporter reuses a COPY block once the segment writer says nothing refers to it
// (releasesChunks, issue 17): every byte a writer keeps for later must be its own copy.
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { segmentKey } from '../../lib/manifest/keys.js';
import { CopyOutStream, type RowChunk } from '../../lib/pg/copy-out.js';
import { directSocket } from '../../lib/pg/socket.js';
import { message } from './copy-bytes.js';
import { TextSegmentWriter } from '../../lib/segment/text.js';
import { DirectoryStore } from '../../lib/store/dir.js';
import { MemoryStore, chunk } from './mem-store.js';

/** MemoryStore copies every chunk on write, so it may say so. */
class ReleasingStore extends MemoryStore {
  readonly releasesWrites = true;
}

const rows = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}\tvalue ${i}\n`);

describe('chunk reuse', () => {
  it('a TEXT writer on a releasing store copies the rows it gathers, so scribbling over each chunk after write() changes no stored byte', async () => {
    const store = new ReleasingStore();
    const cap = 60; // several cuts inside each chunk, and rows left gathered at the end of each
    const w = new TextSegmentWriter({ store, keyOf: (n) => segmentKey('t', 'dn1', n), cap, table: 't', node: 'dn1', header: Buffer.from('h\n') });
    expect(w.releasesChunks).toBe(true);
    const all: string[] = [];
    await w.begin({});
    for (let c = 0; c < 5; c++) {
      const rs = rows(7, `c${c}r`);
      all.push(...rs);
      const rc = chunk(...rs);
      await w.write(rc);
      rc.data.fill(0x58); // what the next COPY block would do to these bytes
    }
    const stored = await w.finish();
    const bodies = stored.map((s) => store.objects.get(s.key)!.toString());
    for (const b of bodies) expect(b.startsWith('h\n')).toBe(true);
    expect(bodies.map((b) => b.slice(2)).join('')).toBe(all.join(''));
    expect(stored.length).toBeGreaterThan(5);
  });

  it('a store that does not say it releases its writes gets no release (it may keep chunks after write() resolves)', () => {
    const w = new TextSegmentWriter({ store: new MemoryStore(), keyOf: (n) => `k${n}`, cap: 100, table: 't', node: 'dn1' });
    expect(w.releasesChunks).toBe(false);
  });

  it('a directory store writes each chunk before write() resolves', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sf-reuse-'));
    try {
      const store = new DirectoryStore(dir);
      expect(store.releasesWrites).toBe(true);
      const ow = store.createWriter('obj');
      const want: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const b = Buffer.from(`chunk ${i} `.repeat(i + 1));
        want.push(Buffer.from(b));
        await ow.write(b);
        b.fill(0x58);
      }
      await ow.finish();
      expect(readFileSync(path.join(dir, 'obj'))).toEqual(Buffer.concat(want));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('CopyOutStream.release keeps standard blocks only and at most two', () => {
    const s = new CopyOutStream('COPY t TO STDOUT', { chunkBytes: 1024 });
    const std = (n: number) => ({ data: Buffer.allocUnsafeSlow(1024 + 256 * 1024).subarray(0, n), rowEnds: new Uint32Array([n]) });
    // Not kept: a view that does not start the block, and a block grown for a large row.
    s.release({ data: Buffer.allocUnsafeSlow(1024 + 256 * 1024).subarray(1, 10), rowEnds: new Uint32Array([9]) });
    s.release({ data: Buffer.allocUnsafeSlow(4096 + 256 * 1024).subarray(0, 10), rowEnds: new Uint32Array([10]) });
    expect(s.releasedBlocks).toBe(0);
    for (let i = 0; i < 4; i++) s.release(std(100));
    expect(s.releasedBlocks).toBe(2);
  });

  it('a COPY read over a real socket, each chunk released and overwritten after use, gives every row intact and reuses its blocks', async () => {
    const want = rows(80000, 'r');
    const bytes = Buffer.concat([message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])), ...want.map((r) => message('d', r)), message('c', ''), message('C', 'COPY 80000\0'), message('Z', 'I')]);
    const server = net.createServer((c) => { c.on('error', () => {}); c.end(bytes); });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const sock = directSocket();
    sock.on('error', () => {});
    try {
      const s = new CopyOutStream('COPY t TO STDOUT', { chunkBytes: 16 * 1024 });
      s.submit({ stream: sock, query: () => { sock.connect((server.address() as net.AddressInfo).port, '127.0.0.1'); } });
      sock.on('end', () => { s.handleCommandComplete({ text: 'COPY 80000' }); s.handleReadyForQuery(); });
      const got: string[] = [];
      const blocks = new Set<ArrayBufferLike>();
      let chunks = 0;
      for await (const c of s as AsyncIterable<RowChunk>) {
        let st = 0;
        for (const e of c.rowEnds) { got.push(c.data.toString('latin1', st, e)); st = e; }
        blocks.add(c.data.buffer);
        chunks++;
        c.data.fill(0x58);
        s.release(c);
      }
      expect(got.join('')).toBe(want.join(''));
      expect(got.length).toBe(want.length);
      expect(chunks).toBeGreaterThan(6);
      // The block being filled, two waiting, one in hand, two released: never more than that.
      expect(blocks.size).toBeLessThanOrEqual(6);
    } finally {
      sock.destroy();
      server.close();
    }
  });
});
