import { Readable } from 'node:stream';
import type pg from 'pg';
import { CopyProtocolError, InternalError } from '../errors.js';
import { isDirectSocket, READ_BUFFER_BYTES, type DirectSocket } from './socket.js';

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
const READY_FOR_QUERY = 0x5a; // 'Z'

type PgConnection = {
  stream: NodeJS.ReadableStream & { pause(): void; resume(): void; destroy(err?: Error): void; listeners(ev: string): Function[] };
  query(text: string): void;
};

/**
 * Size of the chunks a {@link CopyOutStream} hands out: rows are gathered into blocks of this
 * size, so downstream work (hashing, store writes, the async iteration itself) happens per
 * MiB, not per socket read (8–64 KiB).
 */
export const COPY_CHUNK_BYTES = 1024 * 1024;

/**
 * After a read smaller than {@link REST_BELOW} bytes (and smaller than the room it was given,
 * so the kernel had no more), a direct socket rests {@link REST_MS} ms before reading again,
 * so the next read finds more queued. A server flushes COPY every 8 KiB; read as fast as it
 * arrives, that is ≈ 60,000 reads (wake-ups and syscalls) per GB, and at one backend's pace
 * the wake-ups cost more than the bytes. Resting only after small reads is self-limiting: when
 * data arrives faster than it is read, reads are large and nothing rests. The kernel's socket
 * buffer holds what arrives meanwhile (one backend's COPY, ≈ 50 MB/s, sends ≈ 200 KB in 4 ms;
 * a paced loopback sender was never held back). Measured (bench/analysis.md): 1 ms under
 * 64 KiB cut 0.3 CPU-s per GB of CSV; 4 ms under 256 KiB then cut receiving, rows hashed and
 * SHA-256ed as an export does, at a paced 50 MB/s from 6.2 to 4.1 CPU-s per GB. Until a COPY
 * has received {@link REST_LONG_AFTER} bytes it rests {@link REST_SHORT_MS} ms, so a small COPY
 * (a Citus shard of a few rows) ends as soon as before.
 */
const REST_MS = 4;
const REST_BELOW = 256 * 1024;
const REST_SHORT_MS = 1;
const REST_LONG_AFTER = 1024 * 1024;
/** Released blocks a {@link CopyOutStream} keeps for reuse by default (1.25 MiB each). */
const FREE_BLOCKS = 2;
/**
 * A direct socket's reads land in the block being filled, after the bytes parsed so far; with
 * less room than this left, the block is handed out first, so reads stay large.
 */
const MIN_READ_ROOM = 64 * 1024;

/**
 * `COPY … TO STDOUT` as an object-mode Readable of {@link RowChunk}s. Submit it with
 * `client.query(stream)`.
 *
 * Rows are gathered into blocks of {@link COPY_CHUNK_BYTES}, dropping the 5-byte message
 * headers; a block is handed out once it holds that much (or the COPY ends). On a connection
 * made by `connect()` (a {@link DirectSocket}) the socket reads straight into the block, after
 * the rows so far, and each row is moved left over its message header in place: one copy of
 * each byte by the kernel and one memmove, with no buffer allocated per read. On other sockets
 * (TLS) rows are copied out of each read into the block.
 *
 * Memory: the block being filled (≥ the largest row) plus `highWaterMark` blocks waiting for
 * the consumer (default 2). A block is allocated with room for one more socket read past the
 * chunk size (1.25 MiB), so a read rarely splits: ≈ 3.75 MiB per COPY with ordinary rows, plus
 * up to 2 blocks handed back by {@link CopyOutStream.release} for reuse (≈ 6.25 MiB in all).
 *
 * Destroying the stream before it ends destroys the connection's socket: the server then
 * cancels the COPY. The client cannot be reused after that.
 */
