/*
 * Framing of COPY … (FORMAT binary), shared by the Arrow batch builder and the row hasher
 * (PostgreSQL "COPY" reference, "Binary Format"). Kept free of apache-arrow, which the row
 * hasher must not load for TEXT and CSV exports.
 */
import { CopyProtocolError } from '../errors.js';

/** The 11-byte signature that starts every COPY BINARY stream. */
export const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Where the first tuple starts in the message `data[s, e)` that opens a binary COPY stream:
 * after the signature, the flags, the header extension length and the extension.
 */
export function binaryHeaderEnd(data: Buffer, s: number, e: number): number {
  if (e - s < 19 || data.compare(COPY_SIGNATURE, 0, 11, s, s + 11) !== 0) {
    throw new CopyProtocolError('COPY BINARY stream does not start with the PGCOPY signature');
  }
  // The extension area must fit in the message that holds the header.
  const end = s + 19 + data.readUInt32BE(s + 15);
  if (end > e) throw new CopyProtocolError(`COPY BINARY header extension runs ${end - e} bytes past its message`);
  return end;
}

/** Is the message `data[s, e)` the trailer (a field count of -1) that ends a binary COPY stream? */
export function isBinaryTrailer(data: Buffer, s: number, e: number): boolean {
  return e - s >= 2 && data.readInt16BE(s) === -1;
}

/** The 19-byte header segferry writes before the tuples of a COPY BINARY stream: signature, flags 0, no extension. */
export const COPY_BINARY_HEADER = Buffer.concat([COPY_SIGNATURE, Buffer.alloc(8)]);
/** The trailer that ends a COPY BINARY stream: a field count of -1. */
export const COPY_BINARY_TRAILER = Buffer.from([0xff, 0xff]);

/**
 * Finds the tuples of COPY BINARY row chunks (lib/pg/copy-out.ts), dropping each stream's
 * header (inside the first message) and trailer (the last message), so that tuples of several
 * COPY streams can be framed again as one stream or cut into several. Feed it every chunk of
 * every stream in order.
 */
export class BinaryTuples {
  #inCopy = false;

  /** The byte range `[start, end)` of `data` holding whole tuples (empty when none). */
  range(data: Buffer, rowEnds: Uint32Array): { start: number; end: number; from: number; to: number } {
    let from = 0;
    let to = rowEnds.length;
    let start = 0;
    if (to === 0) return { start: 0, end: 0, from: 0, to: 0 };
    if (!this.#inCopy) {
      const e = rowEnds[0] as number;
      start = binaryHeaderEnd(data, 0, e);
      this.#inCopy = true;
      if (start === e) from = 1;
    }
    const ls = to === 1 ? start : (rowEnds[to - 2] as number);
    if (to > from && isBinaryTrailer(data, ls, rowEnds[to - 1] as number)) {
      to--;
      this.#inCopy = false;
    }
    const end = to > from ? (rowEnds[to - 1] as number) : start;
    return { start, end: Math.max(start, end), from, to };
  }

  /** True between a stream's header and its trailer. */
  get inCopy(): boolean {
    return this.#inCopy;
  }
}
