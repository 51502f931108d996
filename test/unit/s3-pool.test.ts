// The S3 store's shared part buffers (lib/store/s3-pool.ts): a counted budget, first come first
// served, abortable waits, buffers reused.
import { describe, expect, it } from 'vitest';
import { s3FromFlags } from '../../lib/cli/main.js';
import { workerUploadMemory } from '../../lib/export/threads.js';
import { PartPool } from '../../lib/store/s3-pool.js';
import { DEFAULT_PART_SIZE, S3Store, uploadMemory } from '../../lib/store/s3.js';

const MiB = 1024 * 1024;

describe('PartPool', () => {
  it('lends at most ⌊bytes / partSize⌋ buffers (at least one), then serves waiters in arrival order', async () => {
    expect(new PartPool(0, 8).parts).toBe(1);
    const pool = new PartPool(20, 8); // 2 parts
    expect(pool.parts).toBe(2);
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.length).toBe(8);
    expect(a).not.toBe(b);
    const order: string[] = [];
    const c = pool.acquire().then((x) => { order.push('c'); return x; });
    const d = pool.acquire().then((x) => { order.push('d'); return x; });
    await Promise.resolve();
    expect(pool.state).toEqual({ parts: 2, lent: 2, free: 0, waiting: 2 });
    // A newcomer while others wait goes behind them, even if a buffer is free for an instant.
    pool.release(b);
    const e = pool.acquire().then((x) => { order.push('e'); return x; });
    expect(await c).toBe(b); // the released buffer itself, reused
    pool.release(a);
    expect(await d).toBe(a);
    pool.release(await c);
    await e;
    expect(order).toEqual(['c', 'd', 'e']);
    pool.release(await d);
    pool.release(await e);
    expect(pool.state).toEqual({ parts: 2, lent: 0, free: 2, waiting: 0 });
  });

  it('a wait cut by its signal rejects with the reason and leaves the queue; an aborted signal is refused at once', async () => {
    const pool = new PartPool(8, 8);
    const held = await pool.acquire();
    const ac = new AbortController();
    const waiting = pool.acquire(ac.signal);
    expect(pool.state.waiting).toBe(1);
    const why = new Error('stop');
    ac.abort(why);
    await expect(waiting).rejects.toBe(why);
    expect(pool.state.waiting).toBe(0);
    await expect(pool.acquire(ac.signal)).rejects.toBe(why);
    pool.release(held);
    expect(pool.state).toEqual({ parts: 1, lent: 0, free: 1, waiting: 0 });
  });

  it('a released buffer of another size is not kept; clear() drops the free ones', async () => {
    const pool = new PartPool(16, 8);
    await pool.acquire();
    pool.release(Buffer.alloc(3));
    expect(pool.state).toEqual({ parts: 2, lent: 0, free: 0, waiting: 0 });
    pool.release((await pool.acquire(), Buffer.alloc(8)));
    expect(pool.state.free).toBe(1);
    pool.clear();
    await pool.acquire().then((b) => pool.release(b));
    expect(pool.state.free).toBe(0);
  });
});

describe('S3 upload budget', () => {
  it('defaults to 3 × (queueSize + 1) × partSize (72 MiB), follows both, and an explicit budget wins', () => {
    expect(uploadMemory()).toBe(72 * MiB);
    expect(DEFAULT_PART_SIZE).toBe(8 * MiB);
    expect(uploadMemory({ partSize: 16 * MiB })).toBe(144 * MiB);
    expect(uploadMemory({ partSize: 1 * MiB, queueSize: 1 })).toBe(30 * MiB); // parts are at least 5 MiB
    expect(uploadMemory({ uploadMemory: 20 * MiB })).toBe(20 * MiB);
    expect(new S3Store('b', 'p', { uploadMemory: 20 * MiB }).uploadBuffers).toEqual({ parts: 2, lent: 0, free: 0, waiting: 0 });
    expect(new S3Store('b', 'p').uploadBuffers.parts).toBe(9);
  });

  it('worker threads split it, one part each at least', () => {
    expect(workerUploadMemory({}, 2)).toBe(36 * MiB);
    expect(workerUploadMemory({ uploadMemory: 20 * MiB }, 8)).toBe(8 * MiB);
    expect(workerUploadMemory({ partSize: 16 * MiB }, 1)).toBe(144 * MiB);
  });

  it('--s3-upload-memory sets it, as a size', () => {
    expect(s3FromFlags({ 's3-upload-memory': '20MiB' }).uploadMemory).toBe(20 * MiB);
    expect(s3FromFlags({}).uploadMemory).toBeUndefined();
  });
});
