// A direct socket reads COPY straight into the reader's block, and the reader moves each row
// left over its message header in place (lib/pg/copy-out.ts, issue 17). Reads split messages
// anywhere (inside a header, inside a row, rows larger than a block), so these cases go over a
// real loopback socket whose server writes the protocol bytes in pieces of random sizes.
import { once } from 'node:events';
import net from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fromDatabaseError, SegferryError } from '../../lib/errors.js';
import { RowHasher } from '../../lib/format/row-hash.js';
import { copyOut, copyOutAfter, CopyOutStream, type RowChunk } from '../../lib/pg/copy-out.js';
import { directSocket } from '../../lib/pg/socket.js';
import { message } from './copy-bytes.js';

/** Deterministic pseudo-random numbers (a test must fail the same way twice). */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

/** Text rows of mixed lengths, a few larger than a block (1.25 MiB) and some empty. */
function makeRows(rnd: () => number, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const p = rnd();
    const len = p < 0.002 ? 200_000 + Math.floor(rnd() * 3_000_000) : p < 0.01 ? 0 : 1 + Math.floor(rnd() * 600);
    const b = Buffer.allocUnsafe(len);
    for (let j = 0; j < Math.min(len, 512); j++) b[j] = 32 + Math.floor(rnd() * 95);
    for (let j = 512; j < len; j += 512) b.copy(b, j, 0, Math.min(512, len - j)); // large rows: cheap to make
    if (len > 512) b.writeUInt32LE(Math.floor(rnd() * 2 ** 32), len - 8); // …but not all alike
    if (len > 0) b[len - 1] = 0x0a;
    out.push(b);
  }
  return out;
}

/** Write `bytes` to `c` in pieces of 1 B … `maxPiece` bytes, now and then yielding to the event loop. */
async function writePieces(c: net.Socket, bytes: Buffer, rnd: () => number, maxPiece: number): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const n = 1 + Math.floor(rnd() ** 3 * maxPiece);
    if (!c.write(bytes.subarray(at, at + n))) await once(c, 'drain');
    at += n;
    if (rnd() < 0.3) await new Promise((r) => setImmediate(r));
  }
}

/** Serve `bytes` in pieces of 1 B … `maxPiece` bytes, yielding to the event loop between pieces. */
async function serve(bytes: Buffer, rnd: () => number, maxPiece: number): Promise<{ port: number; close: () => void }> {
  const server = net.createServer(async (c) => {
    c.on('error', () => {});
    c.setNoDelay(true);
    await writePieces(c, bytes, rnd, maxPiece);
    c.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('COPY read into the block in place', () => {
  for (const [seed, maxPiece, slow] of [[1, 64 * 1024, false], [2, 700, true], [3, 2 * 1024 * 1024, true]] as const) {
    it(`seed ${seed}, pieces up to ${maxPiece} bytes${slow ? ', slow consumer' : ''}: every row intact, every chunk ends on a row end, the row checksum of the rows sent`, async () => {
      const rnd = rng(seed);
      const rows = makeRows(rnd, 4000);
      const msgs: Buffer[] = [message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0]))];
      for (const [i, r] of rows.entries()) {
        msgs.push(message('d', r));
        if (i % 997 === 0) msgs.push(message('N', 'SNOTICE\0Mwatch out\0\0'));
      }
      msgs.push(message('c', ''), message('C', `COPY ${rows.length}\0`), message('Z', 'I'));
      const srv = await serve(Buffer.concat(msgs), rnd, maxPiece);
      const sock = directSocket();
      sock.on('error', () => {});
      const handedBack: Buffer[] = [];
      try {
        const s = new CopyOutStream('COPY t TO STDOUT');
        s.submit({ stream: sock, query: () => { sock.connect(srv.port, '127.0.0.1'); } });
        // What the reader gives back after the COPY goes to pg's parser, here a 'data' listener.
        sock.on('data', (b: Buffer) => handedBack.push(Buffer.from(b)));
        sock.on('end', () => { s.handleCommandComplete({ text: `COPY ${rows.length}` }); s.handleReadyForQuery(); });
        const got: Buffer[] = [];
        const hasher = new RowHasher();
        for await (const c of s as AsyncIterable<RowChunk>) {
          expect(c.rowEnds[c.rowEnds.length - 1]).toBe(c.data.length);
          hasher.update(c);
          let st = 0;
          for (const e of c.rowEnds) { got.push(Buffer.from(c.data.subarray(st, e))); st = e; }
          if (slow) await new Promise((r) => setTimeout(r, 1));
          // As the exporter does: the block is reused, so stale bytes would show up in later rows.
          c.data.fill(0x58);
          s.release(c);
        }
        expect(got.length).toBe(rows.length);
        let bad = -1;
        for (let i = 0; i < rows.length && bad < 0; i++) if (!got[i]!.equals(rows[i]!)) bad = i;
        expect(bad).toBe(-1);
        const want = new RowHasher();
        for (const r of rows) want.update({ data: r, rowEnds: Uint32Array.of(r.length) });
        expect(hasher.result()).toEqual(want.result());
        expect(Buffer.concat(handedBack).subarray(0, 1).toString()).toBe('C');
      } finally {
        sock.destroy();
        srv.close();
      }
    }, 60_000);
  }
});

