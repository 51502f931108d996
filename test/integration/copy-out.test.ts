/**
 * The framed COPY reader against a real server: every chunk ends on a row end, the bytes are
 * exactly what COPY sends (compared with pg-copy-streams' raw pass-through), rows of every size
 * (empty, one byte, larger than many socket reads) come out whole, messages the server slips in
 * mid-COPY (NOTICE) are dropped, and the connection is usable afterwards.
 */
import { readFileSync, statSync } from 'node:fs';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyOut } from '../../lib/pg/copy-out.js';
import { directSocket, isDirectSocket } from '../../lib/pg/socket.js';
import { destroyAllServers, startServer, type PgServer } from '../helpers/pg.js';

const ROWS = 5000;

describe('copyOut framing', () => {
  let server: PgServer;

  beforeAll(async () => {
    // NOTICEs in the server log too: proof they were raised while the reader dropped them.
    server = await startServer({ name: 'copyout', settings: { log_min_messages: 'notice' } });
    await server.query(`CREATE TABLE t (id int, v text)`);
    // Row sizes: empty text, 1 byte, NULL, escapes, ~1 KB, and every 997th row 300 KB (spans many reads).
    await server.query(`INSERT INTO t SELECT g,
        CASE WHEN g % 997 = 0 THEN repeat('x', 300000)
             WHEN g % 5 = 0 THEN ''
             WHEN g % 5 = 1 THEN 'a'
             WHEN g % 5 = 2 THEN NULL
             WHEN g % 5 = 3 THEN E'tab\\tnew\\nline back\\\\slash "q", ü'
             ELSE repeat(md5(g::text), 32) END
      FROM generate_series(1, ${ROWS}) g`);
    // Raises a NOTICE every 700 rows, so NoticeResponse messages arrive between CopyData rows.
    await server.query(`CREATE FUNCTION noisy(i int) RETURNS int LANGUAGE plpgsql AS $$
      BEGIN IF i % 700 = 0 THEN RAISE NOTICE 'row %', i; END IF; RETURN i; END $$`);
  });
  afterAll(async () => {
    await destroyAllServers();
  });

  async function raw(sql: string): Promise<Buffer> {
    const c = new pg.Client({ connectionString: server.url() });
    await c.connect();
    try {
      const parts: Buffer[] = [];
      for await (const b of c.query(pgCopy.to(sql))) parts.push(b as Buffer);
      return Buffer.concat(parts);
    } finally {
      await c.end();
    }
  }

  // Two socket kinds: Node's own (pg's default, and what TLS uses) and the direct socket
  // connect() makes, whose reads land in one reused buffer. Small chunk sizes make rows
  // cross block boundaries; a slow consumer with highWaterMark 1 makes the socket pause.
  for (const c of [
    { name: 'text', sql: `COPY (SELECT id, v FROM t ORDER BY id) TO STDOUT`, hwm: 4 },
    { name: 'csv with NOTICEs mid-COPY, highWaterMark 1', sql: `COPY (SELECT noisy(id), v FROM t ORDER BY id) TO STDOUT (FORMAT csv)`, hwm: 1 },
    { name: 'binary', sql: `COPY (SELECT id, v FROM t ORDER BY id) TO STDOUT (FORMAT binary)`, hwm: 4 },
    { name: 'text, direct socket', sql: `COPY (SELECT id, v FROM t ORDER BY id) TO STDOUT`, hwm: 2, direct: true },
    { name: 'csv with NOTICEs, direct socket, 4 KiB chunks, slow consumer', sql: `COPY (SELECT noisy(id), v FROM t ORDER BY id) TO STDOUT (FORMAT csv)`, hwm: 1, direct: true, chunkBytes: 4096, slow: true },
    { name: 'binary, direct socket, 1-byte chunks', sql: `COPY (SELECT id, v FROM t ORDER BY id) TO STDOUT (FORMAT binary)`, hwm: 2, direct: true, chunkBytes: 1 },
  ]) {
    it(`${c.name}: same bytes as the raw stream, every chunk ends on a row end`, async () => {
      const expected = await raw(c.sql);
      const logFrom = statSync(server.logFile).size;
      const client = new pg.Client({ connectionString: server.url(), ...(c.direct ? { stream: () => directSocket() } : {}) });
      const notices: string[] = [];
      client.on('notice', (n) => notices.push(n.message ?? ''));
      await client.connect();
      try {
        const s = copyOut(client, c.sql, { highWaterMark: c.hwm, ...(c.chunkBytes ? { chunkBytes: c.chunkBytes } : {}) });
        expect(isDirectSocket((client as unknown as { connection: { stream: unknown } }).connection.stream)).toBe(c.direct === true);
        const parts: Buffer[] = [];
        const rowLens: number[] = [];
        for await (const rc of s) {
          if (c.slow) await new Promise((r) => setTimeout(r, 1));
          expect(rc.rowEnds.length).toBeGreaterThan(0);
          expect(rc.rowEnds[rc.rowEnds.length - 1]).toBe(rc.data.length);
          let prev = 0;
          for (const e of rc.rowEnds) {
            expect(e).toBeGreaterThanOrEqual(prev);
            rowLens.push(e - prev);
            if (!c.sql.includes('binary')) expect(rc.data[e - 1]).toBe(0x0a);
            prev = e;
          }
          parts.push(Buffer.from(rc.data));
        }
        expect(Buffer.concat(parts).equals(expected)).toBe(true);
        expect(s.rowCount).toBe(ROWS);
        // binary: one header message + ROWS rows + one trailer message (each its own CopyData).
        expect(rowLens.length).toBe(c.sql.includes('binary') ? ROWS + 1 : ROWS);
        expect(Math.max(...rowLens)).toBeGreaterThan(300000);
        // The connection is back in pg's hands.
        const r = await client.query('SELECT 41 + 1 AS x');
        expect(r.rows[0].x).toBe(42);
        if (c.name.includes('NOTICE')) {
          expect(notices.length).toBe(0);
          // ... yet the server raised one every 700 rows during this COPY.
          const log = readFileSync(server.logFile).subarray(logFrom).toString('utf8');
          expect(log.match(/NOTICE: {2}row \d+$/gm)).toEqual(Array.from({ length: Math.floor(ROWS / 700) }, (_, i) => `NOTICE:  row ${700 * (i + 1)}`));
        }
      } finally {
        await client.end();
      }
    });
  }

  it('a failing COPY rejects with the server error and leaves the client usable (direct socket)', async () => {
    const client = new pg.Client({ connectionString: server.url(), stream: () => directSocket() });
    await client.connect();
    try {
      const s = copyOut(client, `COPY (SELECT 1 / (id - 2500) FROM t ORDER BY id) TO STDOUT`);
      let rows = 0;
      await expect((async () => { for await (const rc of s) rows += rc.rowEnds.length; })()).rejects.toMatchObject({ code: '22012' });
      expect(rows).toBeLessThan(2500);
      const r = await client.query('SELECT 1 AS x');
      expect(r.rows[0].x).toBe(1);
    } finally {
      await client.end();
    }
  });
});
