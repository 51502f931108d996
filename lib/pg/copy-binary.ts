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
