/**
 * Builders of COPY bytes for the unit tests: protocol messages (type byte, int32 length that
 * includes itself, payload) and COPY BINARY tuples (int16 field count, per field an int32
 * length, -1 for NULL, then the value), as PostgreSQL documents them. Not a test file.
 */

/** One protocol message. `length` overrides the length field (to make it wrong on purpose). */
export function message(type: string, payload: Buffer | string, length?: number): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(length ?? p.length + 4, 1);
  return Buffer.concat([h, p]);
}

/** The 19-byte COPY BINARY header with `ext` extension bytes announced (`extLen`, default their length). */
export function binaryHeader(ext = Buffer.alloc(0), extLen = ext.length): Buffer {
  const h = Buffer.alloc(19);
  Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1').copy(h, 0);
  h.writeUInt32BE(0, 11);
  h.writeUInt32BE(extLen, 15);
  return Buffer.concat([h, ext]);
}

/** A COPY BINARY tuple; `null` is a NULL field. `count` overrides the field count. */
export function tuple(fields: (Buffer | null)[], count = fields.length): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeInt16BE(count, 0);
  for (const f of fields) {
    const l = Buffer.alloc(4);
    l.writeInt32BE(f === null ? -1 : f.length, 0);
    parts.push(l);
    if (f) parts.push(f);
  }
  return Buffer.concat(parts);
}

/** The trailer that ends a binary COPY stream (a field count of -1). */
export const TRAILER = Buffer.from([0xff, 0xff]);

export function int4(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v, 0);
  return b;
}

export function int2(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v, 0);
  return b;
}

/**
 * Rows (CopyData payloads) as the COPY reader hands them out: one buffer and each row's end.
 * The header goes into the first row's message, as the server sends it.
 */
export function rowChunk(rows: Buffer[]): { data: Buffer; rowEnds: Uint32Array } {
  const ends = new Uint32Array(rows.length);
  let e = 0;
  rows.forEach((r, i) => { e += r.length; ends[i] = e; });
  return { data: Buffer.concat(rows), rowEnds: ends };
}
