import net from 'node:net';

/**
 * Receives each socket read of a {@link DirectSocket}: `buf` is the socket's one reusable
 * read buffer and holds `n` new bytes, valid only during the call (copy what you keep).
 * Return `false` to pause reading; `socket.resume()` starts it again.
 */
export type ReadSink = (buf: Buffer, n: number) => boolean | void;

/**
 * Where the next read of a {@link DirectSocket} lands: a sink's own buffer (at least 1 byte;
 * the kernel fills what has arrived, up to its length). Called after each read's sink call.
 */
export type ReadTarget = () => Buffer;

/** A TCP socket whose reads land in one reusable buffer and can be taken by a {@link ReadSink}. */
export interface DirectSocket extends net.Socket {
  /**
   * Route reads to `sink` (e.g. a COPY reader); `undefined` gives them back as 'data' events.
   * With `target`, reads land where it says instead of in the socket's buffer (a COPY
   * reader's block), so the sink need not copy them. Where a read lands is chosen when the
   * read before it has been handled, so a change made outside a sink call takes effect one
   * read later: a target's buffer must stay writable until that read (after the sink's
   * removal its bytes are copied out as a 'data' event). Default: the socket's own buffer.
   */
  setSink(sink: ReadSink | undefined, target?: ReadTarget): void;
}

/**
 * Read size of a direct socket. The kernel hands over whatever has arrived, up to this; the
 * server writes COPY in 8 KiB flushes, and a busy client finds several queued.
 */
export const READ_BUFFER_BYTES = 256 * 1024;

/**
 * A `net.Socket` reading into one fixed buffer (Node's `onread` option) instead of a new
 * 64 KiB buffer per read: no allocation, no stream machinery per read. Until a sink is set,
 * every read is copied out and emitted as a 'data' event, so pg's protocol parser sees an
 * ordinary socket. A sink may also say where reads land (a COPY reader's block: no copy of
 * the bytes between socket and block). Memory: {@link READ_BUFFER_BYTES} per connection.
 */
export function directSocket(): DirectSocket {
  let sink: ReadSink | undefined;
  let target: ReadTarget | undefined;
  const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  // `onread` is accepted by the Socket constructor (Node ≥ 12), though @types/node lists it
  // only for net.connect. A function as `buffer` is called after each read's callback (Node's
  // onStreamRead) and gives the buffer of the next read.
  const sock = new net.Socket({
    onread: {
      buffer: () => (target !== undefined ? target() : buffer),
      callback: (n: number, buf: Uint8Array): boolean => {
        const b = buf as Buffer;
        if (sink) return sink(b, n) !== false;
        sock.emit('data', Buffer.from(b.subarray(0, n)));
        return true;
      },
    },
  } as net.SocketConstructorOpts) as DirectSocket;
  sock.setSink = (s, t) => {
    sink = s;
    target = s !== undefined ? t : undefined;
  };
  return sock;
}

/** Is this a {@link DirectSocket}? */
export function isDirectSocket(s: unknown): s is DirectSocket {
  return typeof (s as Partial<DirectSocket> | undefined)?.setSink === 'function';
}