describe('COPYs of one session sharing their free blocks (CopyOutOptions.blocks)', () => {
  it('the second COPY starts in the blocks the first left (released ones and its last, never filled), with its own rows intact', async () => {
    const rnd = rng(7);
    const blocks: Buffer[] = [];
    const seen = new Set<ArrayBufferLike>();
    // Two COPYs one after another, each on a connection of its own (one session's COPYs, as far as the blocks go).
    for (const [k, rows] of [makeRows(rnd, 3000).filter((r) => r.length < 200_000), makeRows(rnd, 3000).filter((r) => r.length < 200_000)].entries()) {
      const bytes = Buffer.concat([message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])), ...rows.map((r) => message('d', r)), message('c', ''), message('C', `COPY ${rows.length}\0`), message('Z', 'I')]);
      const srv = await serve(bytes, rnd, 64 * 1024);
      const sock = directSocket();
      sock.on('error', () => {});
      try {
        const before = blocks.length;
        const s = new CopyOutStream('COPY t TO STDOUT', { blocks });
        // The first COPY allocates its block; the second takes one the first left.
        expect(blocks.length).toBe(k === 0 ? 0 : before - 1);
        s.submit({ stream: sock, query: () => { sock.connect(srv.port, '127.0.0.1'); } });
        sock.on('end', () => { s.handleCommandComplete({ text: `COPY ${rows.length}` }); s.handleReadyForQuery(); });
        const got: Buffer[] = [];
        let reused = 0;
        for await (const c of s as AsyncIterable<RowChunk>) {
          let st = 0;
          for (const e of c.rowEnds) { got.push(Buffer.from(c.data.subarray(st, e))); st = e; }
          if (seen.has(c.data.buffer)) reused++;
          c.data.fill(0x58); // stale bytes would show up in the next COPY's rows
          s.release(c);
        }
        expect(Buffer.concat(got).equals(Buffer.concat(rows))).toBe(true);
        expect(got.length).toBe(rows.length);
        // After the end the list holds its default 2 blocks, ready for the next COPY.
        expect(blocks.length).toBe(2);
        if (k === 0) for (const b of blocks) seen.add(b.buffer);
        else expect(reused).toBeGreaterThan(0);
      } finally {
        sock.destroy();
        srv.close();
      }
    }
  }, 60_000);
});

/**
 * pg's side, reduced to what a COPY needs: a parser of the messages handed back ('data'
 * events), CommandComplete and ReadyForQuery to the active query, and at ReadyForQuery the
 * next query of the queue submitted at once (pg's Client._pulseQueryQueue).
 */
function miniPg(sock: net.Socket, queue: CopyOutStream[], sent: string[]): void {
  let pending = Buffer.alloc(0);
  const conn = { stream: sock, query: (text: string) => { sent.push(text); } };
  sock.on('data', (b: Buffer) => {
    pending = Buffer.concat([pending, b]);
    while (pending.length >= 5 && pending.length >= 1 + pending.readUInt32BE(1)) {
      const t = String.fromCharCode(pending[0]!);
      const body = pending.subarray(5, 1 + pending.readUInt32BE(1));
      pending = pending.subarray(1 + pending.readUInt32BE(1));
      if (t === 'C') queue[0]!.handleCommandComplete({ text: body.toString('latin1', 0, body.length - 1) });
      else if (t === 'Z') {
        queue.shift()!.handleReadyForQuery();
        queue[0]?.submit(conn);
      } else throw new Error(`unexpected message ${t} handed back`);
    }
  });
  queue[0]!.submit(conn);
}