export class CopyOutStream extends Readable {
  /** Rows reported by the server's CommandComplete, once the stream has ended. */
  rowCount = 0;
  readonly text: string;
  readonly #chunkBytes: number;
  #conn: PgConnection | undefined;
  #direct: DirectSocket | undefined;
  #pgHandler: ((chunk: Buffer) => void) | undefined;
  #onData = (chunk: Buffer) => { this.#parse(chunk, 0, chunk.length); };
  #finished = false;
  #paused = false;
  #resting = false;
  /** The COPY's end and what followed went back to pg's parser. */
  #handedBack = false;
  /** The COPY queued behind this one, its query already sent ({@link copyOutAfter}). */
  #next: CopyOutStream | undefined;
  /** This COPY's query was sent by the COPY before it: pg's submit must not send it again. */
  #sent = false;
  /**
   * With a COPY queued behind: this COPY's closing messages are being read until its
   * ReadyForQuery; holds the start of a message not yet whole (complete ones went to pg).
   */
  #closing: Buffer | undefined;
  /** Bytes of protocol received (the rest grows after {@link REST_LONG_AFTER}). */
  #received = 0;
  /** Room the last {@link #target} call gave the read (a read that filled it did not wait). */
  #offered = READ_BUFFER_BYTES;
  #wake = () => {
    this.#resting = false;
    if (!this.#paused) this.#direct?.resume();
  };
  // Message header assembly (type byte + int32 length, which includes itself).
  #hdr = Buffer.alloc(5);
  #hdrLen = 0;
  #msgType = 0;
  #msgRemaining = 0; // payload bytes still to read of the current message
  // The block being filled: complete rows, then the row in progress (from the last end to #w).
  #block: Buffer;
  #w = 0;
  #ends = new Uint32Array(4096);
  #nEnds = 0;
  /** Blocks handed back by {@link release}, taken before allocating a new one (shared: {@link CopyOutOptions.blocks}). */
  readonly #free: Buffer[];
  readonly #freeMax: number;

  constructor(text: string, opts: CopyOutOptions = {}) {
    super({ objectMode: true, highWaterMark: opts.highWaterMark ?? 2 });
    this.text = text;
    this.#chunkBytes = opts.chunkBytes ?? COPY_CHUNK_BYTES;
    this.#freeMax = opts.freeBlocks ?? FREE_BLOCKS;
    this.#free = opts.blocks ?? [];
    const size = this.#chunkBytes + READ_BUFFER_BYTES;
    const reused = this.#free.pop();
    this.#block = reused !== undefined && reused.length >= size ? reused : Buffer.allocUnsafeSlow(size);
  }

