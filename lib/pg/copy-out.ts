import { Readable } from 'node:stream';
import type pg from 'pg';

/**
 * A run of whole rows from `COPY … TO STDOUT`.
 *
 * The server sends exactly one CopyData message per row (PostgreSQL protocol, "COPY
 * Operations": "the backend sends ... one message per row"), so reading the message
 * framing ourselves tells us where every row ends, in any format, at no parsing cost.
 * Socket reads do not line up with messages; this reader stitches them so that every chunk
 * it emits ends on a row end.
 */
export interface RowChunk {
  /** The bytes of `rows` complete rows, exactly as COPY produced them. */
  data: Buffer;
  /** End offset (exclusive) of each row in `data`; the last equals `data.length`. */
  rowEnds: Uint32Array;
}

// Message type bytes (protocol-message-formats.html).
const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
const COPY_OUT_RESPONSE = 0x48; // 'H'
const NOTICE = 0x4e; // 'N'
const PARAMETER_STATUS = 0x53; // 'S'
const NOTIFICATION = 0x41; // 'A'

type PgConnection = {
  stream: NodeJS.ReadableStream & { pause(): void; resume(): void; destroy(err?: Error): void; listeners(ev: string): Function[] };
  query(text: string): void;
};

/**
 * `COPY … TO STDOUT` as an object-mode Readable of {@link RowChunk}s. Submit it with
 * `client.query(stream)`. Memory: at most one socket read plus one partial row is held
 * besides what sits in the readable buffer (`highWaterMark` chunks, default 4 → up to a few
 * hundred KB). A row is held whole only while it is being assembled.
 *
 * Destroying the stream before it ends destroys the connection's socket: the server then
 * cancels the COPY. The client cannot be reused after that.
 */
export class CopyOutStream extends Readable {
  /** Rows reported by the server's CommandComplete, once the stream has ended. */
  rowCount = 0;
  readonly text: string;
  #conn: PgConnection | undefined;
  #pgHandler: ((chunk: Buffer) => void) | undefined;
  #onData = (chunk: Buffer) => this.#parse(chunk);
  #finished = false;
  #paused = false;
  // Message header assembly (type byte + int32 length, which includes itself).
  #hdr = Buffer.alloc(5);
  #hdrLen = 0;
  #msgType = 0;
  #msgRemaining = 0; // payload bytes still to read of the current message
  // The row being assembled across socket reads.
  #partial: Buffer[] = [];
  #partialLen = 0;
  // Scratch row ends of the read being parsed; copied out (slice) for each chunk pushed.
  #ends = new Uint32Array(1024);

  constructor(text: string, opts: { highWaterMark?: number } = {}) {
    super({ objectMode: true, highWaterMark: opts.highWaterMark ?? 4 });
    this.text = text;
  }