describe('a COPY queued behind a running one (copyOutAfter)', () => {
  for (const [seed, maxPiece] of [[11, 64 * 1024], [12, 9], [13, 700]] as const) {
    it(`seed ${seed}, pieces up to ${maxPiece} bytes: the queued query is sent once, each COPY gets its own rows and count, pg gets exactly the closing messages`, async () => {
      const rnd = rng(seed);
      const sets = [makeRows(rnd, 1500).filter((r) => r.length < 100_000), makeRows(rnd, 1500).filter((r) => r.length < 100_000)];
      const answer = (rows: Buffer[]) => [message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])), ...rows.map((r) => message('d', r)), message('c', ''), message('C', `COPY ${rows.length}\0`), message('Z', 'T')];
      // Both answers back to back, as the server sends them when the second query waited behind the first.
      const srv = await serve(Buffer.concat([...answer(sets[0]!), ...answer(sets[1]!)]), rnd, maxPiece);
      const sock = directSocket();
      sock.on('error', () => {});
      try {
        const a = new CopyOutStream('COPY a TO STDOUT');
        const b = new CopyOutStream('COPY b TO STDOUT');
        const sent: string[] = [];
        miniPg(sock, [a, b], sent);
        sock.connect(srv.port, '127.0.0.1');
        expect(a.sendBehind(b)).toBe(true);
        expect(a.sendBehind(b)).toBe(false); // one queued COPY at a time
        const read = async (s: CopyOutStream) => {
          const got: Buffer[] = [];
          for await (const c of s as AsyncIterable<RowChunk>) {
            let st = 0;
            for (const e of c.rowEnds) { got.push(Buffer.from(c.data.subarray(st, e))); st = e; }
          }
          return got;
        };
        const [ga, gb] = [await read(a), await read(b)];
        expect(sent).toEqual(['COPY a TO STDOUT', 'COPY b TO STDOUT']);
        expect(Buffer.concat(ga).equals(Buffer.concat(sets[0]!))).toBe(true);
        expect(ga.length).toBe(sets[0]!.length);
        expect(Buffer.concat(gb).equals(Buffer.concat(sets[1]!))).toBe(true);
        expect(gb.length).toBe(sets[1]!.length);
        expect([a.rowCount, b.rowCount]).toEqual([sets[0]!.length, sets[1]!.length]);
      } finally {
        sock.destroy();
        srv.close();
      }
    }, 60_000);
  }
});

/**
 * A server for a real pg Client: it answers the startup with AuthenticationOk and
 * ReadyForQuery, waits for `queries` simple queries, then writes `answer` in pieces of
 * 1 B … `maxPiece` bytes and closes, as a backend that ends its session does.
 */
