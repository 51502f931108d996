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
    // Upper bound of output: payload bytes in this chunk plus the partial row carried in.
    let out: Buffer | undefined;
    let outLen = 0;
    let ends: number[] | undefined;
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.#msgRemaining === 0 && this.#hdrLen < 5) {
        // Fast path: the whole header is in this chunk.
        if (this.#hdrLen === 0 && n - pos >= 5) {
          this.#msgType = chunk[pos] as number;
          this.#msgRemaining = chunk.readUInt32BE(pos + 1) - 4;
          pos += 5;
        } else {
          const take = Math.min(5 - this.#hdrLen, n - pos);
          chunk.copy(this.#hdr, this.#hdrLen, pos, pos + take);
          this.#hdrLen += take;
          pos += take;
          if (this.#hdrLen < 5) break;
          this.#msgType = this.#hdr[0] as number;
          this.#msgRemaining = this.#hdr.readUInt32BE(1) - 4;
        }
        this.#hdrLen = 0;
        const t = this.#msgType;
        if (t !== COPY_DATA && t !== COPY_OUT_RESPONSE && t !== NOTICE && t !== PARAMETER_STATUS && t !== NOTIFICATION && t !== COPY_DONE) {
          // CommandComplete, ErrorResponse or anything else: the COPY data is over. Give
          // this message and everything after it back to pg's parser, header included.
          const rest = Buffer.concat([this.#headerBytes(t, this.#msgRemaining), chunk.subarray(pos)]);
          this.#msgRemaining = 0;
          this.#flush(out, outLen, ends);
          this.#handBack(rest);
          return;
        }
        if (this.#msgRemaining === 0 && t === COPY_DATA) {
          // An empty CopyData message: a zero-length row (cannot happen in text/csv, harmless).
          (ends ??= []).push(outLen);
        }
        continue;
      }
      const take = Math.min(this.#msgRemaining, n - pos);
      if (this.#msgType === COPY_DATA) {
        if (take === this.#msgRemaining) {
          // The row ends inside this chunk.
          if (out === undefined) out = Buffer.allocUnsafe(n - pos + this.#partialLen);
          if (this.#partialLen > 0) {
            for (const p of this.#partial) { p.copy(out, outLen); outLen += p.length; }
            this.#partial = [];
            this.#partialLen = 0;
          }
          chunk.copy(out, outLen, pos, pos + take);
          outLen += take;
          (ends ??= []).push(outLen);
        } else {
          // Row continues in the next socket read: keep a copy (the socket may reuse memory).
          this.#partial.push(Buffer.from(chunk.subarray(pos, pos + take)));
          this.#partialLen += take;
        }
      }
      this.#msgRemaining -= take;
      pos += take;
    }
    this.#flush(out, outLen, ends);
  }

  #headerBytes(type: number, remaining: number): Buffer {
    const h = Buffer.allocUnsafe(5);
    h[0] = type;
    h.writeUInt32BE(remaining + 4, 1);
    return h;
  }

  #flush(out: Buffer | undefined, outLen: number, ends: number[] | undefined): void {
    if (!ends || ends.length === 0 || out === undefined) return;
    const rc: RowChunk = { data: out.subarray(0, outLen), rowEnds: Uint32Array.from(ends) };
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
