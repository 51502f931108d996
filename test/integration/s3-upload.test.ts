// The S3 store's multipart upload (lib/store/s3-upload.ts) against real servers: s3rver and
// moto_server through the real AWS SDK, faults from a real HTTP proxy in front of moto.
import { createHash } from 'node:crypto';
import { DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AbortedError } from '../../lib/errors.js';
import { S3Store } from '../../lib/store/s3.js';
import { OWN_BUFFER } from '../../lib/store/s3-upload.js';
import { startFaultyProxy } from '../helpers/faulty-proxy.js';
import { MOTO_SKIP_MESSAGE, motoServerPath, startS3, type S3Harness } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
let s3rver: S3Harness;
let moto: S3Harness | undefined;

beforeAll(async () => {
  if (!motoServerPath()) console.warn(MOTO_SKIP_MESSAGE);
  [s3rver, moto] = await Promise.all([startS3(), motoServerPath() ? startS3({ server: 'moto' }) : undefined]);
});

afterAll(async () => {
  await Promise.allSettled([s3rver?.stop(), moto?.stop()]);
});

/** A real client for the harness that records each command sent (name and part number). */
function recordingClient(h: S3Harness, endpoint = h.endpoint): { client: S3Client; calls: string[] } {
  const calls: string[] = [];
  const client = new S3Client({
    endpoint, region: h.region, forcePathStyle: h.forcePathStyle, credentials: h.credentials, maxAttempts: 2,
    requestChecksumCalculation: h.checksum, responseChecksumValidation: h.checksum,
  });
  client.middlewareStack.add((next, ctx) => async (args) => {
    const n = (args.input as { PartNumber?: number }).PartNumber;
    calls.push(String(ctx.commandName).replace(/Command$/, '') + (n ? ` ${n}` : ''));
    return next(args);
  }, { step: 'initialize', name: 'recordCalls' });
  return { client, calls };
}

/** Deterministic bytes: `n` bytes of a counter-seeded pattern. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((Math.imul(i + seed, 2654435761) >>> 0), Math.min(i, n - 4));
  return b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Write `data` through one reused chunk buffer of varying length, overwritten with garbage as
 * soon as each write resolves: the store must have taken its bytes by then (releasesWrites).
 */
async function writeReusing(w: { write(b: Buffer): Promise<void> }, data: Buffer): Promise<void> {
  const chunk = Buffer.allocUnsafe(1 * MiB + 17);
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(data.length - off, 1 + ((i * 350_011) % chunk.length));
    data.copy(chunk, 0, off, off + n);
    await w.write(chunk.subarray(0, n));
    chunk.fill(0xee);
    off += n;
  }
}

/** What `f` rejects with (undefined when it resolves). */
async function errorOf(f: () => Promise<void>): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  return undefined;
}

const servers = () => [['s3rver', s3rver], ['moto', moto]] as const;