  /** Called by pg's Client when the query reaches the front of its queue. */
  submit(connection: PgConnection): void {
    this.#conn = connection;
    const sock = connection.stream;
    const listeners = sock.listeners('data');
    if (listeners.length !== 1) throw new Error('unexpected pg connection state: expected one data listener');
    this.#pgHandler = listeners[0] as (chunk: Buffer) => void;
    sock.removeListener('data', this.#pgHandler);
    sock.on('data', this.#onData);
    connection.query(this.text);
  }

  override _read(): void {
    if (this.#paused && this.#conn) {
      this.#paused = false;
      this.#conn.stream.resume();
    }
  }

  #parse(chunk: Buffer): void {
    // Rows are compacted in place: each row's payload is moved left over the 5-byte message
    // headers with copyWithin (a memmove, no allocation), so a chunk of N rows costs one
    // pass and no per-row objects. A socket 'data' chunk is a fresh buffer that only this
    // listener sees, so it is ours to rewrite. A row carried in from the previous read is
    // the one case that needs a new buffer: partial bytes first, then this read.
    let buf = chunk;
    let w = 0; // end of the compacted row bytes in buf
    if (this.#partialLen > 0) {
      buf = Buffer.allocUnsafe(this.#partialLen + chunk.length);
      for (const p of this.#partial) { buf.set(p, w); w += p.length; }
      buf.set(chunk, w);
      this.#partial = [];
      this.#partialLen = 0;
    }
    let r = w; // read position: raw protocol bytes start here
    const n = buf.length;
    if (this.#ends.length < (n >>> 2) + 2) this.#ends = new Uint32Array((n >>> 2) + 2);
    const ends = this.#ends; // a row needs at least 5 header bytes: n/4 + 2 is always enough
    let nEnds = 0;
    while (r < n) {
      if (this.#msgRemaining === 0 && this.#hdrLen === 0) {
        // Hot loop: whole CopyData messages inside this read, state kept in locals.
        while (r + 5 <= n && buf[r] === COPY_DATA) {
          const s = r + 5;
          const e = s + ((((buf[r + 1] as number) << 24) | ((buf[r + 2] as number) << 16) | ((buf[r + 3] as number) << 8) | (buf[r + 4] as number)) >>> 0) - 4;
          if (e > n) break;
          buf.copyWithin(w, s, e);
          w += e - s;
          ends[nEnds++] = w;
          r = e;
        }
        if (r >= n) break;
      }
      if (this.#msgRemaining > 0) {
        const rem = this.#msgRemaining;
        const take = rem < n - r ? rem : n - r;
        if (this.#msgType === COPY_DATA) {
          if (w !== r) buf.copyWithin(w, r, r + take);
          w += take;
          if (take === rem) ends[nEnds++] = w;
        }
        r += take;
        this.#msgRemaining = rem - take;
        continue;
      }
      let t: number;
      let len: number;
      if (this.#hdrLen === 0 && n - r >= 5) {
        // Fast path: the whole header is in this read. Length includes itself.
        t = buf[r] as number;
        len = (((buf[r + 1] as number) << 24) | ((buf[r + 2] as number) << 16) | ((buf[r + 3] as number) << 8) | (buf[r + 4] as number)) >>> 0;
        r += 5;
      } else {
        const take = Math.min(5 - this.#hdrLen, n - r);
        this.#hdr.set(buf.subarray(r, r + take), this.#hdrLen);
        this.#hdrLen += take;
        r += take;
        if (this.#hdrLen < 5) break;
        this.#hdrLen = 0;
        t = this.#hdr[0] as number;
        len = this.#hdr.readUInt32BE(1);
      }
      len -= 4;
      if (t !== COPY_DATA && t !== COPY_OUT_RESPONSE && t !== NOTICE && t !== PARAMETER_STATUS && t !== NOTIFICATION && t !== COPY_DONE) {
        // CommandComplete, ErrorResponse or anything else: the COPY data is over. Give
        // this message and everything after it back to pg's parser, header included. The
        // bytes from r on were never rewritten.
        const rest = Buffer.concat([this.#headerBytes(t, len), buf.subarray(r)]);
        this.#flush(buf, ends, nEnds);
        this.#handBack(rest);
        return;
      }
      this.#msgType = t;
      this.#msgRemaining = len;
      // An empty CopyData message is a zero-length row (cannot happen in text/csv, harmless).
      if (len === 0 && t === COPY_DATA) ends[nEnds++] = w;
    }
    const last = nEnds > 0 ? (ends[nEnds - 1] as number) : 0;
    if (w > last) {
      // The row continues in the next read. A view is enough: nothing rewrites buf after this.
      this.#partial.push(buf.subarray(last, w));
      this.#partialLen += w - last;
    }
    this.#flush(buf, ends, nEnds);
  }

  #headerBytes(type: number, remaining: number): Buffer {
    const h = Buffer.allocUnsafe(5);
    h[0] = type;
    h.writeUInt32BE(remaining + 4, 1);
    return h;
  }

  #flush(buf: Buffer, ends: Uint32Array, nEnds: number): void {
    if (nEnds === 0) return;
    const rc: RowChunk = { data: buf.subarray(0, ends[nEnds - 1] as number), rowEnds: ends.slice(0, nEnds) };
    if (!this.push(rc) && this.#conn && !this.#paused) {
      this.#paused = true;
      this.#conn.stream.pause();
    }
  }

  #handBack(rest: Buffer): void {
    const conn = this.#conn;
    const handler = this.#pgHandler;
    if (!conn || !handler) return;
    conn.stream.removeListener('data', this.#onData);
    conn.stream.on('data', handler);
    if (this.#paused) {
      this.#paused = false;
      conn.stream.resume();
    }
    if (rest.length > 0) handler(rest);
  }

  /** pg: the server reported an error for this query. */
  handleError(err: Error): void {
    this.#finished = true;
    this.destroy(err);
  }

  /** pg: CommandComplete, e.g. "COPY 1234". */
  handleCommandComplete(msg: { text?: string }): void {
    const m = /^COPY (\d+)/.exec(msg?.text ?? '');
    if (m) this.rowCount = Number(m[1]);
  }

  /** pg: the connection is idle again; only now may the caller reuse the client. */
  handleReadyForQuery(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#finished && this.#conn) {
      // Mid-COPY: there is no way to stop the server's stream but to drop the connection.
      this.#finished = true;
      this.#conn.stream.destroy();
    }
    cb(err);
  }
}

/** Run a COPY TO STDOUT on a client and return the framed row stream. */
export function copyOut(client: pg.Client, sql: string, opts?: { highWaterMark?: number }): CopyOutStream {
  const s = new CopyOutStream(sql, opts);
  (client as unknown as { query(q: unknown): void }).query(s);
  return s;
}