  /** Called by pg's Client when the query reaches the front of its queue. */
  submit(connection: PgConnection): void {
    if (this.destroyed && this.#sent) {
      // Destroyed while queued behind another COPY, its query already on the wire: its answer
      // cannot be told apart from what follows, so the connection goes.
      connection.stream.destroy();
      return;
    }
    this.#conn = connection;
    const sock = connection.stream;
    if (isDirectSocket(sock)) {
      this.#direct = sock;
      sock.setSink(this.#onRead, this.#target);
    } else {
      const listeners = sock.listeners('data');
      if (listeners.length !== 1) throw new InternalError('unexpected pg connection state: expected one data listener');
      this.#pgHandler = listeners[0] as (chunk: Buffer) => void;
      sock.removeListener('data', this.#pgHandler);
      sock.on('data', this.#onData);
    }
    if (!this.#sent) connection.query(this.text);
  }

  /**
   * Send `next`'s query now, behind this running COPY: the server reads it once this COPY has
   * ended and starts it at once, without waiting for the client to drain this COPY and ask.
   * Returns false when it is too late (this COPY's end is already being read): `next` then
   * sends its own query when pg submits it, as any query.
   */
  sendBehind(next: CopyOutStream): boolean {
    if (!this.#conn || this.#finished || this.#handedBack || this.#closing !== undefined || this.#next || this.destroyed) return false;
    this.#next = next;
    next.#sent = true;
    this.#conn.query(next.text);
    return true;
  }

  override _read(): void {
    if (this.#paused && this.#conn) {
      this.#paused = false;
      if (!this.#resting) this.#conn.stream.resume();
    }
  }

  /**
   * Make room for `need` more bytes at #w. Complete rows are handed out first when the block
   * holds any; the row in progress moves to a new block big enough for it (its whole length
   * is known from its header, so a large row is copied once, not once per read).
   */
  #room(need: number): void {
    if (this.#w + need <= this.#block.length) return;
    this.#rotate(need);
  }

  /** Hand out the complete rows and continue in a new block with the row in progress. */
  #rotate(need: number): void {
    const n = this.#nEnds;
    const lastEnd = n > 0 ? (this.#ends[n - 1] as number) : 0;
    const partial = this.#w - lastEnd;
    const old = this.#block;
    const size = Math.max(this.#chunkBytes + READ_BUFFER_BYTES, partial + need);
    const reused = this.#free.pop();
    this.#block = reused !== undefined && reused.length >= size ? reused : Buffer.allocUnsafeSlow(size);
    if (partial > 0) old.copy(this.#block, 0, lastEnd, lastEnd + partial);
    this.#w = partial;
    this.#nEnds = 0;
    if (n > 0) this.#push(old.subarray(0, lastEnd), this.#ends.slice(0, n));
  }

  /**
   * Hand a chunk's block back once nothing refers to its bytes any more (its rows hashed and
   * written, the store done with them: `ObjectStore.releasesWrites` in lib/store); the next block
   * reuses it instead of allocating. Optional: a chunk never released is garbage as before.
   * Why: a fresh 1.25 MiB block per MiB made V8 run a full mark-compact every ≈ 18 MB of an
   * export (13 per 235 MB, with a 9 MB heap); reusing them left one, and cut the client's CPU
   * per GB by ≈ 20% (docs/benchmarks.md). At most `freeBlocks` are kept; only blocks of
   * the standard size (a block grown for a large row is left to the GC). Never call it twice
   * for one chunk, nor for a chunk still in use: the bytes will be overwritten.
   */
  release(rc: RowChunk): void {
    const b = rc.data;
    if (b.byteOffset !== 0) return;
    this.#keep(Buffer.from(b.buffer, 0, b.buffer.byteLength));
  }

  /** Keep a whole block for reuse, when it has the standard size and the free list has room. */
  #keep(block: Buffer): void {
    if (this.#free.length >= this.#freeMax || block.length !== this.#chunkBytes + READ_BUFFER_BYTES || this.#free.some((f) => f.buffer === block.buffer)) return;
    this.#free.push(block);
  }

  /** Blocks held for reuse (see {@link release}). */
  get releasedBlocks(): number {
    return this.#free.length;
  }

  /**
   * A direct socket's read: in place when it landed in the block ({@link #target}), else copied
   * (the socket's own buffer, before the first #target call). Then, after a small read, a rest.
   */
  #onRead = (buf: Buffer, n: number): boolean => {
    const block = this.#block;
    const small = n < REST_BELOW && n < this.#offered;
    this.#received += n;
    const ok = buf.buffer === block.buffer && buf.byteOffset - block.byteOffset === this.#w ? this.#parse(block, this.#w, this.#w + n) : this.#parse(buf, 0, n);
    // Not after the COPY's end went back to pg (the socket is pg's again), nor after a failure.
    if (!ok || !small || this.#handedBack || this.#closing !== undefined) return ok;
    this.#resting = true;
    setTimeout(this.#wake, this.#received < REST_LONG_AFTER ? REST_SHORT_MS : REST_MS);
    return false;
  };

  /**
   * Where a direct socket's next read lands: the block, after the bytes parsed so far. The
   * bytes there are the row in progress at most; the read continues it in place.
   */
  #target = (): Buffer => {
    if (this.#block.length - this.#w < MIN_READ_ROOM) {
      // Room for a read, and for the rest of a row in progress (the slow path copies its
      // pieces without looking: the room for the whole row was made when its header came).
      this.#rotate(Math.max(MIN_READ_ROOM, this.#msgType === COPY_DATA ? this.#msgRemaining : 0));
    }
    this.#offered = this.#block.length - this.#w;
    return this.#block.subarray(this.#w);
  };

  /** Put buf[from, to) into the block at `w`: a memmove within the block, or nothing when it is there already. */
  #put(buf: Buffer, from: number, to: number, w: number): void {
    const block = this.#block;
    if (buf !== block) buf.copy(block, w, from, to);
    else if (from !== w) block.copyWithin(w, from, to);
  }

  #growEnds(): void {
    const g = new Uint32Array(this.#ends.length * 2);
    g.set(this.#ends);
    this.#ends = g;
  }

  #addEnd(e: number): void {
    if (this.#nEnds === this.#ends.length) this.#growEnds();
    this.#ends[this.#nEnds++] = e;
  }

  /**
   * Parse the protocol bytes buf[start, n). `buf` is a socket read, or the block itself when
   * the read landed there (at #w). Returns false when the consumer is full and the socket
   * should pause (a direct socket's read callback pauses on false).
   */
  #parse(buf: Buffer, start: number, n: number): boolean {
    if (this.#closing !== undefined) return this.#gather(buf.subarray(start, n));
    let r = start;
    while (r < n) {
      if (this.#msgRemaining === 0 && this.#hdrLen === 0) {
        // Hot loop: whole CopyData messages inside this read, state kept in locals. Each row's
        // payload is first moved left over the message headers within the read (copyWithin: a
        // memmove, no allocation), then the compacted run goes into the block in one copy, or
        // is there already when the read landed in the block (moving left never overtakes the
        // bytes still to parse). A Buffer.copy per row would allocate a view per row (≈ 3 M per
        // GB) for the GC.
        let block = this.#block;
        let w = this.#w;
        let ends = this.#ends;
        let nEnds = this.#nEnds;
        let run = r; // compacted rows waiting for the block: buf[run, cw)
        let cw = r;
        while (r + 5 <= n && buf[r] === COPY_DATA) {
          const s = r + 5;
          const len = ((((buf[r + 1] as number) << 24) | ((buf[r + 2] as number) << 16) | ((buf[r + 3] as number) << 8) | (buf[r + 4] as number)) >>> 0) - 4;
          const e = s + len;
          if (len < 0 || e > n) break; // a bad length is reported below, outside the hot loop
          if (w + (cw - run) + len > block.length || nEnds === ends.length) {
            if (cw > run) this.#put(buf, run, cw, w);
            w += cw - run;
            run = cw;
            this.#w = w;
            this.#nEnds = nEnds;
            if (nEnds === ends.length) this.#growEnds();
            this.#room(len);
            block = this.#block;
            w = this.#w;
            ends = this.#ends;
            nEnds = this.#nEnds;
          }
          if (cw !== s) buf.copyWithin(cw, s, e);
          cw += len;
          ends[nEnds++] = w + (cw - run);
          r = e;
        }
        if (cw > run) this.#put(buf, run, cw, w);
        this.#w = w + (cw - run);
        this.#nEnds = nEnds;
        if (r >= n) break;
      }
      if (this.#msgRemaining > 0) {
        const rem = this.#msgRemaining;
        const take = rem < n - r ? rem : n - r;
        if (this.#msgType === COPY_DATA) {
          // Room for the whole row was made when its header was read.
          this.#put(buf, r, r + take, this.#w);
          this.#w += take;
          if (take === rem) this.#addEnd(this.#w);
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
        buf.copy(this.#hdr, this.#hdrLen, r, r + take);
        this.#hdrLen += take;
        r += take;
        if (this.#hdrLen < 5) break;
        this.#hdrLen = 0;
        t = this.#hdr[0] as number;
        len = this.#hdr.readUInt32BE(1);
      }
      len -= 4;
      if (len < 0) {
        // The length includes itself, so it is at least 4: the stream is out of step.
        this.#fail(new CopyProtocolError(`malformed COPY message: type 0x${t.toString(16).padStart(2, '0')} with length ${len + 4} (at least 4)`));
        return false;
      }
      if (t !== COPY_DATA && t !== COPY_OUT_RESPONSE && t !== NOTICE && t !== PARAMETER_STATUS && t !== NOTIFICATION && t !== COPY_DONE) {
        // CommandComplete, ErrorResponse or anything else: the COPY data is over. Give
        // this message and everything after it back to pg's parser, header included.
        const rest = Buffer.concat([this.#headerBytes(t, len), buf.subarray(r, n)]);
        if (this.#nEnds > 0) this.#rotate(0);
        if (this.#next) {
          this.#closing = Buffer.alloc(0);
          return this.#gather(rest);
        }
        this.#handBack(rest);
        return true;
      }
      this.#msgType = t;
      this.#msgRemaining = len;
      if (t === COPY_DATA) {
        this.#room(len);
        // An empty CopyData message is a zero-length row (cannot happen in text/csv, harmless).
        if (len === 0) this.#addEnd(this.#w);
      }
    }
    // Hand out only blocks of complete rows ≥ chunkBytes: a store write then takes one block as is.
    if (this.#nEnds > 0 && (this.#ends[this.#nEnds - 1] as number) >= this.#chunkBytes) this.#rotate(0);
    return !this.#paused;
  }

  /** Stop on bytes that cannot be parsed: the connection is dropped, since its framing is lost. */
  #fail(err: CopyProtocolError): void {
    if (this.#direct) this.#direct.setSink(undefined);
    else if (this.#conn) this.#conn.stream.removeListener('data', this.#onData);
    this.destroy(err);
  }

  /**
   * With a COPY queued behind: read this COPY's closing messages (CommandComplete or
   * ErrorResponse, notices, ReadyForQuery) while keeping the socket. Each whole message before
   * the ReadyForQuery goes to pg's parser as it arrives: a FATAL ErrorResponse (57P01 from
   * pg_terminate_backend, 57P02 at shutdown) is followed by no ReadyForQuery, only the close,
   * and held back it would be lost (pg would fail the COPY with "Connection terminated
   * unexpectedly", no SQLSTATE). At the ReadyForQuery the socket goes back to pg, whose
   * ReadyForQuery handling submits the next COPY (the head of its queue, synchronously); the
   * next COPY then gets the bytes after it, its own answer's start.
   */
  #gather(bytes: Buffer): boolean {
    const acc = this.#closing!.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.#closing!, bytes]);
    let at = 0;
    while (at + 5 <= acc.length) {
      const end = at + 1 + acc.readUInt32BE(at + 1);
      if (end > acc.length) break;
      if (acc[at] === READY_FOR_QUERY) {
        const next = this.#next!;
        this.#closing = undefined;
        this.#next = undefined;
        this.#handBack(acc.subarray(0, end));
        return next.#adopt(acc.subarray(end));
      }
      at = end;
    }
    // Set before pg sees the messages: its error handling destroys this stream synchronously.
    this.#closing = at === acc.length ? Buffer.alloc(0) : Buffer.from(acc.subarray(at));
    if (at > 0) this.#toPg(acc.subarray(0, at));
    return true;
  }

  /** Whole protocol messages to pg's parser, the socket staying with this reader. */
  #toPg(messages: Buffer): void {
    if (this.#direct) this.#direct.emit('data', messages);
    else this.#pgHandler?.(messages);
  }

  /** The first bytes of this COPY's answer, read by the COPY before it; pg has just submitted this one. */
  #adopt(rest: Buffer): boolean {
    if (!this.#conn) {
      // pg submitted another query first: the answer on the wire is not the one it expects.
      const err = new InternalError('a COPY queued behind another was not the next query of its session');
      this.destroy(err);
      return false;
    }
    return rest.length === 0 ? !this.#paused : this.#parse(rest, 0, rest.length);
  }

  #headerBytes(type: number, remaining: number): Buffer {
    const h = Buffer.allocUnsafe(5);
    h[0] = type;
    h.writeUInt32BE(remaining + 4, 1);
    return h;
  }

  #push(data: Buffer, rowEnds: Uint32Array): void {
    if (!this.push({ data, rowEnds } satisfies RowChunk) && this.#conn && !this.#paused) {
      this.#paused = true;
      // A direct socket pauses when its read callback returns false (#parse's result).
      if (!this.#direct) this.#conn.stream.pause();
    }
  }

  #handBack(rest: Buffer): void {
    this.#handedBack = true;
    const conn = this.#conn;
    if (!conn) return;
    if (this.#direct) {
      this.#direct.setSink(undefined);
      if (this.#paused) {
        this.#paused = false;
        conn.stream.resume();
      }
      if (rest.length > 0) this.#direct.emit('data', rest);
      return;
    }
    const handler = this.#pgHandler;
    if (!handler) return;
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
    // The block being filled holds no handed-out rows (every chunk is a block already rotated
    // out): with a shared free list, the session's next COPY starts in it.
    this.#keep(this.#block);
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

/** Options of {@link copyOut}. */
export interface CopyOutOptions {
  /** Chunks waiting for the consumer (default 2). */
  highWaterMark?: number;
  /** Bytes of rows per chunk (default {@link COPY_CHUNK_BYTES}). */
  chunkBytes?: number;
  /**
   * Blocks handed back by {@link CopyOutStream.release} that are kept for reuse (default 2, about
   * 1.25 MiB each): a consumer that releases chunks in bursts (a columnar writer, once it has
   * taken the batch whose rows it kept) needs room for the whole burst.
   */
  freeBlocks?: number;
  /**
   * The free list itself, to share between the COPYs one session runs one after another (a
   * stream's page ranges): blocks left over by one COPY, released or never filled, serve the
   * next instead of fresh allocations (default: a list of this stream's own). Never share it
   * between COPYs that run at once on different sessions: a block is reused by whichever takes it.
   */
  blocks?: Buffer[];
}

/** Run a COPY TO STDOUT on a client and return the framed row stream. */
export function copyOut(client: pg.Client, sql: string, opts?: CopyOutOptions): CopyOutStream {
  const s = new CopyOutStream(sql, opts);
  (client as unknown as { query(q: unknown): void }).query(s);
  return s;
}

/**
 * Queue a COPY TO STDOUT behind `running`, a COPY of the same client, and send its query now:
 * PostgreSQL reads a query sent behind a running COPY OUT and starts it as soon as that COPY
 * has ended, so the backend does not idle while the client drains the first COPY and asks for
 * the next (pg's Client sends one query at a time, so the COPY reader sends it). The client's
 * queue must hold nothing else: the queued COPY is the next query pg submits. It behaves as
 * one from {@link copyOut} afterwards; an error of the first COPY fails the queued one too
 * (its transaction has failed), and destroying either drops the connection. Until it is
 * consumed its errors are kept for its reader (no unhandled 'error' event).
 */
export function copyOutAfter(running: CopyOutStream, client: pg.Client, sql: string, opts?: CopyOutOptions): CopyOutStream {
  const s = new CopyOutStream(sql, opts);
  s.on('error', () => {});
  (client as unknown as { query(q: unknown): void }).query(s);
  running.sendBehind(s);
  return s;
}