describe.each(['s3rver', 'moto'] as const)('S3 multipart upload on %s', (name) => {
  const h = () => servers().find(([n]) => n === name)![1];

  it('an object of several parts reads back byte-equal; its chunks are released as written', async (ctx) => {
    if (!h()) return ctx.skip();
    const { client, calls } = recordingClient(h()!);
    const store = new S3Store(h()!.bucket, 'several/', { partSize: PART, queueSize: 2 }, client);
    expect(store.releasesWrites).toBe(true);
    const data = bytes(3 * PART + 12_345, 1);
    const w = store.createWriter('obj');
    await writeReusing(w, data);
    expect(await store.head('obj')).toBeUndefined();
    await w.finish();
    const back = (await store.getBytes('obj'))!;
    expect(back.length).toBe(data.length);
    expect(sha(back)).toBe(sha(data));
    const upload = calls.filter((c) => c !== 'HeadObject' && c !== 'GetObject');
    expect(upload[0]).toBe('CreateMultipartUpload');
    expect(upload.slice(1, 5).sort()).toEqual(['UploadPart 1', 'UploadPart 2', 'UploadPart 3', 'UploadPart 4']);
    expect(upload.slice(5)).toEqual(['CompleteMultipartUpload']);
    client.destroy();
  });

  it('an object under one part goes in one PutObject; an empty object too', async (ctx) => {
    if (!h()) return ctx.skip();
    const { client, calls } = recordingClient(h()!);
    const store = new S3Store(h()!.bucket, 'single/', { partSize: PART }, client);
    const data = bytes(PART, 2); // exactly one part: still one request
    const w = store.createWriter('one');
    await writeReusing(w, data);
    await w.finish();
    // Past the first buffer (256 KiB) and its first growth, short of a part.
    const small = bytes(1300 * 1024 + 3, 8);
    const s = store.createWriter('small');
    await writeReusing(s, small);
    await s.finish();
    const e = store.createWriter('empty');
    await e.finish();
    expect(calls).toEqual(['PutObject', 'PutObject', 'PutObject']);
    expect(sha((await store.getBytes('one'))!)).toBe(sha(data));
    expect(sha((await store.getBytes('small'))!)).toBe(sha(small));
    expect((await store.getBytes('empty'))!.length).toBe(0);
    expect(store.uploadBuffers.lent).toBe(0); // the buffer 'small' and 'one' filled went back
    client.destroy();
  });

  it('more uploads at once than the store has part buffers: each completes byte-equal, never more lent than the budget, the pool whole again', async (ctx) => {
    if (!h()) return ctx.skip();
    const { client } = recordingClient(h()!);
    // A budget of one part for 3 uploads of 3 parts each (queueSize 2: each would take 2).
    const store = new S3Store(h()!.bucket, 'pooled/', { partSize: PART, queueSize: 2, uploadMemory: PART + 1 }, client);
    let mostLent = 0;
    let mostWaiting = 0;
    const watch = { write: async (w: { write(b: Buffer): Promise<void> }, b: Buffer) => {
      await w.write(b);
      mostLent = Math.max(mostLent, store.uploadBuffers.lent);
      mostWaiting = Math.max(mostWaiting, store.uploadBuffers.waiting);
    } };
    const data = [0, 1, 2].map((i) => bytes(2 * PART + 1000 * (i + 1), 20 + i));
    await Promise.all(data.map(async (d, i) => {
      const w = store.createWriter(`obj${i}`);
      await writeReusing({ write: (b) => watch.write(w, b) }, d);
      await w.finish();
    }));
    for (const [i, d] of data.entries()) expect(sha((await store.getBytes(`obj${i}`))!)).toBe(sha(d));
    expect(store.uploadBuffers.parts).toBe(1);
    expect(mostLent).toBe(1);
    expect(mostWaiting).toBeGreaterThan(0); // the uploads did queue for the one buffer
    expect(store.uploadBuffers).toMatchObject({ lent: 0, waiting: 0 });
    client.destroy();
  });

  it('eight uploads at once on a three-part budget: no part-sized buffer but the pool\'s three, each upload one small buffer of its own, every object byte-equal', async (ctx) => {
    if (!h()) return ctx.skip();
    const { client } = recordingClient(h()!);
    const store = new S3Store(h()!.bucket, 'flat/', { partSize: PART, queueSize: 2, uploadMemory: 3 * PART }, client);
    const data = Array.from({ length: 8 }, (_, i) => bytes(2 * PART + 1000 * (i + 1), 40 + i));
    // Every buffer allocated while the uploads run, by size: the fill buffers as well as the
    // parts in flight must come from the pool (before, each upload grew one of its own to a part).
    const sizes: number[] = [];
    const alloc = Buffer.allocUnsafe;
    const spy = vi.spyOn(Buffer, 'allocUnsafe').mockImplementation((n: number) => {
      sizes.push(n);
      return alloc(n);
    });
    let mostLent = 0;
    try {
      await Promise.all(data.map(async (d, i) => {
        const w = store.createWriter(`obj${i}`);
        // Chunks of 64 KiB to 1 MiB straight from `d`: the test itself allocates nothing.
        for (let off = 0, k = 0; off < d.length; k++) {
          const n = Math.min(d.length - off, 64 * 1024 * (1 + (k % 16)));
          await w.write(d.subarray(off, off + n));
          off += n;
          mostLent = Math.max(mostLent, store.uploadBuffers.lent);
        }
        await w.finish();
      }));
    } finally {
      spy.mockRestore();
    }
    expect(sizes.filter((n) => n >= PART)).toEqual([PART, PART, PART]); // the pool's, allocated once, then reused
    expect(sizes.filter((n) => n > OWN_BUFFER && n < PART)).toEqual([]); // no growing first buffers
    expect(sizes.filter((n) => n === OWN_BUFFER)).toHaveLength(8); // one own buffer per upload, kept across its parts
    expect(mostLent).toBe(3);
    expect(store.uploadBuffers).toEqual({ parts: 3, lent: 0, free: 3, waiting: 0 });
    for (const [i, d] of data.entries()) expect(sha((await store.getBytes(`obj${i}`))!)).toBe(sha(d));
    client.destroy();
  });

  it('an upload aborted while it waits for a part buffer rejects with the reason and leaves the queue; the one holding the buffer completes', async (ctx) => {
    if (!h()) return ctx.skip();
    const { client } = recordingClient(h()!);
    // Parts of `holder` reach the server only once the gate opens: its part 1 keeps the one buffer lent.
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    client.middlewareStack.add((next) => async (args) => {
      if (String((args.input as { Key?: string }).Key).endsWith('/holder') && (args.input as { PartNumber?: number }).PartNumber) await gate;
      return next(args);
    }, { step: 'initialize', name: 'gateHolder' });
    const store = new S3Store(h()!.bucket, 'gated/', { partSize: PART, queueSize: 2, uploadMemory: PART }, client);
    const holder = store.createWriter('holder');
    const held = bytes(PART + 10, 30);
    await writeReusing(holder, held); // part 1 in flight, held at the gate
    expect(store.uploadBuffers.lent).toBe(1);
    const ac = new AbortController();
    const waiter = store.createWriter('waiter', { signal: ac.signal });
    const waiting = writeReusing(waiter, bytes(PART + 10, 31));
    for (let i = 0; i < 1000 && store.uploadBuffers.waiting === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(store.uploadBuffers.waiting).toBe(1);
    const reason = new AbortedError('stop');
    ac.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    await waiter.abort();
    expect(store.uploadBuffers).toMatchObject({ lent: 1, waiting: 0 });
    open();
    await holder.finish();
    expect(sha((await store.getBytes('holder'))!)).toBe(sha(held));
    expect(store.uploadBuffers).toMatchObject({ lent: 0, waiting: 0 });
    expect((await h()!.listKeys(h()!.bucket, 'gated/')).map((k) => k.key)).toEqual(['gated/holder']);
    client.destroy();
  });
});

describe('S3 multipart upload failures (moto: it lists and aborts multipart uploads)', () => {
  it('an UploadPart that keeps failing: a typed error, the upload aborted, no object', async (ctx) => {
    if (!moto) return ctx.skip();
    // Every attempt at part 3 fails (SlowDown, 500 or a dropped connection); the rest passes.
    const bad = await startFaultyProxy(moto.endpoint, { rate: 1, seed: 3, methods: ['PUT'], paths: /partNumber=3(&|$)/, failOnly: true });
    const { client, calls } = recordingClient(moto, bad.endpoint);
    const store = new S3Store(moto.bucket, 'failing/', { partSize: PART, queueSize: 2 }, client);
    try {
      const w = store.createWriter('obj');
      const err = await errorOf(async () => { await writeReusing(w, bytes(5 * PART, 3)); await w.finish(); });
      expect((err as { code?: string })?.code).toBe('ERR_STORAGE');
      expect((err as Error).message).toMatch(/uploading s3:\/\/.*failing\/obj failed/);
      // Once the error is out, the upload is aborted already: nothing to list, nothing stored.
      expect(await store.listUploads()).toEqual([]);
      expect(calls).toContain('AbortMultipartUpload');
      expect(calls).not.toContain('CompleteMultipartUpload');
      expect(calls.filter((c) => c === 'UploadPart 3')).toHaveLength(1);
      expect(bad.stats.slowDown + bad.stats.serverError + bad.stats.dropped).toBe(2); // its 2 attempts (maxAttempts)
      expect(store.uploadBuffers).toMatchObject({ lent: 0, waiting: 0 }); // every part's buffer back
      await w.abort();
      expect(await moto.listKeys(moto.bucket, 'failing/')).toEqual([]);
    } finally {
      client.destroy();
      await bad.close();
    }
  });

  it('an upload failing on a one-part budget gives its buffers back: another upload sharing it at the same time completes', async (ctx) => {
    if (!moto) return ctx.skip();
    // Every attempt at part 2 of `bad` fails behind the proxy; `good` goes through it unharmed.
    const bad = await startFaultyProxy(moto.endpoint, { rate: 1, seed: 5, methods: ['PUT'], paths: /\/shared\/bad\?.*partNumber=2(&|$)/, failOnly: true });
    const { client } = recordingClient(moto, bad.endpoint);
    const store = new S3Store(moto.bucket, 'shared/', { partSize: PART, queueSize: 2, uploadMemory: PART }, client);
    try {
      const failing = store.createWriter('bad');
      const good = store.createWriter('good');
      const data = bytes(3 * PART + 77, 12);
      const [err] = await Promise.all([
        errorOf(async () => { await writeReusing(failing, bytes(4 * PART, 11)); await failing.finish(); }),
        (async () => { await writeReusing(good, data); await good.finish(); })(),
      ]);
      expect((err as { code?: string })?.code).toBe('ERR_STORAGE');
      await failing.abort();
      expect(bad.stats.slowDown + bad.stats.serverError + bad.stats.dropped).toBe(2);
      expect(store.uploadBuffers).toMatchObject({ parts: 1, lent: 0, waiting: 0 });
      expect(sha((await store.getBytes('good'))!)).toBe(sha(data));
      expect(await store.listUploads()).toEqual([]);
      expect((await moto.listKeys(moto.bucket, 'shared/')).map((k) => k.key)).toEqual(['shared/good']);
    } finally {
      client.destroy();
      await bad.close();
    }
  });

  it('a deleted bucket: BucketNotFoundError, nothing left', async (ctx) => {
    if (!moto) return ctx.skip();
    const bucket = await moto.newBucket();
    const store = new S3Store(bucket, '', { endpoint: moto.endpoint, region: moto.region, forcePathStyle: true, credentials: moto.credentials, checksum: moto.checksum, partSize: PART, maxAttempts: 1 });
    try {
      const w = store.createWriter('obj');
      await w.write(bytes(PART, 4));
      await moto.client.send(new DeleteBucketCommand({ Bucket: bucket }));
      const err = await errorOf(async () => { await writeReusing(w, bytes(2 * PART, 5)); await w.finish(); });
      expect((err as { code?: string })?.code).toBe('ERR_BUCKET_NOT_FOUND');
      await w.abort();
    } finally {
      store.close();
    }
  });

  it('abort mid-upload: the write rejects with the reason, no upload and no object remain', async (ctx) => {
    if (!moto) return ctx.skip();
    const { client, calls } = recordingClient(moto);
    const store = new S3Store(moto.bucket, 'aborted/', { partSize: PART, queueSize: 2 }, client);
    const ac = new AbortController();
    const w = store.createWriter('obj', { signal: ac.signal });
    try {
      await writeReusing(w, bytes(2 * PART + 1, 6)); // parts 1 and 2 sent, part 3 being filled
      const reason = new AbortedError('stop');
      ac.abort(reason);
      await expect(w.write(Buffer.from('x'))).rejects.toBe(reason);
      await expect(w.finish()).rejects.toBe(reason);
      await w.abort();
      expect(store.uploadBuffers).toMatchObject({ lent: 0, waiting: 0 });
      expect(calls).toContain('AbortMultipartUpload');
      expect(calls).not.toContain('CompleteMultipartUpload');
      expect(await store.listUploads()).toEqual([]);
      expect(await moto.listKeys(moto.bucket, 'aborted/')).toEqual([]);
    } finally {
      client.destroy();
    }
  });

  it('abort() without a signal after parts went out leaves no upload', async (ctx) => {
    if (!moto) return ctx.skip();
    const { client } = recordingClient(moto);
    const store = new S3Store(moto.bucket, 'aborted2/', { partSize: PART, queueSize: 1 }, client);
    const w = store.createWriter('obj');
    try {
      await writeReusing(w, bytes(3 * PART, 7));
      await w.abort();
      expect(store.uploadBuffers).toMatchObject({ lent: 0, waiting: 0 });
      expect(await store.listUploads()).toEqual([]);
      expect(await moto.listKeys(moto.bucket, 'aborted2/')).toEqual([]);
    } finally {
      client.destroy();
    }
  });
});
