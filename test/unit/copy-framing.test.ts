/**
 * Malformed COPY bytes give ERR_COPY_PROTOCOL: the COPY reader (over real loopback sockets, both
 * the direct socket and Node's own), the COPY BINARY header check and the row hasher. Each case
 * has a well-formed control, so the reader and the hasher are shown to work on the same path.
 */
import net from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyOutStream, type RowChunk } from '../../lib/pg/copy-out.js';
import { directSocket } from '../../lib/pg/socket.js';
import { binaryHeaderEnd } from '../../lib/pg/copy-binary.js';
import { RowHasher, addRowHashSums } from '../../lib/format/row-hash.js';
import { SegferryError } from '../../lib/errors.js';
import { codeOf } from './error-code.js';
import { TRAILER, binaryHeader, int4, message, rowChunk, tuple } from './copy-bytes.js';


describe('COPY reader on malformed protocol bytes', () => {
  // A server that sends, on each connection, the bytes queued for it.
  const queue: Buffer[] = [];
  let server: net.Server;
  let port = 0;
  beforeAll(async () => {
    server = net.createServer((s) => { s.on('error', () => {}); s.end(queue.shift() ?? Buffer.alloc(0)); });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    server.close();
  });

  const COPY_OUT = message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0]));
  const tail = Buffer.concat([message('c', ''), message('C', 'COPY 2\0'), message('Z', 'I')]);

  /** Read a COPY whose protocol bytes are `bytes`: the rows it gave, the error, what went back to pg. */
  async function read(bytes: Buffer, direct: boolean) {
    queue.push(bytes);
    const sock = direct ? directSocket() : new net.Socket();
    const handedBack: Buffer[] = [];
    sock.on('data', (b: Buffer) => handedBack.push(Buffer.from(b))); // pg's parser, in its place
    sock.on('error', () => {});
    const s = new CopyOutStream('COPY t TO STDOUT');
    s.submit({ stream: sock, query: () => { sock.connect(port, '127.0.0.1'); } });
    // pg would call these on CommandComplete and ReadyForQuery; do it once the bytes are back.
    sock.on('end', () => { s.handleCommandComplete({ text: 'COPY 2' }); s.handleReadyForQuery(); });
    const rows: string[] = [];
    let error: unknown;
    try {
      for await (const c of s as AsyncIterable<RowChunk>) {
        let st = 0;
        for (const e of c.rowEnds) { rows.push(c.data.toString('latin1', st, e)); st = e; }
      }
    } catch (e) {
      error = e;
    }
    sock.destroy();
    return { rows, error, handedBack: Buffer.concat(handedBack), destroyed: sock.destroyed };
  }

  for (const direct of [true, false]) {
    const kind = direct ? 'direct socket' : 'Node socket';

    it(`${kind}: well-formed rows come out whole, CommandComplete goes back to pg`, async () => {
      const r = await read(Buffer.concat([COPY_OUT, message('d', '1\ta\n'), message('d', '2\tb\n'), tail]), direct);
      expect(r.error).toBeUndefined();
      expect(r.rows).toEqual(['1\ta\n', '2\tb\n']);
      expect(r.handedBack.subarray(0, 1).toString()).toBe('C');
    });

    for (const len of [0, 3]) {
      it(`${kind}: a CopyData length of ${len} (below 4, which counts itself) is ERR_COPY_PROTOCOL and drops the connection`, async () => {
        const r = await read(Buffer.concat([COPY_OUT, message('d', '1\ta\n'), message('d', '', len), message('d', '2\tb\n'), tail]), direct);
        expect(r.error).toBeInstanceOf(SegferryError);
        expect((r.error as SegferryError).code).toBe('ERR_COPY_PROTOCOL');
        expect(r.rows).not.toContain('2\tb\n');
        expect(r.destroyed).toBe(true);
      });
    }
  }
});

describe('COPY BINARY header', () => {
  it('accepts the signature with an extension area inside the message', () => {
    const h = binaryHeader(Buffer.from('ext'));
    const m = Buffer.concat([h, tuple([int4(1)])]);
    expect(binaryHeaderEnd(m, 0, m.length)).toBe(22);
  });

  it('rejects a wrong signature, a short header and an extension longer than its message', () => {
    const bad = binaryHeader();
    bad[0] = 0x51; // 'Q'
    expect(codeOf(() => binaryHeaderEnd(bad, 0, bad.length))).toBe('ERR_COPY_PROTOCOL');
    const h = binaryHeader();
    expect(codeOf(() => binaryHeaderEnd(h, 0, 10))).toBe('ERR_COPY_PROTOCOL');
    const long = binaryHeader(Buffer.alloc(0), 1000);
    expect(codeOf(() => binaryHeaderEnd(long, 0, long.length))).toBe('ERR_COPY_PROTOCOL');
  });
});

describe('row hasher on malformed input', () => {
  it('hashes a well-formed binary stream and rejects one without the PGCOPY signature', () => {
    const good = new RowHasher(true);
    good.update(rowChunk([Buffer.concat([binaryHeader(), tuple([int4(1)])]), tuple([int4(2)]), TRAILER]));
    expect(good.result().rows).toBe(2);
    expect(good.inCopy).toBe(false);

    const bad = new RowHasher(true);
    expect(codeOf(() => bad.update(rowChunk([tuple([int4(1)]), TRAILER])))).toBe('ERR_COPY_PROTOCOL');
  });

  it('adds sums and rejects text that is not a copy-rowhash64 sum', () => {
    expect(addRowHashSums('18446744073709551615', '2')).toBe('1');
    expect(codeOf(() => addRowHashSums('12x', '1'))).toBe('ERR_FORMAT');
    expect(codeOf(() => addRowHashSums('1', '-1'))).toBe('ERR_FORMAT');
  });
});