async function serveSession(answer: Buffer, queries: number, rnd: () => number, maxPiece: number): Promise<{ port: number; close: () => void }> {
  const server = net.createServer((c) => {
    c.on('error', () => {});
    c.setNoDelay(true);
    let got = Buffer.alloc(0);
    let started = false;
    let seen = 0;
    let answering = false;
    c.on('data', async (b: Buffer) => {
      got = Buffer.concat([got, b]);
      // The startup message has no type byte: int32 length (including itself), then its body.
      if (!started) {
        if (got.length < 4 || got.length < got.readUInt32BE(0)) return;
        got = got.subarray(got.readUInt32BE(0));
        started = true;
        c.write(Buffer.concat([message('R', Buffer.alloc(4)), message('Z', 'I')]));
      }
      while (got.length >= 5 && got.length >= 1 + got.readUInt32BE(1)) {
        if (got[0] === 0x51) seen++; // 'Q'
        got = got.subarray(1 + got.readUInt32BE(1));
      }
      if (seen < queries || answering) return;
      answering = true;
      await writePieces(c, answer, rnd, maxPiece);
      c.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** An ErrorResponse: severity, SQLSTATE and message fields (protocol-error-fields.html). */
function errorResponse(severity: string, code: string, text: string): Buffer {
  return message('E', `S${severity}\0V${severity}\0C${code}\0M${text}\0\0`);
}

describe('a FATAL error while a COPY is queued (copyOutAfter)', () => {
  // A direct socket (what connect() makes), and pg's own net.Socket (the path TLS takes: rows copied out of 'data' events).
  for (const [seed, maxPiece, direct] of [[21, 9, true], [22, 700, true], [23, 64 * 1024, true], [25, 700, false]] as const) {
    it(`seed ${seed}, pieces up to ${maxPiece} bytes, ${direct ? 'direct socket' : 'plain socket'}: the server ends the session with 57P01 during the first COPY, the first COPY fails with that SQLSTATE`, async () => {
      const rnd = rng(seed);
      const rows = makeRows(rnd, 300).filter((r) => r.length < 100_000);
      // pg_terminate_backend during the first COPY: some rows, the FATAL ErrorResponse, then the
      // connection closes; no ReadyForQuery follows, and the queued COPY never starts.
      const answer = Buffer.concat([
        message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])),
        ...rows.map((r) => message('d', r)),
        errorResponse('FATAL', '57P01', 'terminating connection due to administrator command'),
      ]);
      const srv = await serveSession(answer, 2, rnd, maxPiece);
      const client = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'u', database: 'd', ...(direct ? { stream: () => directSocket() } : {}) });
      client.on('error', () => {});
      try {
        await client.connect();
        const a = copyOut(client, 'COPY a TO STDOUT');
        const b = copyOutAfter(a, client, 'COPY b TO STDOUT');
        const drain = async (s: CopyOutStream) => {
          try {
            for await (const c of s as AsyncIterable<RowChunk>) void c;
            return undefined;
          } catch (e) {
            return e;
          }
        };
        const ea = await drain(a);
        // pg's own error for an ErrorResponse, with its fields; not "Connection terminated".
        expect(ea).toBeInstanceOf(pg.DatabaseError);
        expect((ea as pg.DatabaseError).code).toBe('57P01');
        expect((ea as pg.DatabaseError).severity).toBe('FATAL');
        const typed = fromDatabaseError(ea, { node: 'n1', action: 'COPY' });
        expect(typed).toBeInstanceOf(SegferryError);
        expect(typed.sqlState).toBe('57P01');
        // The queued COPY fails too (its session is gone), and does not hang.
        expect(await drain(b)).toBeInstanceOf(Error);
      } finally {
        await client.end().catch(() => {});
        srv.close();
      }
    }, 60_000);
  }

  it('an ordinary ERROR during the first COPY (handed to pg before its ReadyForQuery): each COPY fails with its own SQLSTATE, pg gets both answers', async () => {
    const rnd = rng(24);
    const rows = makeRows(rnd, 300).filter((r) => r.length < 100_000);
    const answer = Buffer.concat([
      message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])),
      ...rows.map((r) => message('d', r)),
      errorResponse('ERROR', '22012', 'division by zero'),
      message('Z', 'E'),
      // The queued COPY runs in the failed transaction.
      errorResponse('ERROR', '25P02', 'current transaction is aborted, commands ignored until end of transaction block'),
      message('Z', 'E'),
    ]);
    const srv = await serveSession(answer, 2, rnd, 9);
    const client = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'u', database: 'd', stream: () => directSocket() });
    client.on('error', () => {});
    try {
      await client.connect();
      const a = copyOut(client, 'COPY a TO STDOUT');
      const b = copyOutAfter(a, client, 'COPY b TO STDOUT');
      const fails = (s: CopyOutStream) => (async () => { for await (const c of s as AsyncIterable<RowChunk>) void c; })().then(() => undefined, (e: unknown) => e);
      const [ea, eb] = [await fails(a), await fails(b)];
      expect((ea as pg.DatabaseError).code).toBe('22012');
      expect((eb as pg.DatabaseError).code).toBe('25P02');
    } finally {
      await client.end().catch(() => {});
      srv.close();
    }
  }, 60_000);
});
